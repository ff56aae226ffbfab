package httpapi

import (
	"context"
	"encoding/json"

	"github.com/oapi-codegen/nullable"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
)

// SubmitAgentRunApprovals implements POST /api/v1/agent-runs/{run_id}/approvals.
func (s *Server) SubmitAgentRunApprovals(ctx context.Context, req api.SubmitAgentRunApprovalsRequestObject) (api.SubmitAgentRunApprovalsResponseObject, error) {
	ds := make([]agent.DecisionParams, len(req.Body.Decisions))
	for i, d := range req.Body.Decisions {
		ds[i] = agent.DecisionParams{ToolCallID: d.ToolCallId, Decision: agent.Decision(d.Decision), Reason: d.Reason}
		if d.Arguments != nil {
			b, err := json.Marshal(*d.Arguments)
			if err != nil {
				return nil, apperr.Wrap(apperr.Invalid, err, "decisions.%d.arguments: not encodable", i)
			}
			ds[i].Arguments = b
		}
	}
	r, err := s.agents.SubmitApprovals(ctx, actor(ctx), req.RunId, ds)
	if err != nil {
		return nil, err
	}
	out, err := toRun(r)
	if err != nil {
		return nil, err
	}
	return api.SubmitAgentRunApprovals202JSONResponse(out), nil
}

// steerFields sets a run's approval, budget and structured-output fields.
func steerFields(out *api.AgentRun, r agent.Run) {
	out.Budget = api.AgentRunBudget{MaxSteps: int32(r.Budget.MaxSteps), MaxToolCalls: int32(r.Budget.MaxToolCalls),
		MaxTotalTokens: nullable.NewNullNullable[int64]()}
	if r.Budget.MaxTotalTokens > 0 {
		out.Budget.MaxTotalTokens = nullable.NewNullableWithValue(r.Budget.MaxTotalTokens)
	}
	out.OutputSchema = outputSchema(r.OutputSchema)
	out.OutputJson = nullable.NewNullNullable[any]()
	if len(r.OutputJSON) > 0 {
		var v any
		if json.Unmarshal(r.OutputJSON, &v) == nil {
			out.OutputJson = nullable.NewNullableWithValue(v)
		}
	}
	out.IncompleteReason = nullable.NewNullNullable[api.AgentRunIncompleteReason]()
	if r.IncompleteReason != nil {
		out.IncompleteReason = nullable.NewNullableWithValue(api.AgentRunIncompleteReason(*r.IncompleteReason))
	}
	out.RequiredAction = nullable.NewNullNullable[api.AgentRunRequiredAction]()
	if ra := r.RequiredAction; ra != nil && r.Status == agent.RunRequiresAction {
		v := api.AgentRunRequiredAction{Type: api.AgentRunRequiredActionType(ra.Type), ExpiresAt: ra.ExpiresAt.UTC(),
			ToolCalls: make([]api.AgentRunPendingToolCall, len(ra.ToolCalls))}
		for i, c := range ra.ToolCalls {
			call := api.AgentRunPendingToolCall{Id: c.ID, Name: api.AgentTool(c.Name), Arguments: map[string]any{}}
			_ = json.Unmarshal(c.Arguments, &call.Arguments)
			v.ToolCalls[i] = call
		}
		out.RequiredAction = nullable.NewNullableWithValue(v)
	}
}

func toApproval(a *agent.Approval) *api.AgentRunApproval {
	if a == nil {
		return nil
	}
	return &api.AgentRunApproval{Decision: api.AgentRunApprovalDecision(a.Decision), DecidedBy: a.DecidedBy,
		DecidedAt: a.DecidedAt.UTC(), Reason: nullableOf(a.Reason)}
}

func agentTools(names []string) []api.AgentTool {
	out := make([]api.AgentTool, len(names))
	for i, n := range names {
		out[i] = api.AgentTool(n)
	}
	return out
}

// outputSchema maps a stored schema (nil: none) to the API's nullable object.
func outputSchema(raw []byte) nullable.Nullable[api.OutputSchema] {
	var m api.OutputSchema
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return nullable.NewNullNullable[api.OutputSchema]()
	}
	return nullable.NewNullableWithValue(m)
}

// schemaJSON encodes a requested schema (absent or null: nil).
func schemaJSON(n nullable.Nullable[api.OutputSchema]) (json.RawMessage, error) {
	if !n.IsSpecified() || n.IsNull() {
		return nil, nil
	}
	b, err := json.Marshal(n.MustGet())
	if err != nil {
		return nil, apperr.Wrap(apperr.Invalid, err, "output_schema: not encodable")
	}
	return b, nil
}

// steerUpdate maps an agent update's approval, budget and output-schema fields.
func steerUpdate(p *agent.UpdateParams, b *api.UpdateAgentJSONRequestBody) error {
	if b.ApprovalRequiredTools != nil {
		t := toolNames(b.ApprovalRequiredTools)
		p.ApprovalRequiredTools = &t
	}
	steps, calls, tokens := optional(b.MaxSteps), optional(b.MaxToolCalls), optional(b.MaxTotalTokens)
	p.MaxSteps = agent.Optional[int32]{Set: steps.Set, Value: steps.Value}
	p.MaxToolCalls = agent.Optional[int32]{Set: calls.Set, Value: calls.Value}
	p.MaxTotalTokens = agent.Optional[int64]{Set: tokens.Set, Value: tokens.Value}
	if b.OutputSchema.IsSpecified() {
		schema, err := schemaJSON(b.OutputSchema)
		if err != nil {
			return err
		}
		p.OutputSchema.Set = true
		if schema != nil {
			p.OutputSchema.Value = &schema
		}
	}
	return nil
}
