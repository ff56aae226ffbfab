package etag_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/etag"
)

func header(s string) *string { return &s }

func TestFormatQuotesTheVersion(t *testing.T) {
	t.Parallel()
	require.Equal(t, `"1"`, etag.Format(1))
	require.Equal(t, `"42"`, etag.Format(42))
	require.Equal(t, `"9223372036854775807"`, etag.Format(1<<63-1))
}

func TestFormattedTagRoundTripsThroughBothHeaders(t *testing.T) {
	t.Parallel()
	tag := etag.Format(7)
	require.True(t, etag.IfMatch(&tag).Allows(7))
	require.False(t, etag.IfMatch(&tag).Allows(8))
	require.True(t, etag.IfNoneMatch(&tag).Matches(7))
	require.False(t, etag.IfNoneMatch(&tag).Matches(8))
}

func TestAbsentHeaderAllowsEveryVersionAndMatchesNone(t *testing.T) {
	t.Parallel()
	tests := map[string]*string{
		"nil":        nil,
		"empty":      header(""),
		"whitespace": header("   "),
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, c := range []etag.Condition{etag.IfMatch(h), etag.IfNoneMatch(h), {}} {
				require.False(t, c.Present())
				require.True(t, c.Allows(1))
				require.True(t, c.Allows(99))
				require.False(t, c.Matches(1))
			}
		})
	}
}

func TestIfMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  string
		allowed []int64
		refused []int64
	}{
		{name: "single strong tag", header: `"3"`, allowed: []int64{3}, refused: []int64{2, 4, 30}},
		{name: "list of tags", header: `"1", "3","5"`, allowed: []int64{1, 3, 5}, refused: []int64{2, 4}},
		{name: "star allows any version", header: `*`, allowed: []int64{1, 2, 1000}},
		{name: "weak tag never matches", header: `W/"3"`, refused: []int64{3, 4}},
		{name: "weak tag in a list is skipped", header: `W/"3", "4"`, allowed: []int64{4}, refused: []int64{3}},
		{name: "unknown tag", header: `"abc"`, refused: []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := etag.IfMatch(header(tt.header))
			require.True(t, c.Present())
			for _, v := range tt.allowed {
				require.True(t, c.Allows(v), "version %d", v)
				require.True(t, c.Matches(v), "version %d", v)
			}
			for _, v := range tt.refused {
				require.False(t, c.Allows(v), "version %d", v)
				require.False(t, c.Matches(v), "version %d", v)
			}
		})
	}
}

func TestIfNoneMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		header    string
		matches   []int64
		unmatched []int64
	}{
		{name: "single strong tag", header: `"3"`, matches: []int64{3}, unmatched: []int64{2, 4}},
		{name: "weak tag compares weakly", header: `W/"3"`, matches: []int64{3}, unmatched: []int64{4}},
		{name: "mixed list", header: `"1", W/"3"`, matches: []int64{1, 3}, unmatched: []int64{2}},
		{name: "star matches any version", header: `*`, matches: []int64{1, 77}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := etag.IfNoneMatch(header(tt.header))
			require.True(t, c.Present())
			for _, v := range tt.matches {
				require.True(t, c.Matches(v), "version %d", v)
			}
			for _, v := range tt.unmatched {
				require.False(t, c.Matches(v), "version %d", v)
			}
		})
	}
}
