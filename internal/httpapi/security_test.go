package httpapi_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "sec" so they cannot clash with other test files of the package)
// ---------------------------------------------------------------------------------------

// secSecretKey is the SECRET_KEY of the environments whose tests forge tokens or look
// for the key in the logs.
const secSecretKey = "sec-test-SECRET-KEY-b7c1e0f49a3d4c2e8f6a5b4c3d2e1f00"

// secStart starts an environment with the rate limits off (0 = off): these tests send
// many requests a minute from one address on purpose.
func secStart(t *testing.T, opts ...apitest.Option) *apitest.Env {
	t.Helper()
	return apitest.Start(t, append([]apitest.Option{
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
	}, opts...)...)
}

func secRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secDecode decodes a JSON body into v.
func secDecode[T any](t *testing.T, r *apitest.Response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// secSignature returns the signature segment of a JWT.
func secSignature(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3, "token %q", token)
	return parts[2]
}

// secForms are the ways a secret could show up in a JSON log: as is, JSON-escaped and
// URL-encoded.
func secForms(s string) []string {
	j, _ := json.Marshal(s)
	forms := []string{s, string(j[1 : len(j)-1]), url.QueryEscape(s), url.PathEscape(s)}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// secLogLines returns the server's access-log lines ("msg":"request") keyed by request id.
func secLogLines(logs string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "request" {
			continue
		}
		if id, _ := m["request_id"].(string); id != "" {
			out[id] = m
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------
// 1. Secrets never reach the logs
// ---------------------------------------------------------------------------------------

func TestSecretsNeverReachTheLogs(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("SECRET_KEY", secSecretKey))

	var secrets []string // every value that must never be logged
	secret := func(vs ...string) {
		for _, v := range vs {
			require.GreaterOrEqual(t, len(v), 12, "secret %q is too short to search for without false hits", v)
			secrets = append(secrets, v)
		}
	}
	tokens := func(p client.TokenPair) {
		secret(p.AccessToken, secSignature(t, p.AccessToken), "Bearer "+p.AccessToken, p.RefreshToken)
	}
	secret(secSecretKey, apitest.AdminPassword)

	// Every request carries its own X-Request-ID; its access-log line is checked below.
	type logged struct {
		id, method, route string
		status            int
		userID            int64 // 0: the request is not authenticated
	}
	var want []logged
	seq := 0
	do := func(name, method, path, route string, userID int64, contentType, body string, headers ...string) *apitest.Response {
		t.Helper()
		seq++
		id := fmt.Sprintf("sec-log-%02d-%s", seq, name)
		require.Zero(t, len(headers)%2, "headers come in name/value pairs")
		h := map[string]string{"X-Request-ID": id}
		for i := 0; i < len(headers); i += 2 {
			h[headers[i]] = headers[i+1]
		}
		r := env.Send(t, apitest.Request{Method: method, Path: path, ContentType: contentType, Body: body, Header: h})
		require.Equal(t, id, r.Header.Get("X-Request-ID"))
		want = append(want, logged{id: id, method: method, route: route, status: r.Status, userID: userID})
		return r
	}
	const form = "application/x-www-form-urlencoded"
	login := func(name, email, pw string) *apitest.Response {
		t.Helper()
		return do(name, http.MethodPost, "/api/v1/auth/token", "/api/v1/auth/token", 0, form,
			url.Values{"username": {email}, "password": {pw}, "grant_type": {"password"}}.Encode())
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	// Log in, refresh.
	r := login("login-admin", apitest.AdminEmail, apitest.AdminPassword)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	first := secDecode[client.TokenPair](t, r)
	tokens(first)
	adminID, err := strconv.ParseInt(authClaims(t, first.AccessToken)["sub"].(string), 10, 64)
	require.NoError(t, err)

	r = do("refresh-admin", http.MethodPost, "/api/v1/auth/refresh", "/api/v1/auth/refresh", 0, "application/json",
		`{"refresh_token":"`+first.RefreshToken+`"}`)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	admin := secDecode[client.TokenPair](t, r)
	tokens(admin)

	// Create a user with a password, under an Idempotency-Key, and replay it.
	email := "sec-logs-" + secRandom(4) + "@example.com"
	userPW := "sec-user-password-" + secRandom(8)
	userKey := "sec-idempotency-key-" + secRandom(8)
	secret(userPW, userKey)
	createBody := `{"name":"Log Watcher","email":"` + email + `","password":"` + userPW + `"}`
	r = do("create-user", http.MethodPost, "/api/v1/users", "/api/v1/users", adminID, "application/json", createBody,
		append(bearer(admin.AccessToken), "Idempotency-Key", userKey)...)
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	userID := secDecode[client.User](t, r).Id
	r = do("create-user-replay", http.MethodPost, "/api/v1/users", "/api/v1/users", adminID, "application/json", createBody,
		append(bearer(admin.AccessToken), "Idempotency-Key", userKey)...)
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))

	r = login("login-user", email, userPW)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	user := secDecode[client.TokenPair](t, r)
	tokens(user)

	// Change the own password: once with a wrong current password, then properly.
	wrongCurrent := "sec-wrong-current-" + secRandom(8)
	newPW := "sec-new-password-" + secRandom(8)
	secret(wrongCurrent, newPW)
	r = do("change-password-wrong-current", http.MethodPatch, "/api/v1/users/me", "/api/v1/users/me", userID, "application/json",
		`{"current_password":"`+wrongCurrent+`","password":"`+newPW+`"}`, bearer(user.AccessToken)...)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	r = do("change-password", http.MethodPatch, "/api/v1/users/me", "/api/v1/users/me", userID, "application/json",
		`{"current_password":"`+userPW+`","password":"`+newPW+`"}`, bearer(user.AccessToken)...)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = login("login-old-password", email, userPW)
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)
	r = login("login-new-password", email, newPW)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	user2 := secDecode[client.TokenPair](t, r)
	tokens(user2)

	// An administrator resets the password.
	resetPW := "sec-reset-password-" + secRandom(8)
	secret(resetPW)
	r = do("admin-reset-password", http.MethodPatch, "/api/v1/users/"+strconv.FormatInt(userID, 10), "/api/v1/users/:user_id", adminID,
		"application/json", `{"password":"`+resetPW+`"}`, bearer(admin.AccessToken)...)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)

	// The reset ended the user's sessions; log in with the new password.
	r = login("login-reset-password", email, resetPW)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	user3 := secDecode[client.TokenPair](t, r)
	tokens(user3)

	// Valid, expired, garbage and misused bearer tokens.
	r = do("valid-bearer", http.MethodGet, "/api/v1/users/me", "/api/v1/users/me", adminID, "", "", bearer(admin.AccessToken)...)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	expiredClaims := authValidClaims(adminID)
	expiredClaims["iat"], expiredClaims["nbf"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	expiredClaims["exp"] = time.Now().Add(-time.Hour).Unix()
	expired := authSign(t, jwt.SigningMethodHS256, secSecretKey, expiredClaims)
	secret(expired, secSignature(t, expired), "Bearer "+expired)
	r = do("expired-bearer", http.MethodGet, "/api/v1/users/me", "/api/v1/users/me", 0, "", "", bearer(expired)...)
	apitest.RequireProblem(t, r, http.StatusUnauthorized)
	garbage := "sec-garbage-token-" + secRandom(16)
	secret(garbage, "Bearer "+garbage)
	r = do("garbage-bearer", http.MethodGet, "/api/v1/users/me", "/api/v1/users/me", 0, "", "", bearer(garbage)...)
	apitest.RequireProblem(t, r, http.StatusUnauthorized)
	r = do("refresh-token-as-bearer", http.MethodGet, "/api/v1/users/me", "/api/v1/users/me", 0, "", "", bearer(user3.RefreshToken)...)
	apitest.RequireProblem(t, r, http.StatusUnauthorized)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+newPW))
	secret(basic, basic[len("Basic "):])
	r = do("basic-credentials", http.MethodGet, "/api/v1/users/me", "/api/v1/users/me", 0, "", "", "Authorization", basic)
	apitest.RequireProblem(t, r, http.StatusUnauthorized)

	// A wrong password and overlong ones.
	wrongPW := "sec-wrong-login-password-" + secRandom(8)
	secret(wrongPW)
	r = login("login-wrong-password", email, wrongPW)
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)
	overlong := "sec-overlong-password-" + secRandom(8) + strings.Repeat("Q", 120)
	secret(overlong)
	r = login("login-overlong-password", email, overlong)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	r = do("create-user-overlong-password", http.MethodPost, "/api/v1/users", "/api/v1/users", adminID, "application/json",
		`{"name":"Too Long","email":"sec-long-`+secRandom(4)+`@example.com","password":"`+overlong+`"}`, bearer(admin.AccessToken)...)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)

	// Token-like values in query strings.
	queryToken := "rt_sec" + secRandom(20)
	secret(queryToken)
	r = do("token-in-q", http.MethodGet, "/api/v1/tasks?q="+url.QueryEscape(queryToken), "/api/v1/tasks", adminID, "", "", bearer(admin.AccessToken)...)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = do("refresh-token-in-q", http.MethodGet, "/api/v1/tasks?q="+url.QueryEscape(user3.RefreshToken), "/api/v1/tasks", userID, "", "",
		bearer(user3.AccessToken)...)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = do("access-token-in-query", http.MethodGet, "/api/v1/users/me?access_token="+url.QueryEscape(user3.AccessToken), "/api/v1/users/me", 0, "", "")
	apitest.RequireProblem(t, r, http.StatusUnauthorized)

	// A task under an Idempotency-Key.
	taskKey := "sec-task-idempotency-" + secRandom(8)
	secret(taskKey)
	r = do("create-task", http.MethodPost, "/api/v1/tasks", "/api/v1/tasks", userID, "application/json", `{"title":"log watch"}`,
		append(bearer(user3.AccessToken), "Idempotency-Key", taskKey)...)
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)

	// Rotate the user's session, log the administrator out, then replay the spent token.
	r = do("refresh-user", http.MethodPost, "/api/v1/auth/refresh", "/api/v1/auth/refresh", 0, "application/json",
		`{"refresh_token":"`+user3.RefreshToken+`"}`)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	tokens(secDecode[client.TokenPair](t, r))
	r = do("logout-admin", http.MethodPost, "/api/v1/auth/logout", "/api/v1/auth/logout", 0, "application/json",
		`{"refresh_token":"`+admin.RefreshToken+`"}`)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	r = do("refresh-after-logout", http.MethodPost, "/api/v1/auth/refresh", "/api/v1/auth/refresh", 0, "application/json",
		`{"refresh_token":"`+admin.RefreshToken+`"}`)
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)
	r = do("refresh-spent-token", http.MethodPost, "/api/v1/auth/refresh", "/api/v1/auth/refresh", 0, "application/json",
		`{"refresh_token":"`+first.RefreshToken+`"}`)
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)

	// The check must not pass vacuously: every request above has its access-log line,
	// with the fields operators rely on.
	require.Eventually(t, func() bool {
		lines := secLogLines(env.Logs.String())
		for _, w := range want {
			if lines[w.id] == nil {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond, "every request has an access-log line")
	logs := env.Logs.String()
	lines := secLogLines(logs)
	for _, w := range want {
		line := lines[w.id]
		require.Equal(t, w.method, line["method"], "method of %s: %v", w.id, line)
		require.Equal(t, w.route, line["route"], "route of %s: %v", w.id, line)
		require.EqualValues(t, w.status, line["status"], "status of %s: %v", w.id, line)
		d, ok := line["duration_ms"].(float64)
		require.True(t, ok, "duration_ms of %s: %v", w.id, line)
		require.GreaterOrEqual(t, d, 0.0)
		if w.userID != 0 {
			require.EqualValues(t, w.userID, line["user_id"], "user_id of authenticated request %s: %v", w.id, line)
		} else {
			require.NotContains(t, line, "user_id", "request %s was not authenticated: %v", w.id, line)
		}
	}

	for _, s := range secrets {
		for _, f := range secForms(s) {
			if i := strings.Index(logs, f); i >= 0 {
				start, end := max(0, i-200), min(len(logs), i+len(f)+200)
				t.Errorf("the log contains the secret %q (as %q):\n…%s…", s, f, logs[start:end])
			}
		}
	}
	require.NotContains(t, logs, "$argon2", "the log contains a password hash")

	// The other observability sink, /metrics, labels by route template only.
	m := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/metrics"})
	require.Equal(t, http.StatusOK, m.Status, "body: %s", m.Body)
	for _, s := range secrets {
		for _, f := range secForms(s) {
			require.NotContains(t, string(m.Body), f, "/metrics contains the secret %q", s)
		}
	}
}

// ---------------------------------------------------------------------------------------
// 2. Slow clients (slowloris)
// ---------------------------------------------------------------------------------------

func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	addr := strings.TrimPrefix(env.BaseURL, "http://")
	token := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken

	const (
		readHeaderTimeout = 5 * time.Second // HTTPServer's ReadHeaderTimeout
		margin            = 2 * time.Second
		trickled          = 50 // connections that trickle a header forever
		silent            = 3  // connections that send nothing at all
		tick              = 250 * time.Millisecond
	)
	type cut struct {
		kind    string
		elapsed time.Duration
		err     error
		got     []byte
	}
	results := make(chan cut, trickled+silent)
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	open := func(kind string, trickle bool) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			results <- cut{kind: kind, err: fmt.Errorf("dial: %w", err)}
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		start := time.Now()
		stop := make(chan struct{})
		if trickle {
			go func() {
				msg := []byte("GET /api/health HTTP/1.1\r\nHost: slowloris\r\nX-Trickle: ")
				// The request line arrives at the same pace as the rest: one byte a tick.
				for i := 0; ; i++ {
					b := byte('a' + i%26)
					if i < len(msg) {
						b = msg[i]
					}
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(tick):
					}
				}
			}()
		}
		// Our own deadline only bounds the test; the server must hang up well before it.
		_ = c.SetReadDeadline(start.Add(readHeaderTimeout + margin + 2*time.Second))
		var got []byte
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				close(stop)
				results <- cut{kind: kind, elapsed: time.Since(start), err: err, got: got}
				return
			}
		}
	}
	for range trickled {
		go open("trickling", true)
	}
	for range silent {
		go open("silent", false)
	}

	// While they hang on, ordinary requests (on fresh connections) are answered promptly.
	fresh := &http.Client{
		Transport: &apitest.Validating{T: t, Next: &http.Transport{DisableKeepAlives: true}},
		Timeout:   5 * time.Second,
	}
	time.Sleep(500 * time.Millisecond) // let the slow connections settle in
	// Served while the slow clients hang on: well before ReadHeaderTimeout would have freed
	// anything (the bound is generous because the machine may be busy with other tests).
	const served = 3 * time.Second
	for i := range 4 {
		began := time.Now()
		h := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/health"})
		require.Equal(t, http.StatusOK, h.Status, "health #%d: %s", i, h.Body)
		require.Less(t, time.Since(began), served, "health #%d took %s while slow clients hang on", i, time.Since(began))

		began = time.Now()
		me := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/v1/users/me", Token: token})
		require.Equal(t, http.StatusOK, me.Status, "users/me #%d: %s", i, me.Body)
		require.Less(t, time.Since(began), served, "users/me #%d took %s while slow clients hang on", i, time.Since(began))
		time.Sleep(700 * time.Millisecond)
	}

	var fastest, slowest time.Duration
	for i := range trickled + silent {
		c := <-results
		if i == 0 || c.elapsed < fastest {
			fastest = c.elapsed
		}
		slowest = max(slowest, c.elapsed)
		var ne net.Error
		if errors.As(c.err, &ne) && ne.Timeout() {
			t.Errorf("%s connection still open after %s: the server never cut it off", c.kind, c.elapsed.Round(time.Millisecond))
			continue
		}
		require.NotContains(t, c.err.Error(), "dial", "%s connection", c.kind)
		require.LessOrEqual(t, c.elapsed, readHeaderTimeout+margin,
			"%s connection cut off after %s (%v), want within ReadHeaderTimeout %s + %s", c.kind, c.elapsed, c.err, readHeaderTimeout, margin)
		require.GreaterOrEqual(t, c.elapsed, readHeaderTimeout-time.Second,
			"%s connection cut off after only %s (%v): something other than ReadHeaderTimeout ended it; got %q", c.kind, c.elapsed, c.err, c.got)
		require.NotContains(t, string(c.got), "200 OK", "a request that never finished its headers was served")
	}

	t.Logf("%d slow connections cut off after %s to %s", trickled+silent, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond))

	// The server is still healthy afterwards.
	h := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/health"})
	require.Equal(t, http.StatusOK, h.Status)
}

