package task

import (
	"context"

	"enterprise-automation/gen/db"
)

// Within returns the service acting inside the caller's transaction q: its writes commit
// or roll back with the caller's other writes, with the same rules and audit events as
// the service's own. It reads tasks from q (not the record cache), and the records of
// the tasks it changes stay cached until the caller calls Committed after the commit.
// An error from one of its writes may leave q unusable: the caller rolls back.
func (s *Service) Within(q db.Querier) *Service {
	return &Service{store: joined{Querier: q}, now: s.now, exactTotal: s.exactTotal, events: s.events, changed: new([]int64), parent: s}
}

// Committed drops from the record cache the tasks a service from Within changed; it is
// called once the caller's transaction has committed (a no-op on any other service).
func (s *Service) Committed(ctx context.Context) {
	if s.parent == nil || s.changed == nil {
		return
	}
	s.parent.cache.Invalidate(ctx, *s.changed...)
	*s.changed = nil
}

// forget drops a changed task's cached record, or remembers it until Committed.
func (s *Service) forget(ctx context.Context, id int64) {
	if s.changed != nil {
		*s.changed = append(*s.changed, id)
		return
	}
	s.cache.Invalidate(ctx, id)
}

// joined is a store whose transactions are the caller's: InTx runs fn on it directly.
type joined struct{ db.Querier }

func (j joined) InTx(_ context.Context, fn func(q db.Querier) error) error { return fn(j.Querier) }
