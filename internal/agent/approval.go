package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
)

// PendingCall is a tool call of a run's current turn that is not executed yet.
type PendingCall struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Arguments     string          `json:"arguments"` // as the model wrote them
	Turn          int             `json:"turn"`
	NeedsApproval bool            `json:"needs_approval,omitempty"`
	Approval      *Approval       `json:"approval,omitempty"`    // the decision, once made
	Edited        json.RawMessage `json:"edited,omitempty"`      // arguments an approver gave instead
	OverBudget    bool            `json:"over_budget,omitempty"` // beyond max_tool_calls: not executed, the run ends incomplete
	// Refused is beyond the per-turn limit: not executed, answered with an error result
	// the model reads, kept in the conversation but not shown or counted as a step.
	Refused bool `json:"refused,omitempty"`
}

// Approval is a decision on a tool call that needed one.
type Approval struct {
	Decision  Decision  `json:"decision"`
	DecidedBy int64     `json:"decided_by"`
	DecidedAt time.Time `json:"decided_at"`
	Reason    *string   `json:"reason,omitempty"`
}

// Decision is approve or reject.
type Decision string

// Decisions.
const (
	Approve Decision = "approve"
	Reject  Decision = "reject"
)

// RequiredAction is what a run in status requires_action waits for.
type RequiredAction struct {
	Type      string         `json:"type"` // tool_approval
	ToolCalls []RequiredCall `json:"tool_calls"`
	ExpiresAt time.Time      `json:"expires_at"`
}

// RequiredCall is a tool call waiting for a decision.
type RequiredCall struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// DecisionParams is one decision of a submission.
type DecisionParams struct {
	ToolCallID string
	Decision   Decision
	Arguments  json.RawMessage // nil: the model's arguments (approve only)
	Reason     *string
}

// maxReasonLen bounds a decision's reason, in bytes.
const maxReasonLen = 2000

// SubmitApprovals decides the tool calls a run waits for, and queues the run again (its
// job is inserted in the same transaction). The run's creator or an administrator may
// decide; NotFound for anyone else. Conflict when the run is not waiting (any more: a
// concurrent submission, a cancel or the expiry came first). Invalid unless there is
// exactly one decision for each waiting call, or when edited arguments do not match
// the tool's parameters (the run keeps waiting).
func (s *Service) SubmitApprovals(ctx context.Context, actor auth.Principal, runID int64, ds []DecisionParams) (Run, error) {
	if _, err := s.GetRun(ctx, actor, runID); err != nil {
		return Run{}, err
	}
	var out db.AgentRun
	err := s.store.InTx(ctx, func(q db.Querier) error {
		row, err := q.AgentRunGetByIDForUpdate(ctx, runID)
		if err != nil {
			return err
		}
		run, err := runFromRow(row)
		if err != nil {
			return err
		}
		if run.Status != RunRequiresAction || run.RequiredAction == nil {
			return apperr.E(apperr.Conflict, "agent run %d is %s, not waiting for approvals", runID, run.Status)
		}
		if !run.RequiredAction.ExpiresAt.After(time.Now()) {
			return apperr.E(apperr.Conflict, "agent run %d waited for approvals until %s and has expired", runID,
				run.RequiredAction.ExpiresAt.UTC().Format(time.RFC3339))
		}
		pending, err := decide(run.Pending, ds, actor.UserID, time.Now().UTC())
		if err != nil {
			return err
		}
		b, err := json.Marshal(pending)
		if err != nil {
			return apperr.Wrap(apperr.Internal, err, "agent: encode pending calls")
		}
		jobID, err := s.queue.EnqueueNext(ctx, q, runID)
		if err != nil {
			return err
		}
		if out, err = q.AgentRunResume(ctx, db.AgentRunResumeParams{ID: runID, PendingToolCalls: b, JobID: &jobID}); err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "agent_run", ID: &runID,
			Changes: audit.Changes{"status": {From: RunRequiresAction, To: RunQueued}}}); err != nil {
			return err
		}
		return statusChanged(ctx, q, s.events, out, map[string]any{"status": string(RunQueued)})
	})
	if err != nil {
		return Run{}, fmt.Errorf("agent: approvals: %w", err)
	}
	return runFromRow(out)
}

// decide applies decisions to the pending calls: exactly one for each call that needs
// one, none for any other id, and edited arguments that match the tool's parameters.
func decide(pending []PendingCall, ds []DecisionParams, by int64, at time.Time) ([]PendingCall, error) {
	var fields []apperr.FieldError
	bad := func(i int, field, format string, args ...any) {
		fields = append(fields, apperr.FieldError{Location: "body", Field: fmt.Sprintf("decisions.%d.%s", i, field),
			Message: fmt.Sprintf(format, args...)})
	}
	out := slices.Clone(pending)
	index := map[string]int{}
	for i, p := range out {
		if p.NeedsApproval && p.Approval == nil {
			index[p.ID] = i
		}
	}
	seen := map[string]bool{}
	for i, d := range ds {
		k, ok := index[d.ToolCallID]
		switch {
		case !ok:
			bad(i, "tool_call_id", "%q is not a tool call this run waits for", d.ToolCallID)
			continue
		case seen[d.ToolCallID]:
			bad(i, "tool_call_id", "%q has more than one decision", d.ToolCallID)
			continue
		case d.Decision != Approve && d.Decision != Reject:
			bad(i, "decision", "must be approve or reject")
			continue
		case d.Reason != nil && len(*d.Reason) > maxReasonLen:
			bad(i, "reason", "must be at most %d bytes", maxReasonLen)
			continue
		}
		seen[d.ToolCallID] = true
		if d.Arguments != nil {
			if d.Decision != Approve {
				bad(i, "arguments", "only an approval may edit the arguments")
				continue
			}
			if err := CheckArguments(out[k].Name, d.Arguments); err != nil {
				bad(i, "arguments", "%s", err.Error())
				continue
			}
			out[k].Edited = d.Arguments
		}
		out[k].Approval = &Approval{Decision: d.Decision, DecidedBy: by, DecidedAt: at, Reason: d.Reason}
	}
	var missing []string
	for id := range index {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fields = append(fields, apperr.FieldError{Location: "body", Field: "decisions",
			Message: "a decision is needed for each waiting tool call; missing: " + strings.Join(missing, ", ")})
	}
	if len(fields) > 0 {
		return nil, apperr.Validation(fields...)
	}
	return out, nil
}

// Expire ends a run that still waits for approvals after its expires_at as expired
// (error approval_expired); a run that was decided, cancelled or is waiting for a later
// deadline is left as it is. Its errors are the database's.
func (s *Service) Expire(ctx context.Context, runID int64) error {
	return expire(ctx, s.store, s.events, runID)
}

func expire(ctx context.Context, store database, ev Events, runID int64) error {
	return store.InTx(ctx, func(q db.Querier) error {
		row, err := q.AgentRunGetByIDForUpdate(ctx, runID)
		if apperr.Is(err, apperr.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if row.Status != db.AgentRunStatusRequiresAction || row.ExpiresAt == nil || row.ExpiresAt.After(time.Now()) {
			return nil
		}
		_, err = endRuns(ctx, q, ev, []ending{{runID: runID, status: RunExpired, usage: usageOf(row), modelTurns: int(row.ModelTurns),
			errorCode: "approval_expired", errorMessage: fmt.Sprintf("nobody approved or rejected the waiting tool calls by %s",
				row.ExpiresAt.UTC().Format(time.RFC3339))}})
		return err
	})
}
