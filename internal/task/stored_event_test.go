package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/webhook"
)

// noTx is a store whose transactions fail the test: the create path must not open one.
type noTx struct {
	*store.DB
	t *testing.T
}

func (n noTx) InTx(context.Context, func(q db.Querier) error) error {
	n.t.Error("a transaction was opened")
	return nil
}

// TestCreateRecordsItsEventInItsOwnStatement: with an endpoint subscribed to
// task.created, Create opens no transaction; its insert statement records the event with
// the task as stored, and the dispatcher renders the body (type, timestamp, the task)
// before fanning it out. With no endpoint subscribed, nothing is recorded.
func TestCreateRecordsItsEventInItsOwnStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.Pool(t))
	admin, err := st.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "x", IsAdmin: true})
	require.NoError(t, err)
	actor := auth.Principal{UserID: admin.ID, IsAdmin: true}
	render := func(_ webhook.EventType, source []byte) ([]byte, error) {
		tk, err := task.FromStored(source)
		if err != nil {
			return nil, err
		}
		return json.Marshal(tk)
	}
	hooks := webhook.NewService(st, webhook.Options{Render: render})
	svc := task.NewService(noTx{st, t}).WithEvents(hooks)
	events := func() int {
		var n int
		require.NoError(t, st.Pool().QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&n))
		return n
	}

	_, err = svc.Create(ctx, actor, task.CreateParams{Title: "unheard"})
	require.NoError(t, err)
	require.Zero(t, events(), "no endpoint is subscribed")

	_, err = hooks.Create(ctx, actor, webhook.CreateParams{URL: "http://127.0.0.1:9/", Events: []webhook.EventType{webhook.TaskCreated}})
	require.NoError(t, err)
	due := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Microsecond)
	created, err := svc.Create(ctx, actor, task.CreateParams{Title: "heard", Description: "d", Priority: task.PriorityHigh,
		AssigneeID: &admin.ID, DueAt: &due, Tags: []string{"a", "b"}, Metadata: []byte(`{"k": {"n": [1, 2.5, "x"]}}`)})
	require.NoError(t, err)
	require.Equal(t, 1, events())

	var body string
	var source []byte
	require.NoError(t, st.Pool().QueryRow(ctx, "SELECT body, source FROM webhook_events").Scan(&body, &source))
	require.Empty(t, body, "the dispatcher renders the body")
	require.NotNil(t, source)

	n, err := hooks.Dispatch(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, st.Pool().QueryRow(ctx, "SELECT body, source FROM webhook_events").Scan(&body, &source))
	require.Nil(t, source, "rendered once")
	var p webhook.Payload
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	require.Equal(t, webhook.TaskCreated, p.Type)
	require.WithinDuration(t, time.Now(), p.Timestamp, time.Minute)
	want, err := json.Marshal(created)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(p.Data), "the task as Create returned it")
	var deliveries int
	require.NoError(t, st.Pool().QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries").Scan(&deliveries))
	require.Equal(t, 1, deliveries)

	// In a caller's transaction that rolls back, the task and its event go together.
	errAbort := errors.New("abort")
	err = st.InTx(ctx, func(q db.Querier) error {
		_, err := task.NewService(st).WithEvents(hooks).Within(q).Create(ctx, actor, task.CreateParams{Title: "rolled back"})
		require.NoError(t, err)
		pending, err := q.WebhookEventClaim(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1, "the event is written with the task, in the caller's transaction")
		return errAbort
	})
	require.ErrorIs(t, err, errAbort)
	require.Equal(t, 1, events(), "the rolled-back create left no event")
}
