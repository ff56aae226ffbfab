package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

func TestAgentSmoke(t *testing.T) {
	t.Parallel()
	llm := llmtest.New(t)
	env := apitest.Start(t, apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey), apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()))
	admin := env.AsAdmin(t)
	ctx := context.Background()
	tk, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "Check invoices"})
	require.NoError(t, err)
	require.Equal(t, 201, tk.StatusCode())
	tools := client.AgentTools{client.UpdateTaskStatus, client.GetTask}
	ag, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "closer", Tools: &tools})
	require.NoError(t, err)
	require.Equal(t, 201, ag.StatusCode(), string(ag.Body))
	llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "update_task_status", Arguments: `{"task_id":` + strconv.FormatInt(tk.JSON201.Id, 10) + `,"status":"in_progress"}`}}, Prompt: 10, Completion: 5},
		llmtest.Reply{Content: []string{"Started ", "the task."}, Prompt: 20, Completion: 4},
	)
	run, err := admin.CreateAgentRunWithResponse(ctx, ag.JSON201.Id, nil, client.AgentRunCreate{Input: "start it"})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, run.StatusCode(), string(run.Body))
	var got *client.AgentRun
	require.Eventually(t, func() bool {
		r, err := admin.GetAgentRunWithResponse(ctx, run.JSON202.Id)
		require.NoError(t, err)
		got = r.JSON200
		return got.Status == client.AgentRunStatusCompleted || got.Status == client.AgentRunStatusFailed
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, client.AgentRunStatusCompleted, got.Status, "%+v", got)
	t.Logf("run: %+v", got)
}
