package task

import (
	"context"

	"enterprise-automation/internal/webhook"
)

// Events records webhook events in the transaction of the change they describe
// (webhook.Service): the event is sent if and only if the change commits.
type Events = webhook.Events

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
