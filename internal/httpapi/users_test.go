package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "users" so they cannot clash with other files of the package).
// ---------------------------------------------------------------------------------------

const usersPassword = "correct-horse-battery"

var usersSeq atomic.Int64

// usersEmail returns an email address unique within the test binary.
func usersEmail(prefix string) string {
	return fmt.Sprintf("%s-%d@example.com", prefix, usersSeq.Add(1))
}

// usersFixture is one running server with a logged-in administrator.
type usersFixture struct {
	env        *apitest.Env
	admin      *client.ClientWithResponses
	adminToken string
	adminID    int64
}

// usersStart starts a server; rate limits are switched off because these suites log in
// and call the API far more often than a person would.
func usersStart(t *testing.T) *usersFixture {
	t.Helper()
	env := apitest.Start(t,
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"))
	tok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	f := &usersFixture{env: env, admin: env.As(tok), adminToken: tok}
	me, err := f.admin.GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
	f.adminID = me.JSON200.Id
	return f
}

// usersCreateWith creates a user through the API as the administrator (no login).
func usersCreateWith(t *testing.T, f *usersFixture, name, email string, isAdmin bool) client.User {
	t.Helper()
	res, err := f.admin.CreateUserWithResponse(t.Context(), nil, client.UserCreate{
		Name: name, Email: openapi_types.Email(email), Password: usersPassword, IsAdmin: &isAdmin,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create %s: %s", email, res.Body)
	return *res.JSON201
}

// usersNew creates a user with a generated email (no login).
func usersNew(t *testing.T, f *usersFixture, name string, isAdmin bool) client.User {
	t.Helper()
	return usersCreateWith(t, f, name, usersEmail("user"), isAdmin)
}

// usersGet reads a user as the administrator: status, user (on 200) and ETag.
func usersGet(t *testing.T, f *usersFixture, id int64) (int, client.User, string) {
	t.Helper()
	res, err := f.admin.GetUserWithResponse(t.Context(), id, nil)
	require.NoError(t, err)
	require.Less(t, res.StatusCode(), 500, "%s", res.Body)
	if res.JSON200 == nil {
		return res.StatusCode(), client.User{}, ""
	}
	return res.StatusCode(), *res.JSON200, res.HTTPResponse.Header.Get("ETag")
}

// usersSnapshot is a user as stored, with its ETag, to prove nothing was written.
type usersSnapshot struct {
	User client.User
	ETag string
}

func usersSnap(t *testing.T, f *usersFixture, id int64) usersSnapshot {
	t.Helper()
	status, u, tag := usersGet(t, f, id)
	require.Equal(t, http.StatusOK, status)
	return usersSnapshot{User: u, ETag: tag}
}

// usersRequireUnchanged fails unless the user is exactly as in the snapshot (same
// fields, same updated_at, same version).
func usersRequireUnchanged(t *testing.T, f *usersFixture, want usersSnapshot) {
	t.Helper()
	got := usersSnap(t, f, want.User.Id)
	require.Equal(t, want.ETag, got.ETag, "the user's version changed")
	require.Equal(t, want.User, got.User, "the user changed")
}

// usersTotal is the number of users, as the administrator sees it.
func usersTotal(t *testing.T, f *usersFixture, q *string) int64 {
	t.Helper()
	res, err := f.admin.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Q: q})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	return res.JSON200.Total
}

// usersRequireNoPassword fails if a response body leaks a password or its hash.
func usersRequireNoPassword(t *testing.T, body []byte) {
	t.Helper()
	s := strings.ToLower(string(body))
	require.NotContains(t, s, "password")
	require.NotContains(t, s, "argon2")
	require.NotContains(t, s, usersPassword)
}

// usersDo sends a raw request without following redirects (so a redirect shows up as
// what it is), and requires that it caused no 5xx.
func usersDo(t *testing.T, env *apitest.Env, r apitest.Request) *apitest.Response {
	t.Helper()
	r.NoRedirect = true
	res := env.Send(t, r)
	require.Less(t, res.Status, 500, "%s %s: a client's request must never cause a 5xx: %s", r.Method, r.Path, res.Body)
	return res
}

func usersIDs(items []client.User) []int64 {
	out := make([]int64, len(items))
	for i, u := range items {
		out[i] = u.Id
	}
	return out
}

// ---------------------------------------------------------------------------------------
// 1. CRUD happy paths
// ---------------------------------------------------------------------------------------

func TestUsersCRUD(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("create answers 201 with Location, ETag \"1\", non-admin default and no password", func(t *testing.T) {
		t.Parallel()
		email := usersEmail("created")
		r := usersDo(t, f.env, apitest.Request{Method: http.MethodPost, Path: "/api/v1/users", Token: f.adminToken,
			ContentType: "application/json",
			Body:        []byte(fmt.Sprintf(`{"name":"Ada Lovelace","email":%q,"password":%q}`, email, usersPassword))})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		usersRequireNoPassword(t, r.Body)

		var fields map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &fields))
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		require.Equal(t, []string{"created_at", "email", "id", "is_active", "is_admin", "name", "updated_at"}, keys)
		require.True(t, strings.HasSuffix(fields["created_at"].(string), "Z"), "created_at in UTC: %v", fields["created_at"])
		require.True(t, strings.HasSuffix(fields["updated_at"].(string), "Z"), "updated_at in UTC: %v", fields["updated_at"])

		var u client.User
		require.NoError(t, json.Unmarshal(r.Body, &u))
		require.Positive(t, u.Id)
		require.Equal(t, "Ada Lovelace", u.Name)
		require.Equal(t, email, string(u.Email))
		require.False(t, u.IsAdmin, "is_admin defaults to false")
		require.True(t, u.IsActive, "new users are active")
		require.WithinDuration(t, time.Now(), u.CreatedAt, time.Minute)
		require.Equal(t, u.CreatedAt, u.UpdatedAt)
		require.Equal(t, "/api/v1/users/"+strconv.FormatInt(u.Id, 10), r.Header.Get("Location"))
		require.Equal(t, `"1"`, r.Header.Get("ETag"))

		// The Location answers with the same user.
		g := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: r.Header.Get("Location"), Token: f.adminToken})
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		var got client.User
		require.NoError(t, json.Unmarshal(g.Body, &got))
		require.Equal(t, u, got)

		// The new user can log in with the password given.
		f.env.Login(t, email, usersPassword)
	})

	t.Run("create with is_admin true makes an administrator", func(t *testing.T) {
		t.Parallel()
		u := usersNew(t, f, "Second Admin", true)
		require.True(t, u.IsAdmin)
		_, got, _ := usersGet(t, f, u.Id)
		require.True(t, got.IsAdmin)
	})

	t.Run("create accepts a name of exactly 100 characters counted as characters, not bytes", func(t *testing.T) {
		t.Parallel()
		name := strings.Repeat("é", 100)
		u := usersNew(t, f, name, false)
		require.Equal(t, name, u.Name)
	})

	t.Run("get returns the user to an admin and to the user themselves", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Getter", false)
		res, err := f.admin.GetUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, u.User, *res.JSON200)
		require.Equal(t, `"1"`, res.HTTPResponse.Header.Get("ETag"))
		usersRequireNoPassword(t, res.Body)

		own, err := u.Client.GetUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, own.StatusCode(), "%s", own.Body)
		require.Equal(t, u.User, *own.JSON200)
		usersRequireNoPassword(t, own.Body)
	})

	t.Run("get /me returns the caller", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Myself", false)
		res, err := u.Client.GetCurrentUserWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, u.User, *res.JSON200)
		require.Equal(t, `"1"`, res.HTTPResponse.Header.Get("ETag"))
		usersRequireNoPassword(t, res.Body)

		adm, err := f.admin.GetCurrentUserWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, adm.StatusCode())
		require.Equal(t, apitest.AdminEmail, string(adm.JSON200.Email))
		require.True(t, adm.JSON200.IsAdmin)
	})

	t.Run("PATCH changes the name and keeps every other field", func(t *testing.T) {
		t.Parallel()
		u := usersNew(t, f, "Old Name", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("New Name")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		usersRequireNoPassword(t, res.Body)
		got := *res.JSON200
		require.Equal(t, "New Name", got.Name)
		require.Equal(t, u.Email, got.Email)
		require.Equal(t, u.IsAdmin, got.IsAdmin)
		require.Equal(t, u.IsActive, got.IsActive)
		require.True(t, got.CreatedAt.Equal(u.CreatedAt))
		require.False(t, got.UpdatedAt.Before(u.UpdatedAt))
		require.Equal(t, `"2"`, res.HTTPResponse.Header.Get("ETag"))

		_, stored, tag := usersGet(t, f, u.Id)
		require.Equal(t, got, stored)
		require.Equal(t, `"2"`, tag)
	})

	t.Run("PATCH /me changes your own name", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Selfish", false)
		res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, client.UserUpdate{Name: apitest.Ptr("Renamed Me")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, "Renamed Me", res.JSON200.Name)
		require.Equal(t, u.Email, res.JSON200.Email)
		require.Equal(t, `"2"`, res.HTTPResponse.Header.Get("ETag"))
		_, stored, _ := usersGet(t, f, u.Id)
		require.Equal(t, "Renamed Me", stored.Name)
	})

	t.Run("PUT is the deprecated alias of PATCH: fields left out keep their value", func(t *testing.T) {
		t.Parallel()
		u := usersNew(t, f, "Put Target", false)

		res, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("Put Renamed")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, "Put Renamed", res.JSON200.Name)
		require.Equal(t, u.Email, res.JSON200.Email, "email left out must be kept")
		require.False(t, res.JSON200.IsAdmin, "is_admin left out must be kept")
		require.True(t, res.JSON200.IsActive, "is_active left out must be kept")
		require.Equal(t, `"2"`, res.HTTPResponse.Header.Get("ETag"))

		res, err = f.admin.ReplaceUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, "Put Renamed", res.JSON200.Name, "name left out must be kept")
		require.Equal(t, u.Email, res.JSON200.Email)
		require.True(t, res.JSON200.IsAdmin)
		require.True(t, res.JSON200.IsActive)

		_, stored, tag := usersGet(t, f, u.Id)
		require.Equal(t, *res.JSON200, stored)
		require.Equal(t, `"3"`, tag)
	})

	t.Run("DELETE answers 204, then the user is gone and their token stops working", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Doomed", false)
		res, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "%s", res.Body)
		require.Empty(t, res.Body)

		g, err := f.admin.GetUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, g, http.StatusNotFound, "not-found")

		again, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, again, http.StatusNotFound, "not-found")

		require.Zero(t, usersTotal(t, f, apitest.Ptr(string(u.Email))))

		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, me, http.StatusUnauthorized, "unauthorized")
	})
}

