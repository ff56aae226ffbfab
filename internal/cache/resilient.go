package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"enterprise-automation/internal/metrics"
)

// Resilient uses Redis while it answers and degrades without failing anyone while it
// does not: cache reads miss and writes are skipped (the database answers instead), and
// the limiter falls back to an in-process one (limits then count per process). After a
// failure Redis is left alone for RetryAfter, then tried again; when it answers again,
// every cached value is flushed, since invalidations may have been missed meanwhile.
type Resilient struct {
	redis   *Redis
	local   *Memory
	log     *slog.Logger
	metrics *metrics.Metrics
	now     func() time.Time

	mu        sync.Mutex
	down      bool
	downUntil time.Time
}

// redisRetryAfter is how long Redis is bypassed after a failure.
const redisRetryAfter = time.Second

// NewResilient wraps r, with local as the fallback limiter.
func NewResilient(r *Redis, local *Memory, log *slog.Logger, m *metrics.Metrics) *Resilient {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resilient{redis: r, local: local, log: log, metrics: m, now: time.Now}
}

// Degraded reports whether Redis is currently bypassed.
func (r *Resilient) Degraded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// usable reports whether Redis should be tried now.
func (r *Resilient) usable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.down || !r.now().Before(r.downUntil)
}

// result records the outcome of a Redis call; it returns whether err was a Redis failure.
func (r *Resilient) result(ctx context.Context, op string, err error) bool {
	if err != nil && !errors.Is(err, ErrMiss) {
		if ctx.Err() != nil {
			return true // the caller gave up; says nothing about Redis
		}
		r.mu.Lock()
		first := !r.down
		r.down, r.downUntil = true, r.now().Add(redisRetryAfter)
		r.mu.Unlock()
		r.metrics.RedisFallback(op)
		if first {
			r.log.Warn("redis is unreachable: cache bypassed, rate limits in-process until it is back", "error", err)
		}
		return true
	}
	r.mu.Lock()
	recovered := r.down
	r.down = false
	r.mu.Unlock()
	if recovered {
		r.log.Info("redis is reachable again; flushing cached values written before the outage")
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.redis.FlushValues(ctx); err != nil {
				r.log.Warn("flushing the cache after a redis outage", "error", err)
			}
		}()
	}
	return false
}

// Get implements Cache; while Redis is unreachable every read misses.
func (r *Resilient) Get(ctx context.Context, key string) ([]byte, error) {
	if !r.usable() {
		r.metrics.RedisFallback("get")
		return nil, ErrMiss
	}
	b, err := r.redis.Get(ctx, key)
	if r.result(ctx, "get", err) || err != nil {
		return nil, ErrMiss
	}
	return b, nil
}

// Fill implements Cache; while Redis is unreachable nothing is stored.
func (r *Resilient) Fill(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if !r.usable() {
		r.metrics.RedisFallback("fill")
		return nil
	}
	r.result(ctx, "fill", r.redis.Fill(ctx, key, val, ttl))
	return nil
}

// Invalidate implements Cache. A failed invalidation is made good by the flush that
// follows Redis's return (and bounded by the entries' TTL meanwhile).
func (r *Resilient) Invalidate(ctx context.Context, keys ...string) error {
	if !r.usable() {
		r.metrics.RedisFallback("invalidate")
		return nil
	}
	r.result(ctx, "invalidate", r.redis.Invalidate(ctx, keys...))
	return nil
}

// Allow implements Limiter, in-process while Redis is unreachable.
func (r *Resilient) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	if r.usable() {
		d, err := r.redis.Allow(ctx, key, l)
		if !r.result(ctx, "rate_limit", err) {
			return d, nil
		}
	} else {
		r.metrics.RedisFallback("rate_limit")
	}
	return r.local.Allow(ctx, key, l)
}
