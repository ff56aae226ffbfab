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
	mu     sync.Mutex
	types  map[EventType]bool
	loaded time.Time
	gen    uint64 // moves on with every invalidation
}

func (s *subscriptions) invalidate() {
	s.mu.Lock()
	s.loaded, s.gen = time.Time{}, s.gen+1
	s.mu.Unlock()
}

// Wants reports whether an active endpoint may receive events of type t. When the
// subscriptions cannot be read it answers true: the outbox statement decides. Call it
// outside transactions: a refresh reads from the pool.
func (s *Service) Wants(ctx context.Context, t EventType) bool {
	c := &s.subs
	c.mu.Lock()
	types, gen := c.types, c.gen
	fresh := types != nil && s.now().Sub(c.loaded) <= SubscriptionTTL
	c.mu.Unlock()
	if !fresh {
		// Read without the lock: concurrent refreshes may overlap, none waits on another.
		rows, err := s.store.WebhookSubscribedTypes(ctx)
		if err != nil {
			return true
		}
		types = make(map[EventType]bool, len(rows))
		for _, r := range rows {
			types[EventType(r)] = true
		}
		c.mu.Lock()
		if c.gen == gen { // no change through this process meanwhile
			c.types, c.loaded = types, s.now()
		}
		c.mu.Unlock()
	}
	return types[t] || types[Wildcard]
}
