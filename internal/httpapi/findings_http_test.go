package httpapi_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "fnd" so they cannot clash with other test files of the package)
// ---------------------------------------------------------------------------------------

func fndRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fndMetrics returns the text of /metrics.
func fndMetrics(t *testing.T, env *apitest.Env) string {
	t.Helper()
	r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/metrics"})
	require.Equal(t, http.StatusOK, r.Status)
	return string(r.Body)
}

// fndHTTPSeries counts the samples of the HTTP request metrics.
func fndHTTPSeries(text string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "http_request") {
			n++
		}
	}
	return n
}

// fndLogLines returns the server's JSON log lines whose request_id is id.
func fndLogLines(t *testing.T, env *apitest.Env, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(env.Logs.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line["request_id"] == id {
			out = append(out, line)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Finding 1: /metrics grew without bound from invented methods.
// ---------------------------------------------------------------------------------------

// TestFinding01_MetricsSeriesStayBoundedUnderInventedMethodsAndPaths sends hundreds of
// requests with invented methods and random paths, anonymously: each gets a 405 (or 404)
// problem, and the number of HTTP series in /metrics does not grow.
func TestFinding01_MetricsSeriesStayBoundedUnderInventedMethodsAndPaths(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)

	inventedMethod := func() string { return "X" + strings.ToUpper(fndRandom(6)) + "AAAA" }
	randomPath := func() string { return "/" + fndRandom(4) + "/" + fndRandom(3) }
	requireMethodNotAllowed := func(r *apitest.Response, allow string) {
		t.Helper()
		require.Equal(t, http.StatusMethodNotAllowed, r.Status, "body: %s", r.Body)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		require.Equal(t, allow, r.Header.Get("Allow"))
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &p))
		require.Equal(t, "/problems/method-not-allowed", p.Type)
		require.Equal(t, http.StatusMethodNotAllowed, p.Status)
	}

	// One request of each kind first, so every series the flood can touch exists.
	requireMethodNotAllowed(env.Send(t, apitest.Request{Method: inventedMethod(), Path: "/api/health"}), "GET")
	requireMethodNotAllowed(env.Send(t, apitest.Request{Method: inventedMethod(), Path: randomPath()}), "")
	requireMethodNotAllowed(env.Send(t, apitest.Request{Method: http.MethodTrace, Path: "/api/v1/tasks"}), "GET, POST")
	require.Equal(t, http.StatusNotFound, env.Send(t, apitest.Request{Method: http.MethodGet, Path: randomPath()}).Status)
	require.Equal(t, http.StatusNotFound, env.Send(t, apitest.Request{Method: http.MethodPost, Path: randomPath()}).Status)
	fndMetrics(t, env)
	var before string
	require.Eventually(t, func() bool {
		before = fndMetrics(t, env)
		return strings.Contains(before, `http_requests_total{method="OTHER",route="unmatched",status="405"} 2`) &&
			strings.Contains(before, `http_requests_total{method="TRACE",route="unmatched",status="405"} 1`) &&
			strings.Contains(before, `http_requests_total{method="POST",route="unmatched",status="404"} 1`) &&
			strings.Contains(before, `http_requests_total{method="GET",route="/metrics",status="200"}`)
	}, 5*time.Second, 20*time.Millisecond, "the warm-up requests are counted")

	const flood = 300
	for i := range flood {
		path := "/api/health"
		if i%2 == 1 {
			path = randomPath()
		}
		r := env.Send(t, apitest.Request{Method: inventedMethod(), Path: path, Header: map[string]string{"X-Request-ID": "flood-" + fndRandom(8)}})
		require.Equal(t, http.StatusMethodNotAllowed, r.Status, "body: %s", r.Body)
	}
	for range 100 {
		require.Equal(t, http.StatusNotFound, env.Send(t, apitest.Request{Method: http.MethodGet, Path: randomPath()}).Status)
		require.Equal(t, http.StatusNotFound, env.Send(t, apitest.Request{Method: http.MethodPost, Path: randomPath()}).Status)
	}

	var after string
	require.Eventually(t, func() bool {
		after = fndMetrics(t, env)
		return strings.Contains(after, `http_requests_total{method="OTHER",route="unmatched",status="405"} 302`) &&
			strings.Contains(after, `http_requests_total{method="POST",route="unmatched",status="404"} 101`)
	}, 5*time.Second, 20*time.Millisecond, "the flood is counted under OTHER and unmatched")
	require.Equal(t, fndHTTPSeries(before), fndHTTPSeries(after),
		"invented methods and paths add no series:\nbefore:\n%s\nafter:\n%s", before, after)
	require.Less(t, len(after), len(before)+4096, "/metrics does not grow with the flood")
	require.NotContains(t, after, "AAAA", "no invented method reaches a label")
}