// ---------------------------------------------------------------------------------------
// 1b. Listing: pagination math and filters
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 2. Authorization matrix
// ---------------------------------------------------------------------------------------

// usersMatrixOp is one users operation as the matrix exercises it.
type usersMatrixOp struct {
	key      string // "METHOD /path" in Echo syntax, as httpapi.Server.RequiredRoles names it
	targeted bool   // acts on /users/{user_id}
	success  int
	// call performs the operation; marker makes names and emails it writes recognisable.
	call func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error)
	// effect checks what the call did (ok: it succeeded) to the user whose id is given.
	effect func(t *testing.T, f *usersFixture, whose int64, marker string, ok bool, body []byte)
}

func usersRenamed(marker string) string { return "Renamed " + marker }

func usersMatrixOps() []usersMatrixOp {
	requireName := func(t *testing.T, f *usersFixture, whose int64, marker string, ok bool, body []byte) {
		t.Helper()
		if whose == 0 {
			return
		}
		status, u, _ := usersGet(t, f, whose)
		require.Equal(t, http.StatusOK, status)
		if ok {
			require.Equal(t, usersRenamed(marker), u.Name, "the update did not happen")
			var got client.User
			require.NoError(t, json.Unmarshal(body, &got))
			require.Equal(t, u, got)
		} else {
			require.NotEqual(t, usersRenamed(marker), u.Name, "a refused update changed the user")
		}
	}
	requireRead := func(t *testing.T, _ *usersFixture, whose int64, _ string, ok bool, body []byte) {
		t.Helper()
		if !ok {
			return
		}
		var got client.User
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, whose, got.Id)
	}
	return []usersMatrixOp{
		{
			key: "POST /api/v1/users", success: http.StatusCreated,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, marker string) (*http.Response, []byte, error) {
				r, err := c.CreateUserWithResponse(ctx, nil, client.UserCreate{
					Name: usersRenamed(marker), Email: openapi_types.Email(marker + "@example.com"), Password: usersPassword,
				})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, f *usersFixture, _ int64, marker string, ok bool, _ []byte) {
				t.Helper()
				want := int64(0)
				if ok {
					want = 1
				}
				require.Equal(t, want, usersTotal(t, f, apitest.Ptr(marker)), "users created")
			},
		},
		{
			key: "GET /api/v1/users", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, _ string) (*http.Response, []byte, error) {
				r, err := c.ListUsersWithResponse(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, _ *usersFixture, _ int64, _ string, ok bool, body []byte) {
				t.Helper()
				if ok {
					var p client.UserPage
					require.NoError(t, json.Unmarshal(body, &p))
					require.NotEmpty(t, p.Items)
				}
			},
		},
		{
			key: "GET /api/v1/users/me", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, _ string) (*http.Response, []byte, error) {
				r, err := c.GetCurrentUserWithResponse(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireRead,
		},
		{
			key: "PATCH /api/v1/users/me", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, marker string) (*http.Response, []byte, error) {
				r, err := c.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "GET /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, _ string) (*http.Response, []byte, error) {
				r, err := c.GetUserWithResponse(ctx, target, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireRead,
		},
		{
			key: "PATCH /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error) {
				r, err := c.UpdateUserWithResponse(ctx, target, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "PUT /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error) {
				r, err := c.ReplaceUserWithResponse(ctx, target, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "DELETE /api/v1/users/:user_id", targeted: true, success: http.StatusNoContent,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, _ string) (*http.Response, []byte, error) {
				r, err := c.DeleteUserWithResponse(ctx, target, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, f *usersFixture, whose int64, _ string, ok bool, _ []byte) {
				t.Helper()
				status, _, _ := usersGet(t, f, whose)
				if ok {
					require.Equal(t, http.StatusNotFound, status, "the delete did not happen")
				} else {
					require.Equal(t, http.StatusOK, status, "a refused delete removed the user")
				}
			},
		},
	}
}

type usersActor string

const (
	usersAnonymous    usersActor = "anonymous"
	usersBadToken     usersActor = "invalid token"
	usersSelf         usersActor = "non-admin on self"
	usersOther        usersActor = "non-admin on another user"
	usersAdminOnOther usersActor = "admin"
)

// usersExpectedStatus derives the expected status from the operation's declared
// x-required-role.
func usersExpectedStatus(t *testing.T, role string, a usersActor, success int) int {
	t.Helper()
	switch a {
	case usersAnonymous, usersBadToken:
		return http.StatusUnauthorized
	case usersAdminOnOther:
		return success
	}
	switch role {
	case "admin":
		return http.StatusForbidden
	case "user":
		return success
	case "self-or-admin":
		if a == usersSelf {
			return success
		}
		return http.StatusForbidden
	}
	t.Fatalf("unknown x-required-role %q", role)
	return 0
}

func TestUsersAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	srv, err := httpapi.New(httpapi.Options{})
	require.NoError(t, err)
	roles := srv.RequiredRoles()
	ops := usersMatrixOps()

	// Every users operation of the contract is in the matrix, with a declared role.
	covered := map[string]bool{}
	for _, op := range ops {
		covered[op.key] = true
		require.NotEmpty(t, roles[op.key], "operation %s has no x-required-role", op.key)
	}
	for key := range roles {
		if strings.Contains(key, " /api/v1/users") {
			require.True(t, covered[key], "users operation %s is missing from the authorization matrix", key)
		}
	}

	f := usersStart(t)
	for _, op := range ops {
		actors := []usersActor{usersAnonymous, usersBadToken, usersSelf, usersAdminOnOther}
		if op.targeted {
			actors = append(actors, usersOther)
		}
		for _, a := range actors {
			role := roles[op.key]
			t.Run(fmt.Sprintf("%s by %s", op.key, a), func(t *testing.T) {
				t.Parallel()
				marker := fmt.Sprintf("matrix-%d-x", usersSeq.Add(1))
				var (
					c      *client.ClientWithResponses
					target int64 // the {user_id}
					whose  int64 // the user the operation acts on
				)
				switch a {
				case usersAnonymous, usersBadToken:
					c = f.env.Client
					if a == usersBadToken {
						c = f.env.As("not-a-valid-token")
					}
					if op.targeted {
						target = usersNew(t, f, "Target", false).Id
						whose = target
					}
				case usersSelf:
					u := f.env.CreateUser(t, "Subject", false)
					c, target, whose = u.Client, u.Id, u.Id
				case usersOther:
					u := f.env.CreateUser(t, "Subject", false)
					c = u.Client
					target = usersNew(t, f, "Target", false).Id
					whose = target
				case usersAdminOnOther:
					c = f.admin
					whose = f.adminID
					if op.targeted {
						target = usersNew(t, f, "Target", false).Id
						whose = target
					}
				}
				want := usersExpectedStatus(t, role, a, op.success)

				res, body, err := op.call(t.Context(), c, target, marker)
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode, "%s by %s (role %s): %s", op.key, a, role, body)
				switch want {
				case http.StatusUnauthorized:
					require.True(t, strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer"),
						"401 needs WWW-Authenticate: Bearer, got %q", res.Header.Get("WWW-Authenticate"))
					apitest.RequireProblem(t, apitest.ResponseOf(res, body), want, "unauthorized")
				case http.StatusForbidden:
					apitest.RequireProblem(t, apitest.ResponseOf(res, body), want, "forbidden")
				}
				op.effect(t, f, whose, marker, want == op.success, body)
			})
		}
	}
}

