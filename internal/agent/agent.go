// Package agent implements AI agents: their definitions, runs of them on an input and
// optionally a task, the built-in tools they may call, and the executor that drives a
// run through a bounded tool-calling loop with the LLM.
package agent

import (
	"cmp"
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
	"enterprise-automation/internal/batch"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

// Agent is an agent definition. Its fields keep the names of the agents table's
// columns: the record cache may hold it as JSON in Redis, shared with processes of the
// previous build during a deploy.
type Agent struct {
	ID              int64
	Name            string
	Description     string
	Instructions    string
	Model           string
	Temperature     float64
	MaxOutputTokens *int32 // nil: the model's own limit
	Tools           []string
	IsActive        bool
	CreatedBy       *int64 // nil once its creator is deleted
	CreatedAt       time.Time
	UpdatedAt       time.Time
	Version         int64
	ToolScope       ToolScope
	// ApprovalRequiredTools are the tools (among Tools) whose calls wait for a person's
	// approval before they run.
	ApprovalRequiredTools []string
	// Defaults of its runs' budgets (nil: the server's) and output schema (nil: free text).
	MaxSteps       *int32
	MaxToolCalls   *int32
	MaxTotalTokens *int64
	OutputSchema   []byte // JSON; []byte, not json.RawMessage: the cache keeps agents as JSON
}

// ToolScope is what an agent's writing tools may change in a run about a task.
type ToolScope string

// Tool scopes.
const (
	// ToolScopeTask limits writing tools to the run's task (in a run about a task).
	ToolScopeTask ToolScope = "task"
	// ToolScopeCreator lets writing tools change whatever the run's creator may.
	ToolScopeCreator ToolScope = "creator"
)

func (s ToolScope) valid() bool { return s == ToolScopeTask || s == ToolScopeCreator }

// Tasks is what agents need of the task service: a run reads its task, and the tools act
// on tasks with the permissions of the run's creator. Its errors are the task service's.
type Tasks interface {
	Get(ctx context.Context, actor auth.Principal, id int64) (task.Task, error)
	List(ctx context.Context, actor auth.Principal, p task.ListParams) (page.Page[task.Task], error)
	Create(ctx context.Context, actor auth.Principal, p task.CreateParams) (task.Task, error)
	Update(ctx context.Context, actor auth.Principal, id int64, p task.UpdateParams, ifMatch etag.Condition) (task.Task, error)
	// Within returns the service acting in q's transaction (tool calls commit their
	// effect with their record); its Committed is called after the commit.
	Within(q db.Querier) *task.Service
}

var _ Tasks = (*task.Service)(nil)

// Queue enqueues and cancels the jobs that execute runs, inside the caller's transaction.
type Queue interface {
	// EnqueueRuns queues the first job of new runs, in q's transaction. The worker that
	// starts a run records its job on it.
	EnqueueRuns(ctx context.Context, q db.Querier, runs []NewJob) error
	// EnqueueNext queues the job of a run's next turn (or of its continuation after
	// approvals), in q's transaction, ahead of new runs.
	EnqueueNext(ctx context.Context, q db.Querier, runID int64) (jobID int64, err error)
	// ScheduleExpiry queues the job that expires a waiting run at a time, in q's transaction.
	ScheduleExpiry(ctx context.Context, q db.Querier, runID int64, at time.Time) error
	// CancelJob cancels a queued or retrying job, or asks the worker running it to stop;
	// running reports the latter.
	CancelJob(ctx context.Context, q db.Querier, jobID int64) (running bool, err error)
}

// NewJob is the first job of a new run. Backlog is how many runs its creator already
// had queued, in progress or waiting: the queue picks runs of users with a short
// backlog first, so that one user's thousand runs do not hold up another's one.
type NewJob struct {
	RunID   int64
	Backlog int
	// Origin is the context of the request that created the run (nil outside a trace):
	// a batch inserts the runs of several requests at once, and each job joins the
	// trace of its own request.
	Origin context.Context
}

// Limits are the server's bounds of run budgets, and their defaults.
type Limits struct {
	MaxSteps     int // AGENT_MAX_STEPS: the most (and default) model turns of a run
	MaxToolCalls int // AGENT_MAX_TOOL_CALLS: the default tool calls of a run
}

// maxToolCallsBound is the most tool calls a run's budget may allow.
const maxToolCallsBound = 1000

// Service implements the agent and run use cases.
type Service struct {
	store        database
	tasks        Tasks
	queue        Queue
	defaultModel string
	cache        *cache.Entity[Agent]
	// insertRun writes one run with its first event and its job; the runs created at
	// the same time share its transaction (package batch).
	insertRun  func(context.Context, newRun) (created, error)
	activeRuns int // most runs a user may have queued or in progress (0: no limit)
	limits     Limits
	events     Events // webhook events of run status changes (nil: none)
}

// NewService builds a Service; defaultModel is used when an agent names none.
func NewService(s database, tasks Tasks, q Queue, defaultModel string) *Service {
	svc := &Service{store: s, tasks: tasks, queue: q, defaultModel: defaultModel, limits: Limits{MaxSteps: 8, MaxToolCalls: 32}}
	svc.insertRun = batch.New(svc.createRuns).Do
	return svc
}

// WithCache makes Get (and run creation) read agents through the record cache; every
// change through the service invalidates the agent's record.
func (s *Service) WithCache(agents *cache.Entity[Agent]) *Service {
	s.cache = agents
	return s
}

// WithActiveRunLimit bounds the runs each user may have queued or in progress at once:
// CreateRun refuses more with QuotaExceeded. n <= 0 means no limit.
func (s *Service) WithActiveRunLimit(n int) *Service {
	s.activeRuns = max(n, 0)
	return s
}

// WithLimits sets the bounds and defaults of run budgets (zero fields keep theirs).
func (s *Service) WithLimits(l Limits) *Service {
	s.limits.MaxSteps = cmp.Or(l.MaxSteps, s.limits.MaxSteps)
	s.limits.MaxToolCalls = cmp.Or(l.MaxToolCalls, s.limits.MaxToolCalls)
	return s
}

var errAdminRequired = apperr.E(apperr.Forbidden, "administrator privileges required")

// CreateParams are the fields of a new agent.
type CreateParams struct {
	Name            string
	Description     string
	Instructions    string
	Model           string // empty means the default model
	Temperature     *float64
	MaxOutputTokens *int32
	Tools           []string
	ToolScope       ToolScope // empty means task
	IsActive        *bool
	// ApprovalRequiredTools must be among Tools.
	ApprovalRequiredTools []string
	MaxSteps              *int32
	MaxToolCalls          *int32
	MaxTotalTokens        *int64
	OutputSchema          json.RawMessage // nil: none
}

// Create adds an agent. Forbidden unless actor is an admin; Conflict when the name is
// taken (in any letter case); Invalid for a blank name or an unknown tool.
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (Agent, error) {
	if !actor.IsAdmin {
		return Agent{}, errAdminRequired
	}
	if err := checkDefinition(&p.Name, p.Tools, &p.ToolScope); err != nil {
		return Agent{}, err
	}
	if err := s.checkRunDefaults(p.Tools, p.ApprovalRequiredTools, p.MaxSteps, p.MaxToolCalls, p.MaxTotalTokens, p.OutputSchema); err != nil {
		return Agent{}, err
	}
	a := db.AgentCreateParams{
		ApprovalRequiredTools: orEmpty(p.ApprovalRequiredTools), MaxSteps: p.MaxSteps, MaxToolCalls: p.MaxToolCalls,
		MaxTotalTokens: p.MaxTotalTokens, OutputSchema: p.OutputSchema,
		Name: strings.TrimSpace(p.Name), Description: p.Description, Instructions: p.Instructions,
		Model: cmp.Or(strings.TrimSpace(p.Model), s.defaultModel), Temperature: 0.2, MaxOutputTokens: p.MaxOutputTokens,
		Tools: p.Tools, ToolScope: db.AgentToolScope(cmp.Or(p.ToolScope, ToolScopeTask)), IsActive: true, CreatedBy: &actor.UserID,
	}
	if p.Temperature != nil {
		a.Temperature = *p.Temperature
	}
	if p.IsActive != nil {
		a.IsActive = *p.IsActive
	}
	if a.Tools == nil {
		a.Tools = []string{}
	}
	var out db.Agent
	err := s.store.InTx(ctx, func(q db.Querier) error {
		var err error
		if out, err = q.AgentCreate(ctx, a); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "agent", ID: &out.ID})
	})
	if apperr.Is(err, apperr.Conflict) {
		return Agent{}, apperr.Wrap(apperr.Conflict, err, "an agent named %q already exists", a.Name)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent: create: %w", err)
	}
	return agentFromRow(out), nil
}

