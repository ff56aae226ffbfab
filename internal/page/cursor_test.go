package page_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/page"
)

func TestCursorRoundTripsAndIsURLSafe(t *testing.T) {
	t.Parallel()
	for _, c := range []page.Cursor{
		{Sort: "-created_at", Filter: page.Fingerprint("1", ""), Key: "2026-03-01T12:00:00.000001Z", ID: 42, Pos: 20},
		{Sort: "due_at", Filter: page.Fingerprint(), KeyNull: true, ID: 1, Pos: 0},
		{Sort: "priority", Filter: "f", Key: "urgent", ID: 1<<63 - 1, Pos: 1 << 40},
		{Sort: "id", Filter: page.Fingerprint("=ada\"&?/", "true"), ID: 7, Pos: 3},
	} {
		enc := c.Encode()
		require.Regexp(t, `^[A-Za-z0-9_-]+$`, enc)
		require.LessOrEqual(t, len(enc), page.MaxCursorLen)
		got, err := page.DecodeCursor(enc)
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
}

func TestDecodeCursorRejectsGarbageAndAlterations(t *testing.T) {
	t.Parallel()
	enc := page.Cursor{Sort: "-created_at", Filter: page.Fingerprint("x"), Key: "2026-03-01T12:00:00Z", ID: 42, Pos: 20}.Encode()
	bad := []string{"", "A", "!!!!", enc[:len(enc)-1], enc + "A", strings.Repeat("A", page.MaxCursorLen+1),
		base64.RawURLEncoding.EncodeToString([]byte(`{"s":"-created_at","f":"x","i":42,"p":20}`)),
		base64.StdEncoding.EncodeToString([]byte("not a cursor at all")),
	}
	for i := range len(enc) {
		b := []byte(enc)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		bad = append(bad, string(b))
	}
	for _, s := range bad {
		_, err := page.DecodeCursor(s)
		require.Error(t, err, "%q", s)
	}
	// Every other character in the last position is refused, whatever the encoded length:
	// unpadded base64's last character carries unused bits that a lax decoder ignores.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, id := range []int64{1, 12, 123} { // three body lengths: every remainder modulo 3
		enc := page.Cursor{Sort: "id", Filter: page.Fingerprint("x"), ID: id, Pos: 20}.Encode()
		last := enc[len(enc)-1]
		for _, ch := range []byte(alphabet) {
			if ch == last {
				continue
			}
			_, err := page.DecodeCursor(enc[:len(enc)-1] + string(ch))
			require.Error(t, err, "%q with its last character changed to %q", enc, ch)
		}
	}
	// A well-formed cursor naming no row or a negative position is refused too.
	for _, c := range []page.Cursor{{Sort: "id", ID: 0}, {Sort: "id", ID: -1}, {Sort: "id", ID: 1, Pos: -1}} {
		_, err := page.DecodeCursor(c.Encode())
		require.Error(t, err, "%+v", c)
	}
}

func TestFingerprintTellsFiltersApart(t *testing.T) {
	t.Parallel()
	seen := map[string][]string{}
	for _, parts := range [][]string{{}, {""}, {"", ""}, {"a", "bc"}, {"ab", "c"}, {"1", ""}, {"", "1"}, {"=x"}, {"x"}} {
		fp := page.Fingerprint(parts...)
		require.NotContains(t, seen, fp, "%q and %q", parts, seen[fp])
		seen[fp] = parts
		require.Equal(t, fp, page.Fingerprint(parts...), "deterministic")
	}
}

func TestParseCursorBindsSortAndFilters(t *testing.T) {
	t.Parallel()
	filter := page.Fingerprint("pending")
	enc := page.Cursor{Sort: "-created_at", Filter: filter, Key: "2026-03-01T12:00:00Z", ID: 42, Pos: 20}.Encode()

	c, err := page.ParseCursor(page.Request{Limit: 10}, "-created_at", filter)
	require.NoError(t, err)
	require.Nil(t, c, "no cursor: from the start")

	c, err = page.ParseCursor(page.Request{Limit: 10, Cursor: enc}, "-created_at", filter)
	require.NoError(t, err)
	require.Equal(t, int64(42), c.ID)

	for _, tc := range []struct{ sort, filter, cursor, want string }{
		{"created_at", filter, enc, `sort "-created_at", not "created_at"`},
		{"-created_at", page.Fingerprint("done"), enc, "other filters"},
		{"-created_at", filter, enc[1:], "not a cursor of this list"},
	} {
		_, err := page.ParseCursor(page.Request{Limit: 10, Cursor: tc.cursor}, tc.sort, tc.filter)
		e := apperr.As(err)
		require.NotNil(t, e)
		require.Equal(t, apperr.Invalid, e.Kind)
		require.Len(t, e.Fields, 1)
		require.Equal(t, "cursor", e.Fields[0].Field)
		require.Equal(t, "query", e.Fields[0].Location)
		require.Contains(t, e.Fields[0].Message, tc.want)
	}
}

func TestNewCursorRequestRefusesSkipWithCursor(t *testing.T) {
	t.Parallel()
	cur := "abc"
	r, err := page.NewCursorRequest(nil, i32(5), &cur)
	require.NoError(t, err)
	require.Equal(t, page.Request{Limit: 5, Cursor: "abc"}, r)
	r, err = page.NewCursorRequest(i32(10), nil, nil)
	require.NoError(t, err)
	require.Equal(t, page.Request{Skip: 10, Limit: page.DefaultLimit}, r)
	for _, skip := range []int32{0, 10} {
		_, err = page.NewCursorRequest(i32(skip), nil, &cur)
		e := apperr.As(err)
		require.NotNil(t, e)
		require.Equal(t, "skip", e.Fields[0].Field)
	}
}

func TestNewKeysetTrimsTheExtraItemAndMakesTheNextCursor(t *testing.T) {
	t.Parallel()
	next := func(last int) page.Cursor { return page.Cursor{Sort: "id", Filter: "f", ID: int64(last)} }
	r := page.Request{Limit: 3}
	p := page.NewKeyset([]int{1, 2, 3, 4}, 10, r, 6, next)
	require.Equal(t, []int{1, 2, 3}, p.Items)
	require.EqualValues(t, 3, p.Page, "6 items before, 3 a page")
	require.EqualValues(t, 4, p.TotalPages)
	c, err := page.DecodeCursor(p.NextCursor)
	require.NoError(t, err)
	require.Equal(t, page.Cursor{Sort: "id", Filter: "f", ID: 3, Pos: 9}, c)

	last := page.NewKeyset([]int{1, 2, 3}, 10, r, 6, next)
	require.Equal(t, []int{1, 2, 3}, last.Items)
	require.Empty(t, last.NextCursor, "no extra item: the last page")
	require.Empty(t, page.NewKeyset[int](nil, 0, r, 0, next).NextCursor)
	require.Equal(t, last.NextCursor, page.Map(last, func(v int) int { return v }).NextCursor)
	require.Equal(t, p.NextCursor, page.Map(p, func(v int) int { return v }).NextCursor, "Map keeps the cursor")
}
