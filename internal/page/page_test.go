package page_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/page"
)

func i32(v int32) *int32 { return &v }

func TestNewRequestAppliesDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, page.Request{Skip: 0, Limit: page.DefaultLimit}, page.NewRequest(nil, nil))
	require.Equal(t, page.Request{Skip: 20, Limit: page.DefaultLimit}, page.NewRequest(i32(20), nil))
	require.Equal(t, page.Request{Skip: 0, Limit: 5}, page.NewRequest(nil, i32(5)))
	require.Equal(t, page.Request{Skip: 7, Limit: 1000}, page.NewRequest(i32(7), i32(1000)))
	require.Equal(t, int32(100), int32(page.DefaultLimit))
	require.Equal(t, int32(1000), int32(page.MaxLimit))
}

func TestNewComputesPageAndTotals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		total     int64
		skip      int32
		limit     int32
		wantPage  int32
		wantPages int32
	}{
		{name: "empty list has zero pages", total: 0, skip: 0, limit: 100, wantPage: 1, wantPages: 0},
		{name: "one item", total: 1, skip: 0, limit: 100, wantPage: 1, wantPages: 1},
		{name: "exact multiple", total: 100, skip: 0, limit: 10, wantPage: 1, wantPages: 10},
		{name: "one over a multiple", total: 101, skip: 0, limit: 10, wantPage: 1, wantPages: 11},
		{name: "one under a multiple", total: 99, skip: 0, limit: 10, wantPage: 1, wantPages: 10},
		{name: "third page", total: 100, skip: 20, limit: 10, wantPage: 3, wantPages: 10},
		{name: "skip between page starts rounds down", total: 100, skip: 25, limit: 10, wantPage: 3, wantPages: 10},
		{name: "skip past the end", total: 5, skip: 50, limit: 10, wantPage: 6, wantPages: 1},
		{name: "limit one", total: 3, skip: 2, limit: 1, wantPage: 3, wantPages: 3},
		{name: "maximum limit", total: 2500, skip: 1000, limit: 1000, wantPage: 2, wantPages: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := page.New([]string{"a"}, tt.total, page.Request{Skip: tt.skip, Limit: tt.limit})
			require.Equal(t, tt.total, p.Total)
			require.Equal(t, tt.limit, p.PageSize)
			require.Equal(t, tt.wantPage, p.Page)
			require.Equal(t, tt.wantPages, p.TotalPages)
			require.Equal(t, []string{"a"}, p.Items)
		})
	}
}

func TestNewTurnsNilItemsIntoAnEmptyList(t *testing.T) {
	t.Parallel()
	p := page.New[int](nil, 0, page.NewRequest(nil, nil))
	require.NotNil(t, p.Items, "an empty page must serialise as [] not null")
	require.Empty(t, p.Items)
	require.Equal(t, int32(0), p.TotalPages)
}

func TestMapConvertsItemsAndKeepsTotals(t *testing.T) {
	t.Parallel()
	in := page.New([]int{1, 2, 3}, 23, page.Request{Skip: 10, Limit: 5})
	out := page.Map(in, func(v int) string { return "#" + strconv.Itoa(v) })
	require.Equal(t, []string{"#1", "#2", "#3"}, out.Items)
	require.Equal(t, int64(23), out.Total)
	require.Equal(t, int32(3), out.Page)
	require.Equal(t, int32(5), out.PageSize)
	require.Equal(t, int32(5), out.TotalPages)

	empty := page.Map(page.New[int](nil, 0, page.NewRequest(nil, nil)), strconv.Itoa)
	require.NotNil(t, empty.Items)
	require.Empty(t, empty.Items)
}

func TestEscapeLikeMakesWildcardsLiteral(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"", ""},
		{"100%", `100\%`},
		{"snake_case", `snake\_case`},
		{`C:\path`, `C:\\path`},
		{`\%`, `\\\%`},
		{`%_\`, `\%\_\\`},
		{`it's "quoted"`, `it's "quoted"`},
		{"ünïcode_%", `ünïcode\_\%`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, page.EscapeLike(tt.in))
		})
	}
}