// checkDefinition validates a (new or changed) name, tool list and tool scope; nil name
// or scope means unchanged, and an empty scope the default.
func checkDefinition(name *string, tools []string, scope *ToolScope) error {
	var fields []apperr.FieldError
	if name != nil && strings.TrimSpace(*name) == "" {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "name", Message: "must not be blank"})
	}
	if scope != nil && *scope != "" && !scope.valid() {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "tool_scope", Message: "must be one of: task, creator"})
	}
	for i, t := range tools {
		if _, ok := Tools[t]; !ok {
			fields = append(fields, apperr.FieldError{Location: "body", Field: fmt.Sprintf("tools.%d", i),
				Message: "must be one of: " + strings.Join(ToolNames(), ", ")})
		}
	}
	if len(fields) > 0 {
		return apperr.Validation(fields...)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkRunDefaults validates an agent's approval list (a subset of its tools), budget
// defaults and output schema.
func (s *Service) checkRunDefaults(tools, approval []string, steps, calls *int32, tokens *int64, schema []byte) error {
	var fields []apperr.FieldError
	for i, t := range approval {
		if !slices.Contains(tools, t) {
			fields = append(fields, apperr.FieldError{Location: "body", Field: fmt.Sprintf("approval_required_tools.%d", i),
				Message: fmt.Sprintf("%q is not among the agent's tools", t)})
		}
	}
	fields = append(fields, s.checkBudget(steps, calls, tokens)...)
	if err := CheckOutputSchema(schema); err != nil {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "output_schema", Message: err.Error()})
	}
	if len(fields) > 0 {
		return apperr.Validation(fields...)
	}
	return nil
}

