package cache_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/cache"
)

// bus delivers every payload to every process, asynchronously, like NOTIFY.
type bus struct {
	mu    sync.Mutex
	procs []*cache.Broadcast
	sent  []string
	delay time.Duration
}

func (b *bus) publish(_ context.Context, payload string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, payload)
	for _, p := range b.procs {
		go func() {
			time.Sleep(b.delay)
			p.Receive(payload)
		}()
	}
	return int64(len(b.procs)), nil
}

func TestBroadcastInvalidateReturnsAfterEveryProcessDroppedTheKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := &bus{delay: 20 * time.Millisecond}
	listening := func() bool { return true }
	procA := cache.NewBroadcast(cache.NewMemory(0, nil), b.publish, listening, nil)
	procB := cache.NewBroadcast(cache.NewMemory(0, nil), b.publish, listening, nil)
	b.procs = []*cache.Broadcast{procA, procB}

	require.NoError(t, procB.Fill(ctx, "user:1", []byte("admin"), time.Hour))
	require.NoError(t, procA.Invalidate(ctx, "user:1"))
	_, err := procB.Get(ctx, "user:1")
	require.ErrorIs(t, err, cache.ErrMiss, "B dropped the key before A's Invalidate returned")

	// A lost connection: whatever was missed, B forgets everything.
	require.NoError(t, procB.Fill(ctx, "task:7", []byte("x"), time.Hour))
	procB.Resync()
	_, err = procB.Get(ctx, "task:7")
	require.ErrorIs(t, err, cache.ErrMiss)
}

func TestBroadcastBatchesKeysUnderThePayloadLimit(t *testing.T) {
	t.Parallel()
	b := &bus{}
	proc := cache.NewBroadcast(cache.NewMemory(0, nil), b.publish, nil, nil)
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = "task:" + strings.Repeat("9", 10)
	}
	require.NoError(t, proc.Invalidate(context.Background(), keys...))
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Greater(t, len(b.sent), 1)
	total := 0
	for _, p := range b.sent {
		require.LessOrEqual(t, len(p), 8000, "PostgreSQL refuses payloads of 8000 bytes or more")
		total += strings.Count(p, "task:")
	}
	require.Equal(t, len(keys), total)
}
