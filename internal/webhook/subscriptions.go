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
}

func (s *subscriptions) invalidate() {
	s.mu.Lock()
	s.loaded = time.Time{}
	s.mu.Unlock()
}

// Wants reports whether an active endpoint may receive events of type t. When the
// subscriptions cannot be read it answers true: the outbox statement decides.
func (s *Service) Wants(ctx context.Context, t EventType) bool {
	c := &s.subs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.types == nil || s.now().Sub(c.loaded) > SubscriptionTTL {
		rows, err := s.store.WebhookSubscribedTypes(ctx)
		if err != nil {
			return true
		}
		c.types = make(map[EventType]bool, len(rows))
		for _, r := range rows {
			c.types[EventType(r)] = true
		}
		c.loaded = s.now()
	}
	return c.types[t] || c.types[Wildcard]
}
