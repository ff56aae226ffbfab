// Package cache holds the shared-state building blocks of the server: a byte cache with
// race-safe invalidation and a rate limiter. Each has an in-process implementation
// (Memory) and a Redis one (Redis); Resilient puts Redis first and degrades to
// in-process behaviour while Redis is unreachable. One contract test suite runs against
// every implementation. Entity reads records through a Cache; Bounded is a plain bounded
// in-process map for values that are costly to compute and need no invalidation.
package cache

import (
	"context"
	"errors"
	"time"
)

// ErrMiss is returned by Cache.Get when the key holds no value.
var ErrMiss = errors.New("cache: miss")

// Cache stores byte values under string keys for a bounded time.
//
// Invalidate leaves a short-lived tombstone, and Fill does nothing while one exists:
// a reader that loaded a value before a concurrent write committed cannot put the old
// value back after the writer invalidated it.
type Cache interface {
	// Get returns the value under key, or ErrMiss.
	Get(ctx context.Context, key string) ([]byte, error)
	// Fill stores val under key for ttl unless key was invalidated within the last
	// InvalidationGuard.
	Fill(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Invalidate removes keys and blocks their Fill for InvalidationGuard.
	Invalidate(ctx context.Context, keys ...string) error
}

// InvalidationGuard is how long an invalidated key refuses fills: far longer than any
// database read that could have started before the write.
const InvalidationGuard = 5 * time.Second

// Limit is a rate-limit policy: Quota requests per Window, refilled continuously.
type Limit struct {
	Name   string // names the policy in the RateLimit headers
	Quota  int
	Window time.Duration
}

// Decision is the outcome of one rate-limited request.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// Reset is when the quota is whole again.
	Reset time.Duration
	// RetryAfter is how long to wait before the next request can be allowed (0 when allowed).
	RetryAfter time.Duration
}

// Limiter decides whether a request under key may proceed under limit.
//
// The algorithm is GCRA (the generic cell rate algorithm): a burst of up to Quota
// requests, then one request per Window/Quota. It keeps one timestamp per key.
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Decision, error)
}

// gcra applies one request at now to the theoretical arrival time tat (zero for a new
// key); it returns the decision and the new tat to store when allowed.
func gcra(now, tat time.Time, l Limit) (Decision, time.Time) {
	interval := l.Window / time.Duration(l.Quota)
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	allowAt := next.Add(-l.Window)
	if now.Before(allowAt) {
		return Decision{Allowed: false, Remaining: 0, Reset: tat.Sub(now), RetryAfter: allowAt.Sub(now)}, tat
	}
	used := next.Sub(now)
	return Decision{Allowed: true, Remaining: int((l.Window - used) / interval), Reset: used}, next
}