// ---------------------------------------------------------------------------------------
// 2b. Who may set is_admin / is_active
// ---------------------------------------------------------------------------------------

func TestUsersPrivilegeRules(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("a non-admin setting is_admin or is_active on themselves gets 403 and nothing changes", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Climber", false)
		before := usersSnap(t, f, u.Id)
		for _, body := range []client.UserUpdate{
			{IsAdmin: apitest.Ptr(true)},
			{IsAdmin: apitest.Ptr(false)},
			{IsActive: apitest.Ptr(false)},
			{IsActive: apitest.Ptr(true)},
			{Name: apitest.Ptr("Sneaky"), IsAdmin: apitest.Ptr(true)},
		} {
			res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, res, http.StatusForbidden, "forbidden")
			usersRequireUnchanged(t, f, before)
		}
		// Still not an administrator.
		l, err := u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode())
	})

	t.Run("an admin cannot demote or deactivate themselves (409) by any route", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "Root", true)
		before := usersSnap(t, f, root.Id)
		demote := client.UserUpdate{IsAdmin: apitest.Ptr(false)}
		deactivate := client.UserUpdate{IsActive: apitest.Ptr(false)}
		for _, body := range []client.UserUpdate{demote, deactivate} {
			r1, err := root.Client.UpdateCurrentUserWithResponse(t.Context(), nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r1, http.StatusConflict, "conflict")
			r2, err := root.Client.UpdateUserWithResponse(t.Context(), root.Id, nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r2, http.StatusConflict, "conflict")
			r3, err := root.Client.ReplaceUserWithResponse(t.Context(), root.Id, nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r3, http.StatusConflict, "conflict")
			usersRequireUnchanged(t, f, before)
		}
		l, err := root.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, l.StatusCode(), "the admin must still be an active admin")
	})

	t.Run("an admin promotes a user, who then has admin rights, and demotes them again", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Promoted", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.True(t, res.JSON200.IsAdmin)
		l, err := u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, l.StatusCode(), "a promoted user's token carries admin rights")

		res, err = f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.False(t, res.JSON200.IsAdmin)
		l, err = u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode(), "a demoted user loses admin rights at once")
	})

	t.Run("an admin deactivates a user, whose token stops working until reactivated", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Sleeper", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.False(t, res.JSON200.IsActive)
		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, me, http.StatusUnauthorized, "unauthorized")

		res, err = f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.True(t, res.JSON200.IsActive)
		f.env.Login(t, string(u.Email), u.Password)
	})
}

