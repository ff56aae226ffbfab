package cache

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"enterprise-automation/internal/metrics"
)

// Entity is a read-through cache of one kind of record, JSON-encoded under
// "<name>:<id>". A nil *Entity caches nothing, so services work with or without one.
// Cache failures never fail a read: the loader answers instead.
//
// With KeepObjects, over an in-process cache, the record is kept as it is, neither
// encoded nor decoded; the records returned then share their slices with the cache, and
// callers must not modify them.
//
// With AdmitOnSecondMiss, a record is cached on its second miss within a while only.
type Entity[T any] struct {
	c       Cache
	objs    objectCache // c, when records are kept as they are
	admit   *doorkeeper // when set, records that missed once recently are cached
	name    string
	ttl     time.Duration
	metrics *metrics.Metrics
}

// NewEntity builds an Entity over c; a nil c or a zero ttl gives a nil Entity.
func NewEntity[T any](c Cache, name string, ttl time.Duration, m *metrics.Metrics) *Entity[T] {
	if c == nil || ttl <= 0 {
		return nil
	}
	return &Entity[T]{c: c, name: name, ttl: ttl, metrics: m}
}

// KeepObjects keeps records as they are when the cache is in-process, so that reading
// one costs no decoding. It suits small, hot records (the principal of every request):
// a cache full of pointer-rich records is scanned by every garbage collection, which
// costs more than decoding when memory is tight. It returns e.
func (e *Entity[T]) KeepObjects() *Entity[T] {
	if e != nil {
		e.objs, _ = e.c.(objectCache)
	}
	return e
}

// AdmitOnSecondMiss caches a record only when it misses a second time within a while
// (the last ~130k first misses), as TinyLFU's doorkeeper admits: a record read once at
// random among millions then costs no encoding and no cache insert that no read would
// use, and evicts nothing hot; a record read twice is cached from then on. It suits
// many records read at random (tasks). It returns e.
func (e *Entity[T]) AdmitOnSecondMiss() *Entity[T] {
	if e != nil {
		e.admit = newDoorkeeper()
	}
	return e
}

func (e *Entity[T]) key(id int64) string { return e.name + ":" + strconv.FormatInt(id, 10) }

// Get returns the record with id from the cache, or loads it and fills the cache.
// Errors from load are returned as they are (and nothing is cached).
func (e *Entity[T]) Get(ctx context.Context, id int64, load func(context.Context, int64) (T, error)) (T, error) {
	if e == nil {
		return load(ctx, id)
	}
	key := e.key(id)
	objs := e.objs
	if objs != nil {
		if o, err := objs.GetObject(ctx, key); err == nil {
			if v, ok := o.(T); ok {
				e.metrics.CacheLookup(e.name, true)
				return v, nil
			}
		}
	} else if b, err := e.c.Get(ctx, key); err == nil {
		var v T
		if json.Unmarshal(b, &v) == nil {
			e.metrics.CacheLookup(e.name, true)
			return v, nil
		}
	}
	e.metrics.CacheLookup(e.name, false)
	v, err := load(ctx, id)
	if err != nil {
		return v, err
	}
	if e.admit != nil && !e.admit.seen(id) {
		return v, nil
	}
	if objs != nil {
		_ = objs.FillObject(ctx, key, v, e.ttl)
	} else if b, err := json.Marshal(v); err == nil {
		_ = e.c.Fill(ctx, key, b, e.ttl)
	}
	return v, nil
}

// objectCache is a Cache that can keep values as they are (an in-process one), so that
// neither a fill nor a hit costs encoding.
type objectCache interface {
	GetObject(ctx context.Context, key string) (any, error)
	FillObject(ctx context.Context, key string, obj any, ttl time.Duration) error
}

// Invalidate drops the records with ids. Call it after the write has committed.
func (e *Entity[T]) Invalidate(ctx context.Context, ids ...int64) {
	if e == nil || len(ids) == 0 {
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = e.key(id)
	}
	_ = e.c.Invalidate(context.WithoutCancel(ctx), keys...)
}
