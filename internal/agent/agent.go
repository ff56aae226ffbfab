// Package agent implements AI agents: their definitions, runs of them on an input and
// optionally a task, the built-in tools they may call, and the executor that drives a
// run through a bounded tool-calling loop with the LLM.
package agent

import (
	"cmp"
	"context"
	"fmt"
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
}

var _ Tasks = (*task.Service)(nil)

// Queue enqueues and cancels the jobs that execute runs, inside the caller's transaction.
type Queue interface {
	// EnqueueRuns queues the execution of runs, in q's transaction. The worker that
	// starts a run records its job on it. origins[i] is the trace context of the
	// request that created runIDs[i] (nil outside a trace): a batch inserts the runs of
	// several requests under one context, and each job belongs to its own request.
	EnqueueRuns(ctx context.Context, q db.Querier, runIDs []int64, origins []context.Context) error
	// CancelJob cancels a queued or retrying job, or asks the worker running it to stop;
	// running reports the latter.
	CancelJob(ctx context.Context, q db.Querier, jobID int64) (running bool, err error)
}

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
}

// NewService builds a Service; defaultModel is used when an agent names none.
func NewService(s database, tasks Tasks, q Queue, defaultModel string) *Service {
	svc := &Service{store: s, tasks: tasks, queue: q, defaultModel: defaultModel}
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
	a := db.AgentCreateParams{
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
	return c
}
