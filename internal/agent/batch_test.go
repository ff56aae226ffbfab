package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
)

// TestBatcherGroupsCallsThatArriveDuringAFlush holds the first statement until every
// other caller has queued, then checks that they went out together, each caller got its
// own run, runs missing from the result read as ended, and nobody was left waiting.
func TestBatcherGroupsCallsThatArriveDuringAFlush(t *testing.T) {
	const callers = 300 // more than maxBatch: the queue is sent in two batches
	release := make(chan struct{})
	var (
		mu      sync.Mutex
		batches [][]int64
		first   atomic.Bool
	)
	b := &batcher[int64, *db.AgentRun]{
		flush: func(ctx context.Context, ids []int64) ([]*db.AgentRun, error) {
			if first.CompareAndSwap(false, true) {
				<-release
			}
			mu.Lock()
			batches = append(batches, append([]int64(nil), ids...))
			mu.Unlock()
			var rows []db.AgentRun
			for i := len(ids) - 1; i >= 0; i-- { // in another order than asked
				if id := ids[i]; id%10 != 0 { // every tenth run "had already ended"
					rows = append(rows, db.AgentRun{ID: id, Input: "run"})
				}
			}
			return inOrder(ids, rows, func(r db.AgentRun) db.AgentRun { return r }), nil
		},
	}

	var wg sync.WaitGroup
	results := make([]*db.AgentRun, callers+1)
	call := func(id int64) {
		defer wg.Done()
		run, err := b.do(context.Background(), id)
		if err != nil {
			t.Errorf("run %d: %v", id, err)
		}
		results[id] = run
	}
	wg.Add(1)
	go call(1)
	require.Eventually(t, first.Load, 5*time.Second, time.Millisecond, "the first call is not flushed at once")
	for id := int64(2); id <= callers; id++ {
		wg.Add(1)
		go call(id)
	}
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.pending) == callers-1
	}, 5*time.Second, time.Millisecond, "the other callers did not queue behind the flush in flight")
	close(release)
	wg.Wait()

	require.Len(t, batches, 3, "one call alone, then the queue in batches of at most maxBatch: %v", len(batches))
	require.Equal(t, []int64{1}, batches[0])
	require.Len(t, batches[1], maxBatch)
	require.Len(t, batches[2], callers-1-maxBatch)
	seen := map[int64]bool{}
	for _, batch := range batches {
		for _, id := range batch {
			require.False(t, seen[id], "run %d sent twice", id)
			seen[id] = true
		}
	}
	require.Len(t, seen, callers)
	for id := int64(1); id <= callers; id++ {
		if id%10 == 0 {
			require.Nil(t, results[id], "run %d had ended", id)
			continue
		}
		require.NotNil(t, results[id], "run %d", id)
		require.Equal(t, id, results[id].ID, "a caller got another caller's run")
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	require.False(t, b.busy, "the batcher stays busy after the last batch")
	require.Empty(t, b.pending)
}

// TestBatcherReportsTheStatementsErrorToEveryCaller checks that a failed statement fails
// every call of its batch, and that the next call goes out normally.
func TestBatcherReportsTheStatementsErrorToEveryCaller(t *testing.T) {
	boom := errors.New("database unavailable")
	fail := atomic.Bool{}
	fail.Store(true)
	b := &batcher[int64, *db.AgentRun]{
		flush: func(ctx context.Context, ids []int64) ([]*db.AgentRun, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("a batch statement runs without a deadline")
			}
			if ctx.Err() != nil {
				t.Error("a caller's cancelled context reached the statement")
			}
			if fail.Load() {
				return nil, boom
			}
			if ids[0] == 9 {
				return nil, nil // a flush that loses results is an error, not a nil run
			}
			return []*db.AgentRun{{ID: ids[0]}}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a caller's cancelled context does not abandon the statement it joined
	run, err := b.do(ctx, 7)
	require.ErrorIs(t, err, boom)
	require.Nil(t, run)

	fail.Store(false)
	run, err = b.do(context.Background(), 8)
	require.NoError(t, err)
	require.Equal(t, int64(8), run.ID)

	_, err = b.do(context.Background(), 9)
	require.ErrorContains(t, err, "gave 0 results")
}
