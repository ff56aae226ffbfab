package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
)

type testBundle struct {
	store *store.DB
	svc   *audit.Service
	ctx   context.Context
}

func setup(t *testing.T) testBundle {
	t.Helper()
	s := store.New(dbtest.Pool(t))
	return testBundle{store: s, svc: audit.NewService(s, []byte("audit-test-secret-0123456789abcdef")), ctx: context.Background()}
}

// record appends an event as a request of user 1 would.
func record(t *testing.T, b testBundle, action string, id int64) {
	t.Helper()
	ctx := audit.WithMeta(b.ctx, audit.Meta{Action: action, Actor: audit.RequestActor(1, 0), RequestID: "req", IP: "192.0.2.1"})
	require.NoError(t, audit.Record(ctx, b.store, audit.Entry{Resource: "task", ID: &id}))
}

func TestAuditEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	record(t, b, "createTask", 1)

	_, err := b.store.Pool().Exec(b.ctx, "UPDATE audit_events SET action = 'forged'")
	require.ErrorContains(t, err, "append-only")
	_, err = b.store.Pool().Exec(b.ctx, "DELETE FROM audit_events")
	require.ErrorContains(t, err, "append-only")
	_, err = b.store.Pool().Exec(b.ctx, "TRUNCATE audit_events")
	require.ErrorContains(t, err, "append-only")
	// Even in a transaction that set the retention flag, UPDATE stays refused.
	tx, err := b.store.Pool().Begin(b.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, "SELECT set_config('audit.retention', 'on', true)")
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, "UPDATE audit_events SET action = 'forged'")
	require.ErrorContains(t, err, "append-only")
	require.NoError(t, tx.Rollback(b.ctx))

	pg, err := b.svc.List(b.ctx, audit.Filter{}, 10, "")
	require.NoError(t, err)
	require.Len(t, pg.Items, 1)
	require.Equal(t, "createTask", pg.Items[0].Action)
}

func TestRecordWithoutMetaWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, audit.Record(b.ctx, b.store, audit.Entry{Resource: "task"}))
	pg, err := b.svc.List(b.ctx, audit.Filter{}, 10, "")
	require.NoError(t, err)
	require.Empty(t, pg.Items)
}

func TestRetentionDeletesOldEventsAndRecordsItself(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The trigger refuses UPDATE, so old events are inserted old.
	for _, age := range []time.Duration{400 * 24 * time.Hour, 366 * 24 * time.Hour} {
		_, err := b.store.Pool().Exec(b.ctx, `INSERT INTO audit_events (occurred_at, actor_type, action, resource_type)
			VALUES ($1, 'user', 'createTask', 'task')`, time.Now().Add(-age))
		require.NoError(t, err)
	}
	record(t, b, "updateTask", 5)

	n, err := b.svc.Retain(b.ctx, 365*24*time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	pg, err := b.svc.List(b.ctx, audit.Filter{}, 10, "")
	require.NoError(t, err)
	require.Len(t, pg.Items, 2)
	ev := pg.Items[0]
	require.Equal(t, audit.RetentionAction, ev.Action)
	require.Equal(t, audit.ActorSystem, ev.Actor.Type)
	require.JSONEq(t, `{"deleted": 2}`, string(ev.Changes))
	require.Equal(t, "updateTask", pg.Items[1].Action)

	// Outside the retention path, deleting stays refused.
	_, err = b.store.AuditEventDeleteBefore(b.ctx, time.Now().Add(time.Hour))
	require.Error(t, err)
}

func TestListPagesNewestFirstWithSignedCursors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := int64(1); i <= 5; i++ {
		record(t, b, "createTask", i)
	}
	p1, err := b.svc.List(b.ctx, audit.Filter{}, 2, "")
	require.NoError(t, err)
	require.Equal(t, []int64{5, 4}, resourceIDs(p1.Items))
	require.NotEmpty(t, p1.NextCursor)

	// Events appended meanwhile do not shift the pages.
	record(t, b, "createTask", 6)
	p2, err := b.svc.List(b.ctx, audit.Filter{}, 2, p1.NextCursor)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 2}, resourceIDs(p2.Items))
	p3, err := b.svc.List(b.ctx, audit.Filter{}, 2, p2.NextCursor)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, resourceIDs(p3.Items))
	require.Empty(t, p3.NextCursor)

	for _, bad := range []string{"x", "!!!", strings.Repeat("A", 32), tamper(p1.NextCursor)} {
		_, err := b.svc.List(b.ctx, audit.Filter{}, 2, bad)
		require.True(t, apperr.Is(err, apperr.Malformed), "cursor %q: %v", bad, err)
	}
	// A cursor signed with another secret is refused too.
	other := audit.NewService(b.store, []byte("another-secret-0123456789abcdefgh"))
	_, err = other.List(b.ctx, audit.Filter{}, 2, p1.NextCursor)
	require.True(t, apperr.Is(err, apperr.Malformed))

	var streamed []int64
	require.NoError(t, b.svc.Stream(b.ctx, audit.Filter{Action: ptr("createTask")}, func(e audit.Event) error {
		streamed = append(streamed, *e.ResourceID)
		return nil
	}))
	require.Equal(t, []int64{6, 5, 4, 3, 2, 1}, streamed)
}

func TestChangesOmitUnchangedFields(t *testing.T) {
	t.Parallel()
	c := audit.Changes{}
	c.Set("title", "a", "b")
	c.Set("priority", "high", "high")
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"title": {"from": "a", "to": "b"}}`, string(b))
}

func tamper(c string) string {
	b := []byte(c)
	if b[3] == 'A' {
		b[3] = 'B'
	} else {
		b[3] = 'A'
	}
	return string(b)
}

func resourceIDs(evs []audit.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = *e.ResourceID
	}
	return out
}

func ptr[T any](v T) *T { return &v }
