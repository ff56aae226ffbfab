package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

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
