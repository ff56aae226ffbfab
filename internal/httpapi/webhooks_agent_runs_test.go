package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// TestWebhookAgentRunEvents: a run that waits for approval and then completes, and one
// cancelled while it waits, each send their agent_run.* event, signed, with the run
// exactly as the API returns it; a run queued again after its approval sends nothing.
func TestWebhookAgentRunEvents(t *testing.T) {
	t.Parallel()
	f := agtSetup(t,
		apitest.WithEnv("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
		apitest.WithEnv("WEBHOOK_RETRY_SCHEDULE", "50ms,50ms"),
		apitest.WithEnv("WEBHOOK_TIMEOUT", "2s"))
	recv := newReceiver(t, nil)
	hook := createHook(t, f.admin, recv.URL, client.WebhookSubscriptionAgentRunRequiresAction,
		client.WebhookSubscriptionAgentRunCompleted, client.WebhookSubscriptionAgentRunCancelled)

	ag := steerAgent(t, f)
	task := agtCreateTask(t, f.admin, "hooked run")
	f.llm.Script(steerUpdateCall("call_hook", task.Id, "in_progress"), llmtest.Reply{Content: []string{"Started."}, Prompt: 2, Completion: 1})
	run := agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "start it", TaskId: nullable.NewNullableWithValue(task.Id)})

	steerWaiting(t, f.admin, run.Id)
	waiting := verified(t, recv.next(t), hook.Secret)
	require.Equal(t, "agent_run.requires_action", waiting["type"])
	data := waiting["data"].(map[string]any)
	require.EqualValues(t, run.Id, data["id"])
	require.Equal(t, "requires_action", data["status"])
	calls := data["required_action"].(map[string]any)["tool_calls"].([]any)
	require.Equal(t, "call_hook", calls[0].(map[string]any)["id"])

	res := steerSubmit(t, f.admin, run.Id, steerApprove("call_hook"))
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	done := steerWaitEnded(t, f.admin, run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, done.Status)
	hr := recv.next(t)
	requireEventMatchesContract(t, hr.Body)
	completed := verified(t, hr, hook.Secret)
	require.Equal(t, "agent_run.completed", completed["type"], "queued again after the approval sends no event")
	data = completed["data"].(map[string]any)
	require.Equal(t, "completed", data["status"])
	require.Equal(t, "Started.", data["output"])
	require.Len(t, data["steps"], 1)

	// Cancelled while waiting: the cancel's own transaction emits.
	f.llm.Script(steerUpdateCall("call_hook2", task.Id, "completed"))
	run2 := agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "finish it", TaskId: nullable.NewNullableWithValue(task.Id)})
	steerWaiting(t, f.admin, run2.Id)
	require.Equal(t, "agent_run.requires_action", verified(t, recv.next(t), hook.Secret)["type"])
	cres, err := f.admin.CancelAgentRunWithResponse(context.Background(), run2.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, cres.StatusCode(), "%s", cres.Body)
	hr = recv.next(t)
	requireEventMatchesContract(t, hr.Body)
	cancelled := verified(t, hr, hook.Secret)
	require.Equal(t, "agent_run.cancelled", cancelled["type"])
	require.EqualValues(t, run2.Id, cancelled["data"].(map[string]any)["id"])
	require.Equal(t, 4, recv.count(), "one delivery per event")
}
