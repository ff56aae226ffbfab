package webhook_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/webhook"
)

// countRows returns the events, undispatched events and deliveries stored.
func countRows(t *testing.T, b testBundle) (events, undispatched, deliveries int) {
	t.Helper()
	require.NoError(t, b.store.Pool().QueryRow(b.ctx, `SELECT (SELECT count(*) FROM webhook_events),
		(SELECT count(*) FROM webhook_events WHERE dispatched_at IS NULL), (SELECT count(*) FROM webhook_deliveries)`).
		Scan(&events, &undispatched, &deliveries))
	return
}

// subscribe creates an endpoint receiving ev at each path of a closed local port.
func subscribe(t *testing.T, b testBundle, ev webhook.EventType, paths ...string) {
	t.Helper()
	for _, path := range paths {
		_, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9" + path, Events: []webhook.EventType{ev}})
		require.NoError(t, err)
	}
}

// TestDispatchAfterTheRecordingProcessDied: events committed by a process that never
// dispatched them (it died right after its commit) are fanned out by the dispatcher of
// another process, which learns of them by polling; a rolled back change leaves nothing
// to dispatch.
func TestDispatchAfterTheRecordingProcessDied(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	subscribe(t, b, webhook.TaskCreated, "/a", "/b")
	_, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9/c", Events: []webhook.EventType{webhook.UserCreated}})
	require.NoError(t, err)

	// The "dead" process: it records events and commits, and never dispatches.
	dead := webhook.NewService(b.store, webhook.Options{Guard: b.guard})
	for range 3 {
		require.NoError(t, b.store.InTx(b.ctx, func(q db.Querier) error {
			return dead.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": 1})
		}))
	}
	err = b.store.InTx(b.ctx, func(q db.Querier) error {
		require.NoError(t, dead.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": 2}))
		return errors.New("rolled back")
	})
	require.Error(t, err)
	e, u, d := countRows(t, b)
	require.Equal(t, []int{3, 3, 0}, []int{e, u, d}, "committed events wait in the outbox")

	// Another process's dispatcher was told of none of them; its poll finds them.
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.svc.RunDispatcher(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		_, u, d := countRows(t, b)
		return u == 0 && d == 6
	}, 2*webhook.DispatchPoll+5*time.Second, 20*time.Millisecond, "two deliveries for each committed event, none for the other endpoint")

	// Emitted through the dispatcher's own process, an event is fanned out at once.
	require.NoError(t, b.store.InTx(b.ctx, func(q db.Querier) error {
		return b.svc.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": 3})
	}))
	require.Eventually(t, func() bool {
		_, u, d := countRows(t, b)
		return u == 0 && d == 8
	}, webhook.DispatchPoll/2, 5*time.Millisecond, "woken by Emit, without waiting for the poll")
}

