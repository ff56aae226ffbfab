package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// recordingQueue is the Queue of these tests: it records the runs enqueued with each
// transaction.
type recordingQueue struct {
	mu      sync.Mutex
	batches [][]int64
	origins []context.Context // each enqueued run's origin, in enqueued order
	fail    error             // returned by every EnqueueRuns when set
	calls   int
}

func (q *recordingQueue) EnqueueRuns(_ context.Context, dbq db.Querier, jobs []NewJob) error {
	ids := make([]int64, len(jobs))
	origins := make([]context.Context, len(jobs))
	for i, j := range jobs {
		ids[i], origins[i] = j.RunID, j.Origin
	}
	if _, ok := store.Tx(dbq); !ok {
		return fmt.Errorf("enqueued outside the run's transaction")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.fail != nil {
		return q.fail
	}
	q.batches = append(q.batches, slices.Clone(ids))
	q.origins = append(q.origins, origins...)
	return nil
}

func (q *recordingQueue) EnqueueNext(context.Context, db.Querier, int64) (int64, error) {
	return 0, fmt.Errorf("not in these tests")
}

func (q *recordingQueue) ScheduleExpiry(context.Context, db.Querier, int64, time.Time) error {
	return fmt.Errorf("not in these tests")
}

func (q *recordingQueue) CancelJob(context.Context, db.Querier, int64) (bool, error) {
	return false, nil
}

func (q *recordingQueue) enqueued() []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Concat(q.batches...)
}

func newTestService(t *testing.T) (*Service, *store.DB, *recordingQueue, auth.Principal, Agent) {
	t.Helper()
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 8)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := store.New(pool)
	u, err := s.UserCreate(ctx, db.UserCreateParams{Email: "owner@example.com", Name: "Owner", PasswordHash: "x", IsAdmin: true})
	require.NoError(t, err)
	q := &recordingQueue{}
	svc := NewService(s, task.NewService(s), q, "gpt-4o")
	actor := auth.Principal{UserID: u.ID, Email: u.Email, IsAdmin: true}
	a, err := svc.Create(ctx, actor, CreateParams{Name: "agent"})
	require.NoError(t, err)
	return svc, s, q, actor, a
}

// TestCreateRunsAloneWhenTheirBatchFails puts a run whose agent no longer exists in a
// batch with two good ones: the two are created with their events and jobs, and only the
// bad one fails, with its own error.
func TestCreateRunsAloneWhenTheirBatchFails(t *testing.T) {
	ctx := context.Background()
	svc, s, q, actor, a := newTestService(t)
	rs := []newRun{
		{agentID: a.ID, input: "first", model: "m", metadata: []byte(`{"n":1}`), createdBy: actor.UserID},
		{agentID: a.ID + 1000, input: "orphan", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
		{agentID: a.ID, input: "third", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
	}
	out, err := svc.createRuns(ctx, rs)
	require.NoError(t, err)
	require.Len(t, out, 3)
	require.NoError(t, out[0].err)
	require.NoError(t, out[2].err)
	require.Error(t, out[1].err)
	require.False(t, apperr.Is(out[1].err, apperr.Internal), "a missing agent is the caller's problem: %v", out[1].err)
	require.Equal(t, "first", out[0].run.Input)
	require.JSONEq(t, `{"n":1}`, string(out[0].run.Metadata))
	require.Equal(t, "third", out[2].run.Input)
	require.Equal(t, RunQueued, out[2].run.Status)
	require.Equal(t, []int64{out[0].run.ID, out[2].run.ID}, q.enqueued(), "only the created runs have jobs")

	for _, r := range []Run{out[0].run, out[2].run} {
		evs, err := s.AgentRunEventsAfter(ctx, db.AgentRunEventsAfterParams{RunID: r.ID, After: 0})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, int64(1), evs[0].Seq)
		require.Equal(t, EventStatus, evs[0].Type)
		require.JSONEq(t, fmt.Sprintf(`{"type":"run.status","run_id":%d,"status":"queued","attempt":0}`, r.ID), string(evs[0].Data))
	}
}

// TestCreateRunsFailTogetherWhenTheDatabaseFails checks that a failure that is nobody's
// data (here the queue's insert failing as an unavailable database would) fails the whole
// batch at once, without trying each run again.
func TestCreateRunsFailTogetherWhenTheDatabaseFails(t *testing.T) {
	ctx := context.Background()
	svc, s, q, actor, a := newTestService(t)
	q.fail = apperr.E(apperr.Unavailable, "the database is unavailable")
	rs := []newRun{
		{agentID: a.ID, input: "one", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
		{agentID: a.ID, input: "two", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
		{agentID: a.ID, input: "three", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
	}
	_, err := svc.createRuns(ctx, rs)
	require.True(t, apperr.Is(err, apperr.Unavailable), "%v", err)
	require.Equal(t, 1, q.calls, "the batch was tried once, not again run by run")
	runs, err := s.AgentRunCount(ctx, db.AgentRunCountParams{AgentID: &a.ID})
	require.NoError(t, err)
	require.Zero(t, runs, "nothing of the failed transaction was kept")
}

// TestConcurrentCreatesShareTransactions creates runs from many goroutines: each caller
// gets its own run (its input and task), every run has its job, and fewer transactions
// than runs were needed.
func TestConcurrentCreatesShareTransactions(t *testing.T) {
	ctx := context.Background()
	svc, s, q, actor, a := newTestService(t)
	tk, err := s.TaskCreate(ctx, db.TaskCreateParams{Title: "t", Priority: db.TaskPriorityMedium,
		CreatedBy: &actor.UserID, Tags: []string{}, Metadata: []byte(`{}`)})
	require.NoError(t, err)
	const n = 200
	runs := make([]Run, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := RunParams{Input: fmt.Sprintf("input %d", i)}
			if i%2 == 0 {
				p.TaskID = &tk.ID
			}
			r, err := svc.CreateRun(ctx, actor, a.ID, p)
			if err != nil {
				t.Errorf("run %d: %v", i, err)
			}
			runs[i] = r
		})
	}
	wg.Wait()
	ids := map[int64]bool{}
	for i, r := range runs {
		require.Equal(t, fmt.Sprintf("input %d", i), r.Input, "caller %d got another caller's run", i)
		if i%2 == 0 {
			require.Equal(t, &tk.ID, r.TaskID)
		} else {
			require.Nil(t, r.TaskID)
		}
		ids[r.ID] = true
	}
	require.Len(t, ids, n)
	enq := q.enqueued()
	require.Len(t, enq, n)
	for _, id := range enq {
		require.True(t, ids[id], "job for unknown run %d", id)
	}
	q.mu.Lock()
	txs := len(q.batches)
	q.mu.Unlock()
	require.Less(t, txs, n, "no two creations shared a transaction")
}
