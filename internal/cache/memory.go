package cache

import (
	"context"
	"sync"
	"time"
)

// Memory is the in-process Cache and Limiter: correct for one server process, bounded in
// size. Expired entries are swept as it is used; past MaxEntries, arbitrary entries are
// evicted (a cache may forget).
type Memory struct {
	mu         sync.Mutex
	now        func() time.Time
	maxEntries int
	values     map[string]memEntry
	tombs      map[string]time.Time // key → end of its invalidation guard
	rates      map[string]time.Time // limiter key → theoretical arrival time
	ops        int
}

type memEntry struct {
	val []byte // nil for an entry stored by FillObject
	obj any    // the decoded value stored by FillObject
	exp time.Time
}

// DefaultMaxEntries bounds a Memory cache built with a zero limit.
const DefaultMaxEntries = 50_000

// NewMemory builds an in-process cache and limiter holding at most maxEntries values
// (and as many limiter keys); now is the clock (nil: time.Now).
func NewMemory(maxEntries int, now func() time.Time) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now: now, maxEntries: maxEntries,
		values: map[string]memEntry{}, tombs: map[string]time.Time{}, rates: map[string]time.Time{},
	}
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	if e := m.live(key); e.val != nil {
		return e.val, nil
	}
	return nil, ErrMiss
}

// live returns key's entry if it has not expired (the zero entry otherwise).
func (m *Memory) live(key string) memEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.values[key]; ok && m.now().Before(e.exp) {
		return e
	}
	return memEntry{}
}

// Fill implements Cache.
func (m *Memory) Fill(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if val == nil {
		val = []byte{}
	}
	m.fill(key, memEntry{val: val}, ttl)
	return nil
}

// GetObject implements objectCache: the value stored with FillObject, or ErrMiss.
func (m *Memory) GetObject(_ context.Context, key string) (any, error) {
	if e := m.live(key); e.obj != nil {
		return e.obj, nil
	}
	return nil, ErrMiss
}

// FillObject implements objectCache: Fill with a value kept as it is, never encoded (Get
// misses it). The value must not be modified afterwards.
func (m *Memory) FillObject(_ context.Context, key string, obj any, ttl time.Duration) error {
	m.fill(key, memEntry{obj: obj}, ttl)
	return nil
}

func (m *Memory) fill(key string, e memEntry, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if until, ok := m.tombs[key]; ok && now.Before(until) {
		return
	}
	m.tick(now)
	e.exp = now.Add(ttl)
	m.values[key] = e
}

// Invalidate implements Cache.
func (m *Memory) Invalidate(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.tick(now)
	for _, k := range keys {
		delete(m.values, k)
		m.tombs[k] = now.Add(InvalidationGuard)
	}
	return nil
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.tick(now)
	d, tat := gcra(now, m.rates[key], l)
	if d.Allowed {
		m.rates[key] = tat
	}
	return d, nil
}

// Len reports the number of cached values, tombstones and limiter keys held.
func (m *Memory) Len() (values, tombs, rates int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.values), len(m.tombs), len(m.rates)
}

// sweepEvery is how many writes pass between sweeps of expired entries.
const sweepEvery = 1024

// tick counts a write and sweeps expired entries now and then, or at once when a map
// outgrows the bound. The caller holds mu.
func (m *Memory) tick(now time.Time) {
	m.ops++
	over := len(m.values) >= m.maxEntries || len(m.rates) >= m.maxEntries || len(m.tombs) >= m.maxEntries
	if m.ops < sweepEvery && !over {
		return
	}
	m.ops = 0
	for k, e := range m.values {
		if !now.Before(e.exp) {
			delete(m.values, k)
		}
	}
	for k, until := range m.tombs {
		if !now.Before(until) {
			delete(m.tombs, k)
		}
	}
	for k, tat := range m.rates {
		if !now.Before(tat) { // the quota is whole again: the key carries no state
			delete(m.rates, k)
		}
	}
	// A full map gives up an eighth of its entries at once, so that the sweep above
	// runs once per maxEntries/8 inserts rather than on every insert.
	low := m.maxEntries - max(1, m.maxEntries/8)
	evict(m.values, m.maxEntries, low)
	evict(m.rates, m.maxEntries, low)
	evict(m.tombs, m.maxEntries, low)
}

// evict drops arbitrary entries of a map holding at least high until it holds low.
func evict[V any](m map[string]V, high, low int) {
	if len(m) < high {
		return
	}
	for k := range m {
		if len(m) <= low {
			return
		}
		delete(m, k)
	}
}
