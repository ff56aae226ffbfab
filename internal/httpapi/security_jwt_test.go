package httpapi_test

import (
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
	"encoding/pem"
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

// ---------------------------------------------------------------------------------------
// JWT attacks not covered by TestAccessToken
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
