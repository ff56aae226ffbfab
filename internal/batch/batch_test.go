package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// row stands for what a flush writes and reads back.
type row struct{ ID int64 }

// TestGroupSendsCallsThatArriveDuringAFlushTogether holds the first flush until every
// other caller has queued, then checks that they went out together in batches of at most
// maxSize, each caller got its own result (nil ones included), and nobody was left
// waiting.
func TestGroupSendsCallsThatArriveDuringAFlushTogether(t *testing.T) {
	t.Parallel()
	const callers = 300 // more than maxSize: the queue is sent in two batches
	release := make(chan struct{})
	var (
		mu      sync.Mutex
		batches [][]int64
		first   atomic.Bool
	)
	b := New(func(ctx context.Context, ids []int64) ([]*row, error) {
		if first.CompareAndSwap(false, true) {
			<-release
		}
		mu.Lock()
		batches = append(batches, append([]int64(nil), ids...))
		mu.Unlock()
		out := make([]*row, len(ids))
		for i, id := range ids {
			if id%10 != 0 { // every tenth call has no result
				out[i] = &row{ID: id}
			}
		}
		return out, nil
	})

	var wg sync.WaitGroup
	results := make([]*row, callers+1)
	call := func(id int64) {
		defer wg.Done()
		r, err := b.Do(context.Background(), id)
		if err != nil {
			t.Errorf("call %d: %v", id, err)
		}
		results[id] = r
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

	require.Len(t, batches, 3, "one call alone, then the queue in batches of at most maxSize: %v", len(batches))
	require.Equal(t, []int64{1}, batches[0])
	require.Len(t, batches[1], maxSize)
	require.Len(t, batches[2], callers-1-maxSize)
	seen := map[int64]bool{}
	for _, batch := range batches {
		for _, id := range batch {
			require.False(t, seen[id], "call %d sent twice", id)
			seen[id] = true
		}
	}
	require.Len(t, seen, callers)
	for id := int64(1); id <= callers; id++ {
		if id%10 == 0 {
			require.Nil(t, results[id], "call %d has no result", id)
			continue
		}
		require.NotNil(t, results[id], "call %d", id)
		require.Equal(t, id, results[id].ID, "a caller got another caller's result")
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	require.False(t, b.busy, "the group stays busy after the last batch")
	require.Empty(t, b.pending)
}

// TestGroupReportsTheFlushErrorToEveryCaller checks that a failed flush fails every call
// of its batch, that the flush runs with a deadline and without the caller's
// cancellation, that a flush losing results is an error, and that the next call goes out
// normally.
func TestGroupReportsTheFlushErrorToEveryCaller(t *testing.T) {
	t.Parallel()
	boom := errors.New("database unavailable")
	fail := atomic.Bool{}
	fail.Store(true)
	b := New(func(ctx context.Context, ids []int64) ([]*row, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a flush runs without a deadline")
		}
		if ctx.Err() != nil {
			t.Error("a caller's cancelled context reached the flush")
		}
		if fail.Load() {
			return nil, boom
		}
		if ids[0] == 9 {
			return nil, nil // a flush that loses results is an error, not a nil result
		}
		return []*row{{ID: ids[0]}}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a caller's cancelled context does not abandon the flush it joined
	r, err := b.Do(ctx, 7)
	require.ErrorIs(t, err, boom)
	require.Nil(t, r)

	fail.Store(false)
	r, err = b.Do(context.Background(), 8)
	require.NoError(t, err)
	require.Equal(t, int64(8), r.ID)

	_, err = b.Do(context.Background(), 9)
	require.ErrorContains(t, err, "gave 0 results")
}
