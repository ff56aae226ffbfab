package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
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
