package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// authIssuer is the iss claim the server puts in (and demands of) access tokens.
const authIssuer = "enterprise-automation"

// authKnownSecret is a SECRET_KEY (≥ 32 bytes) given to environments whose tests forge tokens.
const authKnownSecret = "auth-test-known-secret-0123456789abcdef"

// authStart starts an environment for the auth tests. The login rate limit is switched
// off (0 = off): these tests log in many times a minute from one address on purpose.
func authStart(t *testing.T, opts ...apitest.Option) *apitest.Env {
	t.Helper()
	return apitest.Start(t, append([]apitest.Option{apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0")}, opts...)...)
}

// authLoginForm posts a raw form to the token endpoint.
func authLoginForm(t *testing.T, env *apitest.Env, form url.Values) *apitest.Response {
	t.Helper()
	return env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form, Body: form.Encode()})
}

// authMe calls GET /api/v1/users/me with the given Authorization header value (none
// when empty).
func authMe(t *testing.T, env *apitest.Env, authorization string) *apitest.Response {
	t.Helper()
	if authorization == "" {
		return env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me"})
	}
	return env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Header: map[string]string{"Authorization": authorization}})
}

// authClaims decodes a JWT's claims without verifying it.
func authClaims(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(token, claims)
	require.NoError(t, err, "token %q", token)
	return claims
}

// authValidClaims are claims the server accepts for user sub, as the server itself
// issues them.
func authValidClaims(sub int64) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": authIssuer,
		"sub": strconv.FormatInt(sub, 10),
		"iat": now.Add(-5 * time.Second).Unix(),
		"nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"jti": fmt.Sprintf("test-%d", now.UnixNano()),
		"typ": "access",
	}
}

// authSign signs claims with method and secret.
func authSign(t *testing.T, method jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
	require.NoError(t, err)
	return s
}

func authB64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authAdminID returns the seeded administrator's id.
func authAdminID(t *testing.T, env *apitest.Env) int64 {
	t.Helper()
	res, err := env.AsAdmin(t).GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
	return res.JSON200.Id
}

func authRefresh(t *testing.T, env *apitest.Env, token string) *client.RefreshTokenResponse {
	t.Helper()
	res, err := env.Client.RefreshTokenWithResponse(context.Background(), client.RefreshRequest{RefreshToken: token})
	require.NoError(t, err)
	return res
}

func authLogin(t *testing.T, env *apitest.Env, email, pw string) *client.CreateTokenResponse {
	t.Helper()
	res, err := env.Client.CreateTokenWithFormdataBodyWithResponse(context.Background(), client.TokenRequest{Username: email, Password: pw})
	require.NoError(t, err)
	return res
}

func authRequireRefresh401(t *testing.T, env *apitest.Env, token, why string) {
	t.Helper()
	res := authRefresh(t, env, token)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode(), "%s; body: %s", why, res.Body)
	apitest.RequireProblem(t, res, res.StatusCode())
}

func authRequireRefresh200(t *testing.T, env *apitest.Env, token, why string) client.TokenPair {
	t.Helper()
	res := authRefresh(t, env, token)
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s; body: %s", why, res.Body)
	require.Equal(t, "no-store", res.HTTPResponse.Header.Get("Cache-Control"))
	return *res.JSON200
}

// authSameProblem checks two problems say the same thing (all but the request id).
func authSameProblem(t *testing.T, want, got client.Problem) {
	t.Helper()
	want.RequestId, got.RequestId = "", ""
	require.Equal(t, want, got)
}
