package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/redistest"
)

// impl is one implementation under the contract suite.
type impl interface {
	cache.Cache
	cache.Limiter
}

// implementations starts one of each: in-process, Redis, and Redis behind Resilient.
func implementations(t *testing.T) map[string]impl {
	srv := redistest.Start(t)
	r, err := cache.NewRedis(srv.URL(), "test:"+randomHex(4)+":")
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	r2, err := cache.NewRedis(srv.URL(), "test:"+randomHex(4)+":")
	require.NoError(t, err)
	t.Cleanup(func() { _ = r2.Close() })
	return map[string]impl{
		"memory":    cache.NewMemory(0, nil),
		"redis":     r,
		"resilient": cache.NewResilient(r2, cache.NewMemory(0, nil), nil, nil),
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestCacheContract(t *testing.T) {
	ctx := context.Background()
	for name, c := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("a_missing_key_misses", func(t *testing.T) {
				_, err := c.Get(ctx, "absent")
				assert.ErrorIs(t, err, cache.ErrMiss)
			})
			t.Run("a_filled_value_is_returned_byte_for_byte", func(t *testing.T) {
				val := []byte("{\"name\":\"Zoë 🚀\",\"raw\":\"\x00\xff\"}")
				require.NoError(t, c.Fill(ctx, "user:1", val, time.Minute))
				got, err := c.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.Equal(t, val, got)
				_, err = c.Get(ctx, "user:2")
				assert.ErrorIs(t, err, cache.ErrMiss, "keys are independent")
			})
			t.Run("values_expire_after_their_ttl", func(t *testing.T) {
				require.NoError(t, c.Fill(ctx, "short", []byte("v"), 100*time.Millisecond))
				_, err := c.Get(ctx, "short")
				require.NoError(t, err)
				require.Eventually(t, func() bool {
					_, err := c.Get(ctx, "short")
					return errors.Is(err, cache.ErrMiss)
				}, 3*time.Second, 20*time.Millisecond)
			})
			t.Run("invalidate_removes_and_blocks_a_racing_fill", func(t *testing.T) {
				require.NoError(t, c.Fill(ctx, "task:7", []byte("v1"), time.Minute))
				require.NoError(t, c.Invalidate(ctx, "task:7", "task:8"))
				_, err := c.Get(ctx, "task:7")
				assert.ErrorIs(t, err, cache.ErrMiss)
				// A reader that loaded v1 before the write committed now tries to put it back.
				require.NoError(t, c.Fill(ctx, "task:7", []byte("v1"), time.Minute))
				_, err = c.Get(ctx, "task:7")
				assert.ErrorIs(t, err, cache.ErrMiss, "a fill within the invalidation guard must not resurrect old data")
				// Other keys are unaffected.
				require.NoError(t, c.Fill(ctx, "task:9", []byte("v"), time.Minute))
				_, err = c.Get(ctx, "task:9")
				assert.NoError(t, err)
			})
			t.Run("invalidate_of_nothing_is_fine", func(t *testing.T) {
				assert.NoError(t, c.Invalidate(ctx))
			})
		})
	}
}

