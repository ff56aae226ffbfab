package user

import (
	"context"

	"enterprise-automation/internal/webhook"
)

// Events records webhook events in the transaction of the change they describe
// (webhook.Service): the event is sent if and only if the change commits.
type Events interface {
	Emit(ctx context.Context, q webhook.Outbox, t webhook.EventType, data any) error
}

// WithEvents makes creating and deleting a user record its webhook event (user.created,
// user.deleted) in the change's transaction.
func (s *Service) WithEvents(e Events) *Service {
	s.events = e
	return s
}

// emit records t about u in q's transaction, when events are on.
func (s *Service) emit(ctx context.Context, q webhook.Outbox, t webhook.EventType, u User) error {
	if s.events == nil {
		return nil
	}
	return s.events.Emit(ctx, q, t, u)
}
