package cache

import "sync"

// Bounded is an in-process map of at most a fixed number of entries, safe for
// concurrent use, for values that are costly to compute and cheap to recompute: when it
// is full, a Put forgets an arbitrary eighth of the entries first (as Memory does), so a
// full map never sweeps every entry on every insert. It neither expires nor invalidates
// anything: a value kept in a Bounded must stay true for as long as it is kept, or
// carry what its reader checks on every use.
//
// The auth service keeps verified access tokens in one, so that JWT decoding and
// verification (about 9 µs per request) leave the hot path: 230 → 175 allocations per
// GET in BenchmarkGetTaskStack (internal/bench/FINDINGS.md, second round).
type Bounded[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]V
}

// NewBounded builds a Bounded holding at most size entries (at least one).
func NewBounded[K comparable, V any](size int) *Bounded[K, V] {
	return &Bounded[K, V]{max: max(size, 1), m: make(map[K]V)}
}

// Get returns the value under key; ok is false when there is none.
func (b *Bounded[K, V]) Get(key K) (v V, ok bool) {
	b.mu.Lock()
	v, ok = b.m[key]
	b.mu.Unlock()
	return v, ok
}

// Put stores v under key, first forgetting an arbitrary eighth of the entries when the
// map is full.
func (b *Bounded[K, V]) Put(key K, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[key]; !ok && len(b.m) >= b.max {
		for k := range b.m {
			delete(b.m, k)
			if len(b.m) <= b.max*7/8 {
				break
			}
		}
	}
	b.m[key] = v
}

// Len returns the number of entries.
func (b *Bounded[K, V]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
