package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// akProblem decodes a problem body and checks its status and type.
func akProblem(t *testing.T, status int, body []byte, gotStatus int, wantType string) map[string]any {
	t.Helper()
	require.Equal(t, status, gotStatus, "body: %s", body)
	var p map[string]any
	require.NoError(t, json.Unmarshal(body, &p), "body: %s", body)
	require.Equal(t, wantType, p["type"], "body: %s", body)
	return p
}

// akCreate creates an API key as the holder of c and requires 201.
func akCreate(t *testing.T, c *client.ClientWithResponses, name string, scopes ...client.Scope) client.ApiKeyCreated {
	t.Helper()
	res, err := c.CreateApiKeyWithResponse(context.Background(), client.ApiKeyCreate{Name: name, Scopes: scopes})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create key: %s", res.Body)
	return *res.JSON201
}

// akDo sends a request with the given headers and returns status, headers and body.
func akDo(t *testing.T, env *apitest.Env, method, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, env.BaseURL+path, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := env.HTTP.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	var body json.RawMessage
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, res.Header, body
}

var akKeyPattern = regexp.MustCompile(`^eak_[A-Za-z0-9_-]{43}$`)

func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	u := env.CreateUser(t, "Keyholder", false)

	k := akCreate(t, u.Client, "CI pipeline", client.TasksRead, client.TasksWrite)
	require.Regexp(t, akKeyPattern, k.Key)
	require.Equal(t, k.Key[:12], k.Prefix)
	require.Equal(t, []client.Scope{client.TasksRead, client.TasksWrite}, k.Scopes)
	require.False(t, k.RevokedAt.IsSpecified() && !k.RevokedAt.IsNull())

	// Location names the key; reading it shows the prefix, never the secret.
	got, err := u.Client.GetApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode(), "%s", got.Body)
	require.Equal(t, k.Prefix, got.JSON200.Prefix)
	require.NotContains(t, string(got.Body), k.Key)
	require.NotContains(t, string(got.Body), `"key"`)

	list, err := u.Client.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, list.StatusCode(), "%s", list.Body)
	require.EqualValues(t, 1, list.JSON200.Total)
	require.Equal(t, k.Id, list.JSON200.Items[0].Id)
	require.NotContains(t, string(list.Body), k.Key)

	// The key works in X-API-Key and as a bearer token, acting as its owner.
	for _, c := range []*client.ClientWithResponses{env.AsKey(k.Key), env.As(k.Key)} {
		created, err := c.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "made with a key"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, created.StatusCode(), "%s", created.Body)
		require.Equal(t, u.Id, created.JSON201.CreatedBy.MustGet())
	}

	// Revoked: 401 on the next request, with WWW-Authenticate; revoking again is fine.
	rev, err := u.Client.RevokeApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, rev.StatusCode(), "%s", rev.Body)
	res, err := env.AsKey(k.Key).ListTasksWithResponse(ctx, nil)
	require.NoError(t, err)
	akProblem(t, http.StatusUnauthorized, res.Body, res.StatusCode(), "/problems/unauthorized")
	require.True(t, strings.HasPrefix(res.HTTPResponse.Header.Get("WWW-Authenticate"), "Bearer"))
	rev, err = u.Client.RevokeApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, rev.StatusCode(), "%s", rev.Body)
	got, err = u.Client.GetApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.True(t, got.JSON200.RevokedAt.IsSpecified() && !got.JSON200.RevokedAt.IsNull(), "revoked_at is set: %s", got.Body)
}

