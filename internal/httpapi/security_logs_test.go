package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Secrets never reach the logs
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