// ---------------------------------------------------------------------------------------
// 3. Header and body size limits
// ---------------------------------------------------------------------------------------

// secRawRequest writes a raw HTTP/1.1 request on a fresh connection and reads the
// response.
func secRawRequest(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, werr := io.WriteString(c, request)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "reading the response (write error: %v)", werr)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func TestHeaderAndBodySizeLimits(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	addr := strings.TrimPrefix(env.BaseURL, "http://")
	owner := env.CreateUser(t, "Sizer", false)
	const limit = 1 << 20 // the body limit

	// taskBody returns a createTask body of exactly size bytes whose description has
	// size-overhead characters (valid JSON, far over the description's maxLength).
	taskBody := func(size int) string {
		head, tail := `{"title":"big body","description":"`, `"}`
		b := head + strings.Repeat("d", size-len(head)-len(tail)) + tail
		require.Len(t, b, size)
		return b
	}
	requireNoTasks := func(t *testing.T, u apitest.User) {
		t.Helper()
		res, err := u.Client.ListTasksWithResponse(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.Zero(t, res.JSON200.Total, "a refused request created a task")
	}

	// Headers: Go's net/http refuses them itself (plain text, no problem body).
	huge := strings.Repeat("h", 100<<10)
	manyHeaders := strings.Builder{}
	for i := range 2000 {
		fmt.Fprintf(&manyHeaders, "X-Many-%04d: %s\r\n", i, strings.Repeat("m", 40))
	}
	for name, headers := range map[string]string{
		"a_100KiB_cookie":           "Cookie: session=" + huge + "\r\n",
		"a_100KiB_custom_header":    "X-Padding: " + huge + "\r\n",
		"2000_headers_of_55_bytes":  manyHeaders.String(),
		"a_100KiB_bearer_token":     "Authorization: Bearer " + huge + "\r\n",
		"a_100KiB_header_on_a_post": "Content-Type: application/json\r\nContent-Length: 13\r\nX-Padding: " + huge + "\r\n",
	} {
		t.Run("headers_over_MaxHeaderBytes_are_431/"+name, func(t *testing.T) {
			t.Parallel()
			method, path, body := "GET", "/api/health", ""
			if strings.Contains(name, "post") || strings.Contains(name, "bearer") {
				method, path = "POST", "/api/v1/tasks"
			}
			if strings.Contains(name, "post") {
				body = `{"title":"x"}`
			}
			res, b := secRawRequest(t, addr, method+" "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+headers+"\r\n"+body)
			require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "body: %s", b)
		})
	}
	t.Run("headers_just_under_MaxHeaderBytes_are_served", func(t *testing.T) {
		t.Parallel()
		pad := strings.Repeat("p", 60<<10)
		r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"X-Padding": pad}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		r = env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Token: owner.Token, Header: map[string]string{"Cookie": "session=" + pad}})

		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	})

	// Bodies: 413 problems, through the contract-validating client.
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"content_length_1MiB_plus_one", limit + 1, false},
		{"content_length_2MiB", 2 * limit, false},
		{"chunked_1MiB_plus_one", limit + 1, true},
		{"chunked_3MiB", 3 * limit, true},
	} {
		t.Run("create_task_body_over_1MiB_is_413/"+c.name, func(t *testing.T) {
			t.Parallel()
			u := env.CreateUser(t, "Big", false)
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(c.size)), Chunked: c.chunked, Token: u.Token})

			p := apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
			require.Equal(t, "/problems/payload-too-large", p.Type)
			requireNoTasks(t, u)
		})
	}
	t.Run("create_task_body_over_1MiB_with_an_idempotency_key_is_413_and_does_not_claim_it", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "BigKey", false)
		key := "sec-big-" + secRandom(6)
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(limit + 1)), Chunked: true, Token: u.Token, Header: map[string]string{"Idempotency-Key": key}})

		apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
		requireNoTasks(t, u)
		r = env.Do(t, http.MethodPost, "/api/v1/tasks", u.Token, `{"title":"small"}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, r.Status, "the key is still free: %s", r.Body)
	})
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"under_a_decimal_megabyte", 999_999, false},
		{"a_decimal_megabyte_plus_one", 1_000_001, false},
		{"a_decimal_megabyte_plus_one_chunked", 1_000_001, true},
		{"exactly_1MiB", limit, false},
		{"exactly_1MiB_chunked", limit, true},
		{"1MiB_minus_one", limit - 1, false},
		{"1MiB_minus_one_chunked", limit - 1, true},
	} {
		t.Run("create_task_body_at_the_limit_is_validated_not_413/"+c.name, func(t *testing.T) {
			t.Parallel()
			u := env.CreateUser(t, "Edge", false)
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(c.size)), Chunked: c.chunked, Token: u.Token})

			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
			require.True(t, apitest.HasFieldError(p, "body", "description"), "errors %+v", p.Errors)
			requireNoTasks(t, u)
		})
	}
	t.Run("malformed_json_just_under_the_limit_is_400_not_413", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Broken", false)
		b := taskBody(limit - 1)
		b = b[:len(b)-1] // drop the closing brace
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(b), Token: u.Token})

		apitest.RequireProblem(t, r, http.StatusBadRequest)
		requireNoTasks(t, u)
	})
	t.Run("update_task_body_over_1MiB_is_413_and_changes_nothing", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Patcher", false)
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "untouched"})
		path := "/api/v1/tasks/" + strconv.FormatInt(task.Id, 10)
		for _, chunked := range []bool{false, true} {
			body := `{"title":"changed","description":"` + strings.Repeat("u", limit) + `"}`
			r := env.Send(t, apitest.Request{Method: http.MethodPatch, Path: path, ContentType: apitest.JSON, Body: strings.NewReader(body), Chunked: chunked, Token: u.Token})

			apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
		}
		after := taskGet(t, u.Client, task.Id)
		require.Equal(t, task, after)
	})
}

// ---------------------------------------------------------------------------------------
// 4. SQL metacharacters and Unicode round-trip
// ---------------------------------------------------------------------------------------

// secNasty are strings that break naive SQL, LIKE patterns, JSON or text handling. None
// has letters whose case PostgreSQL might fold differently from Go (only ASCII letters
// have a case here), none starts or ends with white space (names and titles are trimmed)
// and none has a NUL (PostgreSQL text cannot hold it; that is a 422 elsewhere).
var secNasty = []string{
	"'; DROP TABLE tasks; --",
	`%_\`,
	`" OR 1=1 --`,
	"$1",
	"$$dollar quoted$$ and $tag$x$tag$",
	"'' doubled '' quotes",
	`back\slash \' \" \\ \n literal`,
	"/* comment */ SELECT 1; --",
	`E'\x41' U&'\0041'`,
	":name ?param @var {{tmpl}} ${env}",
	"100% of under_score",
	"emoji 🚀🔥 and skin tone 👍🏽",
	"combining e\u0301 a\u0300 n\u0303",
	"precomposed é à ñ",
	"rtl שלום עולם مرحبا \u202eevil\u202c end",
	"cjk 漢字 かな カナ 한국어",
	"4-byte 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎 𝄞 🀄",
	"zwj 👩\u200d💻 and 👨\u200d👩\u200d👧 family",
	"zero\u200bwidth\ufeffbom",
	"<script>alert('x')</script> \u2028 line \u2029 paragraph & end",
	"tab\there\nnewline\r\nend",
	"NULL null \\N",
}

