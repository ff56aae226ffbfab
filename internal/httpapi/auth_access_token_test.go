package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

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
