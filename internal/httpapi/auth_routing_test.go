package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

func TestTrailingSlash(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	// Refuse to follow redirects: a trailing slash must be answered directly.
	noRedirect := *env.HTTP
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}}.Encode()

	r := env.Send(t, apitest.Request{Client: &noRedirect, Method: http.MethodPost, Path: "/api/v1/auth/token/", ContentType: apitest.Form, Body: form})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	var pair client.TokenPair
	require.NoError(t, json.Unmarshal(r.Body, &pair))
	require.Equal(t, client.Bearer, pair.TokenType)

	r = env.Send(t, apitest.Request{Client: &noRedirect, Method: http.MethodGet, Path: "/api/v1/users/me/", Token: pair.AccessToken})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)

	r = env.Send(t, apitest.Request{Client: &noRedirect, Method: http.MethodGet, Path: "/api/v1/users/me/"})
	apitest.RequireProblem(t, r, http.StatusUnauthorized)

	r = env.Send(t, apitest.Request{Client: &noRedirect, Method: http.MethodPost, Path: "/api/v1/auth/refresh/", ContentType: apitest.JSON, Body: `{"refresh_token":"` + pair.RefreshToken + `"}`})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	var next client.TokenPair
	require.NoError(t, json.Unmarshal(r.Body, &next))

	r = env.Send(t, apitest.Request{Client: &noRedirect, Method: http.MethodPost, Path: "/api/v1/auth/logout/", ContentType: apitest.JSON, Body: `{"refresh_token":"` + next.RefreshToken + `"}`})
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	authRequireRefresh401(t, env, next.RefreshToken, "logged out through the slashed path")
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	env := authStart(t)

	t.Run("a_sane_id_is_echoed_in_the_header_the_problem_and_the_log", func(t *testing.T) {
		t.Parallel()
		id := "client-req_42.Abc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"X-Request-ID": id}})
		require.Equal(t, id, r.Header.Get("X-Request-ID"))
		p := apitest.RequireProblem(t, r, http.StatusUnauthorized)
		require.Equal(t, id, p.RequestId)
		require.Eventually(t, func() bool { return strings.Contains(env.Logs.String(), id) }, 5*time.Second, 20*time.Millisecond,
			"the access log line carries the request id")
	})

	t.Run("a_sane_id_is_echoed_on_success", func(t *testing.T) {
		t.Parallel()
		id := "ok-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		form := url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}}.Encode()
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form, Body: form, Header: map[string]string{"X-Request-ID": id}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, id, r.Header.Get("X-Request-ID"))
	})

	t.Run("an_id_of_the_maximum_length_is_kept", func(t *testing.T) {
		t.Parallel()
		id := strings.Repeat("k", 128)
		r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"X-Request-ID": id}})
		require.Equal(t, id, r.Header.Get("X-Request-ID"))
		require.Equal(t, id, apitest.RequireProblem(t, r, http.StatusUnauthorized).RequestId)
	})

	t.Run("an_insane_id_is_replaced_by_a_generated_one", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{
			strings.Repeat("a", 200),
			strings.Repeat("b", 129),
			"abc<script>alert(1)</script>",
			"has spaces in it",
			`quote"d`,
			"semi;colon",
			"ünïcödé",
		} {
			r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"X-Request-ID": id}})
			got := r.Header.Get("X-Request-ID")
			require.NotEmpty(t, got)
			require.NotEqual(t, id, got, "id %q must not be echoed", id)
			require.LessOrEqual(t, len(got), 128)
			require.Regexp(t, `^[A-Za-z0-9._-]+$`, got)
			p := apitest.RequireProblem(t, r, http.StatusUnauthorized)
			require.Equal(t, got, p.RequestId)
			require.NotContains(t, string(r.Body), id)
		}
	})

	t.Run("without_an_id_each_request_gets_its_own", func(t *testing.T) {
		t.Parallel()
		a := authMe(t, env, "")
		b := authMe(t, env, "")
		require.NotEmpty(t, a.Header.Get("X-Request-ID"))
		require.NotEqual(t, a.Header.Get("X-Request-ID"), b.Header.Get("X-Request-ID"))
		require.Equal(t, a.Header.Get("X-Request-ID"), apitest.RequireProblem(t, a, http.StatusUnauthorized).RequestId)
	})
}
