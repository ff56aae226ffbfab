package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// TestWebhookTaskCreatedCarriesEveryField: the task.created event, recorded by the
// insert statement with the row as stored and rendered by the dispatcher, carries the
// task exactly as the create response returned it, every field set (assignee, due date,
// tags, nested metadata), valid against the contract, under a webhook-id the delivery log
// names.
func TestWebhookTaskCreatedCarriesEveryField(t *testing.T) {
	t.Parallel()
	env := hookEnv(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	rcv := newReceiver(t, nil)
	created := createHook(t, admin, rcv.URL+"/hooks", "task.created")

	due := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Millisecond)
	res, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{
		Title: "Every field", Description: apitest.Ptr("all of them"), Priority: apitest.Ptr(client.High),
		AssigneeId: nullable.NewNullableWithValue(int64(1)), DueAt: nullable.NewNullableWithValue(due),
		Tags:     &client.TaskTags{"billing", "q4"},
		Metadata: &client.TaskMetadata{"source": "crm", "ticket": 4711, "nested": map[string]any{"list": []any{1, 2.5, "x", nil, true}}},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)

	hr := rcv.next(t)
	ev := verified(t, hr, created.Secret)
	requireEventMatchesContract(t, hr.Body)
	require.Equal(t, "task.created", ev["type"])
	var apiTask map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &apiTask))
	require.Equal(t, apiTask, ev["data"], "data is the task exactly as the API returned it")
	require.Len(t, apiTask, 14, "every field of the task")

	d := waitDelivery(t, admin, created.Id)
	require.Equal(t, hr.Header.Get("webhook-id"), d.EventId)
}