func TestAPIKeyScopesNarrowTheOwner(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	u := env.CreateUser(t, "Reader", false)
	reader := env.AsKey(akCreate(t, u.Client, "read only", client.TasksRead).Key)

	list, err := reader.ListTasksWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, list.StatusCode(), "%s", list.Body)

	created, err := reader.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "not allowed"})
	require.NoError(t, err)
	p := akProblem(t, http.StatusForbidden, created.Body, created.StatusCode(), "/problems/insufficient-scope")
	require.Contains(t, p["detail"], "tasks:write")

	// A key never does more than its owner: users:write does not make a user an admin.
	writer := env.AsKey(akCreate(t, u.Client, "users", client.UsersWrite, client.UsersRead).Key)
	users, err := writer.ListUsersWithResponse(ctx, nil)
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, users.Body, users.StatusCode(), "/problems/forbidden")
	me, err := writer.GetCurrentUserWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
	require.Equal(t, u.Id, me.JSON200.Id)

	// A password session holds every scope.
	sess, err := u.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "allowed"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, sess.StatusCode(), "%s", sess.Body)
}

func TestAPIKeyManagementNeedsAPasswordSession(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	u := env.CreateUser(t, "Manager", false)
	own := akCreate(t, u.Client, "all user scopes", client.UsersRead, client.UsersWrite)
	withKey := env.AsKey(own.Key)

	list, err := withKey.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, list.Body, list.StatusCode(), "/problems/forbidden")
	created, err := withKey.CreateApiKeyWithResponse(ctx, client.ApiKeyCreate{Name: "child", Scopes: []client.Scope{client.TasksRead}})
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, created.Body, created.StatusCode(), "/problems/forbidden")
	get, err := withKey.GetApiKeyWithResponse(ctx, own.Id)
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, get.Body, get.StatusCode(), "/problems/forbidden")
	rev, err := withKey.RevokeApiKeyWithResponse(ctx, own.Id)
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, rev.Body, rev.StatusCode(), "/problems/forbidden")

	// Without users:* the scope check answers first.
	tasksOnly := env.AsKey(akCreate(t, u.Client, "tasks", client.TasksRead).Key)
	list, err = tasksOnly.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	p := akProblem(t, http.StatusForbidden, list.Body, list.StatusCode(), "/problems/insufficient-scope")
	require.Contains(t, p["detail"], "users:read")

	// The key still exists and works.
	still, err := u.Client.GetApiKeyWithResponse(ctx, own.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, still.StatusCode())
	require.True(t, still.JSON200.RevokedAt.IsNull())
}

func TestAPIKeyVisibility(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	owner := env.CreateUser(t, "Owner", false)
	other := env.CreateUser(t, "Other", false)
	admin := env.AsAdmin(t)
	k := akCreate(t, owner.Client, "mine", client.TasksRead)

	get, err := other.Client.GetApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	akProblem(t, http.StatusNotFound, get.Body, get.StatusCode(), "/problems/not-found")
	rev, err := other.Client.RevokeApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	akProblem(t, http.StatusNotFound, rev.Body, rev.StatusCode(), "/problems/not-found")
	otherList, err := other.Client.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 0, otherList.JSON200.Total)
	require.Equal(t, int32(0), otherList.JSON200.TotalPages)
	spy, err := other.Client.ListApiKeysWithResponse(ctx, &client.ListApiKeysParams{UserId: &owner.Id})
	require.NoError(t, err)
	akProblem(t, http.StatusForbidden, spy.Body, spy.StatusCode(), "/problems/forbidden")
	self, err := owner.Client.ListApiKeysWithResponse(ctx, &client.ListApiKeysParams{UserId: &owner.Id})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, self.StatusCode(), "%s", self.Body)
	require.EqualValues(t, 1, self.JSON200.Total)

	// Administrators see anyone's keys and may revoke them.
	get, err = admin.GetApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, get.StatusCode(), "%s", get.Body)
	adminList, err := admin.ListApiKeysWithResponse(ctx, &client.ListApiKeysParams{UserId: &owner.Id})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, adminList.StatusCode(), "%s", adminList.Body)
	require.Equal(t, k.Id, adminList.JSON200.Items[0].Id)
	ownList, err := admin.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	require.EqualValues(t, 0, ownList.JSON200.Total, "without user_id an administrator lists their own keys")
	rev, err = admin.RevokeApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, rev.StatusCode(), "%s", rev.Body)

	missing, err := owner.Client.GetApiKeyWithResponse(ctx, 1<<40)
	require.NoError(t, err)
	akProblem(t, http.StatusNotFound, missing.Body, missing.StatusCode(), "/problems/not-found")
}

