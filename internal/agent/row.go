package agent

import (
	"cmp"
	"context"
	"encoding/json"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/llm"
)

// queries are the sqlc queries the agent package runs.
type queries interface {
	AgentCount(ctx context.Context, isActive *bool) (int64, error)
	AgentCreate(ctx context.Context, arg db.AgentCreateParams) (db.Agent, error)
	AgentDelete(ctx context.Context, arg db.AgentDeleteParams) (int64, error)
	AgentGetByID(ctx context.Context, id int64) (db.Agent, error)
	AgentList(ctx context.Context, arg db.AgentListParams) ([]db.Agent, error)
	AgentUpdate(ctx context.Context, arg db.AgentUpdateParams) (db.Agent, error)
	AgentRunCount(ctx context.Context, arg db.AgentRunCountParams) (int64, error)
	AgentRunCountActiveByCreators(ctx context.Context, userIDs []int64) ([]db.AgentRunCountActiveByCreatorsRow, error)
	AgentRunCreate(ctx context.Context, arg db.AgentRunCreateParams) ([]db.AgentRunCreateRow, error)
	AgentRunEventAppend(ctx context.Context, arg db.AgentRunEventAppendParams) (int64, error)
	AgentRunEventsAfter(ctx context.Context, arg db.AgentRunEventsAfterParams) ([]db.AgentRunEvent, error)
	AgentRunFinish(ctx context.Context, arg db.AgentRunFinishParams) ([]db.AgentRunFinishRow, error)
	AgentRunGetByID(ctx context.Context, id int64) (db.AgentRun, error)
	AgentRunGetByIDForUpdate(ctx context.Context, id int64) (db.AgentRun, error)
	AgentRunList(ctx context.Context, arg db.AgentRunListParams) ([]db.AgentRun, error)
	AgentRunPage(ctx context.Context, arg db.AgentRunPageParams) ([]db.AgentRunPageRow, error)
	AgentRunLockCreators(ctx context.Context, userIDs []int64) error
	AgentRunRequestCancel(ctx context.Context, id int64) (db.AgentRun, error)
	AgentRunSaveProgress(ctx context.Context, arg db.AgentRunSaveProgressParams) error
	AgentRunStart(ctx context.Context, arg db.AgentRunStartParams) ([]db.AgentRunStartRow, error)
	AgentRunToolCallClaim(ctx context.Context, arg db.AgentRunToolCallClaimParams) (int64, error)
	AgentRunAppendStep(ctx context.Context, arg db.AgentRunAppendStepParams) error
	AgentRunSaveTurn(ctx context.Context, arg db.AgentRunSaveTurnParams) (db.AgentRun, error)
	AgentRunContinue(ctx context.Context, arg db.AgentRunContinueParams) (db.AgentRun, error)
	AgentRunRequireAction(ctx context.Context, arg db.AgentRunRequireActionParams) (db.AgentRun, error)
	AgentRunResume(ctx context.Context, arg db.AgentRunResumeParams) (db.AgentRun, error)
	UserGetByID(ctx context.Context, id int64) (db.User, error)
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
}

// database is what the agent package needs of the store: its queries, and transactions
// (whose db.Querier also goes to the Queue, which inserts jobs in the same transaction).
type database interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

func agentFromRow(r db.Agent) Agent {
	return Agent{
		ID: r.ID, Name: r.Name, Description: r.Description, Instructions: r.Instructions, Model: r.Model,
		Temperature: r.Temperature, MaxOutputTokens: r.MaxOutputTokens, Tools: r.Tools, IsActive: r.IsActive,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Version: r.Version, ToolScope: ToolScope(r.ToolScope),
		ApprovalRequiredTools: r.ApprovalRequiredTools, MaxSteps: r.MaxSteps, MaxToolCalls: r.MaxToolCalls,
		MaxTotalTokens: r.MaxTotalTokens, OutputSchema: r.OutputSchema,
	}
}

// cachedAgent reads an agent through c (nil: from q). Its errors are q's.
func cachedAgent(ctx context.Context, c *cache.Entity[Agent], q queries, id int64) (Agent, error) {
	a, err := c.Get(ctx, id, func(ctx context.Context, id int64) (Agent, error) {
		r, err := q.AgentGetByID(ctx, id)
		if err != nil {
			return Agent{}, err
		}
		return agentFromRow(r), nil
	})
	// A record cached by a build older than tool scopes has none: it is task-scoped.
	a.ToolScope = cmp.Or(a.ToolScope, ToolScopeTask)
	return a, err
}