// ---------------------------------------------------------------------------------------
// 3. Rules
// ---------------------------------------------------------------------------------------

func TestUsersRules(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("creating a user whose email differs only in letter case is a conflict", func(t *testing.T) {
		t.Parallel()
		first := usersCreateWith(t, f, "Bob", "Bob@Example-Case.com", false)
		require.Equal(t, "Bob@Example-Case.com", string(first.Email))
		for _, email := range []string{"bob@example-case.com", "BOB@EXAMPLE-CASE.COM", "Bob@Example-Case.com"} {
			res, err := f.admin.CreateUserWithResponse(t.Context(), nil, client.UserCreate{
				Name: "Other Bob", Email: openapi_types.Email(email), Password: usersPassword,
			})
			require.NoError(t, err)
			apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
		}
		require.EqualValues(t, 1, usersTotal(t, f, apitest.Ptr("example-case.com")))
	})

	t.Run("changing a user's email to another user's in any case is a conflict", func(t *testing.T) {
		t.Parallel()
		a := usersNew(t, f, "Owner", false)
		b := f.env.CreateUser(t, "Taker", false)
		before := usersSnap(t, f, b.Id)
		taken := openapi_types.Email(strings.ToUpper(string(a.Email)))

		r1, err := f.admin.UpdateUserWithResponse(t.Context(), b.Id, nil, client.UserUpdate{Email: &taken})
		require.NoError(t, err)
		apitest.RequireProblem(t, r1, http.StatusConflict, "conflict")
		r2, err := f.admin.ReplaceUserWithResponse(t.Context(), b.Id, nil, client.UserUpdate{Email: &a.Email})
		require.NoError(t, err)
		apitest.RequireProblem(t, r2, http.StatusConflict, "conflict")
		r3, err := b.Client.UpdateCurrentUserWithResponse(t.Context(), nil, client.UserUpdate{
			Email: &taken, CurrentPassword: apitest.Ptr(b.Password),
		})
		require.NoError(t, err)
		apitest.RequireProblem(t, r3, http.StatusConflict, "conflict")
		usersRequireUnchanged(t, f, before)
	})

	t.Run("changing only the letter case of a user's own email is allowed", func(t *testing.T) {
		t.Parallel()
		u := usersNew(t, f, "Caser", false)
		upper := openapi_types.Email(strings.ToUpper(string(u.Email)))
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Email: &upper})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, upper, res.JSON200.Email)
	})

	t.Run("an admin deleting themselves gets 409 and still exists", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "RootSelf", true)
		res, err := root.Client.DeleteUserWithResponse(t.Context(), root.Id, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
		status, _, _ := usersGet(t, f, root.Id)
		require.Equal(t, http.StatusOK, status)

		res, err = f.admin.DeleteUserWithResponse(t.Context(), f.adminID, &client.DeleteUserParams{IfMatch: apitest.Ptr("*")})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
	})

	t.Run("an unknown user id is 404 for get, update, replace and delete", func(t *testing.T) {
		t.Parallel()
		const unknown = int64(987654321)
		g, err := f.admin.GetUserWithResponse(t.Context(), unknown, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, g, http.StatusNotFound, "not-found")
		p, err := f.admin.UpdateUserWithResponse(t.Context(), unknown, nil, client.UserUpdate{Name: apitest.Ptr("Ghost")})
		require.NoError(t, err)
		apitest.RequireProblem(t, p, http.StatusNotFound, "not-found")
		r, err := f.admin.ReplaceUserWithResponse(t.Context(), unknown, nil, client.UserUpdate{Name: apitest.Ptr("Ghost")})
		require.NoError(t, err)
		apitest.RequireProblem(t, r, http.StatusNotFound, "not-found")
		d, err := f.admin.DeleteUserWithResponse(t.Context(), unknown, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, d, http.StatusNotFound, "not-found")
	})

	t.Run("changing your own password or email needs your correct current_password", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Careful", false)
		before := usersSnap(t, f, u.Id)
		newEmail := openapi_types.Email(usersEmail("careful-new"))
		for _, c := range []struct {
			name string
			body client.UserUpdate
		}{
			{"password without current_password", client.UserUpdate{Password: apitest.Ptr("brand-new-password")}},
			{"email without current_password", client.UserUpdate{Email: &newEmail}},
			{"password with wrong current_password", client.UserUpdate{Password: apitest.Ptr("brand-new-password"), CurrentPassword: apitest.Ptr("wrong-password")}},
			{"email with wrong current_password", client.UserUpdate{Email: &newEmail, CurrentPassword: apitest.Ptr("wrong-password")}},
			{"name and password with wrong current_password", client.UserUpdate{Name: apitest.Ptr("Changed"), Password: apitest.Ptr("brand-new-password"), CurrentPassword: apitest.Ptr("wrong-password")}},
		} {
			res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, c.body)
			require.NoError(t, err, c.name)
			p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "body", "current_password")
			usersRequireUnchanged(t, f, before)
		}
		f.env.Login(t, string(u.Email), u.Password) // the old password still works

		res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, client.UserUpdate{
			Password: apitest.Ptr("brand-new-password"), Email: &newEmail, CurrentPassword: apitest.Ptr(u.Password),
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, newEmail, res.JSON200.Email)
		usersRequireNoPassword(t, res.Body)

		f.env.Login(t, string(newEmail), "brand-new-password")
		old, err := f.env.Client.CreateTokenWithFormdataBodyWithResponse(t.Context(), client.TokenRequest{
			Username: string(newEmail), Password: u.Password,
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, old.StatusCode(), "the old password must stop working")
	})

	t.Run("an admin changing their own password through /users/{id} also needs current_password", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "RootPw", true)
		res, err := root.Client.UpdateUserWithResponse(t.Context(), root.Id, nil, client.UserUpdate{Password: apitest.Ptr("another-password")})
		require.NoError(t, err)
		p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity, "validation")
		apitest.RequireExactFieldErrors(t, p, "body", "current_password")
		f.env.Login(t, string(root.Email), root.Password)
	})

	t.Run("an admin resets another user's password without knowing it", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Forgetful", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Password: apitest.Ptr("reset-by-admin")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		usersRequireNoPassword(t, res.Body)
		f.env.Login(t, string(u.Email), "reset-by-admin")
	})
}

