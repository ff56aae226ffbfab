package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

func TestLogin(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	adminID := authAdminID(t, env)
	ctx := context.Background()

	t.Run("correct_credentials_return_an_uncacheable_bearer_token_pair", func(t *testing.T) {
		t.Parallel()
		res := authLogin(t, env, apitest.AdminEmail, apitest.AdminPassword)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.Equal(t, "no-store", res.HTTPResponse.Header.Get("Cache-Control"))
		pair := res.JSON200
		require.Equal(t, client.Bearer, pair.TokenType)
		require.Equal(t, int32(1800), pair.ExpiresIn, "ACCESS_TOKEN_EXPIRE_MINUTES defaults to 30")
		require.True(t, strings.HasPrefix(pair.RefreshToken, "rt_"), "refresh token %q", pair.RefreshToken)
		require.Greater(t, len(pair.RefreshToken), 40, "refresh token carries enough randomness")
		require.Len(t, strings.Split(pair.AccessToken, "."), 3, "access token is a JWT")

		claims := authClaims(t, pair.AccessToken)
		require.Equal(t, authIssuer, claims["iss"])
		require.Equal(t, strconv.FormatInt(adminID, 10), claims["sub"])
		require.Equal(t, "access", claims["typ"])
		require.NotEmpty(t, claims["jti"])
		iat, err := claims.GetIssuedAt()
		require.NoError(t, err)
		exp, err := claims.GetExpirationTime()
		require.NoError(t, err)
		require.NotNil(t, iat)
		require.NotNil(t, exp)
		require.Equal(t, 1800*time.Second, exp.Sub(iat.Time), "exp - iat equals expires_in")
		require.WithinDuration(t, time.Now(), iat.Time, time.Minute)

		me, err := env.As(pair.AccessToken).GetCurrentUserWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode(), "body: %s", me.Body)
		require.Equal(t, adminID, me.JSON200.Id)
		require.Equal(t, apitest.AdminEmail, string(me.JSON200.Email))
	})

	t.Run("each_login_issues_distinct_tokens", func(t *testing.T) {
		t.Parallel()
		a := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		b := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		require.NotEqual(t, a.RefreshToken, b.RefreshToken)
		require.NotEqual(t, authClaims(t, a.AccessToken)["jti"], authClaims(t, b.AccessToken)["jti"])
	})

	t.Run("unknown_email_and_wrong_password_give_the_same_401", func(t *testing.T) {
		t.Parallel()
		unknown := authLogin(t, env, "nobody-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"@example.com", apitest.AdminPassword)
		require.Equal(t, http.StatusUnauthorized, unknown.StatusCode(), "body: %s", unknown.Body)
		wrong := authLogin(t, env, apitest.AdminEmail, "not-the-admin-password")
		require.Equal(t, http.StatusUnauthorized, wrong.StatusCode(), "body: %s", wrong.Body)

		pu := apitest.RequireProblem(t, unknown, unknown.StatusCode())
		pw := apitest.RequireProblem(t, wrong, wrong.StatusCode())
		require.NotNil(t, pw.Detail)
		require.NotEqual(t, pu.RequestId, pw.RequestId)
		authSameProblem(t, pu, pw)
		require.Equal(t, unknown.HTTPResponse.Header.Get("WWW-Authenticate"), wrong.HTTPResponse.Header.Get("WWW-Authenticate"))
	})

	t.Run("email_lookup_ignores_letter_case", func(t *testing.T) {
		t.Parallel()
		pair := env.Login(t, strings.ToUpper(apitest.AdminEmail), apitest.AdminPassword)
		require.Equal(t, strconv.FormatInt(adminID, 10), authClaims(t, pair.AccessToken)["sub"])
	})

	t.Run("password_is_case_sensitive", func(t *testing.T) {
		t.Parallel()
		res := authLogin(t, env, apitest.AdminEmail, strings.ToUpper(apitest.AdminPassword))
		require.Equal(t, http.StatusUnauthorized, res.StatusCode(), "body: %s", res.Body)
	})

	t.Run("swagger_ui_password_flow_form_is_accepted", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{
			"grant_type": {"password"}, "username": {apitest.AdminEmail}, "password": {apitest.AdminPassword},
			"scope": {""}, "client_id": {"x"}, "client_secret": {""},
		})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var pair client.TokenPair
		require.NoError(t, json.Unmarshal(r.Body, &pair))
		require.Equal(t, client.Bearer, pair.TokenType)
		me := authMe(t, env, "Bearer "+pair.AccessToken)
		require.Equal(t, http.StatusOK, me.Status, "body: %s", me.Body)
	})

	t.Run("grant_types_other_than_password_are_422", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{
			"grant_type": {"client_credentials"}, "username": {apitest.AdminEmail}, "password": {apitest.AdminPassword},
		})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.Contains(t, apitest.FieldErrors(p), "body:grant_type")
	})

	t.Run("missing_username_and_password_are_422_naming_both_fields", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{"scope": {""}})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.ElementsMatch(t, []string{"body:username", "body:password"}, apitest.FieldErrors(p))
		for _, e := range *p.Errors {
			require.NotEmpty(t, e.Message)
		}
	})

	t.Run("missing_password_alone_is_422_naming_it", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{"username": {apitest.AdminEmail}})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.Equal(t, []string{"body:password"}, apitest.FieldErrors(p))
	})

	t.Run("empty_username_is_422", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{"username": {""}, "password": {apitest.AdminPassword}})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.Contains(t, apitest.FieldErrors(p), "body:username")
	})

	t.Run("empty_body_is_422", func(t *testing.T) {
		t.Parallel()
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		apitest.RequireProblem(t, r, r.Status)
	})

	t.Run("bodies_that_are_not_a_form_are_415", func(t *testing.T) {
		t.Parallel()
		for _, ct := range []string{"application/json", "text/plain", "", "multipart/form-data; boundary=x"} {
			body := `{"username":"` + apitest.AdminEmail + `","password":"` + apitest.AdminPassword + `"}`
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: ct, Body: body})
			require.Equal(t, http.StatusUnsupportedMediaType, r.Status, "content type %q; body: %s", ct, r.Body)
			p := apitest.RequireProblem(t, r, r.Status)
			require.Equal(t, "/problems/unsupported-media-type", p.Type)
		}
	})

	t.Run("malformed_forms_are_client_errors_never_500", func(t *testing.T) {
		t.Parallel()
		bodies := []string{
			"%zz",
			"username=%zz&password=x",
			"username=admin@example.com;password=x",
			"&&&===&",
			"username=" + url.QueryEscape(apitest.AdminEmail) + "&password=x&username=other@example.com",
			"username[]=a&password[x]=b",
			"\x00\x01\x02\xff\xfe",
			strings.Repeat("a", 10000),
			"username=" + strings.Repeat("a", 300) + "@example.com&password=x",
			"username=a@example.com&password=" + strings.Repeat("p", 200),
		}
		for i, body := range bodies {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token", ContentType: apitest.Form, Body: body})
				require.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity}, r.Status,
					"body %q → %d %s", body, r.Status, r.Body)
				apitest.RequireProblem(t, r, r.Status)
			})
		}
	})

	t.Run("usernames_postgres_cannot_store_are_client_errors_never_500", func(t *testing.T) {
		t.Parallel()
		// Invalid UTF-8 and NUL bytes pass the schema (lengths only) and reach the
		// email lookup.
		for name, username := range map[string]string{
			"invalid_utf8": "\xff\xfe@example.com",
			"nul_inside":   "admin\x00@example.com",
			"only_nul":     "\x00",
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := authLoginForm(t, env, url.Values{"username": {username}, "password": {apitest.AdminPassword}})
				require.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity}, r.Status,
					"username %q → %d %s", username, r.Status, r.Body)
				apitest.RequireProblem(t, r, r.Status)
			})
		}
	})

	t.Run("a_malformed_query_string_is_a_client_error_never_500", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}}.Encode()
		for name, q := range map[string]string{"bad_percent_escape": "%zz", "semicolon_separator": "a=1;b=2"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/token?" + q, ContentType: apitest.Form, Body: form})
				require.Less(t, r.Status, 500, "query %q → %d %s", q, r.Status, r.Body)
				if r.Status >= 400 {
					apitest.RequireProblem(t, r, r.Status)
				}
			})
		}
	})

	t.Run("an_overlong_password_is_422_and_never_echoed", func(t *testing.T) {
		t.Parallel()
		r := authLoginForm(t, env, url.Values{"username": {apitest.AdminEmail}, "password": {"secret-guess-" + strings.Repeat("z", 130)}})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		require.NotContains(t, string(r.Body), "secret-guess-")
	})
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	ctx := context.Background()
	login := func(t *testing.T) client.TokenPair {
		t.Helper()
		return env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
	}

	t.Run("rotation_returns_a_new_pair_and_spends_the_old_token", func(t *testing.T) {
		t.Parallel()
		first := login(t)
		second := authRequireRefresh200(t, env, first.RefreshToken, "first refresh")
		require.NotEqual(t, first.RefreshToken, second.RefreshToken)
		require.True(t, strings.HasPrefix(second.RefreshToken, "rt_"))
		require.Equal(t, client.Bearer, second.TokenType)
		require.Equal(t, int32(1800), second.ExpiresIn)
		require.NotEqual(t, first.AccessToken, second.AccessToken)
		me, err := env.As(second.AccessToken).GetCurrentUserWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode(), "body: %s", me.Body)
		require.Equal(t, apitest.AdminEmail, string(me.JSON200.Email))

		authRequireRefresh401(t, env, first.RefreshToken, "a rotated token is spent")
	})

	t.Run("reusing_a_rotated_token_revokes_the_family", func(t *testing.T) {
		t.Parallel()
		r1 := login(t).RefreshToken
		r2 := authRequireRefresh200(t, env, r1, "r1").RefreshToken
		r3 := authRequireRefresh200(t, env, r2, "r2").RefreshToken
		other := login(t).RefreshToken // a different login: another family

		authRequireRefresh401(t, env, r1, "reuse of a rotated token")
		authRequireRefresh401(t, env, r3, "the newest token of the reused family is revoked")
		authRequireRefresh401(t, env, r2, "every token of the family stays dead")

		authRequireRefresh200(t, env, other, "a token from another login is untouched")
	})

	t.Run("reusing_a_token_after_the_family_rotated_past_it_also_revokes_the_newest", func(t *testing.T) {
		t.Parallel()
		r1 := login(t).RefreshToken
		r2 := authRequireRefresh200(t, env, r1, "r1").RefreshToken
		// The attacker replays r1 (the legitimate client already rotated to r2).
		authRequireRefresh401(t, env, r1, "replay")
		authRequireRefresh401(t, env, r2, "the legitimate client's token is revoked too")
	})

	t.Run("concurrent_refreshes_of_one_token_let_exactly_one_win", func(t *testing.T) {
		t.Parallel()
		tok := login(t).RefreshToken
		const n = 6
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := env.Client.RefreshTokenWithResponse(ctx, client.RefreshRequest{RefreshToken: tok})
				if err == nil {
					statuses[i] = res.StatusCode()
				}
			}()
		}
		wg.Wait()
		ok := 0
		for _, s := range statuses {
			require.Contains(t, []int{http.StatusOK, http.StatusUnauthorized}, s, "statuses %v", statuses)
			if s == http.StatusOK {
				ok++
			}
		}
		require.Equal(t, 1, ok, "statuses %v", statuses)
	})

	t.Run("unknown_token_is_401", func(t *testing.T) {
		t.Parallel()
		authRequireRefresh401(t, env, "rt_thisTokenWasNeverIssuedByTheServer0000000000", "unknown")
		authRequireRefresh401(t, env, "not-even-our-format", "unknown, no prefix")
	})

	t.Run("an_access_token_is_not_a_refresh_token", func(t *testing.T) {
		t.Parallel()
		pair := login(t)
		authRequireRefresh401(t, env, pair.AccessToken[:min(200, len(pair.AccessToken))], "access token as refresh token")
		authRequireRefresh200(t, env, pair.RefreshToken, "the real refresh token is unaffected")
	})

	t.Run("malformed_json_is_400", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{"refresh_token":`, `not json`, `[`, `{"refresh_token":"rt_x",}`} {
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: body})
			require.Equal(t, http.StatusBadRequest, r.Status, "body %q → %s", body, r.Body)
			p := apitest.RequireProblem(t, r, r.Status)
			require.Equal(t, "/problems/malformed-request", p.Type)
		}
	})

	t.Run("trailing_data_after_the_json_value_is_400", func(t *testing.T) {
		t.Parallel()
		// RFC 8259: a JSON text is one value; `{...}}` or `{...}{...}` is not valid JSON.
		for _, suffix := range []string{"}", ` {"refresh_token":"rt_y"}`, " garbage"} {
			body := `{"refresh_token":"rt_x"}` + suffix
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: body})
			require.Equal(t, http.StatusBadRequest, r.Status, "body %q → %s", body, r.Body)
			apitest.RequireProblem(t, r, r.Status)
		}
	})

	t.Run("missing_refresh_token_is_422_naming_the_field", func(t *testing.T) {
		t.Parallel()
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: `{}`})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.Equal(t, []string{"body:refresh_token"}, apitest.FieldErrors(p))
	})

	t.Run("wrong_type_or_empty_refresh_token_is_422", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{"refresh_token":""}`, `{"refresh_token":42}`, `{"refresh_token":null}`, `"rt_x"`, `[]`} {
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: body})
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body %q → %s", body, r.Body)
			apitest.RequireProblem(t, r, r.Status)
		}
	})

	t.Run("unknown_field_is_422_naming_it", func(t *testing.T) {
		t.Parallel()
		pair := login(t)
		body := `{"refresh_token":"` + pair.RefreshToken + `","grant_type":"refresh_token"}`
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.JSON, Body: body})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		require.Equal(t, []string{"body:grant_type"}, apitest.FieldErrors(p))
		authRequireRefresh200(t, env, pair.RefreshToken, "a rejected request does not spend the token")
	})

	t.Run("a_form_body_is_415", func(t *testing.T) {
		t.Parallel()
		pair := login(t)
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/refresh", ContentType: apitest.Form, Body: url.Values{"refresh_token": {pair.RefreshToken}}.Encode()})

		require.Equal(t, http.StatusUnsupportedMediaType, r.Status, "body: %s", r.Body)
		apitest.RequireProblem(t, r, r.Status)
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	ctx := context.Background()
	logout := func(t *testing.T, token string) {
		t.Helper()
		res, err := env.Client.LogoutWithResponse(ctx, client.RefreshRequest{RefreshToken: token})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "body: %s", res.Body)
		require.Empty(t, res.Body)
	}

	t.Run("logout_revokes_the_refresh_token", func(t *testing.T) {
		t.Parallel()
		pair := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		logout(t, pair.RefreshToken)
		authRequireRefresh401(t, env, pair.RefreshToken, "after logout")
	})

	t.Run("logout_with_a_spent_token_revokes_the_tokens_rotated_from_it", func(t *testing.T) {
		t.Parallel()
		r1 := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).RefreshToken
		r2 := authRequireRefresh200(t, env, r1, "r1").RefreshToken
		logout(t, r1)
		authRequireRefresh401(t, env, r2, "the family was logged out")
	})

	t.Run("logout_leaves_other_logins_alone", func(t *testing.T) {
		t.Parallel()
		a := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		b := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		logout(t, a.RefreshToken)
		authRequireRefresh200(t, env, b.RefreshToken, "another login survives")
	})

	t.Run("logout_is_idempotent_and_ignores_unknown_tokens", func(t *testing.T) {
		t.Parallel()
		logout(t, "rt_thisTokenWasNeverIssuedByTheServer0000000000")
		pair := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		logout(t, pair.RefreshToken)
		logout(t, pair.RefreshToken)
		authRequireRefresh401(t, env, pair.RefreshToken, "still logged out")
	})

	t.Run("invalid_bodies_are_400_or_422", func(t *testing.T) {
		t.Parallel()
		for body, status := range map[string]int{
			`{"refresh_token":`:             http.StatusBadRequest,
			`{}`:                            http.StatusUnprocessableEntity,
			`{"refresh_token":""}`:          http.StatusUnprocessableEntity,
			`{"refresh_token":"x","a":1}`:   http.StatusUnprocessableEntity,
			`{"refresh_token":["rt_a"]}`:    http.StatusUnprocessableEntity,
			`{"refresh_token":"rt_a","":0}`: http.StatusUnprocessableEntity,
		} {
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/auth/logout", ContentType: apitest.JSON, Body: body})
			require.Equal(t, status, r.Status, "body %q → %s", body, r.Body)
			apitest.RequireProblem(t, r, r.Status)
		}
	})
}

