package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/redistest"
)

// faStatus sends one JSON request (body "" for none) with an access token and returns
// the status.
func faStatus(t *testing.T, env *apitest.Env, token, method, path, body string, header ...string) int {
	t.Helper()
	return env.Do(t, method, path, token, body, header...).Status
}

// faRequireWorks checks that an access token reads and writes.
func faRequireWorks(t *testing.T, env *apitest.Env, token, why string) {
	t.Helper()
	for range 3 { // repeated: the token is remembered as verified, its user and session cached
		require.Equal(t, http.StatusOK, faStatus(t, env, token, http.MethodGet, "/api/v1/users/me", ""), "read: %s", why)
	}
	require.Equal(t, http.StatusCreated, faStatus(t, env, token, http.MethodPost, "/api/v1/tasks", `{"title":"t"}`), "write: %s", why)
}

// faRequireRefused checks that an access token neither reads nor writes.
func faRequireRefused(t *testing.T, env *apitest.Env, token, why string) {
	t.Helper()
	res := env.Do(t, http.MethodGet, "/api/v1/users/me", token, "")
	require.Equal(t, http.StatusUnauthorized, res.Status, "read: %s", why)
	require.Contains(t, res.Header.Get("WWW-Authenticate"), "Bearer")
	apitest.RequireProblem(t, res, http.StatusUnauthorized)
	require.Equal(t, http.StatusUnauthorized, faStatus(t, env, token, http.MethodPost, "/api/v1/tasks", `{"title":"t"}`), "write: %s", why)
}

func faLogout(t *testing.T, env *apitest.Env, refresh string) {
	t.Helper()
	res, err := env.Client.LogoutWithResponse(context.Background(), client.RefreshRequest{RefreshToken: refresh})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode(), "logout: %s", res.Body)
}

func faChangePassword(t *testing.T, env *apitest.Env, u apitest.User, token, newPW string) {
	t.Helper()
	res, err := env.As(token).UpdateCurrentUserWithResponse(context.Background(), nil, client.UserUpdate{Password: &newPW, CurrentPassword: &u.Password})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "password change: %s", res.Body)
}

func faSetActive(t *testing.T, env *apitest.Env, id int64, active bool) {
	t.Helper()
	res, err := env.AsAdmin(t).UpdateUserWithResponse(context.Background(), id, nil, client.UserUpdate{IsActive: &active})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "set active: %s", res.Body)
}

// TestFinding02_LogoutEndsAccessTokens: logging out ends the session's access tokens at
// once (also the ones remembered as verified), and leaves the user's other sessions.
func TestFinding02_LogoutEndsAccessTokens(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	u := env.CreateUser(t, "Leaver", false)
	a := env.Login(t, string(u.Email), u.Password)
	b := env.Login(t, string(u.Email), u.Password)
	faRequireWorks(t, env, a.AccessToken, "before logout")
	faRequireWorks(t, env, b.AccessToken, "another session")

	// An access token rotated from the same login ends with it too.
	r := authRequireRefresh200(t, env, a.RefreshToken, "rotate before logout")
	faRequireWorks(t, env, r.AccessToken, "rotated token before logout")

	faLogout(t, env, r.RefreshToken)
	faRequireRefused(t, env, a.AccessToken, "the session's first access token after logout")
	faRequireRefused(t, env, r.AccessToken, "the session's rotated access token after logout")
	faRequireWorks(t, env, b.AccessToken, "another session survives the logout")
	faRequireWorks(t, env, u.Token, "the session CreateUser opened survives too")
}

// TestFinding02_PasswordChangeEndsAccessTokens: a password change ends every session's
// access tokens, the caller's included; a new login works.
func TestFinding02_PasswordChangeEndsAccessTokens(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	u := env.CreateUser(t, "Changer", false)
	a := env.Login(t, string(u.Email), u.Password)
	faRequireWorks(t, env, a.AccessToken, "before the change")
	faRequireWorks(t, env, u.Token, "before the change")

	faChangePassword(t, env, u, u.Token, "a-brand-new-passphrase")
	faRequireRefused(t, env, u.Token, "the caller's own token after its password change")
	faRequireRefused(t, env, a.AccessToken, "another session's token after the password change")
	authRequireRefresh401(t, env, a.RefreshToken, "another session's refresh token")

	fresh := env.Login(t, string(u.Email), "a-brand-new-passphrase")
	faRequireWorks(t, env, fresh.AccessToken, "a login with the new password")
}