// secContains is what a case-insensitive substring search (ILIKE with %, _ and \
// escaped) finds for these strings: only ASCII letters have a case in them.
func secContains(hay, needle string) bool {
	return strings.Contains(strings.ToLower(hay), strings.ToLower(needle))
}

func TestSQLMetacharactersAndUnicodeRoundTrip(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	adminToken := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	admin := env.As(adminToken)
	owner := env.CreateUser(t, "Quoter", false)

	// One task per string: the string is the title, part of the description, a tag, a
	// metadata key and value. Plain decoys would show up in searches where %, _ or \
	// acted as wildcards.
	type want struct {
		title, description string
		tags               []string
		metadata           map[string]any
	}
	var wants []want
	for i, s := range secNasty {
		w := want{
			title:       s,
			description: fmt.Sprintf("row %d: %s (end)", i, s),
			tags:        []string{s},
			metadata: map[string]any{
				"text":   s,
				s:        "the key is the string",
				"list":   []any{s, "plain"},
				"nested": map[string]any{"deeper": s},
			},
		}
		if utf8.RuneCountInString(s) > 50 { // tags are limited to 50 characters
			w.tags = []string{"long"}
		}
		wants = append(wants, w)
	}
	for _, d := range []string{"decoy plain", "abc", "x\\y", "100 pct", "1=1", "e", "a b c", "n"} {
		wants = append(wants, want{title: d, description: "decoy", tags: []string{"decoy-" + d}, metadata: map[string]any{}})
	}
	wants = append(wants, want{title: "wildcard tags", description: "tags that are LIKE and glob metacharacters",
		tags: []string{"%", "_", "*", "\\", "'", "?", "[a-z]"}, metadata: map[string]any{}})
	wants = append(wants, want{title: strings.Repeat("𠜎", 200), description: strings.Repeat("😀", 10000),
		tags: []string{strings.Repeat("𝄞", 50)}, metadata: map[string]any{strings.Repeat("𝄞", 100): strings.Repeat("🀄", 1000)}})

	check := func(t *testing.T, w want, got client.Task) {
		t.Helper()
		require.Equal(t, w.title, got.Title, "title")
		require.Equal(t, w.description, got.Description, "description")
		require.Equal(t, w.tags, got.Tags, "tags")
		require.Equal(t, w.metadata, map[string]any(got.Metadata), "metadata")
	}
	tasks := make([]client.Task, len(wants))
	for i, w := range wants {
		meta := client.TaskMetadata(w.metadata)
		tags := slices.Clone(w.tags)
		created := taskCreate(t, owner.Client, client.TaskCreate{Title: w.title, Description: &w.description, Tags: &tags, Metadata: &meta})
		check(t, w, created)
		tasks[i] = created
	}
	listTasks := func(t *testing.T, query url.Values) client.TaskPage {
		t.Helper()
		query.Set("limit", "1000")
		r := env.Do(t, http.MethodGet, "/api/v1/tasks?"+query.Encode(), owner.Token, "")
		require.Equal(t, http.StatusOK, r.Status, "query %q: %s", query.Encode(), r.Body)
		return secDecode[client.TaskPage](t, r)
	}

	t.Run("tasks_read_back_byte_for_byte", func(t *testing.T) {
		t.Parallel()
		for i, w := range wants {
			check(t, w, taskGet(t, owner.Client, tasks[i].Id))
		}
		page := listTasks(t, url.Values{})
		require.Len(t, page.Items, len(wants))
		byID := map[int64]client.Task{}
		for _, it := range page.Items {
			byID[it.Id] = it
		}
		for i, w := range wants {
			check(t, w, byID[tasks[i].Id])
		}
	})

	t.Run("tasks_survive_an_update_with_the_same_strings", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Updater", false)
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "to be renamed"})
		for _, s := range secNasty {
			tags := client.TaskTags{"t"}
			if utf8.RuneCountInString(s) <= 50 {
				tags = client.TaskTags{s}
			}
			meta := client.TaskMetadata{"v": s}
			got := taskUpdate(t, u.Client, task.Id, client.TaskUpdate{Title: &s, Description: &s, Tags: &tags, Metadata: &meta})
			check(t, want{title: s, description: s, tags: tags, metadata: map[string]any{"v": s}}, got)
			check(t, want{title: s, description: s, tags: tags, metadata: map[string]any{"v": s}}, taskGet(t, u.Client, task.Id))
		}
	})

	t.Run("q_finds_exactly_the_rows_containing_the_literal_string", func(t *testing.T) {
		t.Parallel()
		queries := slices.Clone(secNasty)
		queries = append(queries, "%", "_", `\`, "'", `"`, "$", "--", ";", "\u200d", "\u0301", "e\u0301", "é",
			"🚀", "👩\u200d💻", "漢字", "שלום", "𠜎", "\u202e", "%%", "__", `\\`, "_%", "[a-z]", "*", "?", "1=1", "drop table")
		for _, q := range queries {
			wantIDs := []int64{}
			for i, w := range wants {
				if secContains(w.title, q) || secContains(w.description, q) {
					wantIDs = append(wantIDs, tasks[i].Id)
				}
			}
			page := listTasks(t, url.Values{"q": {q}})
			gotIDs := taskIDs(page)
			slices.Sort(wantIDs)
			require.Equal(t, wantIDs, gotIDs, "q=%q", q)
			require.EqualValues(t, len(wantIDs), page.Total, "q=%q", q)
		}
		// The precomposed and the decomposed é are different strings.
		require.NotEqual(t, taskIDs(listTasks(t, url.Values{"q": {"é"}})), taskIDs(listTasks(t, url.Values{"q": {"e\u0301"}})))
		// And the table the first string wanted to drop is still there, whole.
		require.Len(t, listTasks(t, url.Values{}).Items, len(wants))
	})

	t.Run("tag_matches_exactly_the_literal_tag", func(t *testing.T) {
		t.Parallel()
		tags := []string{"%", "_", "*", `\`, "'", "?", "[a-z]", "decoy-e", "DECOY-E", "decoy", "long"}
		for _, w := range wants {
			tags = append(tags, w.tags...)
		}
		slices.Sort(tags)
		for _, tag := range slices.Compact(tags) {
			wantIDs := []int64{}
			for i, w := range wants {
				if slices.Contains(w.tags, tag) {
					wantIDs = append(wantIDs, tasks[i].Id)
				}
			}
			if utf8.RuneCountInString(tag) > 50 {
				continue
			}
			page := listTasks(t, url.Values{"tag": {tag}})
			slices.Sort(wantIDs)
			require.Equal(t, wantIDs, taskIDs(page), "tag=%q", tag)
		}
	})

	t.Run("user_names_round_trip_and_q_finds_exactly_the_matching_users", func(t *testing.T) {
		t.Parallel()
		created := map[int64]string{}
		for i, s := range secNasty {
			name := s
			if utf8.RuneCountInString(name) > 100 {
				name = string([]rune(name)[:100])
			}
			email := fmt.Sprintf("sec-nasty-%d-%s@example.com", i, secRandom(3))
			res, err := admin.CreateUserWithResponse(ctx, nil, client.UserCreate{Name: name, Email: openapi_types.Email(email), Password: "long-enough-pw"})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "name %q: %s", name, res.Body)
			require.Equal(t, name, res.JSON201.Name)
			created[res.JSON201.Id] = name
		}
		for id, name := range created {
			res, err := admin.GetUserWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
			require.Equal(t, name, res.JSON200.Name, "user %d", id)
		}
		listUsers := func(q string) client.UserPage {
			v := url.Values{"limit": {"1000"}}
			if q != "" {
				v.Set("q", q)
			}
			r := env.Do(t, http.MethodGet, "/api/v1/users?"+v.Encode(), adminToken, "")
			require.Equal(t, http.StatusOK, r.Status, "q=%q: %s", q, r.Body)
			return secDecode[client.UserPage](t, r)
		}
		// Other subtests create users concurrently; they are named plainly and their
		// emails have no metacharacters, so they only match plain queries, which are
		// checked against the users listed at the same time.
		all := listUsers("")
		for id, name := range created {
			i := slices.IndexFunc(all.Items, func(u client.User) bool { return u.Id == id })
			require.GreaterOrEqual(t, i, 0, "user %d is listed", id)
			require.Equal(t, name, all.Items[i].Name)
		}
		for _, q := range append(slices.Clone(secNasty), "%", "_", `\`, "'", "\u200d", "é", "e\u0301", "𠜎", "漢字") {
			page := listUsers(q)
			var gotIDs, wantIDs []int64
			for _, u := range page.Items {
				gotIDs = append(gotIDs, u.Id)
				require.True(t, secContains(u.Name, q) || secContains(string(u.Email), q), "q=%q matched %q <%s>", q, u.Name, u.Email)
			}
			for id, name := range created {
				if secContains(name, q) {
					wantIDs = append(wantIDs, id)
				}
			}
			for _, id := range wantIDs {
				require.Contains(t, gotIDs, id, "q=%q misses user %d %q", q, id, created[id])
			}
		}
	})

	t.Run("agent_names_descriptions_and_instructions_round_trip", func(t *testing.T) {
		t.Parallel()
		for i, s := range secNasty {
			name := fmt.Sprintf("a%d %s", i, s)
			if utf8.RuneCountInString(name) > 100 {
				name = string([]rune(name)[:100])
			}
			desc := "description: " + s
			instr := "You are careful.\n" + s + "\n-- end of instructions --"
			res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: name, Description: &desc, Instructions: &instr})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "name %q: %s", name, res.Body)
			a := *res.JSON201
			require.Equal(t, name, a.Name)
			got, err := admin.GetAgentWithResponse(ctx, a.Id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, got.StatusCode(), "body: %s", got.Body)
			require.Equal(t, name, got.JSON200.Name)
			require.Equal(t, desc, got.JSON200.Description)
			require.Equal(t, instr, got.JSON200.Instructions)

			// The same strings through an update.
			newInstr := s + "\n" + s
			up, err := admin.UpdateAgentWithResponse(ctx, a.Id, nil, client.AgentUpdate{Instructions: &newInstr, Description: &s})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, up.StatusCode(), "body: %s", up.Body)
			require.Equal(t, newInstr, up.JSON200.Instructions)
			require.Equal(t, s, up.JSON200.Description)
		}
		res, err := admin.ListAgentsWithResponse(ctx, &client.ListAgentsParams{Limit: apitest.Ptr[client.Limit](1000)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.EqualValues(t, len(secNasty), res.JSON200.Total)
	})
}

// ---------------------------------------------------------------------------------------
// 5. JWT attacks not covered by TestAccessToken
// ---------------------------------------------------------------------------------------

func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("SECRET_KEY", secSecretKey))
	adminID := authAdminID(t, env)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pkix, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	pkixPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	valid := func() jwt.MapClaims { return authValidClaims(adminID) }
	sign := func(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, claims)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	// manual signs an arbitrary header and claims with HMAC-SHA256 under the server's
	// secret, for headers the library refuses to produce.
	manual := func(t *testing.T, header map[string]any, claims jwt.MapClaims) string {
		t.Helper()
		in := authB64(t, header) + "." + authB64(t, claims)
		mac := hmac.New(sha256.New, []byte(secSecretKey))
		mac.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	withClaims := func(edit func(c jwt.MapClaims)) func(t *testing.T) string {
		return func(t *testing.T) string {
			c := valid()
			edit(c)
			return authSign(t, jwt.SigningMethodHS256, secSecretKey, c)
		}
	}
	jwk := map[string]any{
		"kty": "RSA",
		"n":   base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString([]byte{1, 0, 1}),
	}

	t.Run("a_forged_token_with_the_servers_secret_works", func(t *testing.T) {
		// Sanity check for the forgeries below: only what each one changes matters.
		t.Parallel()
		r := authMe(t, env, "Bearer "+authSign(t, jwt.SigningMethodHS256, secSecretKey, valid()))
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		r = authMe(t, env, "Bearer "+manual(t, map[string]any{"alg": "HS256", "typ": "JWT"}, valid()))
		require.Equal(t, http.StatusOK, r.Status, "the hand-made signature is right: %s", r.Body)
	})

	cases := []struct {
		name  string
		token func(t *testing.T) string
	}{
		// Algorithm confusion.
		{"rs256_signed_with_an_attackers_rsa_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, valid(), nil)
		}},
		{"rs256_with_the_attackers_key_embedded_as_jwk", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, valid(), map[string]any{"jwk": jwk})
		}},
		{"rs256_with_a_jku_pointing_at_the_attacker", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, valid(), map[string]any{"jku": "http://127.0.0.1:9/jwks.json", "kid": "attacker"})
		}},
		{"ps256_signed_with_an_attackers_rsa_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodPS256, rsaKey, valid(), nil)
		}},
		{"es256_signed_with_an_attackers_ec_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, ecKey, valid(), nil)
		}},
		{"eddsa_signed_with_an_attackers_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodEdDSA, edKey, valid(), nil)
		}},
		{"hs256_keyed_with_an_rsa_public_key_pem", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, pkixPEM, valid(), nil)
		}},
		{"hs256_keyed_with_an_rsa_pkcs1_public_key_pem", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, pkcs1PEM, valid(), nil)
		}},
		{"hs256_keyed_with_an_rsa_public_key_der", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, pkix, valid(), nil)
		}},
		{"hs256_keyed_with_an_rsa_public_key_pem_and_an_rs256_header", func(t *testing.T) string {
			// The classic confusion: header says RS256, signature is HMAC over the PEM.
			in := authB64(t, map[string]any{"alg": "RS256", "typ": "JWT"}) + "." + authB64(t, valid())
			mac := hmac.New(sha256.New, pkixPEM)
			mac.Write([]byte(in))
			return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}},
		{"alg_NONE_upper_case", func(t *testing.T) string {
			return authB64(t, map[string]string{"alg": "NONE", "typ": "JWT"}) + "." + authB64(t, valid()) + "."
		}},
		{"alg_nOnE_mixed_case", func(t *testing.T) string {
			return authB64(t, map[string]string{"alg": "nOnE", "typ": "JWT"}) + "." + authB64(t, valid()) + "."
		}},
		{"alg_hs256_lower_case_with_a_correct_signature", func(t *testing.T) string {
			return manual(t, map[string]any{"alg": "hs256", "typ": "JWT"}, valid())
		}},
		{"alg_missing_with_a_correct_signature", func(t *testing.T) string {
			return manual(t, map[string]any{"typ": "JWT"}, valid())
		}},
		{"kid_path_traversal_signed_with_an_empty_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte{}, valid(), map[string]any{"kid": "../../../../../../dev/null"})
		}},
		// Wrong keys close to the right one.
		{"signed_with_an_empty_key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte{}, valid(), nil)
		}},
		{"signed_with_the_secret_minus_its_last_byte", func(t *testing.T) string {
			return authSign(t, jwt.SigningMethodHS256, secSecretKey[:len(secSecretKey)-1], valid())
		}},
		{"signed_with_the_secret_plus_a_newline", func(t *testing.T) string {
			return authSign(t, jwt.SigningMethodHS256, secSecretKey+"\n", valid())
		}},
		{"signed_with_the_secret_in_upper_case", func(t *testing.T) string {
			return authSign(t, jwt.SigningMethodHS256, strings.ToUpper(secSecretKey), valid())
		}},
		// Token types other than "access", with a valid signature.
		{"typ_ACCESS_upper_case", withClaims(func(c jwt.MapClaims) { c["typ"] = "ACCESS" })},
		{"typ_Access", withClaims(func(c jwt.MapClaims) { c["typ"] = "Access" })},
		{"typ_access_with_a_trailing_space", withClaims(func(c jwt.MapClaims) { c["typ"] = "access " })},
		{"typ_empty", withClaims(func(c jwt.MapClaims) { c["typ"] = "" })},
		{"typ_id", withClaims(func(c jwt.MapClaims) { c["typ"] = "id" })},
		{"typ_refresh_token", withClaims(func(c jwt.MapClaims) { c["typ"] = "refresh_token" })},
		{"typ_an_array_holding_access", withClaims(func(c jwt.MapClaims) { c["typ"] = []string{"access"} })},
		{"typ_a_number", withClaims(func(c jwt.MapClaims) { c["typ"] = 1 })},
		{"typ_null", withClaims(func(c jwt.MapClaims) { c["typ"] = nil })},
		// Issuer variants.
		{"iss_in_another_letter_case", withClaims(func(c jwt.MapClaims) { c["iss"] = strings.ToUpper(authIssuer) })},
		{"iss_with_a_suffix", withClaims(func(c jwt.MapClaims) { c["iss"] = authIssuer + ".evil.example" })},
		{"iss_an_array", withClaims(func(c jwt.MapClaims) { c["iss"] = []string{authIssuer} })},
		{"iss_empty", withClaims(func(c jwt.MapClaims) { c["iss"] = "" })},
		// Time claims.
		{"exp_null", withClaims(func(c jwt.MapClaims) { c["exp"] = nil })},
		{"exp_zero", withClaims(func(c jwt.MapClaims) { c["exp"] = 0 })},
		{"expired_an_hour_ago_with_a_fresh_iat", withClaims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })},
		{"nbf_a_day_ahead", withClaims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(24 * time.Hour).Unix() })},
		{"iat_a_day_ahead", withClaims(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(24 * time.Hour).Unix() })},
		// Subjects.
		{"sub_an_email", withClaims(func(c jwt.MapClaims) { c["sub"] = apitest.AdminEmail })},
		{"sub_zero", withClaims(func(c jwt.MapClaims) { c["sub"] = "0" })},
		{"sub_negative", withClaims(func(c jwt.MapClaims) { c["sub"] = "-" + strconv.FormatInt(adminID, 10) })},
		// Shapes.
		{"a_token_of_60KiB", func(t *testing.T) string {
			c := valid()
			c["pad"] = strings.Repeat("p", 45<<10)
			return authSign(t, jwt.SigningMethodHS256, "not-the-secret-but-32-bytes-long!!", c)
		}},
		{"four_segments", func(t *testing.T) string {
			return authSign(t, jwt.SigningMethodHS256, secSecretKey, valid()) + ".extra"
		}},
		{"two_valid_tokens_joined_by_a_space", func(t *testing.T) string {
			tok := authSign(t, jwt.SigningMethodHS256, secSecretKey, valid())
			return tok + " " + tok
		}},
	}
	for _, tc := range cases {
		t.Run("rejects_"+tc.name, func(t *testing.T) {
			t.Parallel()
			p := apitest.RequireProblem(t, authMe(t, env, "Bearer "+tc.token(t)), http.StatusUnauthorized)
			require.NotNil(t, p.Detail)
			require.NotEmpty(t, *p.Detail)
		})
	}

	t.Run("rejects_a_valid_token_of_a_deactivated_user", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Benched", false)
		forged := authSign(t, jwt.SigningMethodHS256, secSecretKey, authValidClaims(u.Id))
		require.Equal(t, http.StatusOK, authMe(t, env, "Bearer "+forged).Status)
		no := false
		res, err := env.AsAdmin(t).UpdateUserWithResponse(context.Background(), u.Id, nil, client.UserUpdate{IsActive: &no})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		apitest.RequireProblem(t, authMe(t, env, "Bearer "+forged), http.StatusUnauthorized)
		apitest.RequireProblem(t, authMe(t, env, "Bearer "+u.Token), http.StatusUnauthorized)
	})

	t.Run("rejects_a_valid_token_of_a_demoted_admin_on_admin_operations", func(t *testing.T) {
		// Not a 401 but the same family: the role comes from the database, not the token.
		t.Parallel()
		u := env.CreateUser(t, "Demoted", true)
		c := authValidClaims(u.Id)
		c["is_admin"], c["role"], c["admin"] = true, "admin", true
		forged := authSign(t, jwt.SigningMethodHS256, secSecretKey, c)
		no := false
		res, err := env.AsAdmin(t).UpdateUserWithResponse(context.Background(), u.Id, nil, client.UserUpdate{IsAdmin: &no})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		for _, tok := range []string{u.Token, forged} {
			r := env.Do(t, http.MethodGet, "/api/v1/users", tok, "")
			apitest.RequireProblem(t, r, http.StatusForbidden)
		}
	})

	t.Run("tokens_outside_the_authorization_header_are_ignored", func(t *testing.T) {
		t.Parallel()
		tok := authSign(t, jwt.SigningMethodHS256, secSecretKey, valid())
		for name, r := range map[string]*apitest.Response{
			"query_access_token": env.Do(t, http.MethodGet, "/api/v1/users/me?access_token="+tok, "", ""),
			"query_token":        env.Do(t, http.MethodGet, "/api/v1/users/me?token="+tok, "", ""),
			"cookie":             env.Do(t, http.MethodGet, "/api/v1/users/me", "", "", "Cookie", "access_token="+tok),
			"x_access_token":     env.Do(t, http.MethodGet, "/api/v1/users/me", "", "", "X-Access-Token", tok),
			"proxy_authorization": env.Do(t, http.MethodGet, "/api/v1/users/me", "", "",
				"Proxy-Authorization", "Bearer "+tok),
		} {
			require.Equal(t, http.StatusUnauthorized, r.Status, "%s: %s", name, r.Body)
			apitest.RequireProblem(t, r, http.StatusUnauthorized)
		}
	})
}

// ---------------------------------------------------------------------------------------
// 6. Mass assignment
// ---------------------------------------------------------------------------------------

func TestMassAssignment(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	adminToken := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	admin := env.As(adminToken)

	type userSnap struct {
		user client.User
		etag string
	}
	snapUser := func(t *testing.T, id int64) userSnap {
		t.Helper()
		res, err := admin.GetUserWithResponse(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		return userSnap{*res.JSON200, res.HTTPResponse.Header.Get("ETag")}
	}
	totalUsers := func(t *testing.T) int64 {
		t.Helper()
		res, err := admin.ListUsersWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		return res.JSON200.Total
	}
	// refused requires a 422 (naming field when given) or, for privileged fields a
	// non-admin may not touch, a 403.
	refused := func(t *testing.T, r *apitest.Response, field string, statuses ...int) {
		t.Helper()
		if len(statuses) == 0 {
			statuses = []int{http.StatusUnprocessableEntity}
		}
		require.Contains(t, statuses, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		if r.Status == http.StatusUnprocessableEntity && field != "" {
			require.True(t, apitest.HasFieldError(p, "body", field), "want a field error for %q, got %+v", field, p.Errors)
		}
	}

	ts := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	// Read-only and unknown fields of a user, including spellings Go's encoding/json
	// would map onto is_admin (it matches keys case-insensitively, and folds "ſ" to "s").
	userFields := []struct{ field, value string }{
		{"id", "1"},
		{"created_at", `"` + ts + `"`},
		{"updated_at", `"` + ts + `"`},
		{"version", "99"},
		{"password_hash", `"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"`},
		{"role", `"admin"`},
		{"IS_ADMIN", "true"},
		{"Is_Admin", "true"},
		{"isAdmin", "true"},
		{"is_Admin", "true"},
		{"iſ_admin", "true"},
		{"IS_ACTIVE", "false"},
		{"Email", `"takeover@example.com"`},
	}

	t.Run("non_admin_patching_themselves", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Climber", false)
		for _, f := range userFields {
			before := snapUser(t, u.Id)
			for _, body := range []string{
				`{"` + f.field + `":` + f.value + `}`,
				`{"name":"Sneaky","` + f.field + `":` + f.value + `}`,
			} {
				r := env.Do(t, http.MethodPatch, "/api/v1/users/me", u.Token, body)
				refused(t, r, f.field)
				after := snapUser(t, u.Id)
				require.Equal(t, before, after, "body %s changed the user", body)
			}
		}
		// Still an ordinary user who logs in with their own password.
		l, err := u.Client.ListUsersWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode())
		env.Login(t, string(u.Email), u.Password)
	})

	t.Run("non_admin_patching_themselves_through_their_id", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Sidestep", false)
		before := snapUser(t, u.Id)
		path := "/api/v1/users/" + strconv.FormatInt(u.Id, 10)
		for _, method := range []string{http.MethodPatch, http.MethodPut} {
			for _, body := range []string{`{"is_admin":true}`, `{"IS_ADMIN":true}`, `{"name":"x","id":1}`} {
				r := env.Do(t, method, path, u.Token, body)
				refused(t, r, "", http.StatusForbidden, http.StatusUnprocessableEntity)
				require.Equal(t, before, snapUser(t, u.Id), "%s %s changed the user", method, body)
			}
		}
	})

	t.Run("admin_updates_cannot_set_read_only_fields", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Target", false)
		path := "/api/v1/users/" + strconv.FormatInt(u.Id, 10)
		for _, method := range []string{http.MethodPatch, http.MethodPut} {
			for _, f := range userFields {
				before := snapUser(t, u.Id)
				body := `{"name":"Renamed","` + f.field + `":` + f.value + `}`
				r := env.Do(t, method, path, adminToken, body)
				refused(t, r, f.field)
				require.Equal(t, before, snapUser(t, u.Id), "%s %s changed the user", method, body)
			}
		}
	})

	t.Run("admin_creates_cannot_set_read_only_fields", func(t *testing.T) {
		t.Parallel()
		for _, f := range append(slices.Clone(userFields), struct{ field, value string }{"is_active", "false"}) {
			email := "sec-mass-" + secRandom(4) + "@example.com"
			body := `{"name":"Made","email":"` + email + `","password":"long-enough-pw","` + f.field + `":` + f.value + `}`
			r := env.Do(t, http.MethodPost, "/api/v1/users", adminToken, body)
			refused(t, r, f.field)
			res, err := admin.ListUsersWithResponse(ctx, &client.ListUsersParams{Q: &email})
			require.NoError(t, err)
			require.Zero(t, res.JSON200.Total, "%s created a user", body)
		}
		require.Positive(t, totalUsers(t))
	})

	taskFields := []struct{ field, value string }{
		{"created_at", `"` + ts + `"`},
		{"updated_at", `"` + ts + `"`},
		{"ID", "1"},
		{"Version", "99"},
		{"Created_By", "1"},
		{"createdBy", "1"},
		{"CompletedAt", `"` + ts + `"`},
		{"owner_id", "1"},
		{"user_id", "1"},
		{"visible_to", "1"},
	}

	t.Run("non_admin_task_create_and_update", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Forger", false)
		victim := env.CreateUser(t, "Victim", false)
		for _, f := range append(slices.Clone(taskFields), struct{ field, value string }{"Status", `"completed"`}) {
			r := env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":"forged","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		// created_by pointing at another user is refused and nothing lands in their list.
		r := env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":"planted","created_by":`+strconv.FormatInt(victim.Id, 10)+`}`)
		refused(t, r, "created_by")
		require.Zero(t, taskVisibleTotal(t, u.Client), "a refused create wrote a task")
		require.Zero(t, taskVisibleTotal(t, victim.Client), "a task was planted on the victim")

		task := taskCreate(t, u.Client, client.TaskCreate{Title: "mine"})
		path := taskPath + "/" + strconv.FormatInt(task.Id, 10)
		for _, f := range append(slices.Clone(taskFields),
			struct{ field, value string }{"created_by", strconv.FormatInt(victim.Id, 10)},
			struct{ field, value string }{"id", "999999"},
			struct{ field, value string }{"version", "0"}) {
			r := env.Do(t, http.MethodPatch, path, u.Token, `{"title":"changed","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
			require.Equal(t, task, taskGet(t, u.Client, task.Id), "field %s changed the task", f.field)
		}
		require.Zero(t, taskVisibleTotal(t, victim.Client))
	})

	t.Run("admin_agent_create_and_update", func(t *testing.T) {
		t.Parallel()
		fields := []struct{ field, value string }{
			{"id", "1"},
			{"created_by", "1"},
			{"created_at", `"` + ts + `"`},
			{"updated_at", `"` + ts + `"`},
			{"version", "5"},
			{"Name", `"shadow"`},
		}
		before, err := admin.ListAgentsWithResponse(ctx, nil)
		require.NoError(t, err)
		for _, f := range fields {
			r := env.Do(t, http.MethodPost, "/api/v1/agents", adminToken, `{"name":"mass-`+secRandom(3)+`","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		after, err := admin.ListAgentsWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, before.JSON200.Total, after.JSON200.Total, "a refused create wrote an agent")

		res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "mass-target"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		agent := *res.JSON201
		path := "/api/v1/agents/" + strconv.FormatInt(agent.Id, 10)
		for _, f := range fields {
			r := env.Do(t, http.MethodPatch, path, adminToken, `{"description":"changed","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
			got, err := admin.GetAgentWithResponse(ctx, agent.Id, nil)
			require.NoError(t, err)
			require.Equal(t, agent, *got.JSON200, "field %s changed the agent", f.field)
			require.Equal(t, `"1"`, got.HTTPResponse.Header.Get("ETag"))
		}
	})

	t.Run("non_admin_agent_run_create", func(t *testing.T) {
		t.Parallel()
		res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "mass-runner"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		u := env.CreateUser(t, "Runner", false)
		victim := env.CreateUser(t, "RunVictim", false)
		path := "/api/v1/agents/" + strconv.FormatInt(res.JSON201.Id, 10) + "/runs"
		for _, f := range []struct{ field, value string }{
			{"id", "1"},
			{"status", `"completed"`},
			{"output", `"all done"`},
			{"created_by", strconv.FormatInt(victim.Id, 10)},
			{"agent_id", "1"},
			{"model", `"gpt-5-ultra"`},
			{"attempt", "9"},
			{"usage", `{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`},
			{"steps", "[]"},
			{"error", "null"},
			{"started_at", `"` + ts + `"`},
			{"completed_at", `"` + ts + `"`},
			{"Status", `"completed"`},
		} {
			r := env.Do(t, http.MethodPost, path, u.Token, `{"input":"go","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		for _, who := range []apitest.User{u, victim} {
			runs, err := who.Client.ListAgentRunsWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, runs.StatusCode(), "body: %s", runs.Body)
			require.Zero(t, runs.JSON200.Total, "a refused request created a run")
		}
	})
}