// ---------------------------------------------------------------------------------------
// 4. ETags
// ---------------------------------------------------------------------------------------

func TestUsersETags(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("GET carries the ETag and If-None-Match with it answers 304 without a body", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Cached", false)
		res, err := f.admin.GetUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		tag := res.HTTPResponse.Header.Get("ETag")
		require.Equal(t, `"1"`, tag)

		for _, inm := range []string{tag, `W/"1"`, `"9", "1"`, "*"} {
			nm, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(inm)})
			require.NoError(t, err)
			require.Equal(t, http.StatusNotModified, nm.StatusCode(), "If-None-Match: %s", inm)
			require.Empty(t, nm.Body)
			require.Equal(t, tag, nm.HTTPResponse.Header.Get("ETag"))
		}
		other, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(`"2"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, other.StatusCode())

		// The same on /me.
		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), &client.GetCurrentUserParams{IfNoneMatch: apitest.Ptr(tag)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotModified, me.StatusCode())
		require.Empty(t, me.Body)
		require.Equal(t, tag, me.HTTPResponse.Header.Get("ETag"))
	})

	t.Run("an update changes the ETag and the old one no longer answers 304", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Changing", false)
		up, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("Changed")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		newTag := up.HTTPResponse.Header.Get("ETag")
		require.NotEqual(t, `"1"`, newTag)

		res, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(`"1"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		require.Equal(t, "Changed", res.JSON200.Name)
		require.Equal(t, newTag, res.HTTPResponse.Header.Get("ETag"))

		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), &client.GetCurrentUserParams{IfNoneMatch: apitest.Ptr(`"1"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode())
		require.Equal(t, newTag, me.HTTPResponse.Header.Get("ETag"))

		nm, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(newTag)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotModified, nm.StatusCode())
	})

	t.Run("PATCH, PUT and DELETE with a stale or weak If-Match get 412 and change nothing", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Contended", false)
		up, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("Version Two")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		require.Equal(t, `"2"`, up.HTTPResponse.Header.Get("ETag"))
		before := usersSnap(t, f, u.Id)

		for _, stale := range []string{`"1"`, `W/"2"`, `"3"`} {
			p, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, p, http.StatusPreconditionFailed, "precondition-failed")
			require.Empty(t, p.HTTPResponse.Header.Get("ETag"))

			r, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, r, http.StatusPreconditionFailed, "precondition-failed")

			me, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), &client.UpdateCurrentUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, me, http.StatusPreconditionFailed, "precondition-failed")

			d, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr(stale)})
			require.NoError(t, err)
			apitest.RequireProblem(t, d, http.StatusPreconditionFailed, "precondition-failed")

			usersRequireUnchanged(t, f, before)
		}
	})

	t.Run("PATCH, PUT and DELETE with the current ETag or * succeed", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Agreed", false)

		p, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(`"1"`)},
			client.UserUpdate{Name: apitest.Ptr("Two")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, p.StatusCode(), "%s", p.Body)
		require.Equal(t, `"2"`, p.HTTPResponse.Header.Get("ETag"))

		r, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr(`"2"`)},
			client.UserUpdate{Name: apitest.Ptr("Three")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), "%s", r.Body)
		require.Equal(t, `"3"`, r.HTTPResponse.Header.Get("ETag"))

		me, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), &client.UpdateCurrentUserParams{IfMatch: apitest.Ptr(`"3"`)},
			client.UserUpdate{Name: apitest.Ptr("Four")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
		require.Equal(t, `"4"`, me.HTTPResponse.Header.Get("ETag"))

		star, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr("*")},
			client.UserUpdate{Name: apitest.Ptr("Five")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, star.StatusCode(), "%s", star.Body)
		require.Equal(t, "Five", star.JSON200.Name)

		starPut, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr("*")},
			client.UserUpdate{Name: apitest.Ptr("Six")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, starPut.StatusCode(), "%s", starPut.Body)
		require.Equal(t, `"6"`, starPut.HTTPResponse.Header.Get("ETag"))

		list, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(`"1", "6"`)},
			client.UserUpdate{Name: apitest.Ptr("Seven")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode(), "If-Match with a list including the current tag: %s", list.Body)

		d, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr(`"7"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, d.StatusCode(), "%s", d.Body)
		status, _, _ := usersGet(t, f, u.Id)
		require.Equal(t, http.StatusNotFound, status)

		v := usersNew(t, f, "Starred", false)
		d, err = f.admin.DeleteUserWithResponse(t.Context(), v.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr("*")})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, d.StatusCode(), "%s", d.Body)
		status, _, _ = usersGet(t, f, v.Id)
		require.Equal(t, http.StatusNotFound, status)
	})
}

