package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/llm"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/tracing"
)

// Run is one execution of an agent on an input, and optionally a task.
type Run struct {
	ID        int64
	AgentID   int64
	TaskID    *int64
	Status    RunStatus
	Input     string
	Output    *string // the final answer, once completed
	Steps     []Step
	Error     *RunError // why it failed or ended incomplete (nil: no error)
	Model     string
	Usage     llm.Usage
	Attempt   int32
	Metadata  json.RawMessage // a JSON object
	CreatedBy *int64          // nil once its creator is deleted
	// CancelRequestedAt is when a cancel was asked of the worker running it (nil: never).
	CancelRequestedAt *time.Time
	CreatedAt         time.Time
	StartedAt         *time.Time
	CompletedAt       *time.Time
	Budget            Budget
	// OutputSchema is the JSON Schema the final answer must match (nil: free text), and
	// OutputJSON the answer's value once it did.
	OutputSchema     json.RawMessage
	OutputJSON       json.RawMessage
	IncompleteReason *string // why it ended incomplete: max_steps, max_tool_calls or max_total_tokens
	ModelTurns       int     // model calls answered
	ToolCalls        int     // tool calls recorded (executed or rejected)
	LLMFailures      int     // transient model failures of the current turn
	// Pending are the tool calls of the current turn not executed yet (with their
	// decisions once approved or rejected).
	Pending []PendingCall
	// RequiredAction is what the run waits for in status requires_action (nil otherwise).
	RequiredAction *RequiredAction
	JobID          *int64
	// TaskContext is the task as the first turn gave it to the model (nil: not yet, or no task).
	TaskContext *string
}

// Budget bounds a run: model turns, tool calls and tokens (MaxTotalTokens 0: no bound).
type Budget struct {
	MaxSteps       int
	MaxToolCalls   int
	MaxTotalTokens int64
}

// RunError is the error a run ended with.
type RunError struct {
	Code    string
	Message string
}

// RunStatus is where a run is in its life.
type RunStatus string

// Run statuses.
const (
	RunQueued         RunStatus = "queued"
	RunInProgress     RunStatus = "in_progress"
	RunRequiresAction RunStatus = "requires_action"
	RunCompleted      RunStatus = "completed"
	RunFailed         RunStatus = "failed"
	RunCancelled      RunStatus = "cancelled"
	RunIncomplete     RunStatus = "incomplete"
	RunExpired        RunStatus = "expired"
)

// Event is one entry of a run's event stream.
type Event struct {
	Seq  int64 // increasing within the run, from 1
	Type string
	Data json.RawMessage // a JSON object
}

// maxRunMetadataBytes bounds a run's metadata once serialized as JSON.
const maxRunMetadataBytes = 64 << 10

// Event types of a run's stream.
const (
	EventStatus      = "run.status"
	EventOutputDelta = "run.output.delta"
	EventStep        = "run.step"
	EventCompleted   = "run.completed"
	EventFailed      = "run.failed"
	EventCancelled   = "run.cancelled"
	EventIncomplete  = "run.incomplete"
	// EventRequiresAction says the run waits for approvals (its data holds the run).
	EventRequiresAction = "run.requires_action"
	EventExpired        = "run.expired"
)

// TerminalEvent returns the event that ends a run in the given status ("" if it is not terminal).
func TerminalEvent(s RunStatus) string {
	switch s {
	case RunCompleted:
		return EventCompleted
	case RunFailed:
		return EventFailed
	case RunCancelled:
		return EventCancelled
	case RunIncomplete:
		return EventIncomplete
	case RunExpired:
		return EventExpired
	}
	return ""
}

// IsTerminal reports whether a run has ended.
func IsTerminal(s RunStatus) bool { return TerminalEvent(s) != "" }