// checkBudget validates budget values (nil: not given).
func (s *Service) checkBudget(steps, calls *int32, tokens *int64) []apperr.FieldError {
	var fields []apperr.FieldError
	if steps != nil && (*steps < 1 || int(*steps) > s.limits.MaxSteps) {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "max_steps",
			Message: fmt.Sprintf("must be between 1 and %d (AGENT_MAX_STEPS)", s.limits.MaxSteps)})
	}
	if calls != nil && (*calls < 1 || *calls > maxToolCallsBound) {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "max_tool_calls",
			Message: fmt.Sprintf("must be between 1 and %d", maxToolCallsBound)})
	}
	if tokens != nil && *tokens < 1 {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "max_total_tokens", Message: "must be at least 1"})
	}
	return fields
}

// Get returns an agent; NotFound when there is none.
func (s *Service) Get(ctx context.Context, id int64) (Agent, error) {
	return s.get(ctx, id, s.cache)
}

// get reads an agent through c (nil: from the database).
func (s *Service) get(ctx context.Context, id int64, c *cache.Entity[Agent]) (Agent, error) {
	a, err := cachedAgent(ctx, c, s.store, id)
	if apperr.Is(err, apperr.NotFound) {
		return Agent{}, apperr.Wrap(apperr.NotFound, err, "agent %d not found", id)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent: get: %w", err)
	}
	return a, nil
}