func TestLimiterContract(t *testing.T) {
	ctx := context.Background()
	for name, l := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("a_burst_up_to_the_quota_then_refusal_with_retry_after", func(t *testing.T) {
				lim := cache.Limit{Name: "t", Quota: 5, Window: 10 * time.Second}
				for i := range 5 {
					d, err := l.Allow(ctx, "burst", lim)
					require.NoError(t, err)
					require.True(t, d.Allowed, "request %d", i+1)
					assert.Equal(t, 4-i, d.Remaining, "remaining after request %d", i+1)
					assert.Zero(t, d.RetryAfter)
					// Tolerances are wide (half an interval) so a busy machine cannot fail them.
					assert.InDelta(t, float64(time.Duration(i+1)*2*time.Second), float64(d.Reset), float64(time.Second))
				}
				d, err := l.Allow(ctx, "burst", lim)
				require.NoError(t, err)
				assert.False(t, d.Allowed)
				assert.Zero(t, d.Remaining)
				// One request is refilled every Window/Quota = 2 s.
				assert.InDelta(t, float64(2*time.Second), float64(d.RetryAfter), float64(time.Second))
				assert.InDelta(t, float64(10*time.Second), float64(d.Reset), float64(time.Second))
				other, err := l.Allow(ctx, "burst-other", lim)
				require.NoError(t, err)
				assert.True(t, other.Allowed, "keys are independent")
			})
			t.Run("the_quota_refills_over_time", func(t *testing.T) {
				lim := cache.Limit{Name: "t", Quota: 2, Window: 400 * time.Millisecond}
				for range 2 {
					d, err := l.Allow(ctx, "refill", lim)
					require.NoError(t, err)
					require.True(t, d.Allowed)
				}
				d, err := l.Allow(ctx, "refill", lim)
				require.NoError(t, err)
				require.False(t, d.Allowed)
				time.Sleep(d.RetryAfter + 20*time.Millisecond)
				d, err = l.Allow(ctx, "refill", lim)
				require.NoError(t, err)
				assert.True(t, d.Allowed, "allowed again after Retry-After")
			})
			t.Run("concurrent_requests_never_exceed_the_quota", func(t *testing.T) {
				lim := cache.Limit{Name: "t", Quota: 20, Window: time.Minute}
				var allowed atomic.Int32
				var wg sync.WaitGroup
				for range 60 {
					wg.Go(func() {
						d, err := l.Allow(ctx, "race", lim)
						if assert.NoError(t, err) && d.Allowed {
							allowed.Add(1)
						}
					})
				}
				wg.Wait()
				assert.EqualValues(t, 20, allowed.Load())
			})
		})
	}
}

func TestMemoryStaysBounded(t *testing.T) {
	ctx := context.Background()
	m := cache.NewMemory(100, nil)
	lim := cache.Limit{Name: "t", Quota: 10, Window: time.Minute}
	for i := range 1000 {
		key := "k" + randomHex(4)
		require.NoError(t, m.Fill(ctx, key, []byte("v"), time.Minute))
		require.NoError(t, m.Invalidate(ctx, "inv"+randomHex(4)))
		_, err := m.Allow(ctx, key, lim)
		require.NoError(t, err)
		values, tombs, rates := m.Len()
		require.LessOrEqual(t, values, 100, "after %d inserts", i+1)
		require.LessOrEqual(t, tombs, 100, "after %d inserts", i+1)
		require.LessOrEqual(t, rates, 100, "after %d inserts", i+1)
	}
}

func TestMemorySweepsExpiredEntries(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	m := cache.NewMemory(0, func() time.Time { return now })
	lim := cache.Limit{Name: "t", Quota: 10, Window: time.Minute}
	for i := range 500 {
		require.NoError(t, m.Fill(ctx, "k"+randomHex(4), []byte("v"), time.Second))
		_, err := m.Allow(ctx, "ip"+randomHex(4), lim)
		require.NoError(t, err)
		require.NoError(t, m.Invalidate(ctx, "x"+randomHex(4)))
		_ = i
	}
	now = now.Add(2 * time.Minute)
	for range 1100 { // enough writes to trigger a sweep
		require.NoError(t, m.Invalidate(ctx))
	}
	values, tombs, rates := m.Len()
	assert.Zero(t, values)
	assert.Zero(t, tombs)
	assert.Zero(t, rates)
}

// TestResilientSurvivesARedisOutage kills redis-server under a Resilient cache and
// limiter: nothing fails, the cache is bypassed, the limiter still limits (in-process),
// one warning is logged; when Redis is back it is used again.
func TestResilientSurvivesARedisOutage(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	r, err := cache.NewRedis(srv.URL(), "outage:")
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	var logs syncBuffer
	res := cache.NewResilient(r, cache.NewMemory(0, nil), slog.New(slog.NewTextHandler(&logs, nil)), nil)

	require.NoError(t, res.Fill(ctx, "user:1", []byte("cached"), time.Minute))
	got, err := res.Get(ctx, "user:1")
	require.NoError(t, err)
	require.Equal(t, []byte("cached"), got)
	require.False(t, res.Degraded())

	srv.Kill()
	start := time.Now()
	_, err = res.Get(ctx, "user:1")
	assert.ErrorIs(t, err, cache.ErrMiss, "a dead Redis reads as a miss, not an error")
	assert.Less(t, time.Since(start), time.Second, "a dead Redis must not stall the caller")
	assert.True(t, res.Degraded())
	assert.NoError(t, res.Fill(ctx, "user:1", []byte("x"), time.Minute))
	assert.NoError(t, res.Invalidate(ctx, "user:1"))
	lim := cache.Limit{Name: "t", Quota: 3, Window: time.Minute}
	allowed := 0
	for range 5 {
		d, err := res.Allow(ctx, "client", lim)
		require.NoError(t, err)
		if d.Allowed {
			allowed++
		}
	}
	assert.Equal(t, 3, allowed, "the in-process limiter enforces the quota during the outage")
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("redis is unreachable")), "one warning per outage:\n%s", logs.Bytes())

	srv.Restart()
	require.Eventually(t, func() bool {
		_ = res.Fill(ctx, "user:2", []byte("again"), time.Minute)
		direct, err := r.Get(ctx, "user:2")
		return err == nil && string(direct) == "again"
	}, 10*time.Second, 100*time.Millisecond, "Redis is used again once it is back")
	assert.False(t, res.Degraded())
	assert.Contains(t, logs.String(), "redis is reachable again")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

