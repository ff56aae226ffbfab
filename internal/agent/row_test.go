package agent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/cache"
)

// agentQueries answers AgentGetByID with one row; any other query panics.
type agentQueries struct {
	queries
	row db.Agent
}

func (q agentQueries) AgentGetByID(context.Context, int64) (db.Agent, error) { return q.row, nil }

func TestInOrderReturnsRowsInTheOrderAskedAndNilForThoseLeftOut(t *testing.T) {
	t.Parallel()
	rows := []db.AgentRun{{ID: 3, Input: "three"}, {ID: 1, Input: "one"}}
	out := inOrder([]int64{1, 2, 3}, rows, func(r db.AgentRun) db.AgentRun { return r })
	require.Len(t, out, 3)
	require.Equal(t, "one", out[0].Input)
	require.Nil(t, out[1], "run 2 had ended")
	require.Equal(t, "three", out[2].Input)
}

func TestRunFromRow(t *testing.T) {
	t.Parallel()
	code, msg := "llm_not_configured", "no LLM is configured"
	row := db.AgentRun{
		ID: 7, AgentID: 2, Status: db.AgentRunStatusFailed, Input: "in", Model: "m",
		Steps:        []byte(`[{"type":"tool_call","name":"get_task","arguments":{"task_id":1},"result":{"id":1},"call_id":"c1","turn":1}]`),
		ErrorCode:    &code,
		ErrorMessage: &msg,
		PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3, CachedCompletions: 4,
		Metadata: []byte(`{"k":"v"}`),
	}

	t.Run("maps steps, error, usage and metadata", func(t *testing.T) {
		t.Parallel()
		r, err := runFromRow(row)
		require.NoError(t, err)
		require.Equal(t, RunFailed, r.Status)
		require.Equal(t, &RunError{Code: code, Message: msg}, r.Error)
		require.Len(t, r.Steps, 1)
		require.Equal(t, "get_task", r.Steps[0].Name)
		require.Equal(t, 1, r.Steps[0].Turn)
		require.JSONEq(t, `{"task_id":1}`, string(r.Steps[0].Arguments))
		require.Equal(t, int64(3), r.Usage.TotalTokens)
		require.Equal(t, int64(4), r.Usage.CachedCompletions)
		require.JSONEq(t, `{"k":"v"}`, string(r.Metadata))
	})

	t.Run("an error needs both code and message", func(t *testing.T) {
		t.Parallel()
		half := row
		half.ErrorMessage = nil
		r, err := runFromRow(half)
		require.NoError(t, err)
		require.Nil(t, r.Error)
	})

	t.Run("unreadable steps are an internal error and no steps", func(t *testing.T) {
		t.Parallel()
		bad := row
		bad.Steps = []byte(`{"not":"a list"}`)
		r, err := runFromRow(bad)
		require.True(t, apperr.Is(err, apperr.Internal), "%v", err)
		require.Nil(t, r.Steps)
		require.Equal(t, int64(7), r.ID, "the rest of the run is still mapped")
	})
}

// TestAgentCachedAsJSONByTheRowTypeReadsTheSame checks that a record cached as JSON by a
// build that cached db.Agent reads back as the same agent.Agent.
func TestAgentCachedAsJSONByTheRowTypeReadsTheSame(t *testing.T) {
	t.Parallel()
	n := int32(100)
	by := int64(5)
	row := db.Agent{
		ID: 1, Name: "a", Description: "d", Instructions: "i", Model: "m", Temperature: 0.5, MaxOutputTokens: &n,
		Tools: []string{"get_task"}, IsActive: true, CreatedBy: &by, CreatedAt: time.Unix(1, 0).UTC(),
		UpdatedAt: time.Unix(2, 0).UTC(), Version: 3, ToolScope: db.AgentToolScopeCreator,
	}
	b, err := json.Marshal(row)
	require.NoError(t, err)
	var got Agent
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, agentFromRow(row), got)
}

func TestCachedAgentWithoutAToolScopeIsTaskScoped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := cache.NewEntity[Agent](cache.NewMemory(10, nil), "agent", time.Minute, nil)
	a, err := cachedAgent(ctx, c, agentQueries{row: db.Agent{ID: 1}}, 1)
	require.NoError(t, err)
	require.Equal(t, ToolScopeTask, a.ToolScope)

	a, err = cachedAgent(ctx, nil, agentQueries{row: db.Agent{ID: 2, ToolScope: db.AgentToolScopeCreator}}, 2)
	require.NoError(t, err)
	require.Equal(t, ToolScopeCreator, a.ToolScope)
}