// List returns a page of agents, optionally only active or inactive ones.
func (s *Service) List(ctx context.Context, r page.Request, isActive *bool) (page.Page[Agent], error) {
	var rows []db.Agent
	total, err := s.store.AgentCount(ctx, isActive)
	if err == nil && total > int64(r.Skip) {
		rows, err = s.store.AgentList(ctx, db.AgentListParams{IsActive: isActive, SkipRows: r.Skip, MaxRows: r.Limit})
	}
	if err != nil {
		return page.Page[Agent]{}, fmt.Errorf("agent: list: %w", err)
	}
	items := make([]Agent, len(rows))
	for i, row := range rows {
		items[i] = agentFromRow(row)
	}
	return page.New(items, total, r), nil
}

// UpdateParams are the fields to change; nil leaves a field as it is.
type UpdateParams struct {
	Name            *string
	Description     *string
	Instructions    *string
	Model           *string
	Temperature     *float64
	MaxOutputTokens Optional[int32]
	Tools           *[]string
	ToolScope       *ToolScope
	IsActive        *bool
	// ApprovalRequiredTools must be among the (new or current) tools.
	ApprovalRequiredTools *[]string
	MaxSteps              Optional[int32]
	MaxToolCalls          Optional[int32]
	MaxTotalTokens        Optional[int64]
	OutputSchema          Optional[json.RawMessage]
}

// Optional is a field of a partial update that can be left out, set, or set to null.
type Optional[T any] struct {
	Set   bool // false: leave the field as it is
	Value *T   // nil: set to null
}

// Update changes an agent. Forbidden unless actor is an admin; NotFound; Conflict for a
// taken name; Invalid for a blank name or unknown tool; PreconditionFailed on If-Match.
func (s *Service) Update(ctx context.Context, actor auth.Principal, id int64, p UpdateParams, ifMatch etag.Condition) (Agent, error) {
	if !actor.IsAdmin {
		return Agent{}, errAdminRequired
	}
	var tools []string
	if p.Tools != nil {
		tools = *p.Tools
	}
	if err := checkDefinition(p.Name, tools, p.ToolScope); err != nil {
		return Agent{}, err
	}
	if p.Model != nil && strings.TrimSpace(*p.Model) == "" {
		return Agent{}, apperr.Validation(apperr.FieldError{Location: "body", Field: "model", Message: "must not be blank"})
	}
	var out Agent
	err := s.store.InTx(ctx, func(q db.Querier) error {
		cur, err := q.AgentGetByID(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			return apperr.Wrap(apperr.NotFound, err, "agent %d not found", id)
		}
		if err != nil {
			return err
		}
		if !ifMatch.Allows(cur.Version) {
			return apperr.E(apperr.PreconditionFailed, "agent %d has changed since the ETag in If-Match; fetch it again", id)
		}
		next := db.AgentUpdateParams{
			ID: id, Version: cur.Version, Name: cur.Name, Description: cur.Description, Instructions: cur.Instructions,
			Model: cur.Model, Temperature: cur.Temperature, MaxOutputTokens: cur.MaxOutputTokens, Tools: cur.Tools,
			ToolScope: cmp.Or(cur.ToolScope, db.AgentToolScopeTask), IsActive: cur.IsActive,
			ApprovalRequiredTools: cur.ApprovalRequiredTools, MaxSteps: cur.MaxSteps, MaxToolCalls: cur.MaxToolCalls,
			MaxTotalTokens: cur.MaxTotalTokens, OutputSchema: cur.OutputSchema,
		}
		if p.ApprovalRequiredTools != nil {
			next.ApprovalRequiredTools = *p.ApprovalRequiredTools
		}
		if p.MaxSteps.Set {
			next.MaxSteps = p.MaxSteps.Value
		}
		if p.MaxToolCalls.Set {
			next.MaxToolCalls = p.MaxToolCalls.Value
		}
		if p.MaxTotalTokens.Set {
			next.MaxTotalTokens = p.MaxTotalTokens.Value
		}
		if p.OutputSchema.Set {
			next.OutputSchema = nil
			if p.OutputSchema.Value != nil {
				next.OutputSchema = *p.OutputSchema.Value
			}
		}
		if p.Name != nil {
			next.Name = strings.TrimSpace(*p.Name)
		}
		if p.Description != nil {
			next.Description = *p.Description
		}
		if p.Instructions != nil {
			next.Instructions = *p.Instructions
		}
		if p.Model != nil {
			next.Model = strings.TrimSpace(*p.Model)
		}
		if p.Temperature != nil {
			next.Temperature = *p.Temperature
		}
		if p.MaxOutputTokens.Set {
			next.MaxOutputTokens = p.MaxOutputTokens.Value
		}
		if p.Tools != nil {
			next.Tools = *p.Tools
		}
		if p.ToolScope != nil && *p.ToolScope != "" {
			next.ToolScope = db.AgentToolScope(*p.ToolScope)
		}
		if p.IsActive != nil {
			next.IsActive = *p.IsActive
		}
		if next.ApprovalRequiredTools == nil {
			next.ApprovalRequiredTools = []string{}
		}
		if err := s.checkRunDefaults(next.Tools, next.ApprovalRequiredTools, next.MaxSteps, next.MaxToolCalls,
			next.MaxTotalTokens, next.OutputSchema); err != nil {
			return err
		}
		row, err := q.AgentUpdate(ctx, next)
		if apperr.Is(err, apperr.Conflict) {
			return apperr.Wrap(apperr.Conflict, err, "an agent named %q already exists", next.Name)
		}
		if apperr.Is(err, apperr.NotFound) {
			return apperr.E(apperr.PreconditionFailed, "agent %d changed concurrently; fetch it again", id)
		}
		if err != nil {
			return err
		}
		out = agentFromRow(row)
		return audit.Record(ctx, q, audit.Entry{Resource: "agent", ID: &id, Changes: diff(cur, row)})
	})
	if err != nil {
		return Agent{}, fmt.Errorf("agent: update: %w", err)
	}
	s.cache.Invalidate(ctx, id)
	return out, nil
}

