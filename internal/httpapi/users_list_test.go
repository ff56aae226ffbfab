package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

func TestUsersList(t *testing.T) {
	t.Parallel()
	f := usersStart(t)
	ada := usersCreateWith(t, f, "Ada Lovelace", "ada.lovelace@example.com", false)
	grace := usersCreateWith(t, f, "Grace Hopper", "grace@navy.example.org", true)
	sure := usersCreateWith(t, f, "100%_sure", "percent@example.com", false)
	linus := usersCreateWith(t, f, "Linus O'Neil", "linus@example.com", false)
	alan := usersCreateWith(t, f, "Alan Turing", "alan@example.com", false)
	deact, err := f.admin.UpdateUserWithResponse(t.Context(), linus.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(false)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, deact.StatusCode(), "%s", deact.Body)
	all := []int64{f.adminID, ada.Id, grace.Id, sure.Id, linus.Id, alan.Id}

	list := func(t *testing.T, p client.ListUsersParams) *client.ListUsersResponse {
		t.Helper()
		res, err := f.admin.ListUsersWithResponse(t.Context(), &p)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		usersRequireNoPassword(t, res.Body)
		return res
	}

	t.Run("without parameters lists everyone ordered by id on one page of 100", func(t *testing.T) {
		t.Parallel()
		res := list(t, client.ListUsersParams{})
		p := res.JSON200
		require.Equal(t, all, usersIDs(p.Items))
		require.EqualValues(t, 6, p.Total)
		require.EqualValues(t, 1, p.Page)
		require.EqualValues(t, 100, p.PageSize)
		require.EqualValues(t, 1, p.TotalPages)
	})

	t.Run("skip and limit select a page and report page, page_size, total and total_pages", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			skip, limit      *int32
			want             []int64
			page, totalPages int32
			pageSize         int32
		}{
			{nil, apitest.Ptr[int32](2), all[0:2], 1, 3, 2},
			{apitest.Ptr[int32](2), apitest.Ptr[int32](2), all[2:4], 2, 3, 2},
			{apitest.Ptr[int32](4), apitest.Ptr[int32](2), all[4:6], 3, 3, 2},
			{apitest.Ptr[int32](3), apitest.Ptr[int32](2), all[3:5], 2, 3, 2},
			{apitest.Ptr[int32](6), apitest.Ptr[int32](2), []int64{}, 4, 3, 2},
			{apitest.Ptr[int32](100), apitest.Ptr[int32](2), []int64{}, 51, 3, 2},
			{apitest.Ptr[int32](0), apitest.Ptr[int32](4), all[0:4], 1, 2, 4},
			{nil, apitest.Ptr[int32](1), all[0:1], 1, 6, 1},
			{apitest.Ptr[int32](5), apitest.Ptr[int32](1), all[5:6], 6, 6, 1},
			{nil, apitest.Ptr[int32](1000), all, 1, 1, 1000},
			{apitest.Ptr[int32](2), nil, all[2:], 1, 1, 100},
		}
		for _, c := range cases {
			res := list(t, client.ListUsersParams{Skip: c.skip, Limit: c.limit})
			p := res.JSON200
			desc := fmt.Sprintf("skip=%v limit=%v", usersDeref(c.skip), usersDeref(c.limit))
			require.Equal(t, c.want, usersIDs(p.Items), desc)
			require.EqualValues(t, 6, p.Total, desc)
			require.Equal(t, c.page, p.Page, desc)
			require.Equal(t, c.pageSize, p.PageSize, desc)
			require.Equal(t, c.totalPages, p.TotalPages, desc)
			require.Contains(t, string(res.Body), `"items":[`, "items must be an array, never null: %s", desc)
		}
	})

	t.Run("q is a case-insensitive substring of name or email with % _ ' and \\ literal", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			q    string
			want []int64
		}{
			{"lovelace", []int64{ada.Id}},
			{"LOVELACE", []int64{ada.Id}},
			{"aDa.LoVe", []int64{ada.Id}},
			{"NAVY.example", []int64{grace.Id}}, // email only
			{"hopper", []int64{grace.Id}},       // name only
			{"%_", []int64{sure.Id}},
			{"%", []int64{sure.Id}},
			{"_", []int64{sure.Id}},
			{"0%_S", []int64{sure.Id}},
			{"o'n", []int64{linus.Id}},
			{`\`, []int64{}},
			{`%\`, []int64{}},
			{"'; DROP TABLE users; --", []int64{}},
			{"EXAMPLE", all},
		}
		for _, c := range cases {
			res := list(t, client.ListUsersParams{Q: apitest.Ptr(c.q)})
			require.Equal(t, c.want, usersIDs(res.JSON200.Items), "q=%q", c.q)
			require.EqualValues(t, len(c.want), res.JSON200.Total, "q=%q", c.q)
		}
		// The table is still there after the injection attempt.
		require.EqualValues(t, 6, usersTotal(t, f, nil))
	})

	t.Run("is_active and is_admin filter alone, together and with q", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			name string
			p    client.ListUsersParams
			want []int64
		}{
			{"inactive", client.ListUsersParams{IsActive: apitest.Ptr(false)}, []int64{linus.Id}},
			{"active", client.ListUsersParams{IsActive: apitest.Ptr(true)}, []int64{f.adminID, ada.Id, grace.Id, sure.Id, alan.Id}},
			{"admins", client.ListUsersParams{IsAdmin: apitest.Ptr(true)}, []int64{f.adminID, grace.Id}},
			{"non-admins", client.ListUsersParams{IsAdmin: apitest.Ptr(false)}, []int64{ada.Id, sure.Id, linus.Id, alan.Id}},
			{"active non-admins", client.ListUsersParams{IsAdmin: apitest.Ptr(false), IsActive: apitest.Ptr(true)}, []int64{ada.Id, sure.Id, alan.Id}},
			{"inactive matching q", client.ListUsersParams{Q: apitest.Ptr("example.com"), IsActive: apitest.Ptr(false)}, []int64{linus.Id}},
			{"admins matching q", client.ListUsersParams{Q: apitest.Ptr("NAVY"), IsAdmin: apitest.Ptr(true)}, []int64{grace.Id}},
		}
		for _, c := range cases {
			res := list(t, c.p)
			require.Equal(t, c.want, usersIDs(res.JSON200.Items), c.name)
			require.EqualValues(t, len(c.want), res.JSON200.Total, c.name)
			require.EqualValues(t, 1, res.JSON200.TotalPages, c.name)
		}
	})

	t.Run("an empty result has total 0, total_pages 0 and an empty items array", func(t *testing.T) {
		t.Parallel()
		for _, p := range []client.ListUsersParams{
			{Q: apitest.Ptr("no-such-user")},
			{IsActive: apitest.Ptr(false), IsAdmin: apitest.Ptr(true)},
			{Q: apitest.Ptr("no-such-user"), Skip: apitest.Ptr[int32](10), Limit: apitest.Ptr[int32](5)},
		} {
			res := list(t, p)
			require.Empty(t, res.JSON200.Items)
			require.Contains(t, string(res.Body), `"items":[]`)
			require.Zero(t, res.JSON200.Total)
			require.Zero(t, res.JSON200.TotalPages)
		}
	})

	t.Run("filtered results are paged over the filtered total", func(t *testing.T) {
		t.Parallel()
		res := list(t, client.ListUsersParams{IsAdmin: apitest.Ptr(false), Skip: apitest.Ptr[int32](3), Limit: apitest.Ptr[int32](3)})
		p := res.JSON200
		require.Equal(t, []int64{alan.Id}, usersIDs(p.Items))
		require.EqualValues(t, 4, p.Total)
		require.EqualValues(t, 2, p.Page)
		require.EqualValues(t, 3, p.PageSize)
		require.EqualValues(t, 2, p.TotalPages)
	})
}

func usersDeref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
