package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// ---------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------

func TestAgentRunEndToEnd(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	ctx := context.Background()
	user := f.env.CreateUser(t, "Erin", false)
	instructions := "You are the triage agent. Codeword PELICAN-7."
	tools := client.AgentTools{client.GetTask, client.UpdateTaskStatus}
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "triager", Instructions: &instructions, Tools: &tools})
	require.Equal(t, "gpt-4o", ag.Model, "the default model is LLM_MODEL's default")
	require.InDelta(t, 0.2, ag.Temperature, 1e-9)

	task := agtCreateTask(t, user.Client, "Reconcile invoices 4711")
	require.Equal(t, client.TaskStatusPending, task.Status)
	id := strconv.FormatInt(task.Id, 10)
	f.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_get", Name: "get_task", Arguments: `{"task_id":` + id + `}`}}, Prompt: 100, Completion: 10},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_update", Name: "update_task_status", Arguments: `{"task_id":` + id + `,"status":"in_progress"}`}}, Prompt: 200, Completion: 20},
		llmtest.Reply{Content: []string{"I started ", "work on ", "the task."}, Prompt: 300, Completion: 30},
	)
	input := "Please start working on this task."
	queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: input, TaskId: nullable.NewNullableWithValue(task.Id)})
	require.Equal(t, ag.Id, queued.AgentId)
	require.Equal(t, task.Id, queued.TaskId.MustGet())
	require.Equal(t, user.Id, queued.CreatedBy.MustGet())
	require.Equal(t, input, queued.Input)
	require.Equal(t, ag.Model, queued.Model)
	require.Equal(t, int32(0), queued.Attempt)
	require.Empty(t, queued.Steps)
	require.True(t, queued.Output.IsNull())
	require.True(t, queued.Error.IsNull())
	require.True(t, queued.StartedAt.IsNull())
	require.True(t, queued.CompletedAt.IsNull())
	require.Equal(t, client.AgentRunUsage{}, queued.Usage)

	run := agtWaitRun(t, user.Client, queued.Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
	require.True(t, run.Error.IsNull())
	require.Equal(t, "I started work on the task.", run.Output.MustGet(), "the output is the streamed pieces joined")
	require.Equal(t, client.AgentRunUsage{PromptTokens: 600, CompletionTokens: 60, TotalTokens: 660, ModelTurns: 3, ToolCalls: 2}, run.Usage, "usage is summed over the three completions")
	require.Equal(t, int32(1), run.Attempt)
	started, err := run.StartedAt.Get()
	require.NoError(t, err, "started_at is set")
	completed, err := run.CompletedAt.Get()
	require.NoError(t, err, "completed_at is set")
	require.False(t, started.Before(run.CreatedAt.Truncate(time.Millisecond)), "started %s before created %s", started, run.CreatedAt)
	require.False(t, completed.Before(started))

	require.Len(t, run.Steps, 2, "%s", agtJSON(run.Steps))
	get, upd := run.Steps[0], run.Steps[1]
	require.Equal(t, client.ToolCall, get.Type)
	require.Equal(t, "get_task", get.Name)
	require.Equal(t, map[string]any{"task_id": float64(task.Id)}, get.Arguments)
	gr := agtResultMap(t, get)
	require.Equal(t, float64(task.Id), gr["id"])
	require.Equal(t, task.Title, gr["title"])
	require.Equal(t, "pending", gr["status"], "get_task ran before the update")
	require.Equal(t, client.ToolCall, upd.Type)
	require.Equal(t, "update_task_status", upd.Name)
	require.Equal(t, map[string]any{"task_id": float64(task.Id), "status": "in_progress"}, upd.Arguments)
	ur := agtResultMap(t, upd)
	require.Equal(t, "in_progress", ur["status"])
	require.NotContains(t, ur, "error")

	// The tool really changed the task, through the same rules as the API.
	after := agtGetTask(t, user.Client, task.Id)
	require.Equal(t, client.TaskStatusInProgress, after.Status)
	require.Equal(t, task.Version+1, after.Version)

	// What the model was sent.
	reqs := f.llm.Requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		require.Equal(t, ag.Model, r["model"], "request %d", i)
		require.Equal(t, true, r["stream"], "request %d", i)
		require.InDelta(t, 0.2, r["temperature"], 1e-9, "request %d", i)
		require.Equal(t, []string{"get_task", "update_task_status"}, agtToolNames(r), "request %d offers exactly the agent's tools", i)
	}
	first := agtMessages(t, reqs[0])
	require.Len(t, first, 3, "%+v", first)
	require.Equal(t, "system", first[0].Role)
	require.Contains(t, first[0].Content, instructions, "the agent's instructions are the system message")
	require.Equal(t, "user", first[1].Role, "the task is data, given on the user's side")
	require.Contains(t, first[1].Content, task.Title, "the task is given as context")
	require.Contains(t, first[1].Content, fmt.Sprintf(`"id":%d`, task.Id))
	require.Equal(t, "user", first[2].Role)
	require.Equal(t, input, first[2].Content)

	second := agtMessages(t, reqs[1])
	require.Len(t, second, 5, "%+v", second)
	require.Equal(t, first, second[:3], "later turns keep the conversation")
	require.Equal(t, "assistant", second[3].Role)
	require.Equal(t, []string{"call_get"}, second[3].ToolCalls)
	got := agtToolResult(t, second, "call_get")
	require.Contains(t, got, task.Title, "the model reads get_task's result")
	require.Contains(t, got, `"pending"`)

	third := agtMessages(t, reqs[2])
	require.Len(t, third, 7, "%+v", third)
	require.Equal(t, second, third[:5])
	require.Equal(t, []string{"call_update"}, third[5].ToolCalls)
	require.Contains(t, agtToolResult(t, third, "call_update"), `"in_progress"`)

	// The run is listed with its task and among the user's runs.
	tr, err := user.Client.ListTaskRunsWithResponse(ctx, task.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tr.StatusCode(), "%s", tr.Body)
	require.Equal(t, int64(1), tr.JSON200.Total)
	require.Equal(t, run.Id, tr.JSON200.Items[0].Id)
	require.Equal(t, client.AgentRunStatusCompleted, tr.JSON200.Items[0].Status)
	lr, err := user.Client.ListAgentRunsWithResponse(ctx, &client.ListAgentRunsParams{TaskId: &task.Id})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lr.StatusCode(), "%s", lr.Body)
	require.Equal(t, []int64{run.Id}, agtRunIDs(lr.JSON200.Items))
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events across instances
// ---------------------------------------------------------------------------------------

