package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Cache and Limiter shared by every server process through one Redis.
// Keys live under a prefix; the limiter reads Redis's clock, so server clocks don't matter.
type Redis struct {
	client *redis.Client
	prefix string
}

// RedisTimeout bounds every Redis call: a slow or unreachable Redis must not slow
// requests down, since each caller has an in-process fallback.
const RedisTimeout = 250 * time.Millisecond

// NewRedis connects to the Redis at url (redis:// or rediss://). It does not dial: the
// first command does. Commands are not retried; Resilient decides what a failure means.
func NewRedis(url, prefix string) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: REDIS_URL: %w", err)
	}
	opts.MaxRetries = -1 // no retries
	opts.DialTimeout = RedisTimeout
	opts.DialerRetries = 1
	opts.DialerRetryTimeout = 10 * time.Millisecond
	opts.ReadTimeout = RedisTimeout
	opts.WriteTimeout = RedisTimeout
	opts.PoolTimeout = RedisTimeout
	opts.ContextTimeoutEnabled = true
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	return &Redis{client: redis.NewClient(opts), prefix: prefix}, nil
}

var quietOnce sync.Once

// quiet drops go-redis's own log lines (dial failures, per attempt): Resilient reports
// an outage once, in the server's structured log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Get implements Cache.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.prefix+"c:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	return b, err
}

// fillScript sets KEYS[1] unless the tombstone KEYS[2] exists.
var fillScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// Fill implements Cache.
func (r *Redis) Fill(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	k := r.prefix + "c:" + key
	return fillScript.Run(ctx, r.client, []string{k, k + "#inv"}, val, ttl.Milliseconds()).Err()
}

// Invalidate implements Cache.
func (r *Redis) Invalidate(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range keys {
			k := r.prefix + "c:" + key
			p.Del(ctx, k)
			p.Set(ctx, k+"#inv", 1, InvalidationGuard)
		}
		return nil
	})
	return err
}

// FlushValues deletes every cached value under the prefix (not tombstones or limiter
// state). Used after an outage, during which invalidations may have been missed.
func (r *Redis) FlushValues(ctx context.Context) error {
	iter := r.client.Scan(ctx, 0, r.prefix+"c:*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := r.client.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return r.client.Unlink(ctx, batch...).Err()
	}
	return nil
}

// gcraScript is GCRA on Redis's clock, in microseconds. ARGV: interval, window.
// Returns {allowed, tat - now (after the request when allowed), retry after}.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
local allow_at = nxt - window
if now < allow_at then
  return {0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, nxt - now, 0}`)

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	interval := l.Window / time.Duration(l.Quota)
	res, err := gcraScript.Run(ctx, r.client, []string{r.prefix + "rl:" + key},
		interval.Microseconds(), l.Window.Microseconds()).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("cache: rate limit script returned %d values", len(res))
	}
	used := time.Duration(res[1]) * time.Microsecond
	if res[0] == 0 {
		return Decision{Allowed: false, Reset: used, RetryAfter: time.Duration(res[2]) * time.Microsecond}, nil
	}
	return Decision{Allowed: true, Remaining: int((l.Window - used) / interval), Reset: used}, nil
}
