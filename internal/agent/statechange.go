package agent

import (
	"context"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/webhook"
)

// Events records webhook events in the transaction of the change they describe
// (webhook.Service): an event is sent if and only if its change commits.
type Events = webhook.Events

// WithEvents makes every run status change others are told of record its webhook event
// (agent_run.completed, .failed, .cancelled, .incomplete, .requires_action, .expired).
func (s *Service) WithEvents(e Events) *Service {
	s.events = e
	return s
}

// WithEvents is Service.WithEvents for the changes the runner makes.
func (r *Runner) WithEvents(e Events) *Runner {
	r.events = e
	return r
}

// runEvents are the webhook events of run statuses; a run queued again after its
// approvals has none.
var runEvents = map[db.AgentRunStatus]webhook.EventType{
	db.AgentRunStatusCompleted:      webhook.AgentRunCompleted,
	db.AgentRunStatusFailed:         webhook.AgentRunFailed,
	db.AgentRunStatusCancelled:      webhook.AgentRunCancelled,
	db.AgentRunStatusIncomplete:     webhook.AgentRunIncomplete,
	db.AgentRunStatusRequiresAction: webhook.AgentRunRequiresAction,
	db.AgentRunStatusExpired:        webhook.AgentRunExpired,
}

// runChanged is the one place every change of a run's status that others are told of
// passes through: the terminal statuses (completed, failed, cancelled, incomplete,
// expired), requires_action, and queued again after approvals. It is called inside the
// transaction of the change, after the change, with the run as changed; what it writes
// (the webhook event and its deliveries) commits or rolls back with the change. The
// run's own event stream is written by the statement that changes the status.
func runChanged(ctx context.Context, q queries, ev Events, row db.AgentRun) error {
	t, ok := runEvents[row.Status]
	if ev == nil || !ok || !ev.Wants(ctx, t) {
		return nil
	}
	outbox, ok := q.(webhook.Outbox)
	if !ok {
		return apperr.E(apperr.Internal, "agent: the %s event needs the change's transaction", t)
	}
	// Unreadable steps leave them out of the event; the change itself stands.
	run, _ := runFromRow(row)
	return ev.Emit(ctx, outbox, t, run)
}

// wantsAny reports whether ending any of es may record a webhook event (runChanged
// would emit one): only then must the ending run in a transaction of its own.
func wantsAny(ctx context.Context, ev Events, es []ending) bool {
	if ev == nil {
		return false
	}
	for _, e := range es {
		if t, ok := runEvents[db.AgentRunStatus(e.status)]; ok && ev.Wants(ctx, t) {
			return true
		}
	}
	return false
}

// endRuns ends runs that have not ended yet (finishRuns) and passes each one that
// ended through runChanged, in q's transaction; the result is in es' order (nil for a
// run that had ended).
func endRuns(ctx context.Context, q queries, ev Events, es []ending) ([]*db.AgentRun, error) {
	runs, err := finishRuns(ctx, q, es)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r == nil {
			continue
		}
		if err := runChanged(ctx, q, ev, *r); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// statusChanged appends the event of a non-terminal status change (run.requires_action
// or run.status) and passes the run through runChanged, in q's transaction.
func statusChanged(ctx context.Context, q queries, ev Events, run db.AgentRun, data map[string]any) error {
	typ := EventStatus
	if run.Status == db.AgentRunStatusRequiresAction {
		typ = EventRequiresAction
	}
	if err := appendEvent(ctx, q, run.ID, typ, data); err != nil {
		return err
	}
	return runChanged(ctx, q, ev, run)
}
