package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// audEvents returns every audit event with the given action, newest first.
func audEvents(t *testing.T, admin *client.ClientWithResponses, action string) []client.AuditEvent {
	t.Helper()
	res, err := admin.ListAuditEventsWithResponse(context.Background(), &client.ListAuditEventsParams{Action: &action, Limit: apitest.Ptr(int32(500))})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	return res.JSON200.Items
}

// audTotal counts every audit event but the retention job's (it runs at start, at its
// own pace).
func audTotal(t *testing.T, env *apitest.Env) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.BaseURL+"/api/v1/audit-events", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	n := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var e client.AuditEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		if e.Action != "audit_retention" {
			n++
		}
	}
	require.NoError(t, sc.Err())
	return n
}

// TestAuditEveryMutatingOperationLeavesOneEvent calls every POST, PUT, PATCH and DELETE
// of /api/v1 in the contract once, successfully, and checks that each left exactly one
// event with its operationId as action and the resource it changed. An operation added to
// the contract without a case here fails the test.
func TestAuditEveryMutatingOperationLeavesOneEvent(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("WORKER_CONCURRENCY", "0")) // runs stay queued
	ctx := context.Background()
	admin := env.AsAdmin(t)
	alice := env.CreateUser(t, "Alice", false)

	var (
		userID, taskID, agentID, runID, keyID int64
		waitingID                             int64
		hookID, deliveryID                    int64
		pair                                  client.TokenPair
	)
	type check struct {
		resource string
		id       func() *int64
		call     func(t *testing.T) int
	}
	idOf := func(p *int64) func() *int64 { return func() *int64 { return p } }
	cases := map[string]check{
		"createToken": {"session", nil, func(t *testing.T) int {
			res, err := env.Client.CreateTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{Username: string(alice.Email), Password: alice.Password})
			require.NoError(t, err)
			pair = *res.JSON200
			return res.StatusCode()
		}},
		"refreshToken": {"session", nil, func(t *testing.T) int {
			res, err := env.Client.RefreshTokenWithResponse(ctx, client.RefreshRequest{RefreshToken: pair.RefreshToken})
			require.NoError(t, err)
			pair = *res.JSON200
			return res.StatusCode()
		}},
		"logout": {"session", nil, func(t *testing.T) int {
			res, err := env.Client.LogoutWithResponse(ctx, client.RefreshRequest{RefreshToken: pair.RefreshToken})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createUser": {"user", idOf(&userID), func(t *testing.T) int {
			res, err := admin.CreateUserWithResponse(ctx, nil, client.UserCreate{Name: "Bob",
				Email: openapi_types.Email("bob-" + secRandom(3) + "@example.com"), Password: "password-" + secRandom(4)})
			require.NoError(t, err)
			userID = res.JSON201.Id
			return res.StatusCode()
		}},
		"updateUser": {"user", idOf(&userID), func(t *testing.T) int {
			res, err := admin.UpdateUserWithResponse(ctx, userID, nil, client.UserUpdate{Name: apitest.Ptr("Robert")})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"replaceUser": {"user", idOf(&userID), func(t *testing.T) int {
			res, err := admin.ReplaceUserWithResponse(ctx, userID, nil, client.UserUpdate{Name: apitest.Ptr("Rob"),
				Email: apitest.Ptr(openapi_types.Email("rob-" + secRandom(3) + "@example.com")), IsAdmin: apitest.Ptr(false), IsActive: apitest.Ptr(true)})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"updateCurrentUser": {"user", func() *int64 { return &alice.Id }, func(t *testing.T) int {
			res, err := alice.Client.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Name: apitest.Ptr("Alicia")})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"deleteUser": {"user", idOf(&userID), func(t *testing.T) int {
			res, err := admin.DeleteUserWithResponse(ctx, userID, nil)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createTask": {"task", idOf(&taskID), func(t *testing.T) int {
			res, err := alice.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "Audit me"})
			require.NoError(t, err)
			taskID = res.JSON201.Id
			return res.StatusCode()
		}},
		"updateTask": {"task", idOf(&taskID), func(t *testing.T) int {
			st := client.TaskStatus("in_progress")
			res, err := alice.Client.UpdateTaskWithResponse(ctx, taskID, nil, client.TaskUpdate{Status: &st})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"deleteTask": {"task", idOf(&taskID), func(t *testing.T) int {
			res, err := alice.Client.DeleteTaskWithResponse(ctx, taskID, nil)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createAgent": {"agent", idOf(&agentID), func(t *testing.T) int {
			res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "auditor-" + secRandom(3)})
			require.NoError(t, err)
			agentID = res.JSON201.Id
			return res.StatusCode()
		}},
		"updateAgent": {"agent", idOf(&agentID), func(t *testing.T) int {
			res, err := admin.UpdateAgentWithResponse(ctx, agentID, nil, client.AgentUpdate{Description: apitest.Ptr("checks")})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createAgentRun": {"agent_run", idOf(&runID), func(t *testing.T) int {
			res, err := alice.Client.CreateAgentRunWithResponse(ctx, agentID, nil, client.AgentRunCreate{Input: "go"})
			require.NoError(t, err)
			runID = res.JSON202.Id
			return res.StatusCode()
		}},
		"cancelAgentRun": {"agent_run", idOf(&runID), func(t *testing.T) int {
			res, err := alice.Client.CancelAgentRunWithResponse(ctx, runID)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createApiKey": {"api_key", idOf(&keyID), func(t *testing.T) int {
			res, err := alice.Client.CreateApiKeyWithResponse(ctx, client.ApiKeyCreate{Name: "audited", Scopes: []client.Scope{"tasks:read"}})
			require.NoError(t, err)
			keyID = res.JSON201.Id
			return res.StatusCode()
		}},
		"revokeApiKey": {"api_key", idOf(&keyID), func(t *testing.T) int {
			res, err := alice.Client.RevokeApiKeyWithResponse(ctx, keyID)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"submitAgentRunApprovals": {"agent_run", idOf(&waitingID), func(t *testing.T) int {
			res, err := alice.Client.CreateAgentRunWithResponse(ctx, agentID, nil, client.AgentRunCreate{Input: "wait"})
			require.NoError(t, err)
			waitingID = res.JSON202.Id
			steerMakeWaiting(t, env.DBURL, waitingID, "call_w")
			ap, err := alice.Client.SubmitAgentRunApprovalsWithResponse(ctx, waitingID, client.AgentRunApprovals{
				Decisions: []client.AgentRunDecision{steerApprove("call_w")}})
			require.NoError(t, err)
			return ap.StatusCode()
		}},
		"deleteAgent": {"agent", idOf(&agentID), func(t *testing.T) int {
			res, err := admin.DeleteAgentWithResponse(ctx, agentID, nil)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"createWebhook": {"webhook", idOf(&hookID), func(t *testing.T) int {
			res, err := admin.CreateWebhookWithResponse(ctx, client.WebhookCreate{Url: "https://203.0.113.10/hook",
				Events: []client.WebhookSubscription{"task.created"}, IsActive: apitest.Ptr(false)})
			require.NoError(t, err)
			hookID = res.JSON201.Id
			return res.StatusCode()
		}},
		"updateWebhook": {"webhook", idOf(&hookID), func(t *testing.T) int {
			res, err := admin.UpdateWebhookWithResponse(ctx, hookID, nil, client.WebhookUpdate{Description: apitest.Ptr("audited")})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"rotateWebhookSecret": {"webhook", idOf(&hookID), func(t *testing.T) int {
			res, err := admin.RotateWebhookSecretWithResponse(ctx, hookID)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"sendWebhookTest": {"webhook", idOf(&hookID), func(t *testing.T) int {
			res, err := admin.SendWebhookTestWithResponse(ctx, hookID)
			require.NoError(t, err)
			deliveryID = res.JSON202.Id
			return res.StatusCode()
		}},
		"redeliverWebhookDelivery": {"webhook_delivery", idOf(&deliveryID), func(t *testing.T) int {
			// No workers here: end the delivery by hand so that it may be sent again.
			conn, err := pgx.Connect(ctx, env.DBURL)
			require.NoError(t, err)
			defer func() { _ = conn.Close(ctx) }()
			_, err = conn.Exec(ctx, "UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1", deliveryID)
			require.NoError(t, err)
			res, err := admin.RedeliverWebhookDeliveryWithResponse(ctx, hookID, deliveryID)
			require.NoError(t, err)
			return res.StatusCode()
		}},
		"deleteWebhook": {"webhook", idOf(&hookID), func(t *testing.T) int {
			res, err := admin.DeleteWebhookWithResponse(ctx, hookID, nil)
			require.NoError(t, err)
			return res.StatusCode()
		}},
	}
	order := []string{"createToken", "refreshToken", "logout", "createUser", "updateUser", "replaceUser",
		"updateCurrentUser", "deleteUser", "createTask", "updateTask", "deleteTask", "createAgent", "updateAgent",
		"createAgentRun", "cancelAgentRun", "submitAgentRunApprovals", "deleteAgent", "createApiKey", "revokeApiKey",
		"createWebhook", "updateWebhook", "rotateWebhookSecret", "sendWebhookTest", "redeliverWebhookDelivery", "deleteWebhook"}

	policies, err := httpapi.ContractPolicies()
	require.NoError(t, err)
	var mutating []string
	for _, p := range policies {
		if strings.HasPrefix(p.Path, "/api/v1/") && slices.Contains([]string{"POST", "PUT", "PATCH", "DELETE"}, p.Method) {
			mutating = append(mutating, p.OperationID)
		}
	}
	require.ElementsMatch(t, mutating, order, "every mutating operation of the contract has a case here")

	for _, op := range order {
		c := cases[op]
		action := op
		if op == "createToken" {
			action = "login_succeeded"
		}
		before := len(audEvents(t, admin, action))
		status := c.call(t)
		require.Less(t, status, 300, "%s answered %d", op, status)
		evs := audEvents(t, admin, action)
		require.Len(t, evs, before+1, "%s leaves exactly one event", op)
		ev := evs[0]
		require.Equal(t, c.resource, ev.Resource.Type, op)
		if c.id != nil {
			require.Equal(t, *c.id(), ev.Resource.Id.MustGet(), op)
		}
		require.False(t, ev.RequestId.IsNull(), op)
		require.False(t, ev.Ip.IsNull(), op)
		require.Equal(t, client.AuditActorType("user"), ev.Actor.Type, op)
		require.False(t, ev.Actor.UserId.IsNull(), "%s names its user", op)
	}

	// Updates carry what changed, and nothing that did not.
	upd := audEvents(t, admin, "updateTask")[0]
	ch := upd.Changes.MustGet()
	require.Equal(t, map[string]any{"from": "pending", "to": "in_progress"}, ch["status"])
	require.NotContains(t, ch, "title")
}

func TestAuditFailedCallsLeaveNoEvent(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	alice := env.CreateUser(t, "Alice", false)
	before := audTotal(t, env)

	res, err := alice.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "   "})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode())
	dup, err := admin.CreateUserWithResponse(ctx, nil, client.UserCreate{Name: "Dup", Email: alice.Email, Password: "password-123456"})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, dup.StatusCode())
	tk, err := alice.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "t"})
	require.NoError(t, err)
	st := client.TaskStatus("completed")
	bad, err := alice.Client.UpdateTaskWithResponse(ctx, tk.JSON201.Id, nil, client.TaskUpdate{Status: &st})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, bad.StatusCode())

	// Only the task that was created (and the login the second count makes) left events.
	after := audTotal(t, env)
	require.Equal(t, before+1+1, after)
	require.Len(t, audEvents(t, admin, "createUser"), 1, "only Alice's creation")
}

func TestAuditIdempotentReplayWritesNothing(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	key := "audit-" + secRandom(4)
	for range 2 {
		res, err := admin.CreateTaskWithResponse(ctx, &client.CreateTaskParams{IdempotencyKey: &key}, client.TaskCreate{Title: "once"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode())
	}
	require.Len(t, audEvents(t, admin, "createTask"), 1)
}

func TestAuditFailedLoginIsRecorded(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	ctx := context.Background()
	alice := env.CreateUser(t, "Alice", false)
	res, err := env.Client.CreateTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{Username: string(alice.Email), Password: "wrong-password"})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode())
	evs := audEvents(t, env.AsAdmin(t), "login_failed")
	require.Len(t, evs, 1)
	require.Equal(t, alice.Id, evs[0].Actor.UserId.MustGet())
	require.True(t, evs[0].Changes.IsNull(), "no secret is kept")
}