// TestDispatchersShareWithoutDoubleFanOut: several dispatchers racing over the same
// outbox write each event's deliveries exactly once.
func TestDispatchersShareWithoutDoubleFanOut(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	subscribe(t, b, webhook.Wildcard, "/a", "/b", "/c")
	const events = 1200 // more than two batches
	_, err := b.store.Pool().Exec(b.ctx, `INSERT INTO webhook_events (msg_id, type, body)
		SELECT 'msg_' || g, 'task.created', '{}' FROM generate_series(1, $1) g`, events)
	require.NoError(t, err)

	dispatchers := make([]*webhook.Service, 4)
	for i := range dispatchers {
		dispatchers[i] = webhook.NewService(b.store, webhook.Options{Guard: b.guard})
	}
	var wg sync.WaitGroup
	claimed := make([]int, len(dispatchers))
	for i, svc := range dispatchers {
		wg.Go(func() {
			for {
				n, err := svc.Dispatch(b.ctx)
				if !assertNoError(t, err) || n == 0 {
					return
				}
				claimed[i] += n
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range claimed {
		total += n
	}
	require.Equal(t, events, total, "each event claimed once")
	var deliveries, distinct int
	require.NoError(t, b.store.Pool().QueryRow(b.ctx,
		"SELECT count(*), count(DISTINCT (event_id, endpoint_id)) FROM webhook_deliveries").Scan(&deliveries, &distinct))
	require.Equal(t, 3*events, deliveries)
	require.Equal(t, deliveries, distinct, "no event fanned out twice")
	_, u, _ := countRows(t, b)
	require.Zero(t, u)
}

// assertNoError reports err from a goroutine other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("dispatch: %v", err)
		return false
	}
	return true
}

// TestPaceYieldsWhileTheForegroundIsBusy: attempts start at BusyRate while the API is
// busy, and without waiting when it is not.
func TestPaceYieldsWhileTheForegroundIsBusy(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	var busy atomic.Bool
	d := webhook.NewDeliverer(b.store, webhook.DelivererOptions{Busy: busy.Load, BusyRate: 1})
	for range 100 {
		require.NoError(t, d.Pace(b.ctx), "not busy: never waits")
	}
	busy.Store(true)
	require.NoError(t, d.Pace(b.ctx), "the first attempt's turn is now")
	ctx, cancel := context.WithTimeout(b.ctx, 100*time.Millisecond)
	defer cancel()
	require.Error(t, d.Pace(ctx), "the next one waits a second at one per second")
	busy.Store(false)
	require.NoError(t, d.Pace(b.ctx), "and goes at once when the load drops")

	// An attempt waiting for a far turn goes as soon as the load drops.
	slow := webhook.NewDeliverer(b.store, webhook.DelivererOptions{Busy: busy.Load, BusyRate: 0.001})
	busy.Store(true)
	require.NoError(t, slow.Pace(b.ctx))
	done := make(chan error, 1)
	go func() { done <- slow.Pace(b.ctx) }()
	select {
	case err := <-done:
		t.Fatalf("the second attempt did not wait for its turn (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	busy.Store(false)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting attempt kept its turn, 1,000 seconds away, after the load dropped")
	}
}

// TestFanOutYieldsWhileTheForegroundIsBusy: while the API is busy, the dispatcher claims
// small batches and writes at most BusyRate deliveries per second, leaving the other
// events in the outbox; when the load drops it fans the backlog out at once.
func TestFanOutYieldsWhileTheForegroundIsBusy(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	subscribe(t, b, webhook.TaskCreated, "/a", "/b")
	const events = 200
	_, err := b.store.Pool().Exec(b.ctx, `INSERT INTO webhook_events (msg_id, type, body)
		SELECT 'msg_' || g, 'task.created', '{}' FROM generate_series(1, $1) g`, events)
	require.NoError(t, err)

	var busy atomic.Bool
	busy.Store(true)
	const rate = 20 // deliveries per second
	svc := webhook.NewService(b.store, webhook.Options{Guard: b.guard, Busy: busy.Load, BusyRate: rate})
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); svc.RunDispatcher(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	require.Eventually(t, func() bool { _, _, d := countRows(t, b); return d > 0 }, 10*time.Second, 10*time.Millisecond,
		"busy or not, the dispatcher goes on")
	time.Sleep(300 * time.Millisecond)
	_, undispatched, deliveries := countRows(t, b)
	// Each claim of BusyBatch events (2 deliveries each) is followed by a pause of
	// 2·BusyBatch/rate seconds: by now at most one claim, plus one per pause elapsed.
	claims := 1 + int(time.Since(start).Seconds()*rate/(2*webhook.BusyBatch))
	require.LessOrEqual(t, deliveries, 2*webhook.BusyBatch*claims, "busy: deliveries written at BusyRate")
	require.Equal(t, events-deliveries/2, undispatched, "the rest wait in the outbox")

	busy.Store(false)
	require.Eventually(t, func() bool {
		_, u, d := countRows(t, b)
		return u == 0 && d == 2*events
	}, 10*time.Second, 10*time.Millisecond, "the load dropped: the backlog is fanned out without waiting for the pause to end")
}

// TestDispatchSkipsEventsFannedOutAlready: during a rolling upgrade from 2.0, whose
// processes write an event's deliveries in the change's own transaction, the dispatcher
// finds such events undispatched; it writes no second delivery for them and still fans
// out the other events of its batch.
func TestDispatchSkipsEventsFannedOutAlready(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	subscribe(t, b, webhook.TaskCreated, "/a", "/b")
	for i := range 3 {
		require.NoError(t, b.store.InTx(b.ctx, func(q db.Querier) error {
			return b.svc.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": i})
		}))
	}
	// The first event's deliveries, as a 2.0 process writes them with the change.
	_, err := b.store.Pool().Exec(b.ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id)
		SELECT e.id, (SELECT min(id) FROM webhook_events) FROM webhook_endpoints e`)
	require.NoError(t, err)

	n, err := b.svc.Dispatch(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n, "the batch claims every event")
	e, u, d := countRows(t, b)
	require.Equal(t, []int{3, 0, 6}, []int{e, u, d}, "every event dispatched, each with one delivery per endpoint")
}
