// Package page holds the pagination shape every list endpoint shares.
package page

import "strings"

// Request is a validated skip/limit pair.
type Request struct {
	Skip  int32
	Limit int32
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

// Map converts a page's items.
func Map[T, U any](p Page[T], f func(T) U) Page[U] {
	out := make([]U, len(p.Items))
	for i, it := range p.Items {
		out[i] = f(it)
	}
	return Page[U]{Items: out, Total: p.Total, Page: p.Page, PageSize: p.PageSize, TotalPages: p.TotalPages,
		TotalIsEstimate: p.TotalIsEstimate}
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// EscapeLike escapes s for use inside a LIKE/ILIKE pattern so that it matches literally.
func EscapeLike(s string) string { return likeEscaper.Replace(s) }