// runFromRow maps a run. When its stored steps are unreadable it returns the run without
// steps and an Internal error.
func runFromRow(r db.AgentRun) (Run, error) {
	run := Run{
		ID: r.ID, AgentID: r.AgentID, TaskID: r.TaskID, Status: RunStatus(r.Status), Input: r.Input, Output: r.Output,
		Model: r.Model, Usage: usageOf(r), Attempt: r.Attempt, Metadata: json.RawMessage(r.Metadata),
		CreatedBy: r.CreatedBy, CancelRequestedAt: r.CancelRequestedAt, CreatedAt: r.CreatedAt,
		StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		Budget:       Budget{MaxSteps: int(r.MaxSteps), MaxToolCalls: int(r.MaxToolCalls)},
		OutputSchema: json.RawMessage(r.OutputSchema), OutputJSON: json.RawMessage(r.OutputJson),
		IncompleteReason: r.IncompleteReason, ModelTurns: int(r.ModelTurns), ToolCalls: int(r.ToolCalls),
		LLMFailures: int(r.LlmFailures), JobID: r.JobID, TaskContext: r.TaskContext,
	}
	if r.MaxTotalTokens != nil {
		run.Budget.MaxTotalTokens = *r.MaxTotalTokens
	}
	if r.ErrorCode != nil && r.ErrorMessage != nil {
		run.Error = &RunError{Code: *r.ErrorCode, Message: *r.ErrorMessage}
	}
	steps, err := decodeSteps(r.Steps)
	if err != nil {
		return run, apperr.Wrap(apperr.Internal, err, "agent run %d: stored steps", r.ID)
	}
	run.Steps = steps
	if len(r.PendingToolCalls) > 0 {
		if err := json.Unmarshal(r.PendingToolCalls, &run.Pending); err != nil {
			return run, apperr.Wrap(apperr.Internal, err, "agent run %d: stored pending tool calls", r.ID)
		}
	}
	if len(r.RequiredAction) > 0 {
		run.RequiredAction = new(RequiredAction)
		if err := json.Unmarshal(r.RequiredAction, run.RequiredAction); err != nil {
			return run, apperr.Wrap(apperr.Internal, err, "agent run %d: stored required action", r.ID)
		}
	}
	return run, nil
}

// decodeSteps reads a run's stored steps (empty: none).
func decodeSteps(raw []byte) ([]Step, error) {
	var steps []Step
	if len(raw) == 0 {
		return steps, nil
	}
	if err := json.Unmarshal(raw, &steps); err != nil {
		return nil, err
	}
	return steps, nil
}

func usageOf(r db.AgentRun) llm.Usage {
	return llm.Usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, TotalTokens: r.TotalTokens,
		CachedCompletions: r.CachedCompletions}
}

func eventFromRow(e db.AgentRunEvent) Event {
	return Event{Seq: e.Seq, Type: e.Type, Data: json.RawMessage(e.Data)}
}

// inOrder returns, for each of ids, the run with that id among rows, or nil when the
// statement left it out (it had already ended).
func inOrder[R any](ids []int64, rows []R, run func(R) db.AgentRun) []*db.AgentRun {
	byID := make(map[int64]db.AgentRun, len(rows))
	for _, r := range rows {
		a := run(r)
		byID[a.ID] = a
	}
	out := make([]*db.AgentRun, len(ids))
	for i, id := range ids {
		if a, ok := byID[id]; ok {
			out[i] = &a
		}
	}
	return out
}

// start is one run's new attempt, by the queue job running it.
type start struct {
	runID, jobID int64
	attempt      int
}

// startRuns marks runs in progress and appends their run.status events, in one
// statement; the result is in starts' order (nil for a run that had ended).
func startRuns(ctx context.Context, q queries, starts []start) ([]*db.AgentRun, error) {
	p := db.AgentRunStartParams{
		Ids: make([]int64, len(starts)), Attempts: make([]int32, len(starts)), JobIds: make([]int64, len(starts)),
	}
	for i, s := range starts {
		p.Ids[i], p.Attempts[i], p.JobIds[i] = s.runID, int32(s.attempt), s.jobID
	}
	rows, err := q.AgentRunStart(ctx, p)
	if err != nil {
		return nil, err
	}
	return inOrder(p.Ids, rows, func(r db.AgentRunStartRow) db.AgentRun { return db.AgentRun(r) }), nil
}

// ending is how one run ends.
type ending struct {
	runID            int64
	status           RunStatus
	output           *string
	outputJSON       []byte // nil: none
	errorCode        string // empty: none
	errorMessage     string
	incompleteReason string // empty: none
	usage            llm.Usage
	modelTurns       int
	delta            string // output text not yet sent as an event (empty: none)
}

// finishRuns ends runs that have not ended yet and appends their last events, in one
// statement (callers go through endRuns, which tells runChanged); the result is in es' order (nil for a run that had ended).
func finishRuns(ctx context.Context, q queries, es []ending) ([]*db.AgentRun, error) {
	n := len(es)
	p := db.AgentRunFinishParams{
		Ids: make([]int64, n), Statuses: make([]string, n), HasOutputs: make([]bool, n), Outputs: make([]string, n),
		OutputJsons: make([]string, n), IncompleteReasons: make([]string, n), ModelTurns: make([]int32, n), ErrorCodes: make([]string, n), ErrorMessages: make([]string, n),
		PromptTokens: make([]int64, n), CompletionTokens: make([]int64, n), TotalTokens: make([]int64, n),
		CachedCompletions: make([]int64, n), Deltas: make([]string, n),
	}
	for i, e := range es {
		p.Ids[i], p.Statuses[i] = e.runID, string(e.status)
		p.OutputJsons[i], p.IncompleteReasons[i], p.ModelTurns[i] = string(e.outputJSON), e.incompleteReason, int32(e.modelTurns)
		if e.output != nil {
			p.HasOutputs[i], p.Outputs[i] = true, *e.output
		}
		p.ErrorCodes[i], p.ErrorMessages[i], p.Deltas[i] = e.errorCode, e.errorMessage, e.delta
		p.PromptTokens[i], p.CompletionTokens[i] = e.usage.PromptTokens, e.usage.CompletionTokens
		p.TotalTokens[i], p.CachedCompletions[i] = e.usage.TotalTokens, e.usage.CachedCompletions
	}
	rows, err := q.AgentRunFinish(ctx, p)
	if err != nil {
		return nil, err
	}
	return inOrder(p.Ids, rows, func(r db.AgentRunFinishRow) db.AgentRun { return db.AgentRun(r) }), nil
}