// ---------------------------------------------------------------------------------------
// 5. Bad input
// ---------------------------------------------------------------------------------------

type usersBadCase struct {
	name        string
	contentType string
	body        []byte
	status      int
	typ         string
	fields      []string // body fields that errors must name
	probe       string   // for creates: a q that would find the user had one been created
}

func usersJSON(s string) []byte { return []byte(s) }

// usersBadBodies are invalid bodies for the operations taking a UserCreate (create) or a
// UserUpdate. Every create body carries its own email, so that a wrongly accepted one can
// be found (probe) without depending on the other cases.
func usersBadBodies(create bool) []usersBadCase {
	const ct = "application/json"
	// body returns a valid body with field set to the raw JSON value (or removed when
	// value is ""), and the email it carries.
	body := func(field, value, extra string) ([]byte, string) {
		if !create {
			if field == "" {
				return usersJSON(`{"name":"Valid Name"` + extra + `}`), ""
			}
			return usersJSON(`{"` + field + `":` + value + extra + `}`), ""
		}
		email := usersEmail("bad-input")
		m := map[string]json.RawMessage{
			"name":     json.RawMessage(`"Valid Name"`),
			"email":    json.RawMessage(strconv.Quote(email)),
			"password": json.RawMessage(`"long-enough-pw"`),
		}
		if field != "" {
			if value == "" {
				delete(m, field)
			} else {
				m[field] = json.RawMessage(value)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		if extra != "" {
			b = append(b[:len(b)-1], []byte(extra+"}")...)
		}
		if field == "email" && value != "" {
			var s string
			if json.Unmarshal([]byte(value), &s) == nil {
				email = s
			}
		}
		return b, email
	}
	bad := func(name, field, value, extra string, status int, typ string, fields ...string) usersBadCase {
		b, probe := body(field, value, extra)
		return usersBadCase{name: name, contentType: ct, body: b, status: status, typ: typ, fields: fields, probe: probe}
	}
	withCT := func(name, contentType string, b []byte, probe string, status int, typ string) usersBadCase {
		return usersBadCase{name: name, contentType: contentType, body: b, status: status, typ: typ, probe: probe}
	}

	validBody, validEmail := body("", "", "")
	garbage, garbageEmail := body("", "", "")
	garbage = append(garbage, []byte(` {"is_admin":true}`)...)
	huge := append(append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 2<<20)...), []byte(`"}`)...)
	wrongTypes, wrongTypesEmail := body("name", `123`, `,"is_admin":"yes"`)
	if !create {
		wrongTypes = usersJSON(`{"name":123,"is_admin":"yes"}`)
	}
	formEmail := usersEmail("bad-form")

	cases := []usersBadCase{
		withCT("truncated JSON", ct, usersJSON(`{"name":`), "", 400, "malformed-request"),
		withCT("not JSON at all", ct, usersJSON(`name=Ada`), "", 400, "malformed-request"),
		withCT("a JSON object followed by more data", ct, garbage, garbageEmail, 400, "malformed-request"),
		withCT("an array instead of an object", ct, usersJSON(`[]`), "", 422, "validation"),
		withCT("a string instead of an object", ct, usersJSON(`"Ada"`), "", 422, "validation"),
		{name: "wrong types (name 123, is_admin \"yes\")", contentType: ct, body: wrongTypes, status: 422, typ: "validation",
			fields: []string{"name", "is_admin"}, probe: wrongTypesEmail},
		bad("an unknown field", "", "", `,"nickname":"Addie"`, 422, "validation", "nickname"),
		bad("a name of 101 characters", "name", strconv.Quote(strings.Repeat("n", 101)), "", 422, "validation", "name"),
		bad("an empty name", "name", `""`, "", 422, "validation", "name"),
		bad("a blank name", "name", `"   "`, "", 422, "validation", "name"),
		bad("a name containing a NUL character", "name", `"Ada\u0000Lovelace"`, "", 422, "validation", "name"),
		bad("an email without @", "email", `"not-an-email"`, "", 422, "validation", "email"),
		bad("an email without a dot in the domain", "email", `"a@b"`, "", 422, "validation", "email"),
		bad("an email with a display name", "email", `"Ada <ada-display@example.com>"`, "", 422, "validation", "email"),
		bad("an email of 255 characters", "email", strconv.Quote(strings.Repeat("a", 243)+"@example.com"), "", 422, "validation", "email"),
		bad("a password of 7 characters", "password", `"1234567"`, "", 422, "validation", "password"),
		bad("a password of 129 characters", "password", strconv.Quote(strings.Repeat("p", 129)), "", 422, "validation", "password"),
		bad("a null name", "name", `null`, "", 422, "validation", "name"),
		bad("a null email", "email", `null`, "", 422, "validation", "email"),
		bad("a null is_admin", "is_admin", `null`, "", 422, "validation", "is_admin"),
		withCT("no body", ct, nil, "", 422, "validation"),
		withCT("a body of 2 MiB", ct, huge, "", 413, "payload-too-large"),
		withCT("a text/plain body", "text/plain", validBody, validEmail, 415, "unsupported-media-type"),
		withCT("a form-encoded body", "application/x-www-form-urlencoded",
			usersJSON("name=Ada&email="+url.QueryEscape(formEmail)+"&password=long-enough-pw"), formEmail, 415, "unsupported-media-type"),
		withCT("a body without content type", "", validBody, validEmail, 415, "unsupported-media-type"),
	}
	if create {
		cases = append(cases,
			withCT("an empty object (every required field missing)", ct, usersJSON(`{}`), "", 422, "validation"),
			bad("a missing password", "password", "", "", 422, "validation", "password"),
			bad("a missing email", "email", "", "", 422, "validation", "email"),
			bad("a missing name", "name", "", "", 422, "validation", "name"),
		)
		cases[len(cases)-4].fields = []string{"name", "email", "password"}
	} else {
		cases = append(cases,
			bad("a null password", "password", `null`, "", 422, "validation", "password"),
			bad("a null is_active", "is_active", `null`, "", 422, "validation", "is_active"),
			withCT("an empty current_password", ct, usersJSON(`{"password":"long-enough-pw","current_password":""}`), "", 422, "validation"),
		)
		cases[len(cases)-1].fields = []string{"current_password"}
	}
	return cases
}

