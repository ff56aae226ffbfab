// Package page holds the pagination shape every list endpoint shares.
package page

import (
	"strings"

	"enterprise-automation/internal/apperr"
)

// Request is a validated skip/limit pair, or a limit and a cursor (Skip is then 0).
type Request struct {
	Skip  int32
	Limit int32
	// Cursor is the encoded keyset position to continue from (empty: none); the list's
	// service decodes it (ParseCursor).
	Cursor string
}

// Defaults for list endpoints.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// NewRequest applies the defaults to optional skip and limit values (already range-checked
// against the contract).
func NewRequest(skip, limit *int32) Request {
	r := Request{Limit: DefaultLimit}
	if skip != nil {
		r.Skip = *skip
	}
	if limit != nil {
		r.Limit = *limit
	}
	return r
}

// NewCursorRequest is NewRequest with an optional cursor. Invalid when both skip and
// cursor are given: a cursor already says where the page starts.
func NewCursorRequest(skip, limit *int32, cursor *string) (Request, error) {
	r := NewRequest(skip, limit)
	if cursor != nil {
		if skip != nil {
			return Request{}, apperr.Validation(apperr.FieldError{Location: "query", Field: "skip",
				Message: "cannot be combined with cursor: a cursor already says where the page starts"})
		}
		r.Cursor = *cursor
	}
	return r, nil
}

// Page is one page of a list with its totals.
type Page[T any] struct {
	Items      []T
	Total      int64
	Page       int32 // 1-based
	PageSize   int32
	TotalPages int32
	// TotalIsEstimate tells that Total (and TotalPages) are an estimate: the list was too
	// large to count exactly.
	TotalIsEstimate bool
	// NextCursor continues the list after this page (encoded; empty on the last page).
	NextCursor string
}

// New assembles a page; an empty list has zero total pages.
func New[T any](items []T, total int64, r Request) Page[T] {
	if items == nil {
		items = []T{}
	}
	return Page[T]{
		Items:      items,
		Total:      total,
		Page:       r.Skip/r.Limit + 1,
		PageSize:   r.Limit,
		TotalPages: int32((total + int64(r.Limit) - 1) / int64(r.Limit)),
	}
}

// NewKeyset assembles a page from up to r.Limit+1 items read after pos items (r.Skip, or
// the Pos of the cursor it continues): the extra item only tells that another page
// follows, whose cursor next makes from this page's last item.
func NewKeyset[T any](items []T, total int64, r Request, pos int64, next func(last T) Cursor) Page[T] {
	more := len(items) > int(r.Limit)
	if more {
		items = items[:r.Limit]
	}
	p := New(items, total, r)
	p.Page = int32(min(pos/int64(r.Limit)+1, 1<<31-1))
	if more {
		c := next(items[len(items)-1])
		c.Pos = pos + int64(len(items))
		p.NextCursor = c.Encode()
	}
	return p
}

// Map converts a page's items.
func Map[T, U any](p Page[T], f func(T) U) Page[U] {
	out := make([]U, len(p.Items))
	for i, it := range p.Items {
		out[i] = f(it)
	}
	return Page[U]{Items: out, Total: p.Total, Page: p.Page, PageSize: p.PageSize, TotalPages: p.TotalPages,
		TotalIsEstimate: p.TotalIsEstimate, NextCursor: p.NextCursor}
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// EscapeLike escapes s for use inside a LIKE/ILIKE pattern so that it matches literally.
func EscapeLike(s string) string { return likeEscaper.Replace(s) }
