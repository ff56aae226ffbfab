package httpapi

import "github.com/oapi-codegen/nullable"

// nextCursor is a page's next_cursor: null on the last page.
func nextCursor(c string) nullable.Nullable[string] {
	if c == "" {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(c)
}
