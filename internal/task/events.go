package task

import (
	"context"

	"enterprise-automation/internal/webhook"
)

// Events records webhook events in the transaction of the change they describe
// (webhook.Service): the event is sent if and only if the change commits.
type Events interface {
	Emit(ctx context.Context, q webhook.Outbox, t webhook.EventType, data any) error
	// Wants reports whether some endpoint may receive events of type t: when none does,
	// a create skips the transaction it would need for the outbox.
	Wants(ctx context.Context, t webhook.EventType) bool
}

// WithEvents makes every create, update and delete record its webhook event
// (task.created, task.updated, task.deleted) in the change's transaction.
func (s *Service) WithEvents(e Events) *Service {
	s.events = e
	return s
}

// emit records t about task in q's transaction, when events are on.
func (s *Service) emit(ctx context.Context, q webhook.Outbox, t webhook.EventType, task Task) error {
	if s.events == nil {
		return nil
	}
	return s.events.Emit(ctx, q, t, task)
}