// Step is one recorded tool call. CallID and Turn are kept (not shown by the API) so
// that a retried attempt can rebuild the conversation and resume after it.
type Step struct {
	Type      string          `json:"type"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Result    json.RawMessage `json:"result"`
	CallID    string          `json:"call_id"`
	Turn      int             `json:"turn"`
	Approval  *Approval       `json:"approval,omitempty"` // the decision on a call that needed one
	// Refused marks a call beyond the per-turn limit: kept for the conversation only.
	Refused bool `json:"refused,omitempty"`
}

// appendEvent records the next event of a run and notifies listeners on commit.
func appendEvent(ctx context.Context, q queries, runID int64, typ string, data map[string]any) error {
	data["type"] = typ
	data["run_id"] = runID
	b, err := json.Marshal(data)
	if err != nil {
		return apperr.Wrap(apperr.Internal, err, "agent: encode event")
	}
	_, err = q.AgentRunEventAppend(ctx, db.AgentRunEventAppendParams{RunID: runID, Type: typ, Data: b})
	return err
}

// RunParams are the inputs of a new run.
type RunParams struct {
	Input    string
	TaskID   *int64
	Metadata []byte // a JSON object; nil means {}
	// Budgets and output schema of this run; nil takes the agent's (and then the server's).
	MaxSteps       *int32
	MaxToolCalls   *int32
	MaxTotalTokens *int64
	OutputSchema   json.RawMessage
}

// CreateRun queues a run of an active agent. The run row, its first event and its job are
// written in one transaction, shared with the runs created at the same time; the write
// completes even if ctx is cancelled meanwhile. NotFound for an unknown agent; Conflict
// for an inactive one; Invalid when the task is not visible to actor or the metadata is
// too large; QuotaExceeded when actor already has as many runs queued or in progress as
// WithActiveRunLimit allows.
func (s *Service) CreateRun(ctx context.Context, actor auth.Principal, agentID int64, p RunParams) (Run, error) {
	a, err := s.Get(ctx, agentID)
	if err != nil {
		return Run{}, err
	}
	if !a.IsActive {
		return Run{}, apperr.E(apperr.Conflict, "agent %d is inactive", agentID)
	}
	if len(p.Metadata) > maxRunMetadataBytes {
		return Run{}, apperr.Validation(apperr.FieldError{Location: "body", Field: "metadata",
			Message: fmt.Sprintf("must be at most %d bytes as JSON", maxRunMetadataBytes)})
	}
	fields := s.checkBudget(p.MaxSteps, p.MaxToolCalls, p.MaxTotalTokens)
	if err := CheckOutputSchema(p.OutputSchema); err != nil {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "output_schema", Message: err.Error()})
	}
	if len(fields) > 0 {
		return Run{}, apperr.Validation(fields...)
	}
	budget := s.budget(a, p)
	schema := cmp.Or(string(p.OutputSchema), string(a.OutputSchema))
	if p.TaskID != nil {
		if _, err := s.tasks.Get(ctx, actor, *p.TaskID); err != nil {
			if apperr.Is(err, apperr.NotFound) {
				return Run{}, apperr.Validation(apperr.FieldError{Location: "body", Field: "task_id",
					Message: fmt.Sprintf("task %d does not exist or is not visible to you", *p.TaskID)})
			}
			return Run{}, err
		}
	}
	if p.Metadata == nil {
		p.Metadata = []byte("{}")
	}
	res, err := s.insertRun(ctx, newRun{agentID: agentID, taskID: p.TaskID, input: p.Input, model: a.Model,
		metadata: p.Metadata, createdBy: actor.UserID, ctx: auditContext(ctx), budget: budget, outputSchema: schema,
		origin: tracing.Origin(ctx)})
	if err == nil {
		err = res.err
	}
	if err != nil {
		return Run{}, fmt.Errorf("agent: create run: %w", err)
	}
	return res.run, nil
}

// budget resolves a new run's budget: the run's, else the agent's, else the server's.
func (s *Service) budget(a Agent, p RunParams) Budget {
	b := Budget{MaxSteps: s.limits.MaxSteps, MaxToolCalls: s.limits.MaxToolCalls}
	if v := cmp.Or(p.MaxSteps, a.MaxSteps); v != nil {
		b.MaxSteps = min(int(*v), s.limits.MaxSteps)
	}
	if v := cmp.Or(p.MaxToolCalls, a.MaxToolCalls); v != nil {
		b.MaxToolCalls = int(*v)
	}
	if v := cmp.Or(p.MaxTotalTokens, a.MaxTotalTokens); v != nil {
		b.MaxTotalTokens = *v
	}
	return b
}

// newRun is a run to create.
type newRun struct {
	budget       Budget
	outputSchema string // empty: none
	agentID      int64
	taskID       *int64
	input        string
	model        string
	metadata     []byte
	createdBy    int64
	// ctx carries the creating request's audit Meta (the batch runs under another context).
	ctx context.Context
	// origin carries the creating request's trace, for the run's job (nil outside a trace).
	origin context.Context
}

// auditContext keeps only the audit Meta of ctx (nil without one).
func auditContext(ctx context.Context) context.Context {
	m, ok := audit.MetaFrom(ctx)
	if !ok {
		return nil
	}
	return audit.WithMeta(context.Background(), m)
}

// created is the outcome of one run's creation.
type created struct {
	run Run
	err error
}

// createRuns creates a batch of runs in one transaction. One run's bad data (a conflict,
// a missing agent or task) fails the whole transaction, so then each run is tried again
// alone: the others are created, and each failure reaches its own caller. Any other
// failure (the database unavailable or too slow) is every caller's, and is not repeated
// run by run.
func (s *Service) createRuns(ctx context.Context, rs []newRun) ([]created, error) {
	out, err := s.insertRuns(ctx, rs)
	if err == nil {
		return out, nil
	}
	// Only a run's own fault (its agent or task gone, a bad value) is worth retrying alone.
	ownFault := apperr.Is(err, apperr.Invalid) || apperr.Is(err, apperr.Conflict) || apperr.Is(err, apperr.NotFound)
	if len(rs) == 1 || !ownFault {
		return nil, err
	}
	out = make([]created, len(rs))
	for i := range rs {
		one, err := s.insertRuns(ctx, rs[i:i+1])
		if err != nil {
			out[i].err = err
			continue
		}
		out[i] = one[0]
	}
	return out, nil
}

// insertRuns writes runs, their first events and their jobs in one transaction, and
// returns the outcomes in rs's order: a run beyond its creator's quota gets a
// QuotaExceeded error and is not written; an error fails the whole batch.
func (s *Service) insertRuns(ctx context.Context, rs []newRun) ([]created, error) {
	out := make([]created, len(rs))
	err := s.store.InTx(ctx, func(q db.Querier) error {
		keep, backlog, err := s.withinQuota(ctx, q, rs, out)
		if err != nil || len(keep) == 0 {
			return err
		}
		n := len(keep)
		p := db.AgentRunCreateParams{
			AgentIds: make([]int64, n), TaskIds: make([]int64, n), Inputs: make([]string, n), Models: make([]string, n),
			Metadata: make([][]byte, n), CreatedBy: make([]int64, n),
			MaxSteps: make([]int32, n), MaxToolCalls: make([]int32, n), MaxTotalTokens: make([]int64, n), OutputSchemas: make([]string, n),
			AuditActions: make([]string, n), AuditActorTypes: make([]string, n), AuditActorUserIds: make([]int64, n),
			AuditActorApiKeyIds: make([]int64, n), AuditActorAgentRunIds: make([]int64, n), AuditRequestIds: make([]string, n), AuditIps: make([]string, n),
		}
		for i, k := range keep {
			r := rs[k]
			p.AgentIds[i], p.Inputs[i], p.Models[i], p.Metadata[i], p.CreatedBy[i] = r.agentID, r.input, r.model, r.metadata, r.createdBy
			p.MaxSteps[i], p.MaxToolCalls[i] = int32(r.budget.MaxSteps), int32(r.budget.MaxToolCalls)
			p.MaxTotalTokens[i], p.OutputSchemas[i] = r.budget.MaxTotalTokens, r.outputSchema
			if r.taskID != nil {
				p.TaskIds[i] = *r.taskID
			}
			if err := auditParams(r.ctx, &p, i); err != nil {
				return err
			}
		}
		rows, err := q.AgentRunCreate(ctx, p)
		if err != nil {
			return err
		}
		if len(rows) != n {
			return fmt.Errorf("agent: %d runs created for %d", len(rows), n)
		}
		jobs := make([]NewJob, n)
		for i, row := range rows {
			// Rows come back by id, which ascends in insertion (input) order.
			if r := rs[keep[i]]; row.AgentID != r.agentID || row.Input != r.input || row.CreatedBy == nil || *row.CreatedBy != r.createdBy {
				return fmt.Errorf("agent: created run %d does not match its request", row.ID)
			}
			if out[keep[i]].run, err = runFromRow(db.AgentRun(row)); err != nil {
				return err
			}
			jobs[i] = NewJob{RunID: row.ID, Backlog: backlog[keep[i]], Origin: rs[keep[i]].origin}
		}
		// The worker that starts a run records its job on it; a queued run is
		// cancelled by its status alone.
		return s.queue.EnqueueRuns(ctx, q, jobs)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditParams sets the i-th run's audit event in p from the creating request's audit
// Meta in ctx (nil or without one: no event); the statement that inserts the run
// appends the event.
func auditParams(ctx context.Context, p *db.AgentRunCreateParams, i int) error {
	if ctx == nil {
		return nil
	}
	e, ok, err := audit.Params(ctx, audit.Entry{Resource: "agent_run"})
	if err != nil || !ok {
		return err
	}
	p.AuditActions[i], p.AuditActorTypes[i] = e.Action, e.ActorType
	p.AuditActorUserIds[i], p.AuditActorApiKeyIds[i], p.AuditActorAgentRunIds[i] = deref(e.ActorUserID), deref(e.ActorApiKeyID), deref(e.ActorAgentRunID)
	p.AuditRequestIds[i], p.AuditIps[i] = deref(e.RequestID), deref(e.Ip)
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// withinQuota returns the indexes of the runs in rs that their creators' quotas allow,
// in order, with each run's backlog (its creator's runs queued, in progress or waiting
// before it: it orders the queue), and sets a QuotaExceeded error in out for the others. It takes each creator's
// quota lock for the rest of q's transaction first, so that concurrent creations (in
// other batches or processes) count each other's runs; the batch's own runs count too.
func (s *Service) withinQuota(ctx context.Context, q queries, rs []newRun, out []created) ([]int, []int, error) {
	keep := make([]int, 0, len(rs))
	backlog := make([]int, len(rs))
	users := make([]int64, 0, 1)
	for _, r := range rs {
		users = append(users, r.createdBy)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	if err := q.AgentRunLockCreators(ctx, users); err != nil {
		return nil, nil, err
	}
	// A statement of its own: it must see the runs committed by whoever held a lock.
	counts, err := q.AgentRunCountActiveByCreators(ctx, users)
	if err != nil {
		return nil, nil, err
	}
	active := make(map[int64]int64, len(counts))
	for _, c := range counts {
		active[c.UserID] = c.Active
	}
	limit := int64(s.activeRuns)
	for i, r := range rs {
		if limit > 0 && active[r.createdBy] >= limit {
			out[i].err = apperr.E(apperr.QuotaExceeded,
				"you have %d runs queued, in progress or waiting for approval, the most allowed at once; wait for some to finish or cancel some", limit)
			continue
		}
		backlog[i] = int(active[r.createdBy])
		active[r.createdBy]++
		keep = append(keep, i)
	}
	return keep, backlog, nil
}

// canSee reports whether actor may see a run: runs are private to their creator (their
// input and output may hold anything), and administrators see all.
func canSee(actor auth.Principal, createdBy *int64) bool {
	return actor.IsAdmin || (createdBy != nil && *createdBy == actor.UserID)
}

// GetRun returns a run visible to actor; NotFound otherwise, Internal when its stored
// steps are unreadable.
func (s *Service) GetRun(ctx context.Context, actor auth.Principal, id int64) (Run, error) {
	r, err := s.store.AgentRunGetByID(ctx, id)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return Run{}, fmt.Errorf("agent: get run: %w", err)
	}
	if err != nil || !canSee(actor, r.CreatedBy) {
		return Run{}, apperr.E(apperr.NotFound, "agent run %d not found", id)
	}
	return runFromRow(r)
}

// RunListParams filter a run list.
type RunListParams struct {
	Page    page.Request
	AgentID *int64
	TaskID  *int64
	Status  *RunStatus
}

// ListRuns returns actor's runs (every run for admins), newest first; Internal when a
// run's stored steps are unreadable.
func (s *Service) ListRuns(ctx context.Context, actor auth.Principal, p RunListParams) (page.Page[Run], error) {
	f := db.AgentRunCountParams{AgentID: p.AgentID, TaskID: p.TaskID}
	if !actor.IsAdmin {
		f.CreatedBy = &actor.UserID
	}
	return s.listRuns(ctx, f, p)
}

// ListTaskRuns returns actor's runs (every run for admins) on a task visible to actor
// (NotFound otherwise), newest first.
func (s *Service) ListTaskRuns(ctx context.Context, actor auth.Principal, taskID int64, r page.Request) (page.Page[Run], error) {
	if _, err := s.tasks.Get(ctx, actor, taskID); err != nil {
		return page.Page[Run]{}, err
	}
	f := db.AgentRunCountParams{TaskID: &taskID}
	if !actor.IsAdmin {
		f.CreatedBy = &actor.UserID
	}
	return s.listRuns(ctx, f, RunListParams{Page: r})
}

func (s *Service) listRuns(ctx context.Context, f db.AgentRunCountParams, p RunListParams) (page.Page[Run], error) {
	if p.Status != nil {
		st := string(*p.Status)
		f.Status = &st
	}
	filter := page.Fingerprint(runFilterID(f.CreatedBy), runFilterID(f.AgentID), runFilterID(f.TaskID), runFilterStatus(f.Status))
	cur, err := page.ParseCursor(p.Page, runListSort, filter)
	if err != nil {
		return page.Page[Run]{}, err
	}
	args := db.AgentRunPageParams{
		CreatedBy: f.CreatedBy, AgentID: f.AgentID, TaskID: f.TaskID, Status: f.Status,
		SkipRows: p.Page.Skip, MaxRows: p.Page.Limit + 1,
	}
	pos := int64(p.Page.Skip)
	if cur != nil {
		pos, args.BeforeID = cur.Pos, &cur.ID
	}
	// Count and page in one statement; only a page past the end needs a second one.
	res, err := s.store.AgentRunPage(ctx, args)
	var total int64
	if err == nil && len(res) > 0 {
		total = res[0].Total
	} else if err == nil && pos > 0 {
		total, err = s.store.AgentRunCount(ctx, f)
	}
	if err != nil {
		return page.Page[Run]{}, fmt.Errorf("agent: list runs: %w", err)
	}
	items := make([]Run, len(res))
	for i, r := range res {
		if items[i], err = runFromRow(r.AgentRun); err != nil {
			return page.Page[Run]{}, err
		}
	}
	return page.NewKeyset(items, total, p.Page, pos, func(last Run) page.Cursor {
		return page.Cursor{Sort: runListSort, Filter: filter, ID: last.ID}
	}), nil
}

// runListSort is the run list's only order (newest first), which its cursors name.
const runListSort = "-id"

func runFilterID(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func runFilterStatus(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

// CancelRun stops a run: a queued one is cancelled at once, a running one is asked to
// stop (its worker's context is cancelled and it ends cancelled), a cancelled one is
// returned as it is. NotFound when invisible; Conflict when it already completed, failed
// or ended incomplete.
func (s *Service) CancelRun(ctx context.Context, actor auth.Principal, id int64) (Run, error) {
	if _, err := s.GetRun(ctx, actor, id); err != nil {
		return Run{}, err
	}
	var out db.AgentRun
	err := s.store.InTx(ctx, func(q db.Querier) error {
		r, err := q.AgentRunGetByIDForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if r.Status != db.AgentRunStatusCancelled {
			// Recorded before the change, in its transaction: an error below rolls both back.
			if err := audit.Record(ctx, q, audit.Entry{Resource: "agent_run", ID: &id,
				Changes: audit.Changes{"status": {From: r.Status, To: db.AgentRunStatusCancelled}}}); err != nil {
				return err
			}
		}
		switch r.Status {
		case db.AgentRunStatusCancelled:
			out = r
			return audit.Record(ctx, q, audit.Entry{Resource: "agent_run", ID: &id})
		case db.AgentRunStatusQueued, db.AgentRunStatusRequiresAction:
			// Waiting: no worker holds it, and its expiry job finds it ended.
			if out, err = finishCancelled(ctx, q, s.events, r); err != nil {
				return err
			}
		case db.AgentRunStatusInProgress:
			if out, err = q.AgentRunRequestCancel(ctx, id); err != nil {
				return err
			}
			running := false
			if r.JobID != nil {
				if running, err = s.queue.CancelJob(ctx, q, *r.JobID); err != nil {
					return err
				}
			}
			if running {
				return nil // its worker stops and ends the run cancelled
			}
			// Between attempts (waiting for a retry): no worker will see the request.
			out, err = finishCancelled(ctx, q, s.events, r)
			return err
		default:
			return apperr.E(apperr.Conflict, "agent run %d already ended (%s) and cannot be cancelled", id, r.Status)
		}
		if r.JobID != nil {
			_, err := s.queue.CancelJob(ctx, q, *r.JobID)
			return err
		}
		return nil
	})
	if err != nil {
		return Run{}, fmt.Errorf("agent: cancel run: %w", err)
	}
	return runFromRow(out)
}

// finishCancelled ends a run that no worker is executing as cancelled, keeping its steps
// and usage, and appends its terminal event (in q's transaction).
func finishCancelled(ctx context.Context, q queries, ev Events, r db.AgentRun) (db.AgentRun, error) {
	runs, err := endRuns(ctx, q, ev, []ending{{runID: r.ID, status: RunCancelled, usage: usageOf(r), modelTurns: int(r.ModelTurns)}})
	if err != nil {
		return db.AgentRun{}, err
	}
	if runs[0] == nil {
		return db.AgentRun{}, apperr.E(apperr.NotFound, "agent run %d not found", r.ID)
	}
	return *runs[0], nil
}

// EventsAfter returns a run's events after seq, in order, for a caller that may see the
// run. Its errors are the database's.
func (s *Service) EventsAfter(ctx context.Context, runID, seq int64) ([]Event, error) {
	rows, err := s.store.AgentRunEventsAfter(ctx, db.AgentRunEventsAfterParams{RunID: runID, After: seq})
	if err != nil {
		return nil, fmt.Errorf("agent: events: %w", err)
	}
	evs := make([]Event, len(rows))
	for i, e := range rows {
		evs[i] = eventFromRow(e)
	}
	return evs, nil
}