func TestAccessToken(t *testing.T) {
	t.Parallel()
	env := authStart(t, apitest.WithEnv("SECRET_KEY", authKnownSecret), apitest.WithEnv("ACCESS_TOKEN_EXPIRE_MINUTES", "5"))
	adminID := authAdminID(t, env)
	issued := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)

	t.Run("the_lifetime_follows_ACCESS_TOKEN_EXPIRE_MINUTES", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, int32(300), issued.ExpiresIn)
		claims := authClaims(t, issued.AccessToken)
		iat, err := claims.GetIssuedAt()
		require.NoError(t, err)
		exp, err := claims.GetExpirationTime()
		require.NoError(t, err)
		require.Equal(t, 5*time.Minute, exp.Sub(iat.Time))
	})

	t.Run("a_token_forged_with_the_servers_secret_and_claims_works", func(t *testing.T) {
		t.Parallel()
		// Sanity check for the forgeries below: only the one thing they change matters.
		tok := authSign(t, jwt.SigningMethodHS256, authKnownSecret, authValidClaims(adminID))
		r := authMe(t, env, "Bearer "+tok)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var u client.User
		require.NoError(t, json.Unmarshal(r.Body, &u))
		require.Equal(t, adminID, u.Id)
	})

	t.Run("the_issued_token_is_signed_hs256_with_the_secret", func(t *testing.T) {
		t.Parallel()
		tok, err := jwt.Parse(issued.AccessToken, func(*jwt.Token) (any, error) { return []byte(authKnownSecret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(authIssuer), jwt.WithExpirationRequired())
		require.NoError(t, err)
		require.True(t, tok.Valid)
	})

	t.Run("the_bearer_scheme_is_case_insensitive", func(t *testing.T) {
		t.Parallel()
		for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
			r := authMe(t, env, scheme+" "+issued.AccessToken)
			require.Equal(t, http.StatusOK, r.Status, "scheme %q; body: %s", scheme, r.Body)
		}
	})

	noneToken := func(t *testing.T, alg string) string {
		return authB64(t, map[string]string{"alg": alg, "typ": "JWT"}) + "." + authB64(t, authValidClaims(adminID)) + "."
	}
	withClaims := func(edit func(c jwt.MapClaims)) func(t *testing.T) string {
		return func(t *testing.T) string {
			c := authValidClaims(adminID)
			edit(c)
			return "Bearer " + authSign(t, jwt.SigningMethodHS256, authKnownSecret, c)
		}
	}
	now := time.Now()
	cases := []struct {
		name   string
		header func(t *testing.T) string
	}{
		{"no_authorization_header", func(*testing.T) string { return "" }},
		{"bearer_with_an_empty_token", func(*testing.T) string { return "Bearer " }},
		{"bearer_with_only_spaces", func(*testing.T) string { return "Bearer    " }},
		{"bearer_without_a_token", func(*testing.T) string { return "Bearer" }},
		{"basic_credentials", func(*testing.T) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(apitest.AdminEmail+":"+apitest.AdminPassword))
		}},
		{"a_valid_token_under_another_scheme", func(*testing.T) string { return "Token " + issued.AccessToken }},
		{"a_valid_token_without_a_scheme", func(*testing.T) string { return issued.AccessToken }},
		{"garbage_token", func(*testing.T) string { return "Bearer garbage" }},
		{"three_garbage_segments", func(*testing.T) string { return "Bearer aaa.bbb.ccc" }},
		{"alg_none", func(t *testing.T) string { return "Bearer " + noneToken(t, "none") }},
		{"alg_None", func(t *testing.T) string { return "Bearer " + noneToken(t, "None") }},
		{"alg_none_with_the_real_signature", func(t *testing.T) string {
			parts := strings.Split(issued.AccessToken, ".")
			return "Bearer " + authB64(t, map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "." + parts[2]
		}},
		{"signature_stripped", func(*testing.T) string {
			parts := strings.Split(issued.AccessToken, ".")
			return "Bearer " + parts[0] + "." + parts[1] + "."
		}},
		{"signed_with_another_key", func(t *testing.T) string {
			return "Bearer " + authSign(t, jwt.SigningMethodHS256, "another-secret-that-is-also-32-bytes-long!", authValidClaims(adminID))
		}},
		{"signed_hs512_with_the_right_key", func(t *testing.T) string {
			return "Bearer " + authSign(t, jwt.SigningMethodHS512, authKnownSecret, authValidClaims(adminID))
		}},
		{"signed_hs384_with_the_right_key", func(t *testing.T) string {
			return "Bearer " + authSign(t, jwt.SigningMethodHS384, authKnownSecret, authValidClaims(adminID))
		}},
		{"expired", withClaims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Minute).Unix()
		})},
		{"not_yet_valid", withClaims(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() })},
		{"issued_in_the_future", withClaims(func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() })},
		{"without_exp", withClaims(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"exp_not_a_number", withClaims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })},
		{"wrong_issuer", withClaims(func(c jwt.MapClaims) { c["iss"] = "someone-else" })},
		{"without_issuer", withClaims(func(c jwt.MapClaims) { delete(c, "iss") })},
		{"typ_refresh", withClaims(func(c jwt.MapClaims) { c["typ"] = "refresh" })},
		{"without_typ", withClaims(func(c jwt.MapClaims) { delete(c, "typ") })},
		{"subject_not_a_number", withClaims(func(c jwt.MapClaims) { c["sub"] = "admin" })},
		{"subject_as_a_json_number", withClaims(func(c jwt.MapClaims) { c["sub"] = adminID })},
		{"without_subject", withClaims(func(c jwt.MapClaims) { delete(c, "sub") })},
		{"subject_of_no_user", withClaims(func(c jwt.MapClaims) { c["sub"] = "987654321" })},
		{"subject_out_of_range", withClaims(func(c jwt.MapClaims) { c["sub"] = "99999999999999999999999" })},
		{"a_refresh_token", func(*testing.T) string { return "Bearer " + issued.RefreshToken }},
	}
	for _, tc := range cases {
		t.Run("rejects_"+tc.name, func(t *testing.T) {
			t.Parallel()
			p := apitest.RequireProblem(t, authMe(t, env, tc.header(t)), http.StatusUnauthorized)
			require.NotNil(t, p.Detail)
			require.NotEmpty(t, *p.Detail)
		})
	}

	t.Run("rejects_a_token_whose_payload_was_tampered_with", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Mallory", false)
		require.Equal(t, http.StatusOK, authMe(t, env, "Bearer "+u.Token).Status, "the untouched token works")
		parts := strings.Split(u.Token, ".")
		require.Len(t, parts, 3)
		claims := authClaims(t, u.Token)
		claims["sub"] = strconv.FormatInt(adminID, 10) // escalate to the administrator
		tampered := parts[0] + "." + authB64(t, claims) + "." + parts[2]
		apitest.RequireProblem(t, authMe(t, env, "Bearer "+tampered), http.StatusUnauthorized)
	})

	t.Run("rejects_tokens_of_a_deleted_user", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Gone", false)
		forged := authSign(t, jwt.SigningMethodHS256, authKnownSecret, authValidClaims(u.Id))
		require.Equal(t, http.StatusOK, authMe(t, env, "Bearer "+forged).Status)
		pair := env.Login(t, string(u.Email), u.Password)
		res, err := env.AsAdmin(t).DeleteUserWithResponse(context.Background(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "body: %s", res.Body)
		apitest.RequireProblem(t, authMe(t, env, "Bearer "+u.Token), http.StatusUnauthorized)
		apitest.RequireProblem(t, authMe(t, env, "Bearer "+forged), http.StatusUnauthorized)
		authRequireRefresh401(t, env, pair.RefreshToken, "refresh token of a deleted user")
		login := authLogin(t, env, string(u.Email), u.Password)
		require.Equal(t, http.StatusUnauthorized, login.StatusCode(), "body: %s", login.Body)
	})
}

