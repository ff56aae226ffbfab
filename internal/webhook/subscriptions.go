package webhook

import (
	"context"
	"sync"
	"time"
)

// SubscriptionTTL bounds how long a process trusts its copy of which event types active
// endpoints receive. A change made through this process applies at once; one made through
// another instance applies here within SubscriptionTTL (as if it had been made that much
// later). It lets a change that no endpoint wants skip the outbox entirely: a task
// created with no endpoint subscribed costs one statement, as before webhooks existed.
const SubscriptionTTL = time.Second

// subscriptions caches the event types some active endpoint receives.
type subscriptions struct {
	mu         sync.Mutex
	types      map[EventType]bool // nil: not known (never read, or changed through this process)
	loaded     time.Time
	gen        uint64 // moves on with every invalidation
	refreshing bool
}

func (s *subscriptions) invalidate() {
	s.mu.Lock()
	s.types, s.loaded, s.gen = nil, time.Time{}, s.gen+1
	s.mu.Unlock()
}

// Wants reports whether an active endpoint may receive events of type t. It never waits
// for the database, so that it may be called inside a transaction (a run's status change
// is): a copy older than SubscriptionTTL is refreshed in the background and answers
// meanwhile, and while none is known (the first call, or a change made through this
// process) it answers true and the outbox statement decides.
func (s *Service) Wants(_ context.Context, t EventType) bool {
	c := &s.subs
	c.mu.Lock()
	types := c.types
	if (types == nil || s.now().Sub(c.loaded) > SubscriptionTTL) && !c.refreshing {
		c.refreshing = true
		go s.refreshSubscriptions(c.gen)
	}
	c.mu.Unlock()
	if types == nil {
		return true
	}
	return types[t] || types[Wildcard]
}

// refreshSubscriptions reads which event types active endpoints receive; the copy is
// kept unless an invalidation came meanwhile (gen moved on).
func (s *Service) refreshSubscriptions(gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := s.store.WebhookSubscribedTypes(ctx)
	c := &s.subs
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = false
	if err != nil || c.gen != gen {
		return
	}
	types := make(map[EventType]bool, len(rows))
	for _, r := range rows {
		types[EventType(r)] = true
	}
	c.types, c.loaded = types, s.now()
}