type record struct {
	ID   int64
	Name string
	Tags []string
}

// TestEntityReadsThroughEveryBackend checks the record cache over each implementation:
// one load fills it, later reads are equal without loading, an invalidation makes the
// next read load again (and a racing fill of the old value is refused), and over the
// in-process cache a hit returns the decoded record it kept.
func TestEntityReadsThroughEveryBackend(t *testing.T) {
	ctx := context.Background()
	for name, c := range implementations(t) {
		for _, keep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keep_objects=%v", name, keep), func(t *testing.T) {
				e := cache.NewEntity[record](c, "rec"+randomHex(3), time.Minute, nil)
				if keep {
					e = e.KeepObjects()
				}
				var loads atomic.Int32
				version := "v1"
				load := func(_ context.Context, id int64) (record, error) {
					loads.Add(1)
					return record{ID: id, Name: version, Tags: []string{"a", "b"}}, nil
				}
				want := record{ID: 7, Name: "v1", Tags: []string{"a", "b"}}
				for range 3 {
					got, err := e.Get(ctx, 7, load)
					require.NoError(t, err)
					require.Equal(t, want, got)
				}
				require.Equal(t, int32(1), loads.Load(), "hits load nothing")

				version = "v2"
				e.Invalidate(ctx, 7)
				got, err := e.Get(ctx, 7, load)
				require.NoError(t, err)
				require.Equal(t, "v2", got.Name, "an invalidated record is loaded again")
				require.Equal(t, int32(2), loads.Load())
				got, err = e.Get(ctx, 7, load)
				require.NoError(t, err)
				require.Equal(t, "v2", got.Name)
				require.Equal(t, int32(3), loads.Load(), "within the invalidation guard nothing is cached")

				failing := func(context.Context, int64) (record, error) { return record{}, errors.New("boom") }
				_, err = e.Get(ctx, 8, failing)
				require.EqualError(t, err, "boom")
				got, err = e.Get(ctx, 8, load)
				require.NoError(t, err)
				require.Equal(t, int64(8), got.ID, "a failed load caches nothing")
			})
		}
	}

	t.Run("memory keeps the record as it is", func(t *testing.T) {
		m := cache.NewMemory(0, nil)
		e := cache.NewEntity[record](m, "rec", time.Minute, nil).KeepObjects()
		_, err := e.Get(ctx, 1, func(context.Context, int64) (record, error) { return record{ID: 1, Name: "one"}, nil })
		require.NoError(t, err)
		obj, err := m.GetObject(ctx, "rec:1")
		require.NoError(t, err)
		require.Equal(t, record{ID: 1, Name: "one"}, obj)
		_, err = m.Get(ctx, "rec:1")
		require.ErrorIs(t, err, cache.ErrMiss, "nothing was encoded")
		e.Invalidate(ctx, 1)
		_, err = m.GetObject(ctx, "rec:1")
		require.ErrorIs(t, err, cache.ErrMiss)

		plain := cache.NewEntity[record](m, "plain", time.Minute, nil)
		_, err = plain.Get(ctx, 2, func(context.Context, int64) (record, error) { return record{ID: 2}, nil })
		require.NoError(t, err)
		b, err := m.Get(ctx, "plain:2")
		require.NoError(t, err)
		require.JSONEq(t, `{"ID":2,"Name":"","Tags":null}`, string(b), "without KeepObjects the record is stored as JSON")
	})
}
