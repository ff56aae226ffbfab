package page

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"enterprise-automation/internal/apperr"
)

// Cursor is a keyset position in a sorted list: the sort key and id of the last item of a
// page, bound to the sort and filters that produced it. Encoded, it is opaque to clients
// (URL-safe base64 of a small JSON document and a checksum) and grants nothing: the list
// it continues is still restricted to what the caller may see.
type Cursor struct {
	// Sort is the list order the cursor belongs to.
	Sort string `json:"s"`
	// Filter fingerprints the filters of the list (see Fingerprint).
	Filter string `json:"f"`
	// Key is the last item's sort key as text (a time in RFC 3339 with nanoseconds, an
	// enum value); empty for orders by id alone or a NULL key (KeyNull).
	Key     string `json:"k,omitempty"`
	KeyNull bool   `json:"n,omitempty"`
	// ID is the last item's id, the order's tie-breaker.
	ID int64 `json:"i"`
	// Pos is how many items came before the next page (for its page number; approximate
	// once items are added or removed between pages).
	Pos int64 `json:"p"`
}

// cursorSum is how many bytes of SHA-256 check an encoded cursor: a cursor changed by hand
// or cut short is rejected instead of being read as another position.
const cursorSum = 8

// cursorDomain separates the checksum of cursors from any other use of the hash.
const cursorDomain = "enterprise-automation list cursor v1\x00"

// MaxCursorLen bounds an encoded cursor (the contract's maxLength).
const MaxCursorLen = 512

// Encode returns the cursor's opaque, URL-safe form.
func (c Cursor) Encode() string {
	body, _ := json.Marshal(c) // strings and integers only: cannot fail
	sum := sha256.Sum256(append([]byte(cursorDomain), body...))
	return base64.RawURLEncoding.EncodeToString(append(body, sum[:cursorSum]...))
}

var errBadCursor = errors.New("not a cursor of this list")

// DecodeCursor reads an encoded cursor; any malformed or altered cursor is an error.
func DecodeCursor(s string) (Cursor, error) {
	if s == "" || len(s) > MaxCursorLen {
		return Cursor{}, errBadCursor
	}
	// Strict: the last character's unused bits must be zero, or a cursor whose last
	// character was changed could decode to the same bytes and pass the checksum.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) <= cursorSum {
		return Cursor{}, errBadCursor
	}
	body, sum := raw[:len(raw)-cursorSum], raw[len(raw)-cursorSum:]
	want := sha256.Sum256(append([]byte(cursorDomain), body...))
	if !bytes.Equal(sum, want[:cursorSum]) {
		return Cursor{}, errBadCursor
	}
	var c Cursor
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.ID <= 0 || c.Pos < 0 {
		return Cursor{}, errBadCursor
	}
	return c, nil
}

// Fingerprint identifies a list's filters: parts are the filter values in a fixed order
// (empty for an absent filter). Its first bytes are enough to tell filters apart.
func Fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed so that ("a", "bc") and ("ab", "c") differ.
		_, _ = h.Write([]byte{byte(len(p) >> 8), byte(len(p))})
		_, _ = h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

// ParseCursor decodes the cursor of r for a list in order sort with filters filter (a
// Fingerprint). nil when r has none; a validation error on the cursor query parameter when
// it is malformed, altered, or belongs to another order or other filters.
func ParseCursor(r Request, sort, filter string) (*Cursor, error) {
	if r.Cursor == "" {
		return nil, nil
	}
	c, err := DecodeCursor(r.Cursor)
	if err != nil {
		return nil, cursorError("is not a cursor of this list; use a next_cursor returned by it, unchanged")
	}
	if c.Sort != sort {
		return nil, cursorError("was returned for sort " + quote(c.Sort) + ", not " + quote(sort) + "; send the sort of the page it came from")
	}
	if c.Filter != filter {
		return nil, cursorError("was returned for other filters; send the filters of the page it came from, or start again without a cursor")
	}
	return &c, nil
}

func cursorError(msg string) error {
	return apperr.Validation(apperr.FieldError{Location: "query", Field: "cursor", Message: msg})
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