func TestAccessTokenAlgorithm(t *testing.T) {
	t.Parallel()
	env := authStart(t, apitest.WithEnv("SECRET_KEY", authKnownSecret), apitest.WithEnv("ALGORITHM", "HS384"))
	adminID := authAdminID(t, env)

	t.Run("issued_tokens_use_the_configured_algorithm", func(t *testing.T) {
		t.Parallel()
		pair := env.Login(t, apitest.AdminEmail, apitest.AdminPassword)
		tok, err := jwt.Parse(pair.AccessToken, func(*jwt.Token) (any, error) { return []byte(authKnownSecret), nil },
			jwt.WithValidMethods([]string{"HS384"}))
		require.NoError(t, err)
		require.Equal(t, "HS384", tok.Header["alg"])
	})

	t.Run("tokens_in_the_configured_algorithm_are_accepted", func(t *testing.T) {
		t.Parallel()
		tok := authSign(t, jwt.SigningMethodHS384, authKnownSecret, authValidClaims(adminID))
		require.Equal(t, http.StatusOK, authMe(t, env, "Bearer "+tok).Status)
	})

	t.Run("tokens_in_another_hmac_algorithm_are_rejected_even_with_the_right_key", func(t *testing.T) {
		t.Parallel()
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			tok := authSign(t, m, authKnownSecret, authValidClaims(adminID))
			apitest.RequireProblem(t, authMe(t, env, "Bearer "+tok), http.StatusUnauthorized)
		}
	})
}