func TestAPIKeyBadCredentials(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	u := env.CreateUser(t, "Sender", false)
	k := akCreate(t, u.Client, "good", client.TasksRead)
	unknown := "eak_" + strings.Repeat("A", 43)

	for name, header := range map[string]map[string]string{
		"malformed":              {"X-API-Key": "not-a-key"},
		"malformed as bearer":    {"Authorization": "Bearer eak_short"},
		"wrong prefix":           {"X-API-Key": "xyz_" + k.Key[4:]},
		"bad characters":         {"X-API-Key": "eak_" + strings.Repeat("!", 43)},
		"too long":               {"X-API-Key": k.Key + "A"},
		"unknown":                {"X-API-Key": unknown},
		"unknown as bearer":      {"Authorization": "Bearer " + unknown},
		"empty":                  {"X-API-Key": " "},
		"both ways, different":   {"X-API-Key": k.Key, "Authorization": "Bearer " + unknown},
		"key and access token":   {"X-API-Key": k.Key, "Authorization": "Bearer " + u.Token},
		"key and basic auth":     {"X-API-Key": k.Key, "Authorization": "Basic Zm9vOmJhcg=="},
		"access token as key":    {"X-API-Key": u.Token},
		"bearer prefix, garbage": {"Authorization": "Bearer eak_" + strings.Repeat("\u00e9", 20)},
	} {
		t.Run(name, func(t *testing.T) {
			status, h, body := akDo(t, env, http.MethodGet, "/api/v1/tasks", header)
			p := akProblem(t, http.StatusUnauthorized, body, status, "/problems/unauthorized")
			require.True(t, strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer"))
			require.NotEmpty(t, p["detail"])
		})
	}
	// The same key sent both ways is one credential.
	status, _, body := akDo(t, env, http.MethodGet, "/api/v1/tasks", map[string]string{"X-API-Key": k.Key, "Authorization": "Bearer " + k.Key})
	require.Equal(t, http.StatusOK, status, "%s", body)
}

func TestAPIKeyCreateValidation(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	u := env.CreateUser(t, "Validator", false)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for name, body := range map[string]string{
		"no scopes":        `{"name":"k","scopes":[]}`,
		"missing scopes":   `{"name":"k"}`,
		"unknown scope":    `{"name":"k","scopes":["tasks:read","tasks:delete"]}`,
		"repeated scope":   `{"name":"k","scopes":["tasks:read","tasks:read"]}`,
		"expiry in past":   `{"name":"k","scopes":["tasks:read"],"expires_at":"` + past + `"}`,
		"empty name":       `{"name":"","scopes":["tasks:read"]}`,
		"name too long":    `{"name":"` + strings.Repeat("n", 101) + `","scopes":["tasks:read"]}`,
		"blank name":       `{"name":"   ","scopes":["tasks:read"]}`,
		"scopes not array": `{"name":"k","scopes":"tasks:read"}`,
		"unknown field":    `{"name":"k","scopes":["tasks:read"],"key":"eak_mine"}`,
	} {
		t.Run(name, func(t *testing.T) {
			res, err := u.Client.CreateApiKeyWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(body))
			require.NoError(t, err)
			akProblem(t, http.StatusUnprocessableEntity, res.Body, res.StatusCode(), "/problems/validation")
		})
	}
	res, err := u.Client.CreateApiKeyWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(`{"name":`))
	require.NoError(t, err)
	akProblem(t, http.StatusBadRequest, res.Body, res.StatusCode(), "/problems/malformed-request")
	list, err := u.Client.ListApiKeysWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.EqualValues(t, 0, list.JSON200.Total, "nothing was created")
}