// TestFinding02_DeactivationEndsAccessTokensForGood: deactivation ends every access
// token, and a later reactivation does not revive them.
func TestFinding02_DeactivationEndsAccessTokensForGood(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	u := env.CreateUser(t, "Dormant", false)
	faRequireWorks(t, env, u.Token, "before deactivation")
	faSetActive(t, env, u.Id, false)
	faRequireRefused(t, env, u.Token, "while deactivated")
	faSetActive(t, env, u.Id, true)
	faRequireRefused(t, env, u.Token, "after reactivation")
	again := env.Login(t, string(u.Email), u.Password)
	faRequireWorks(t, env, again.AccessToken, "a login after reactivation")
}

// TestFinding02_RevocationReachesEveryInstance: two instances share one database and one
// Redis; a logout or password change made through one ends the tokens on the other,
// which had verified and cached them.
func TestFinding02_RevocationReachesEveryInstance(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	opts := []apitest.Option{
		apitest.WithEnv("REDIS_URL", redis.URL()),
		apitest.WithEnv("SECRET_KEY", strings.Repeat("k", 40)),
	}
	a := apitest.Start(t, opts...)
	b := apitest.StartOn(t, a.DBURL, opts...)
	u := a.CreateUser(t, "Roamer", false)
	s1 := a.Login(t, string(u.Email), u.Password)
	s2 := a.Login(t, string(u.Email), u.Password)
	faRequireWorks(t, b, s1.AccessToken, "on the other instance")
	faRequireWorks(t, b, s2.AccessToken, "on the other instance")

	faLogout(t, a, s1.RefreshToken)
	faRequireRefused(t, b, s1.AccessToken, "logged out through the other instance")
	faRequireWorks(t, b, s2.AccessToken, "another session")

	faChangePassword(t, a, u, s2.AccessToken, "a-brand-new-passphrase")
	faRequireRefused(t, b, s2.AccessToken, "password changed through the other instance")
}

// TestFinding03_CurrentPasswordIsThrottled: wrong current_password guesses spend the
// account's login budget: 429 with Retry-After once it is spent, even for the right
// current password from the guessing client, and logins of the account from that client.
func TestFinding03_CurrentPasswordIsThrottled(t *testing.T) {
	t.Parallel()
	env := rlLimits(t, 1000, 10)
	u := env.CreateUser(t, "Guessed", false)
	newPW := "a-brand-new-passphrase"
	guess := func(current string) *apitest.Response {
		return env.Do(t, http.MethodPatch, "/api/v1/users/me", u.Token,
			fmt.Sprintf(`{"password":%q,"current_password":%q}`, newPW, current))
	}
	for i := range 10 {
		res := guess(fmt.Sprintf("guess-%d", i))
		require.Equal(t, http.StatusUnprocessableEntity, res.Status, "guess %d", i+1)
	}
	res := guess("guess-10")
	require.Equal(t, http.StatusTooManyRequests, res.Status, "the 11th guess is refused, as the 11th login would be")
	retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, retry >= 1 && retry <= 60, "Retry-After=%d", retry)
	p := apitest.RequireProblem(t, res, http.StatusTooManyRequests)
	require.Equal(t, "/problems/rate-limited", p.Type)
	require.Contains(t, apitest.Deref(p.Detail), "login-account")

	res = guess(u.Password)
	require.Equal(t, http.StatusTooManyRequests, res.Status, "the right password does not get through a spent budget")
	res = env.Do(t, http.MethodPost, "/api/v1/auth/token", "", rlLoginForm(string(u.Email), u.Password))
	require.Equal(t, http.StatusTooManyRequests, res.Status, "the guessing client's logins share the account's budget")

	// Other updates are not throttled.
	name := "Renamed"
	ok, err := u.Client.UpdateCurrentUserWithResponse(context.Background(), nil, client.UserUpdate{Name: &name})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ok.StatusCode(), "updates without current_password are not throttled: %s", ok.Body)
}

