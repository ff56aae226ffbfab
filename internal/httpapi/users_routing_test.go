package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Routing
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