func TestUsersRejectBadInput(t *testing.T) {
	t.Parallel()
	f := usersStart(t)
	keeper := usersNew(t, f, "Keeper", false)
	keeperPath := "/api/v1/users/" + strconv.FormatInt(keeper.Id, 10)

	// Creates: nothing may be created, and no existing user may change.
	for _, c := range usersBadBodies(true) {
		t.Run("createUser rejects "+c.name, func(t *testing.T) {
			t.Parallel()
			before := usersSnap(t, f, keeper.Id)
			r := usersDo(t, f.env, apitest.Request{Method: http.MethodPost, Path: "/api/v1/users", Token: f.adminToken, ContentType: c.contentType, Body: c.body})
			p := apitest.RequireProblem(t, r, c.status, c.typ)
			apitest.RequireExactFieldErrors(t, p, "body", c.fields...)
			if c.status == http.StatusUnprocessableEntity {
				require.NotEmpty(t, p.Errors, "a 422 lists the bad fields")
			}
			if probe := c.probe; probe != "" {
				if len(probe) > 200 { // q is limited to 200 characters
					probe = probe[len(probe)-200:]
				}
				require.Zero(t, usersTotal(t, f, &probe), "a user was created anyway")
			}
			usersRequireUnchanged(t, f, before)
		})
	}

	// Updates: each case has its own victim, which must stay exactly as it was.
	updates := []struct {
		op, method string
		self       bool // the victim acts on itself through /users/me
	}{
		{"updateCurrentUser", http.MethodPatch, true},
		{"updateUser", http.MethodPatch, false},
		{"replaceUser", http.MethodPut, false},
	}
	for _, op := range updates {
		for _, c := range usersBadBodies(false) {
			t.Run(op.op+" rejects "+c.name, func(t *testing.T) {
				t.Parallel()
				var victim int64
				path, token := "", f.adminToken
				if op.self {
					u := f.env.CreateUser(t, "Victim", false)
					victim, path, token = u.Id, "/api/v1/users/me", u.Token
				} else {
					victim = usersNew(t, f, "Victim", false).Id
					path = "/api/v1/users/" + strconv.FormatInt(victim, 10)
				}
				before := usersSnap(t, f, victim)
				r := usersDo(t, f.env, apitest.Request{Method: op.method, Path: path, Token: token, ContentType: c.contentType, Body: c.body})
				p := apitest.RequireProblem(t, r, c.status, c.typ)
				apitest.RequireExactFieldErrors(t, p, "body", c.fields...)
				if c.status == http.StatusUnprocessableEntity {
					require.NotEmpty(t, p.Errors, "a 422 lists the bad fields")
				}
				usersRequireUnchanged(t, f, before)
			})
		}
	}

	t.Run("listUsers rejects bad query parameters with 422 naming each", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			query  string
			fields []string
		}{
			{"skip=-1", []string{"skip"}},
			{"skip=abc", []string{"skip"}},
			{"skip=1.5", []string{"skip"}},
			{"skip=1000000001", []string{"skip"}},
			{"limit=0", []string{"limit"}},
			{"limit=-5", []string{"limit"}},
			{"limit=1001", []string{"limit"}},
			{"limit=abc", []string{"limit"}},
			{"limit=99999999999", []string{"limit"}},
			{"skip=-1&limit=0", []string{"skip", "limit"}},
			{"is_active=maybe", []string{"is_active"}},
			{"is_admin=2", []string{"is_admin"}},
			{"q=", []string{"q"}},
			{"q=" + strings.Repeat("x", 201), []string{"q"}},
		} {
			r := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users?" + c.query, Token: f.adminToken})
			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "query", c.fields...)
		}
	})

	t.Run("listUsers rejects a malformed query string with 400", func(t *testing.T) {
		t.Parallel()
		r := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users?limit=%zz", Token: f.adminToken})
		apitest.RequireProblem(t, r, http.StatusBadRequest, "malformed-request")
	})

	t.Run("operations on /users/{user_id} reject a bad id with 422 naming the path parameter", func(t *testing.T) {
		t.Parallel()
		before := usersSnap(t, f, keeper.Id)
		for _, id := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
			for _, m := range []struct {
				method string
				body   []byte
			}{
				{http.MethodGet, nil},
				{http.MethodPatch, usersJSON(`{"name":"Bad Id"}`)},
				{http.MethodPut, usersJSON(`{"name":"Bad Id"}`)},
				{http.MethodDelete, nil},
			} {
				ct := ""
				if m.body != nil {
					ct = "application/json"
				}
				r := usersDo(t, f.env, apitest.Request{Method: m.method, Path: "/api/v1/users/" + id, Token: f.adminToken, ContentType: ct, Body: m.body})
				p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
				apitest.RequireExactFieldErrors(t, p, "path", "user_id")
			}
		}
		require.Zero(t, usersTotal(t, f, apitest.Ptr("Bad Id")))
		usersRequireUnchanged(t, f, before)
	})

	t.Run("conditional headers longer than 200 characters are 422 naming the header", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Headed", false)
		victim := usersNew(t, f, "Victim", false)
		victimPath := "/api/v1/users/" + strconv.FormatInt(victim.Id, 10)
		beforeSelf, beforeVictim := usersSnap(t, f, u.Id), usersSnap(t, f, victim.Id)
		long := `"` + strings.Repeat("9", 200) + `"`
		for _, c := range []struct {
			method, path, header, token string
			body                        []byte
		}{
			{http.MethodGet, keeperPath, "If-None-Match", f.adminToken, nil},
			{http.MethodGet, "/api/v1/users/me", "If-None-Match", u.Token, nil},
			{http.MethodPatch, victimPath, "If-Match", f.adminToken, usersJSON(`{"name":"Header"}`)},
			{http.MethodPut, victimPath, "If-Match", f.adminToken, usersJSON(`{"name":"Header"}`)},
			{http.MethodPatch, "/api/v1/users/me", "If-Match", u.Token, usersJSON(`{"name":"Header"}`)},
			{http.MethodDelete, victimPath, "If-Match", f.adminToken, nil},
		} {
			ct := ""
			if c.body != nil {
				ct = "application/json"
			}
			r := usersDo(t, f.env, apitest.Request{Method: c.method, Path: c.path, Token: c.token, ContentType: ct, Body: c.body,
				Header: map[string]string{c.header: long}})
			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "header", c.header)
		}
		usersRequireUnchanged(t, f, beforeSelf)
		usersRequireUnchanged(t, f, beforeVictim)
	})
}