// Delete removes an agent and its runs. Forbidden unless admin; NotFound;
// PreconditionFailed on If-Match.
func (s *Service) Delete(ctx context.Context, actor auth.Principal, id int64, ifMatch etag.Condition) error {
	if !actor.IsAdmin {
		return errAdminRequired
	}
	cur, err := s.get(ctx, id, nil)
	if err != nil {
		return err
	}
	if !ifMatch.Allows(cur.Version) {
		return apperr.E(apperr.PreconditionFailed, "agent %d has changed since the ETag in If-Match; fetch it again", id)
	}
	var n int64
	err = s.store.InTx(ctx, func(q db.Querier) error {
		var err error
		if n, err = q.AgentDelete(ctx, db.AgentDeleteParams{ID: id, Version: cur.Version}); err != nil || n == 0 {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "agent", ID: &id})
	})
	if err != nil {
		return fmt.Errorf("agent: delete: %w", err)
	}
	s.cache.Invalidate(ctx, id)
	if n == 0 {
		return apperr.E(apperr.PreconditionFailed, "agent %d changed concurrently; fetch it again", id)
	}
	return nil
}

// diff is the audit record of an update: each changed field, from and to.
func diff(a, b db.Agent) audit.Changes {
	c := audit.Changes{}
	c.Set("name", a.Name, b.Name)
	c.Set("description", a.Description, b.Description)
	c.Set("instructions", a.Instructions, b.Instructions)
	c.Set("model", a.Model, b.Model)
	c.Set("temperature", a.Temperature, b.Temperature)
	c.Set("max_output_tokens", a.MaxOutputTokens, b.MaxOutputTokens)
	c.Set("tools", a.Tools, b.Tools)
	c.Set("tool_scope", a.ToolScope, b.ToolScope)
	c.Set("is_active", a.IsActive, b.IsActive)
	c.Set("approval_required_tools", a.ApprovalRequiredTools, b.ApprovalRequiredTools)
	c.Set("max_steps", a.MaxSteps, b.MaxSteps)
	c.Set("max_tool_calls", a.MaxToolCalls, b.MaxToolCalls)
	c.Set("max_total_tokens", a.MaxTotalTokens, b.MaxTotalTokens)
	c.Set("output_schema", string(a.OutputSchema), string(b.OutputSchema))
	return c
}
