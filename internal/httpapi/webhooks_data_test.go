package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/llm"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/user"
	"enterprise-automation/internal/webhook"
)

// TestWebhookEventDataMatchesTheContract emits every event type through the outbox with
// the server's encoder and validates each stored body against the contract's WebhookEvent
// schema: data is the resource exactly as the API returns it. The agent-run events are
// what the agent service emits from its own transactions (Emit with an agent.Run).
func TestWebhookEventDataMatchesTheContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := store.New(dbtest.Pool(t))
	svc := webhook.NewService(s, webhook.Options{Encode: httpapi.WebhookData})
	_, err := svc.Create(ctx, auth.Principal{UserID: 1, IsAdmin: true}, webhook.CreateParams{URL: "http://127.0.0.1:9/", Events: []webhook.EventType{webhook.Wildcard}})
	require.NoError(t, err)
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	runStatuses := doc.Components.Schemas["AgentRunStatus"].Value.Enum

	now := time.Now().UTC()
	out := "done"
	assignee := int64(3)
	data := map[webhook.EventType]any{}
	tk := task.Task{ID: 7, Title: "T", Status: task.StatusPending, Priority: task.PriorityHigh, Tags: []string{"a"},
		Metadata: []byte(`{"k":1}`), AssigneeID: &assignee, CreatedAt: now, UpdatedAt: now, Version: 2}
	data[webhook.TaskCreated], data[webhook.TaskUpdated], data[webhook.TaskDeleted] = tk, tk, tk
	u := user.User{ID: 3, Name: "Ada", Email: "ada@example.com", IsActive: true, CreatedAt: now, UpdatedAt: now}
	data[webhook.UserCreated], data[webhook.UserDeleted] = u, u
	data[webhook.Test] = webhook.TestData{WebhookID: 1, Message: "hi"}
	runEvents := map[webhook.EventType]agent.RunStatus{
		webhook.AgentRunCompleted: "completed", webhook.AgentRunFailed: "failed", webhook.AgentRunCancelled: "cancelled",
		webhook.AgentRunIncomplete: "incomplete", webhook.AgentRunRequiresAction: "requires_action", webhook.AgentRunExpired: "expired",
	}
	for ev, st := range runEvents {
		require.Contains(t, runStatuses, any(string(st)), "%s: the contract has no run status %q", ev, st)
		data[ev] = agent.Run{ID: 9, AgentID: 2, Status: st, Input: "go", Output: &out, Model: "m", Usage: llm.Usage{TotalTokens: 3},
			Metadata: []byte(`{}`), CreatedAt: now, StartedAt: &now, CompletedAt: &now, Error: &agent.RunError{Code: "x", Message: "y"}}
	}
	require.Len(t, data, len(webhook.EventTypes))

	for ev, d := range data {
		require.NoError(t, s.InTx(ctx, func(q db.Querier) error { return svc.Emit(ctx, q, ev, d) }), ev)
	}
	rows, err := s.Pool().Query(ctx, "SELECT type, body FROM webhook_events")
	require.NoError(t, err)
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var typ, body string
		require.NoError(t, rows.Scan(&typ, &body))
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &v))
		require.Equal(t, typ, v["type"])
		require.NoError(t, doc.Components.Schemas["WebhookEvent"].Value.VisitJSON(v), "%s: %s", typ, body)
		seen++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(data), seen)
}
