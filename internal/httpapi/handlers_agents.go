package httpapi

import (
	"context"
	"encoding/json"
	"strconv"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
)

func toAgent(a agent.Agent) api.Agent {
	tools := make(api.AgentTools, len(a.Tools))
	for i, t := range a.Tools {
		tools[i] = api.AgentTool(t)
	}
	return api.Agent{
		Id: a.ID, Name: a.Name, Description: a.Description, Instructions: a.Instructions, Model: a.Model,
		Temperature: a.Temperature, MaxOutputTokens: nullableOf(a.MaxOutputTokens), Tools: tools,
		ToolScope: api.AgentToolScope(a.ToolScope), IsActive: a.IsActive,
		CreatedBy: nullableOf(a.CreatedBy), CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		ApprovalRequiredTools: agentTools(a.ApprovalRequiredTools), MaxSteps: nullableOf(a.MaxSteps),
		MaxToolCalls: nullableOf(a.MaxToolCalls), MaxTotalTokens: nullableOf(a.MaxTotalTokens),
		OutputSchema: outputSchema(a.OutputSchema),
	}
}

func toRun(r agent.Run) (api.AgentRun, error) {
	out := api.AgentRun{
		Id: r.ID, AgentId: r.AgentID, TaskId: nullableOf(r.TaskID), Status: api.AgentRunStatus(r.Status),
		Input: r.Input, Output: nullableOf(r.Output), Steps: make([]api.AgentRunStep, 0, len(r.Steps)), Model: r.Model,
		Usage: api.AgentRunUsage{PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens,
			TotalTokens: r.Usage.TotalTokens, CachedCompletions: r.Usage.CachedCompletions,
			ModelTurns: int32(r.ModelTurns), ToolCalls: int32(r.ToolCalls)},
		Attempt: r.Attempt, CreatedBy: nullableOf(r.CreatedBy), CreatedAt: r.CreatedAt.UTC(),
		StartedAt: nullableTime(r.StartedAt), CompletedAt: nullableTime(r.CompletedAt), Metadata: api.TaskMetadata{},
	}
	for _, s := range r.Steps {
		if s.Refused {
			continue // a call beyond the per-turn limit: the model's, not a step
		}
		st := api.AgentRunStep{Type: api.AgentRunStepType(s.Type), Name: s.Name, Arguments: map[string]any{}}
		_ = json.Unmarshal(s.Arguments, &st.Arguments)
		_ = json.Unmarshal(s.Result, &st.Result)
		st.Approval = toApproval(s.Approval)
		out.Steps = append(out.Steps, st)
	}
	steerFields(&out, r)
	if r.Error != nil {
		out.Error = nullableOf(&api.AgentRunError{Code: r.Error.Code, Message: r.Error.Message})
	} else {
		out.Error = nullableOf[api.AgentRunError](nil)
	}
	if err := json.Unmarshal(r.Metadata, &out.Metadata); err != nil {
		return api.AgentRun{}, apperr.Wrap(apperr.Internal, err, "agent run %d: stored metadata", r.ID)
	}
	return out, nil
}

func runPage(p page.Page[agent.Run]) (api.AgentRunPage, error) {
	items := make([]api.AgentRun, len(p.Items))
	for i, r := range p.Items {
		var err error
		if items[i], err = toRun(r); err != nil {
			return api.AgentRunPage{}, err
		}
	}
	return api.AgentRunPage{Items: items, Total: p.Total, Page: p.Page, PageSize: p.PageSize, TotalPages: p.TotalPages,
		NextCursor: nextCursor(p.NextCursor)}, nil
}

func toolNames(t *api.AgentTools) []string {
	if t == nil {
		return nil
	}
	out := make([]string, len(*t))
	for i, v := range *t {
		out[i] = string(v)
	}
	return out
}