// ---------------------------------------------------------------------------------------
// Finding 13: caching and content sniffing headers.
// ---------------------------------------------------------------------------------------

// TestFinding13_NoStoreOnPersonalDataAndNosniffEverywhere: every /api/v1 answer (tokens,
// users, tasks, their problems) carries Cache-Control: no-store, ETags and 304 still
// work, and every answer of the API, problems and docs included, carries nosniff.
func TestFinding13_NoStoreOnPersonalDataAndNosniffEverywhere(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))
	requireNosniff := func(r *apitest.Response, what string) {
		t.Helper()
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), what)
	}
	requireNoStore := func(r *apitest.Response, what string) {
		t.Helper()
		requireNosniff(r, what)
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"), what)
	}

	form := url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}}.Encode()
	login := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form, Body: form})
	require.Equal(t, http.StatusOK, login.Status, "body: %s", login.Body)
	requireNoStore(login, "token response")
	require.Equal(t, "no-cache", login.Header.Get("Pragma"), "token response (RFC 6749 §5.1)")
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.Unmarshal(login.Body, &pair))

	refresh := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: `{"refresh_token":"` + pair.RefreshToken + `"}`})

	require.Equal(t, http.StatusOK, refresh.Status, "body: %s", refresh.Body)
	requireNoStore(refresh, "refresh response")
	require.NoError(t, json.Unmarshal(refresh.Body, &pair))
	bearer := "Bearer " + pair.AccessToken

	badLogin := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form, Body: url.Values{"username": {apitest.AdminEmail}, "password": {"wrong-password"}}.Encode()})

	require.Equal(t, http.StatusUnauthorized, badLogin.Status)
	requireNoStore(badLogin, "failed login")

	me := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"Authorization": bearer}})
	require.Equal(t, http.StatusOK, me.Status)
	requireNoStore(me, "GET /users/me")
	require.Contains(t, string(me.Body), apitest.AdminEmail)
	etag := me.Header.Get("ETag")
	require.NotEmpty(t, etag, "resources keep their ETag")
	notModified := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"Authorization": bearer, "If-None-Match": etag}})
	require.Equal(t, http.StatusNotModified, notModified.Status, "If-None-Match still answers 304")
	requireNoStore(notModified, "304")

	created := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: `{"title":"private"}`, Header: map[string]string{"Authorization": bearer}})
	require.Equal(t, http.StatusCreated, created.Status, "body: %s", created.Body)
	requireNoStore(created, "POST /tasks")
	list := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/tasks/", Header: map[string]string{"Authorization": bearer}})
	require.Equal(t, http.StatusOK, list.Status)
	requireNoStore(list, "GET /tasks/")
	users := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users?q=admin", Header: map[string]string{"Authorization": bearer}})
	require.Equal(t, http.StatusOK, users.Status)
	requireNoStore(users, "GET /users")

	anonymous := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me"})
	require.Equal(t, http.StatusUnauthorized, anonymous.Status)
	requireNoStore(anonymous, "401")
	missing := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/tasks/987654", Header: map[string]string{"Authorization": bearer}})
	require.Equal(t, http.StatusNotFound, missing.Status)
	requireNoStore(missing, "404 of a resource")

	for _, c := range []struct {
		method, path string
		status       int
		raw          bool // not described by the contract
	}{
		{http.MethodGet, "/", http.StatusOK, false},
		{http.MethodGet, "/api/health", http.StatusOK, false},
		{http.MethodGet, "/api/health/ready", http.StatusOK, false},
		{http.MethodGet, "/api/openapi.json", http.StatusOK, false},
		{http.MethodGet, "/api/openapi.yaml", http.StatusOK, false},
		{http.MethodGet, "/api/docs", http.StatusOK, false},
		{http.MethodGet, "/api/docs/swagger-ui.css", http.StatusOK, true},
		{http.MethodGet, "/api/docs/init.js", http.StatusOK, true},
		{http.MethodGet, "/api/docs/no-such-asset.js", http.StatusNotFound, false},
		{http.MethodGet, "/metrics", http.StatusOK, false},
		{http.MethodGet, "/no/such/route", http.StatusNotFound, false},
		{http.MethodDelete, "/api/health", http.StatusMethodNotAllowed, false},
		{http.MethodOptions, "/api/v1/tasks", http.StatusMethodNotAllowed, false},
		{"BREW", "/api/health", http.StatusMethodNotAllowed, false},
		{http.MethodHead, "/api/v1/users", http.StatusMethodNotAllowed, true},
	} {
		hc := env.HTTP
		if c.raw {
			hc = http.DefaultClient
		}
		r := env.Send(t, apitest.Request{Client: hc, Method: c.method, Path: c.path})
		require.Equal(t, c.status, r.Status, "%s %s: %s", c.method, c.path, r.Body)
		requireNosniff(r, c.method+" "+c.path)
		if !strings.HasPrefix(c.path, "/api/v1") {
			require.Empty(t, r.Header.Get("Cache-Control"), "%s %s carries no personal data", c.method, c.path)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Finding 14: a client hanging up was logged and counted as a server error.
// ---------------------------------------------------------------------------------------

// TestFinding14_ClientHangUpIsLogged499NotServerError cancels a request while its handler
// waits in the database (the tasks table is locked): the access log records it at INFO
// with status 499, nothing is logged at ERROR, and the metrics count a 499, no 5xx.
func TestFinding14_ClientHangUpIsLogged499NotServerError(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	token := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	ctx := context.Background()

	conn, err := pgx.Connect(ctx, env.DBURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	id := "hangup-" + fndRandom(8)
	reqCtx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, env.BaseURL+"/api/v1/tasks", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-ID", id)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
		}
		done <- err
	}()

	// The handler is mid-flight once its query waits for the lock. (Another connection
	// looks: inside a transaction pg_stat_activity is a snapshot taken once.)
	watcher, err := pgx.Connect(ctx, env.DBURL)
	require.NoError(t, err)
	defer func() { _ = watcher.Close(ctx) }()
	require.Eventually(t, func() bool {
		var waiting int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%tasks%'`).Scan(&waiting)
		require.NoError(t, err)
		return waiting > 0
	}, 10*time.Second, 10*time.Millisecond, "the request waits on the locked table")
	hangUp()
	require.True(t, errors.Is(<-done, context.Canceled), "the client gave up")

	var access map[string]any
	require.Eventually(t, func() bool {
		for _, line := range fndLogLines(t, env, id) {
			if line["msg"] == "request" {
				access = line
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the request is logged once the handler returns")
	require.NoError(t, tx.Rollback(ctx))

	require.Equal(t, "INFO", access["level"], "access line: %v", access)
	require.Equal(t, float64(499), access["status"], "access line: %v", access)
	require.Equal(t, "/api/v1/tasks", access["route"])
	for _, line := range fndLogLines(t, env, id) {
		require.NotEqual(t, "ERROR", line["level"], "a client hanging up is no server error: %v", line)
	}

	var text string
	require.Eventually(t, func() bool {
		text = fndMetrics(t, env)
		return strings.Contains(text, `http_requests_total{method="GET",route="/api/v1/tasks",status="499"} 1`)
	}, 5*time.Second, 20*time.Millisecond, "the hang-up is counted as 499")
	require.NotRegexp(t, `http_requests_total\{method="GET",route="/api/v1/tasks",status="5\d\d"\}`, text)

	// The server is unharmed: the same request now answers.
	list := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/tasks", Token: token})
	require.Equal(t, http.StatusOK, list.Status, "body: %s", list.Body)
}
