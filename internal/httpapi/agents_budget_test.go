package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

func budgetGetTask(taskID int64, id string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: id, Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, taskID)}},
		Prompt: 10, Completion: 5}
}

// TestAgentRunBudgets: each budget ends the run incomplete with its reason; the agent's
// defaults apply when the run sets none, and the run's own win; usage counts turns and calls.
func TestAgentRunBudgets(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	user := f.env.CreateUser(t, "budget", false)
	uc := f.env.As(user.Token)
	ts := client.AgentTools{client.GetTask}
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: fmt.Sprintf("budget-%d", agtSeq.Add(1)), Tools: &ts,
		MaxSteps: nullable.NewNullableWithValue[int32](2)})
	require.EqualValues(t, 2, ag.MaxSteps.MustGet())
	task := agtCreateTask(t, uc, "budget")

	t.Run("max_steps_from_the_agent", func(t *testing.T) {
		f.llm.Script(budgetGetTask(task.Id, "c1"), budgetGetTask(task.Id, "c2"), budgetGetTask(task.Id, "c3"))
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "loop"})
		require.EqualValues(t, 2, run.Budget.MaxSteps)
		require.EqualValues(t, 32, run.Budget.MaxToolCalls, "AGENT_MAX_TOOL_CALLS is the default")
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusIncomplete, r.Status)
		require.Equal(t, client.MaxSteps, r.IncompleteReason.MustGet())
		require.EqualValues(t, 2, r.Usage.ModelTurns)
		require.EqualValues(t, 2, r.Usage.ToolCalls)
		require.EqualValues(t, 30, r.Usage.TotalTokens)
	})

	t.Run("max_tool_calls_from_the_run", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{
			{ID: "a", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)},
			{ID: "b", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)},
		}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "two", MaxToolCalls: nullable.NewNullableWithValue[int32](1)})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusIncomplete, r.Status)
		require.Equal(t, client.MaxToolCalls, r.IncompleteReason.MustGet())
		require.Len(t, r.Steps, 1, "the call within the budget ran")
		require.EqualValues(t, 1, r.Usage.ToolCalls)
	})

	t.Run("max_total_tokens", func(t *testing.T) {
		f.llm.Script(budgetGetTask(task.Id, "t1"), budgetGetTask(task.Id, "t2"))
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "tokens", MaxTotalTokens: nullable.NewNullableWithValue[int64](15),
			MaxSteps: nullable.NewNullableWithValue[int32](5)})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusIncomplete, r.Status)
		require.Equal(t, client.MaxTotalTokens, r.IncompleteReason.MustGet())
		require.EqualValues(t, 15, r.Usage.TotalTokens)
		require.EqualValues(t, 1, r.Usage.ModelTurns)
	})

	t.Run("bad_budgets", func(t *testing.T) {
		for name, body := range map[string]client.AgentRunCreate{
			"steps_over_server_limit": {Input: "x", MaxSteps: nullable.NewNullableWithValue[int32](9)},
			"zero_calls":              {Input: "x", MaxToolCalls: nullable.NewNullableWithValue[int32](0)},
			"zero_tokens":             {Input: "x", MaxTotalTokens: nullable.NewNullableWithValue[int64](0)},
		} {
			res, err := uc.CreateAgentRunWithResponse(context.Background(), ag.Id, nil, body)
			require.NoError(t, err, name)
			require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.StatusCode(), "%s: %s", name, res.Body)
		}
	})
}

