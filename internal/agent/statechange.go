package agent

import (
	"context"

	"enterprise-automation/gen/db"
)

// runChanged is the one place every change of a run's status that others are told of
// passes through: the terminal statuses (completed, failed, cancelled, incomplete,
// expired), requires_action, and queued again after approvals. It is called inside the
// transaction of the change, after the change, with the run as changed; what it writes
// commits or rolls back with the change. The run's own event stream is written by the
// statement that changes the status; outbound notifications (webhook events) of the
// change belong here.
func runChanged(_ context.Context, _ queries, _ db.AgentRun) error {
	return nil
}

// endRuns ends runs that have not ended yet (finishRuns) and passes each one that
// ended through runChanged, in q's transaction; the result is in es' order (nil for a
// run that had ended).
func endRuns(ctx context.Context, q queries, es []ending) ([]*db.AgentRun, error) {
	runs, err := finishRuns(ctx, q, es)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r == nil {
			continue
		}
		if err := runChanged(ctx, q, *r); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// statusChanged appends the event of a non-terminal status change (run.requires_action
// or run.status) and passes the run through runChanged, in q's transaction.
func statusChanged(ctx context.Context, q queries, run db.AgentRun, data map[string]any) error {
	typ := EventStatus
	if run.Status == db.AgentRunStatusRequiresAction {
		typ = EventRequiresAction
	}
	if err := appendEvent(ctx, q, run.ID, typ, data); err != nil {
		return err
	}
	return runChanged(ctx, q, run)
}