func TestInactiveUser(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	u := env.CreateUser(t, "Dormant", false)
	pair := env.Login(t, string(u.Email), u.Password)
	setActive := func(active bool) {
		t.Helper()
		res, err := admin.UpdateUserWithResponse(ctx, u.Id, nil, client.UserUpdate{IsActive: &active})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.Equal(t, active, res.JSON200.IsActive)
	}

	setActive(false)

	apitest.RequireProblem(t, authMe(t, env, "Bearer "+u.Token), http.StatusUnauthorized)
	apitest.RequireProblem(t, authMe(t, env, "Bearer "+pair.AccessToken), http.StatusUnauthorized)
	authRequireRefresh401(t, env, pair.RefreshToken, "refresh of a deactivated user")

	inactive := authLogin(t, env, string(u.Email), u.Password)
	require.Equal(t, http.StatusUnauthorized, inactive.StatusCode(), "login of a deactivated user; body: %s", inactive.Body)
	wrong := authLogin(t, env, string(u.Email), u.Password+"-wrong")
	require.Equal(t, http.StatusUnauthorized, wrong.StatusCode(), "body: %s", wrong.Body)
	authSameProblem(t,
		apitest.RequireProblem(t, wrong, wrong.StatusCode()),
		apitest.RequireProblem(t, inactive, inactive.StatusCode()))

	setActive(true)

	again := env.Login(t, string(u.Email), u.Password)
	me, err := env.As(again.AccessToken).GetCurrentUserWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, me.StatusCode(), "body: %s", me.Body)
	require.Equal(t, u.Id, me.JSON200.Id)
	require.True(t, me.JSON200.IsActive)
	authRequireRefresh200(t, env, again.RefreshToken, "a refresh token issued after reactivation")
	authRequireRefresh401(t, env, pair.RefreshToken, "sessions revoked by the deactivation stay revoked")
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	env := authStart(t)
	ctx := context.Background()

	t.Run("revokes_refresh_tokens_and_swaps_the_password", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Changer", false)
		email := string(u.Email)
		a := env.Login(t, email, u.Password)
		b := env.Login(t, email, u.Password)
		newPW := "a-brand-new-passphrase"
		res, err := u.Client.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Password: &newPW, CurrentPassword: &u.Password})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)

		authRequireRefresh401(t, env, a.RefreshToken, "session from before the change")
		authRequireRefresh401(t, env, b.RefreshToken, "another session from before the change")

		old := authLogin(t, env, email, u.Password)
		require.Equal(t, http.StatusUnauthorized, old.StatusCode(), "old password; body: %s", old.Body)
		fresh := env.Login(t, email, newPW)
		authRequireRefresh200(t, env, fresh.RefreshToken, "session from after the change")
	})

	t.Run("a_rejected_change_keeps_sessions_and_password", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Keeper", false)
		email := string(u.Email)
		pair := env.Login(t, email, u.Password)
		newPW := "a-brand-new-passphrase"
		wrongCurrent := "not-my-password"
		res, err := u.Client.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Password: &newPW, CurrentPassword: &wrongCurrent})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "body: %s", res.Body)
		p := apitest.RequireProblem(t, res, res.StatusCode())
		require.Contains(t, apitest.FieldErrors(p), "body:current_password")

		res, err = u.Client.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Password: &newPW})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "no current_password; body: %s", res.Body)

		authRequireRefresh200(t, env, pair.RefreshToken, "a rejected change revokes nothing")
		env.Login(t, email, u.Password)
		bad := authLogin(t, env, email, newPW)
		require.Equal(t, http.StatusUnauthorized, bad.StatusCode(), "body: %s", bad.Body)
	})

	t.Run("a_name_change_keeps_sessions", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Renamer", false)
		pair := env.Login(t, string(u.Email), u.Password)
		name := "Renamed"
		res, err := u.Client.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Name: &name})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		authRequireRefresh200(t, env, pair.RefreshToken, "only password changes end sessions")
	})
}

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