// TestAgentRunStructuredOutput: the schema goes to the model as response_format; a
// matching answer fills output_json; a wrong one gets one corrective turn, then fails
// with output_schema_mismatch; an invalid or oversized schema is refused at create; a
// schema the provider rejects fails the run with the provider's reason.
func TestAgentRunStructuredOutput(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	user := f.env.CreateUser(t, "schema", false)
	uc := f.env.As(user.Token)
	schema := client.OutputSchema{"type": "object", "required": []any{"verdict"}, "additionalProperties": false,
		"properties": map[string]any{"verdict": map[string]any{"type": "string", "enum": []any{"match", "mismatch"}}}}
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: fmt.Sprintf("schema-%d", agtSeq.Add(1)),
		OutputSchema: nullable.NewNullableWithValue(schema)})
	require.Equal(t, "object", ag.OutputSchema.MustGet()["type"])

	t.Run("valid_answer", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{Content: []string{`{"verdict":`, `"match"}`}, Prompt: 5, Completion: 5})
		before := f.llm.Hits()
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "judge"})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%s", agtJSON(r))
		require.Equal(t, map[string]any{"verdict": "match"}, r.OutputJson.MustGet())
		require.Equal(t, `{"verdict":"match"}`, r.Output.MustGet())
		req := f.llm.Requests()[before]
		rf, _ := json.Marshal(req["response_format"])
		require.Contains(t, string(rf), `"type":"json_schema"`)
		require.Contains(t, string(rf), `"verdict"`)
	})

	t.Run("corrected_once", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{Content: []string{`{"verdict":"maybe"}`}}, llmtest.Reply{Content: []string{`{"verdict":"mismatch"}`}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "judge"})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%s", agtJSON(r))
		require.Equal(t, map[string]any{"verdict": "mismatch"}, r.OutputJson.MustGet())
		require.EqualValues(t, 2, r.Usage.ModelTurns)
		reqs := f.llm.Requests()
		msgs, _ := json.Marshal(reqs[len(reqs)-1]["messages"])
		require.Contains(t, string(msgs), "does not match the required JSON Schema")
	})

	t.Run("mismatch_twice", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{Content: []string{`not json`}}, llmtest.Reply{Content: []string{`{"verdict":1}`}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "judge"})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusFailed, r.Status)
		code, msg := agtRunError(r)
		require.Equal(t, "output_schema_mismatch", code)
		require.Contains(t, msg, "/verdict", "the error says what did not validate")
		require.True(t, r.OutputJson.IsNull())
	})

	t.Run("run_schema_overrides", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{Content: []string{`[1,2]`}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "list",
			OutputSchema: nullable.NewNullableWithValue(client.OutputSchema{"type": "array", "items": map[string]any{"type": "integer"}})})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%s", agtJSON(r))
		require.Equal(t, []any{float64(1), float64(2)}, r.OutputJson.MustGet())
	})

	t.Run("provider_rejects_schema", func(t *testing.T) {
		f.llm.Script(llmtest.Reply{Status: http.StatusBadRequest, Error: "Invalid schema for response_format 'output': 'enum' is not permitted"})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "judge"})
		r := agtWaitRun(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusFailed, r.Status)
		_, msg := agtRunError(r)
		require.Contains(t, msg, "Invalid schema for response_format", "the provider's reason, in words")
	})

	t.Run("invalid_schemas_refused", func(t *testing.T) {
		big := client.OutputSchema{"type": "object", "description": strings.Repeat("x", 17<<10)}
		for name, s := range map[string]client.OutputSchema{
			"bad_type":     {"type": "no-such-type"},
			"bad_keyword":  {"type": "object", "minProperties": -1},
			"external_ref": {"$ref": "file:///etc/passwd"},
			"too_large":    big,
		} {
			res, err := uc.CreateAgentRunWithResponse(context.Background(), ag.Id, nil,
				client.AgentRunCreate{Input: "x", OutputSchema: nullable.NewNullableWithValue(s)})
			require.NoError(t, err)
			p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
			apitest.RequireFieldError(t, p, "body", "output_schema")
			_ = name
			ares, err := f.admin.CreateAgentWithResponse(context.Background(), client.AgentCreate{
				Name: fmt.Sprintf("bad-schema-%d", agtSeq.Add(1)), OutputSchema: nullable.NewNullableWithValue(s)})
			require.NoError(t, err)
			apitest.RequireProblem(t, ares, http.StatusUnprocessableEntity)
		}
	})

	t.Run("approval_tools_must_be_tools", func(t *testing.T) {
		res, err := f.admin.CreateAgentWithResponse(context.Background(), client.AgentCreate{Name: fmt.Sprintf("appr-%d", agtSeq.Add(1)),
			ApprovalRequiredTools: &[]client.AgentTool{client.UpdateTaskStatus}})
		require.NoError(t, err)
		p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "approval_required_tools.0")
	})
}
