package audit

import (
	"context"
	"fmt"
	"time"

	"enterprise-automation/gen/db"
)

// RetentionAction is the action of the event a retention pass leaves.
const RetentionAction = "audit_retention"

// Retain deletes the events older than keep and records how many in an event of its own
// (actor system), in one transaction: the only path the table's trigger lets delete. It
// returns the number deleted; its errors are the database's.
func (s *Service) Retain(ctx context.Context, keep time.Duration) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, func(q db.Querier) error {
		if err := q.AuditEventAllowRetention(ctx); err != nil {
			return err
		}
		var err error
		if n, err = q.AuditEventDeleteBefore(ctx, s.now().Add(-keep)); err != nil {
			return err
		}
		ctx := WithMeta(ctx, Meta{Action: RetentionAction, Actor: Actor{Type: ActorSystem}})
		return Record(ctx, q, Entry{Resource: "audit_event", Changes: map[string]int64{"deleted": n}})
	})
	if err != nil {
		return 0, fmt.Errorf("audit: retention: %w", err)
	}
	return n, nil
}
