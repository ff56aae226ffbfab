package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// CRUD happy paths
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