func TestAuditListCursorAndNDJSON(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	for range 5 {
		res, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "page me"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode())
	}
	action := "createTask"
	var ids []int64
	var cursor *string
	for {
		res, err := admin.ListAuditEventsWithResponse(ctx, &client.ListAuditEventsParams{Action: &action, Limit: apitest.Ptr(int32(2)), Cursor: cursor})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		for _, e := range res.JSON200.Items {
			ids = append(ids, e.Id)
		}
		if res.JSON200.NextCursor.IsNull() {
			break
		}
		c := res.JSON200.NextCursor.MustGet()
		cursor = &c
	}
	require.Len(t, ids, 5)
	require.True(t, slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }), "newest first: %v", ids)

	bad, err := admin.ListAuditEventsWithResponse(ctx, &client.ListAuditEventsParams{Cursor: apitest.Ptr("AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA")})
	require.NoError(t, err)
	apitest.RequireProblem(t, bad, http.StatusBadRequest)
	valid := cursor
	tampered := []byte(*valid)
	tampered[len(tampered)-1] ^= 1
	bad, err = admin.ListAuditEventsWithResponse(ctx, &client.ListAuditEventsParams{Cursor: apitest.Ptr(string(tampered))})
	require.NoError(t, err)
	apitest.RequireProblem(t, bad, http.StatusBadRequest)

	alice := env.CreateUser(t, "Alice", false)
	forbidden, err := alice.Client.ListAuditEventsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, forbidden.StatusCode())

	req, err := http.NewRequest(http.MethodGet, env.BaseURL+"/api/v1/audit-events?action=createTask", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
	var streamed []int64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var e client.AuditEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		streamed = append(streamed, e.Id)
	}
	require.Equal(t, ids, streamed)
}
