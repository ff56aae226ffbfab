package store

import (
	"context"
	"sync"
	"time"
)

// listenerCountTTL is how long a count of the listening processes is reused. Counting
// reads pg_stat_activity, which costs PostgreSQL a snapshot of every backend: done on
// every invalidation it halved the throughput of task updates (make bench, tasks-patch).
// Processes come and go far more rarely; one that starts listening within this window
// is waited for from the next count on.
const listenerCountTTL = time.Second

// InvalidationPublisher sends cache invalidations to every listening process (see
// cache.Broadcast) and says how many processes listen, from a count at most
// listenerCountTTL old.
type InvalidationPublisher struct {
	db *DB

	mu        sync.Mutex
	count     int64
	countedAt time.Time
}

// NewInvalidationPublisher publishes through db.
func NewInvalidationPublisher(db *DB) *InvalidationPublisher {
	return &InvalidationPublisher{db: db}
}

// Publish sends payload on cache_invalidations and returns the number of listening
// processes. Its errors are the database's.
func (p *InvalidationPublisher) Publish(ctx context.Context, payload string) (int64, error) {
	if err := p.db.CacheInvalidationNotify(ctx, payload); err != nil {
		return 0, err
	}
	return p.listeners(ctx)
}

func (p *InvalidationPublisher) listeners(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.countedAt.IsZero() && time.Since(p.countedAt) < listenerCountTTL {
		return p.count, nil
	}
	n, err := p.db.CacheInvalidationListeners(ctx)
	if err != nil {
		return 0, err
	}
	p.count, p.countedAt = n, time.Now()
	return n, nil
}