func TestAgentRunEventsStreamAcrossInstances(t *testing.T) {
	t.Parallel()
	llm := llmtest.New(t)
	// A executes runs; B only serves the API (no workers, and no LLM key: had B executed
	// the run, it would have failed with llm_not_configured).
	a := apitest.Start(t, agtOptions(llm)...)
	b := apitest.StartOn(t, a.DBURL, agtOptions(nil, apitest.WithEnv("WORKER_CONCURRENCY", "0"))...)
	ctx := context.Background()
	adminB := b.AsAdmin(t)
	user := b.CreateUser(t, "Sam", false)
	task := agtCreateTask(t, user.Client, "Stream me")
	tools := client.AgentTools{client.GetTask}
	ag := agtCreateAgent(t, adminB, client.AgentCreate{Name: "streamer", Tools: &tools})

	pieces := []string{"Alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta."}
	llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 5, Completion: 5, ChunkDelay: 30 * time.Millisecond},
		llmtest.Reply{Content: pieces, Prompt: 7, Completion: 8, ChunkDelay: 30 * time.Millisecond},
	)
	run := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "Describe the task", TaskId: nullable.NewNullableWithValue(task.Id)})

	s := agtOpenStream(t, b.BaseURL, user.Token, run.Id, "")
	evs := s.rest(t, agtTimeout)
	agtCheckEvents(t, run.Id, evs)
	require.GreaterOrEqual(t, len(evs), 5, "%s", agtEventList(evs))
	firstLatency := evs[0].At
	t.Logf("SSE across instances: first event after %s, terminal event after %s, stream closed after %s; %d events: %s",
		firstLatency, evs[len(evs)-1].At, s.closedAt, len(evs), agtEventList(evs))
	require.Less(t, firstLatency, time.Second, "the stream replays what exists at once")
	require.Greater(t, evs[len(evs)-1].At-firstLatency, 200*time.Millisecond, "events were delivered live, not all at the end")
	require.Less(t, s.closedAt-evs[len(evs)-1].At, 2*time.Second, "the stream closes after the terminal event")

	for i, ev := range evs {
		require.Equal(t, int64(i+1), ev.ID, "a run's event ids count from 1: %s", agtEventList(evs))
	}
	require.Equal(t, "run.status", evs[0].Type)
	require.Equal(t, client.AgentRunStatusQueued, *evs[0].Data.Status)
	require.Equal(t, "run.status", evs[1].Type)
	require.Equal(t, client.AgentRunStatusInProgress, *evs[1].Data.Status)
	require.NotNil(t, evs[1].Data.Attempt)
	require.Equal(t, int32(1), *evs[1].Data.Attempt)

	middle := evs[2 : len(evs)-1]
	require.Equal(t, "run.step", middle[0].Type, "the tool call comes before any text: %s", agtEventList(evs))
	require.NotNil(t, middle[0].Data.Step)
	require.Equal(t, "get_task", middle[0].Data.Step.Name)
	require.Equal(t, task.Title, agtResultMap(t, *middle[0].Data.Step)["title"])
	var text strings.Builder
	for _, ev := range middle[1:] {
		require.Equal(t, "run.output.delta", ev.Type, "%s", agtEventList(evs))
		require.NotNil(t, ev.Data.Delta)
		text.WriteString(*ev.Data.Delta)
	}
	require.Equal(t, strings.Join(pieces, ""), text.String(), "the deltas add up to the output")

	last := evs[len(evs)-1]
	require.Equal(t, "run.completed", last.Type)
	require.Equal(t, client.AgentRunStatusCompleted, *last.Data.Status)
	require.NotNil(t, last.Data.Run, "the terminal event carries the run")
	require.Equal(t, run.Id, last.Data.Run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, last.Data.Run.Status)
	require.Equal(t, strings.Join(pieces, ""), last.Data.Run.Output.MustGet())
	require.Len(t, last.Data.Run.Steps, 1)

	// A executed the run (its model was called); both instances see the same result.
	require.Equal(t, 2, llm.Hits())
	viaA := agtGetRun(t, a.AsAdmin(t), run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, viaA.Status)
	require.Equal(t, client.AgentRunUsage{PromptTokens: 12, CompletionTokens: 13, TotalTokens: 25, ModelTurns: 2, ToolCalls: 1}, viaA.Usage)

	t.Run("Last-Event-ID resumes after that event", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, strconv.FormatInt(evs[1].ID, 10))
		replay := r.rest(t, agtTimeout)
		agtCheckEvents(t, run.Id, replay)
		require.NotEmpty(t, replay)
		require.Equal(t, int64(3), replay[0].ID)
		require.Equal(t, agtEventList(evs[2:]), agtEventList(replay), "the same events as before, from id 3")
		require.Equal(t, "run.completed", replay[len(replay)-1].Type)
	})
	t.Run("a new connection replays from the start", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, "")
		require.Equal(t, agtEventList(evs), agtEventList(r.rest(t, agtTimeout)))
	})
	t.Run("resuming after the terminal event ends at once", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, strconv.FormatInt(last.ID, 10))
		require.Empty(t, r.rest(t, 5*time.Second))
		require.Less(t, r.closedAt, 2*time.Second)
	})
	t.Run("a Last-Event-ID that is not an id is rejected", func(t *testing.T) {
		t.Parallel()
		res, err := user.Client.StreamAgentRunEventsWithResponse(ctx, run.Id, &client.StreamAgentRunEventsParams{LastEventID: apitest.Ptr("abc")})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "%s", res.Body)
	})
}