// CreateAgent implements POST /api/v1/agents.
func (s *Server) CreateAgent(ctx context.Context, req api.CreateAgentRequestObject) (api.CreateAgentResponseObject, error) {
	b := req.Body
	p := agent.CreateParams{
		Name: b.Name, Temperature: b.Temperature, MaxOutputTokens: optional(b.MaxOutputTokens).Value,
		Tools: toolNames(b.Tools), IsActive: b.IsActive, ApprovalRequiredTools: toolNames(b.ApprovalRequiredTools),
		MaxSteps: optional(b.MaxSteps).Value, MaxToolCalls: optional(b.MaxToolCalls).Value,
		MaxTotalTokens: optional(b.MaxTotalTokens).Value,
	}
	schema, err := schemaJSON(b.OutputSchema)
	if err != nil {
		return nil, err
	}
	p.OutputSchema = schema
	if b.Description != nil {
		p.Description = *b.Description
	}
	if b.Instructions != nil {
		p.Instructions = *b.Instructions
	}
	if b.Model != nil {
		p.Model = *b.Model
	}
	if b.ToolScope != nil {
		p.ToolScope = agent.ToolScope(*b.ToolScope)
	}
	a, err := s.agents.Create(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	return api.CreateAgent201JSONResponse{Body: toAgent(a), Headers: api.CreateAgent201ResponseHeaders{
		ETag: ptr(etag.Format(a.Version)), Location: ptr("/api/v1/agents/" + strconv.FormatInt(a.ID, 10)),
	}}, nil
}

// ListAgents implements GET /api/v1/agents.
func (s *Server) ListAgents(ctx context.Context, req api.ListAgentsRequestObject) (api.ListAgentsResponseObject, error) {
	res, err := s.agents.List(ctx, page.NewRequest(req.Params.Skip, req.Params.Limit), req.Params.IsActive)
	if err != nil {
		return nil, err
	}
	out := page.Map(res, toAgent)
	return api.ListAgents200JSONResponse{Items: out.Items, Total: out.Total, Page: out.Page, PageSize: out.PageSize, TotalPages: out.TotalPages}, nil
}

// GetAgent implements GET /api/v1/agents/{agent_id}.
func (s *Server) GetAgent(ctx context.Context, req api.GetAgentRequestObject) (api.GetAgentResponseObject, error) {
	a, err := s.agents.Get(ctx, req.AgentId)
	if err != nil {
		return nil, err
	}
	tag := ptr(etag.Format(a.Version))
	if etag.IfNoneMatch(req.Params.IfNoneMatch).Matches(a.Version) {
		return api.GetAgent304Response{Headers: api.GetAgent304ResponseHeaders{ETag: tag}}, nil
	}
	return api.GetAgent200JSONResponse{Body: toAgent(a), Headers: api.GetAgent200ResponseHeaders{ETag: tag}}, nil
}

// UpdateAgent implements PATCH /api/v1/agents/{agent_id}.
func (s *Server) UpdateAgent(ctx context.Context, req api.UpdateAgentRequestObject) (api.UpdateAgentResponseObject, error) {
	b := req.Body
	maxTokens := optional(b.MaxOutputTokens)
	p := agent.UpdateParams{
		Name: b.Name, Description: b.Description, Instructions: b.Instructions, Model: b.Model, Temperature: b.Temperature,
		MaxOutputTokens: agent.Optional[int32]{Set: maxTokens.Set, Value: maxTokens.Value}, IsActive: b.IsActive,
	}
	if b.Tools != nil {
		t := toolNames(b.Tools)
		p.Tools = &t
	}
	if b.ToolScope != nil {
		sc := agent.ToolScope(*b.ToolScope)
		p.ToolScope = &sc
	}
	if err := steerUpdate(&p, b); err != nil {
		return nil, err
	}
	a, err := s.agents.Update(ctx, actor(ctx), req.AgentId, p, etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	return api.UpdateAgent200JSONResponse{Body: toAgent(a), Headers: api.UpdateAgent200ResponseHeaders{ETag: ptr(etag.Format(a.Version))}}, nil
}

// DeleteAgent implements DELETE /api/v1/agents/{agent_id}.
func (s *Server) DeleteAgent(ctx context.Context, req api.DeleteAgentRequestObject) (api.DeleteAgentResponseObject, error) {
	if err := s.agents.Delete(ctx, actor(ctx), req.AgentId, etag.IfMatch(req.Params.IfMatch)); err != nil {
		return nil, err
	}
	return api.DeleteAgent204Response{}, nil
}

// CreateAgentRun implements POST /api/v1/agents/{agent_id}/runs.
func (s *Server) CreateAgentRun(ctx context.Context, req api.CreateAgentRunRequestObject) (api.CreateAgentRunResponseObject, error) {
	b := req.Body
	meta, err := metadataJSON(b.Metadata)
	if err != nil {
		return nil, err
	}
	schema, err := schemaJSON(b.OutputSchema)
	if err != nil {
		return nil, err
	}
	r, err := s.agents.CreateRun(ctx, actor(ctx), req.AgentId, agent.RunParams{
		Input: b.Input, TaskID: optional(b.TaskId).Value, Metadata: meta,
		MaxSteps: optional(b.MaxSteps).Value, MaxToolCalls: optional(b.MaxToolCalls).Value,
		MaxTotalTokens: optional(b.MaxTotalTokens).Value, OutputSchema: schema,
	})
	if err != nil {
		return nil, err
	}
	out, err := toRun(r)
	if err != nil {
		return nil, err
	}
	return api.CreateAgentRun202JSONResponse{Body: out, Headers: api.CreateAgentRun202ResponseHeaders{
		Location: ptr("/api/v1/agent-runs/" + strconv.FormatInt(r.ID, 10)),
	}}, nil
}

// ListAgentRuns implements GET /api/v1/agent-runs.
func (s *Server) ListAgentRuns(ctx context.Context, req api.ListAgentRunsRequestObject) (api.ListAgentRunsResponseObject, error) {
	q := req.Params
	pr, err := page.NewCursorRequest(q.Skip, q.Limit, q.Cursor)
	if err != nil {
		return nil, err
	}
	p := agent.RunListParams{Page: pr, AgentID: q.AgentId, TaskID: q.TaskId}
	if q.Status != nil {
		st := agent.RunStatus(*q.Status)
		p.Status = &st
	}
	res, err := s.agents.ListRuns(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	out, err := runPage(res)
	if err != nil {
		return nil, err
	}
	return api.ListAgentRuns200JSONResponse(out), nil
}

// GetAgentRun implements GET /api/v1/agent-runs/{run_id}.
func (s *Server) GetAgentRun(ctx context.Context, req api.GetAgentRunRequestObject) (api.GetAgentRunResponseObject, error) {
	r, err := s.agents.GetRun(ctx, actor(ctx), req.RunId)
	if err != nil {
		return nil, err
	}
	out, err := toRun(r)
	if err != nil {
		return nil, err
	}
	return api.GetAgentRun200JSONResponse(out), nil
}

// CancelAgentRun implements POST /api/v1/agent-runs/{run_id}/cancel.
func (s *Server) CancelAgentRun(ctx context.Context, req api.CancelAgentRunRequestObject) (api.CancelAgentRunResponseObject, error) {
	r, err := s.agents.CancelRun(ctx, actor(ctx), req.RunId)
	if err != nil {
		return nil, err
	}
	out, err := toRun(r)
	if err != nil {
		return nil, err
	}
	return api.CancelAgentRun200JSONResponse(out), nil
}

// ListTaskRuns implements GET /api/v1/tasks/{task_id}/runs.
func (s *Server) ListTaskRuns(ctx context.Context, req api.ListTaskRunsRequestObject) (api.ListTaskRunsResponseObject, error) {
	pr, err := page.NewCursorRequest(req.Params.Skip, req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	res, err := s.agents.ListTaskRuns(ctx, actor(ctx), req.TaskId, pr)
	if err != nil {
		return nil, err
	}
	out, err := runPage(res)
	if err != nil {
		return nil, err
	}
	return api.ListTaskRuns200JSONResponse(out), nil
}
