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

// TestFromStoredReadsBothShapes: a task.created event's source is the array TaskCreate
// records, or, for events recorded by an earlier version still undispatched after an
// upgrade, to_jsonb's object; both render the same task. An array of the wrong length
// is refused rather than rendered with shifted fields.
func TestFromStoredReadsBothShapes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.Pool(t))
	u, err := st.UserCreate(ctx, db.UserCreateParams{Name: "Owner", Email: "owner@example.test", PasswordHash: "x"})
	require.NoError(t, err)
	due := time.Now().Add(time.Hour)
	created, err := st.TaskCreate(ctx, db.TaskCreateParams{Title: "both", Description: "shapes", Priority: db.TaskPriorityUrgent,
		AssigneeID: &u.ID, CreatedBy: &u.ID, DueAt: &due, Tags: []string{"x"}, Metadata: []byte(`{"a": [1, null]}`)})
	require.NoError(t, err)

	var object, array, short, long []byte
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT to_jsonb(t),
		jsonb_build_array(t.id, t.title, t.description, t.status, t.priority, t.assignee_id, t.created_by,
			t.due_at, t.tags, t.metadata, t.created_at, t.updated_at, t.completed_at, t.version),
		jsonb_build_array(t.id, t.title, t.description, t.status, t.priority, t.assignee_id, t.created_by,
			t.due_at, t.tags, t.metadata, t.created_at, t.updated_at, t.completed_at),
		jsonb_build_array(t.id, t.title, t.description, t.status, t.priority, t.assignee_id, t.created_by,
			t.due_at, t.tags, t.metadata, t.created_at, t.updated_at, t.completed_at, t.version, 1)
		FROM tasks t WHERE id = $1`, created.ID).Scan(&object, &array, &short, &long))

	fromObject, err := task.FromStored(object)
	require.NoError(t, err)
	fromArray, err := task.FromStored(array)
	require.NoError(t, err)
	require.Equal(t, created.ID, fromArray.ID)
	require.Equal(t, task.PriorityUrgent, fromArray.Priority)
	require.Equal(t, []string{"x"}, fromArray.Tags)
	require.JSONEq(t, `{"a": [1, null]}`, string(fromArray.Metadata))
	require.True(t, created.DueAt.Equal(*fromArray.DueAt))
	require.True(t, created.CreatedAt.Equal(fromArray.CreatedAt))
	require.Nil(t, fromArray.CompletedAt)
	require.Equal(t, created.Version, fromArray.Version)
	a, err := json.Marshal(fromArray)
	require.NoError(t, err)
	o, err := json.Marshal(fromObject)
	require.NoError(t, err)
	require.JSONEq(t, string(o), string(a), "both shapes render the same task")
	for _, bad := range [][]byte{short, long, []byte(`[1, "t"]`), []byte(`[]`)} {
		_, err := task.FromStored(bad)
		require.Error(t, err, "%s", bad)
	}
}