// ---------------------------------------------------------------------------------------
// 6. Routing
// ---------------------------------------------------------------------------------------

func TestUsersRouting(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("unknown routes are 404 problems", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/api/v1/nope", "/api/v1/users/1/extra", "/api/v2/users"} {
			r := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: path, Token: f.adminToken})
			apitest.RequireProblem(t, r, http.StatusNotFound, "not-found")
		}
	})

	// Not parallel: it compares the user count, which sibling subtests change; run before
	// them, it sees a quiet database.
	t.Run("a method the route does not have is a 405 problem", func(t *testing.T) {
		before := usersTotal(t, f, nil)
		for _, c := range []struct{ method, path string }{
			{http.MethodDelete, "/api/v1/users"},
			{http.MethodPut, "/api/v1/users"},
			{http.MethodPost, "/api/v1/users/me"},
			{http.MethodPatch, "/api/v1/users"},
			{http.MethodPost, "/api/v1/users/1"},
		} {
			r := usersDo(t, f.env, apitest.Request{Method: c.method, Path: c.path, Token: f.adminToken})
			apitest.RequireProblem(t, r, http.StatusMethodNotAllowed, "method-not-allowed")
		}
		require.Equal(t, before, usersTotal(t, f, nil))
	})

	t.Run("paths with a trailing slash are answered directly, not redirected", func(t *testing.T) {
		t.Parallel()
		l := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/", Token: f.adminToken})
		require.Equal(t, http.StatusOK, l.Status, "%s", l.Body)
		var page client.UserPage
		require.NoError(t, json.Unmarshal(l.Body, &page))
		require.NotEmpty(t, page.Items)

		lq := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/?limit=1&q=" + url.QueryEscape("admin"), Token: f.adminToken})
		require.Equal(t, http.StatusOK, lq.Status, "%s", lq.Body)
		require.NoError(t, json.Unmarshal(lq.Body, &page))
		require.EqualValues(t, 1, page.PageSize, "query parameters survive the trailing slash")

		email := usersEmail("slash")
		c := usersDo(t, f.env, apitest.Request{Method: http.MethodPost, Path: "/api/v1/users/", Token: f.adminToken, ContentType: "application/json",
			Body: []byte(fmt.Sprintf(`{"name":"Slash","email":%q,"password":%q}`, email, usersPassword))})
		require.Equal(t, http.StatusCreated, c.Status, "%s", c.Body)
		var u client.User
		require.NoError(t, json.Unmarshal(c.Body, &u))
		require.Equal(t, email, string(u.Email))

		g := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/" + strconv.FormatInt(u.Id, 10) + "/", Token: f.adminToken})
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)

		me := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me/", Token: f.adminToken})
		require.Equal(t, http.StatusOK, me.Status, "%s", me.Body)

		p := usersDo(t, f.env, apitest.Request{Method: http.MethodPatch, Path: "/api/v1/users/" + strconv.FormatInt(u.Id, 10) + "/", Token: f.adminToken,
			ContentType: "application/json", Body: usersJSON(`{"name":"Slashed"}`)})
		require.Equal(t, http.StatusOK, p.Status, "%s", p.Body)
		_, stored, _ := usersGet(t, f, u.Id)
		require.Equal(t, "Slashed", stored.Name)
	})
}