// TestFinding10_SessionsEndAfterMaxAge: refreshing never carries a session past
// SESSION_MAX_DAYS from its login; neither a refresh token nor an access token outlives
// it.
func TestFinding10_SessionsEndAfterMaxAge(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("SESSION_MAX_DAYS", "30"), apitest.WithEnv("REFRESH_TOKEN_EXPIRE_DAYS", "7"))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.DBURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	u := env.CreateUser(t, "Lasting", false)
	// backdate moves the login of the session of refresh token rt back by ago.
	backdate := func(rt string, ago time.Duration) {
		t.Helper()
		tag, err := conn.Exec(ctx, `UPDATE sessions SET created_at = now() - $2::interval
			WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8')))`,
			rt, fmt.Sprintf("%d seconds", int(ago.Seconds())))
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
	}
	expiresIn := func(rt string) time.Duration {
		t.Helper()
		var left float64
		require.NoError(t, conn.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now()) FROM refresh_tokens
			WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, rt).Scan(&left))
		return time.Duration(left * float64(time.Second))
	}

	pair := env.Login(t, string(u.Email), u.Password)
	backdate(pair.RefreshToken, 29*24*time.Hour)
	next := authRequireRefresh200(t, env, pair.RefreshToken, "a day of the session left")
	left := expiresIn(next.RefreshToken)
	require.Less(t, left, 24*time.Hour+time.Minute, "the refresh token expires with the session, not 7 days on")
	require.Greater(t, left, 23*time.Hour)

	backdate(next.RefreshToken, 30*24*time.Hour-10*time.Minute)
	last := authRequireRefresh200(t, env, next.RefreshToken, "ten minutes of the session left")
	claims := jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(last.AccessToken, claims)
	require.NoError(t, err)
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), exp.Time, time.Minute, "the access token expires with the session")
	require.LessOrEqual(t, last.ExpiresIn, int32(10*60))

	backdate(last.RefreshToken, 30*24*time.Hour+time.Minute)
	authRequireRefresh401(t, env, last.RefreshToken, "past SESSION_MAX_DAYS")
	faRequireRefused(t, env, last.AccessToken, "past SESSION_MAX_DAYS")
	faRequireWorks(t, env, env.Login(t, string(u.Email), u.Password).AccessToken, "a new login")
}

// TestFinding11_AccountLockoutSparesTheOwner: failed logins from some clients spend the
// account's budget for them, not for the owner logging in from another client.
func TestFinding11_AccountLockoutSparesTheOwner(t *testing.T) {
	t.Parallel()
	env := rlLimits(t, 1000, 3, apitest.WithEnv("TRUSTED_PROXIES", "127.0.0.1"))
	victim := env.CreateUser(t, "Victim", false)
	email := string(victim.Email)
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	login := func(pw, ip string) *apitest.Response {
		return env.Do(t, http.MethodPost, "/api/v1/auth/token", "", rlLoginForm(email, pw), from(ip)...)
	}
	// The attacker spends the account's budget from three addresses.
	for i := range 3 {
		res := login("wrong", fmt.Sprintf("198.51.100.%d", i+1))
		require.Equal(t, http.StatusUnauthorized, res.Status, "guess %d", i+1)
	}
	res := login("wrong", "198.51.100.1")
	require.Equal(t, http.StatusTooManyRequests, res.Status, "the attacker is throttled")
	require.Contains(t, apitest.Deref(apitest.RequireProblem(t, res, http.StatusTooManyRequests).Detail), "login-account")

	// The owner, from another address, logs in.
	res = login(victim.Password, "203.0.113.50")
	require.Equal(t, http.StatusOK, res.Status, "the owner is not locked out")

	// The attacker still is, whichever of its addresses it uses, even with the right password.
	for i := range 3 {
		res := login(victim.Password, fmt.Sprintf("198.51.100.%d", i+1))
		require.Equal(t, http.StatusTooManyRequests, res.Status, "attacker address %d", i+1)
		require.NotEmpty(t, res.Header.Get("Retry-After"))
	}
}

// TestFinding12_IPv6ClientsAreKeyedByTheir64: every address of one IPv6 /64 shares one
// per-client limit; another /64 has its own; an IPv4-mapped address is its IPv4 address.
func TestFinding12_IPv6ClientsAreKeyedByTheir64(t *testing.T) {
	t.Parallel()
	env := rlLimits(t, 3, 1000, apitest.WithEnv("TRUSTED_PROXIES", "127.0.0.1"))
	refresh := func(ip string) int {
		return env.Do(t, http.MethodPost, "/api/v1/auth/refresh", "", `{"refresh_token":"rt_unknown"}`,
			"X-Forwarded-For", ip).Status
	}
	for i := range 3 {
		require.Equal(t, http.StatusUnauthorized, refresh(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "request %d", i+1)
	}
	require.Equal(t, http.StatusTooManyRequests, refresh("2001:db8:1:2:ffff:1234:5678:9abc"), "another address of the same /64")
	require.Equal(t, http.StatusUnauthorized, refresh("2001:db8:1:3::1"), "another /64 has its own quota")

	for i := range 3 {
		require.Equal(t, http.StatusUnauthorized, refresh("198.51.100.9"), "request %d", i+1)
	}
	require.Equal(t, http.StatusTooManyRequests, refresh("::ffff:198.51.100.9"), "the IPv4-mapped form is the same client")
	require.Equal(t, http.StatusUnauthorized, refresh("198.51.100.10"), "IPv4 clients are keyed by the address")
}