func TestAPIKeyExpires(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	u := env.CreateUser(t, "Expiring", false)
	expires := time.Now().Add(2 * time.Second).UTC()
	res, err := u.Client.CreateApiKeyWithResponse(ctx, client.ApiKeyCreate{
		Name: "short-lived", Scopes: []client.Scope{client.TasksRead}, ExpiresAt: nullable.NewNullableWithValue(expires),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	require.WithinDuration(t, expires, res.JSON201.ExpiresAt.MustGet(), time.Second)
	c := env.AsKey(res.JSON201.Key)
	ok, err := c.ListTasksWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ok.StatusCode(), "%s", ok.Body)
	time.Sleep(time.Until(expires) + 100*time.Millisecond)
	gone, err := c.ListTasksWithResponse(ctx, nil)
	require.NoError(t, err)
	p := akProblem(t, http.StatusUnauthorized, gone.Body, gone.StatusCode(), "/problems/unauthorized")
	require.Contains(t, p["detail"], "expired")
}

func TestAPIKeyStopsWithItsOwner(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("CACHE_TTL", "1h"))
	ctx := context.Background()
	admin := env.AsAdmin(t)

	for _, action := range []string{"deactivate", "delete"} {
		t.Run(action, func(t *testing.T) {
			u := env.CreateUser(t, "Leaver", false)
			k := env.AsKey(akCreate(t, u.Client, "machine", client.TasksRead).Key)
			for range 2 { // the second from the caches
				res, err := k.ListTasksWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			}
			if action == "deactivate" {
				no := false
				res, err := admin.UpdateUserWithResponse(ctx, u.Id, nil, client.UserUpdate{IsActive: &no})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			} else {
				res, err := admin.DeleteUserWithResponse(ctx, u.Id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, res.StatusCode(), "%s", res.Body)
			}
			res, err := k.ListTasksWithResponse(ctx, nil)
			require.NoError(t, err)
			akProblem(t, http.StatusUnauthorized, res.Body, res.StatusCode(), "/problems/unauthorized")
		})
	}
}

func TestAPIKeyRevocationReachesEveryInstance(t *testing.T) {
	t.Parallel()
	opts := []apitest.Option{apitest.WithEnv("CACHE_TTL", "1h")}
	a := apitest.Start(t, opts...)
	b := apitest.StartOn(t, a.DBURL, append(opts, apitest.WithEnv("WORKER_CONCURRENCY", "0"))...)
	ctx := context.Background()
	u := a.CreateUser(t, "Rotator", false)
	k := akCreate(t, u.Client, "fleet", client.TasksRead)
	onB := b.AsKey(k.Key)
	for range 2 { // B caches the key
		res, err := onB.ListTasksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	}
	rev, err := u.Client.RevokeApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, rev.StatusCode(), "%s", rev.Body)
	// The invalidation travels asynchronously (PostgreSQL NOTIFY); allow it a moment.
	require.Eventually(t, func() bool {
		res, err := onB.ListTasksWithResponse(ctx, nil)
		return err == nil && res.StatusCode() == http.StatusUnauthorized
	}, 2*time.Second, 10*time.Millisecond, "instance B still accepts the revoked key")
}

func TestAPIKeyLastUsedAt(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	u := env.CreateUser(t, "Tracker", false)
	k := akCreate(t, u.Client, "tracked", client.TasksRead)
	require.True(t, k.LastUsedAt.IsNull())
	c := env.AsKey(k.Key)
	res, err := c.ListTasksWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode())

	var first time.Time
	require.Eventually(t, func() bool {
		got, err := u.Client.GetApiKeyWithResponse(ctx, k.Id)
		if err != nil || got.JSON200 == nil || got.JSON200.LastUsedAt.IsNull() {
			return false
		}
		first = got.JSON200.LastUsedAt.MustGet()
		return true
	}, 5*time.Second, 20*time.Millisecond, "last_used_at is recorded")

	// More uses within the minute leave it as it is.
	for range 3 {
		res, err := c.ListTasksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
	}
	time.Sleep(200 * time.Millisecond)
	got, err := u.Client.GetApiKeyWithResponse(ctx, k.Id)
	require.NoError(t, err)
	require.Equal(t, first, got.JSON200.LastUsedAt.MustGet(), "written at most once a minute")
}
