package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// ---------------------------------------------------------------------------------------
// Retries and failures of the model
// ---------------------------------------------------------------------------------------

func TestAgentRunRetries(t *testing.T) {
	t.Parallel()
	ok := llmtest.Reply{Content: []string{"recovered"}, Prompt: 3, Completion: 2}
	cases := []struct {
		name    string
		env     []apitest.Option
		script  []llmtest.Reply
		status  client.AgentRunStatus
		code    string
		message string // a substring of the error message
		attempt int32
		hits    int
	}{
		{
			name:   "a rate limit is retried and the second attempt completes",
			script: []llmtest.Reply{{Status: http.StatusTooManyRequests, Error: "Rate limit reached"}, ok},
			status: client.AgentRunStatusCompleted, attempt: 2, hits: 2,
		},
		{
			name:   "a bad request fails at once",
			script: []llmtest.Reply{{Status: http.StatusBadRequest, Error: "Invalid value for 'messages'"}, ok},
			status: client.AgentRunStatusFailed, code: "llm_bad_request", message: "Invalid value for 'messages'", attempt: 1, hits: 1,
		},
		{
			name:   "a wrong API key fails at once",
			env:    []apitest.Option{apitest.WithEnv("OPENAI_API_KEY", "wrong")},
			script: []llmtest.Reply{ok},
			status: client.AgentRunStatusFailed, code: "llm_auth_failed", message: "401", attempt: 1, hits: 1,
		},
		{
			name:   "server errors fail the run once the attempts are used up",
			env:    []apitest.Option{apitest.WithEnv("LLM_MAX_ATTEMPTS", "2")},
			script: []llmtest.Reply{{Status: http.StatusInternalServerError, Error: "boom"}, {Status: http.StatusInternalServerError, Error: "boom"}, ok},
			status: client.AgentRunStatusFailed, code: "llm_server_error", message: "after 2 attempts", attempt: 2, hits: 2,
		},
		{
			name:   "a model that never answers times out",
			env:    []apitest.Option{apitest.WithEnv("LLM_TIMEOUT", "300ms"), apitest.WithEnv("LLM_MAX_ATTEMPTS", "2")},
			script: []llmtest.Reply{{Hang: true}, {Hang: true}, ok},
			status: client.AgentRunStatusFailed, code: "llm_timeout", attempt: 2, hits: 2,
		},
		{
			name:   "no API key fails at once and says what to set",
			env:    []apitest.Option{apitest.WithEnv("OPENAI_API_KEY", "")},
			script: []llmtest.Reply{ok},
			status: client.AgentRunStatusFailed, code: "llm_not_configured", message: "OPENAI_API_KEY", attempt: 1, hits: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := agtSetup(t, c.env...)
			f.llm.Script(c.script...)
			user := f.env.CreateUser(t, "Riley", false)
			ag := agtNewAgent(t, f)
			queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "hello"})
			run := agtWaitRun(t, user.Client, queued.Id)
			code, msg := agtRunError(run)
			require.Equal(t, c.status, run.Status, "%s", agtJSON(run))
			require.Equal(t, c.code, code, "error: %s", msg)
			require.Contains(t, msg, c.message)
			require.Equal(t, c.attempt, run.Attempt)
			require.Equal(t, c.hits, f.llm.Hits(), "calls to the model")
			require.True(t, run.CompletedAt.IsSpecified() && !run.CompletedAt.IsNull(), "completed_at is set")
			evs := agtReplay(t, user.Client, run.Id)
			if c.status == client.AgentRunStatusCompleted {
				require.Equal(t, "recovered", run.Output.MustGet())
				require.Equal(t, client.AgentRunUsage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5, ModelTurns: 1}, run.Usage)
				require.Equal(t, "run.completed", evs[len(evs)-1].Type)
			} else {
				require.True(t, run.Output.IsNull(), "a failed run has no output")
				require.Equal(t, "run.failed", evs[len(evs)-1].Type, "%s", agtEventList(evs))
			}
			if c.attempt > 1 {
				var attempts []int32
				for _, ev := range evs {
					if ev.Type == "run.status" && *ev.Data.Status == client.AgentRunStatusInProgress {
						attempts = append(attempts, *ev.Data.Attempt)
					}
				}
				require.Equal(t, []int32{1, 2}, attempts, "each attempt is announced: %s", agtEventList(evs))
			}
		})
	}

	t.Run("a retry resumes after the steps already taken", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Robin", false)
		task := agtCreateTask(t, user.Client, "Resumable")
		ag := agtNewAgent(t, f, client.GetTask)
		f.llm.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_first", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 7, Completion: 3},
			llmtest.Reply{Status: http.StatusServiceUnavailable, Error: "overloaded"},
			llmtest.Reply{Content: []string{"finished"}, Prompt: 11, Completion: 2},
		)
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "read it"})
		run := agtWaitRun(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
		require.Equal(t, int32(2), run.Attempt)
		require.Len(t, run.Steps, 1, "the step of the first attempt is neither lost nor repeated")
		require.Equal(t, client.AgentRunUsage{PromptTokens: 18, CompletionTokens: 5, TotalTokens: 23, ModelTurns: 2, ToolCalls: 1}, run.Usage, "usage of both attempts")
		reqs := f.llm.Requests()
		require.Len(t, reqs, 3)
		resumed := agtMessages(t, reqs[2])
		require.Contains(t, agtToolResult(t, resumed, "call_first"), task.Title, "the second attempt rebuilds the conversation")
	})
}

// ---------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------

func TestAgentRunCancellation(t *testing.T) {
	t.Parallel()

	t.Run("cancelling a streaming run stops it", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Casey", false)
		ag := agtNewAgent(t, f)
		pieces := make([]string, 100)
		for i := range pieces {
			pieces[i] = fmt.Sprintf("w%d ", i)
		}
		// 100 pieces 200ms apart: 20 s unless cancelled.
		f.llm.Script(llmtest.Reply{Content: pieces, ChunkDelay: 200 * time.Millisecond, Prompt: 5, Completion: 100})
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "write a long essay"})
		s := agtOpenStream(t, f.env.BaseURL, user.Token, queued.Id, "")
		var evs []agtEvent
		for len(evs) == 0 || evs[len(evs)-1].Type != "run.output.delta" {
			ev, ok := s.next(t, agtTimeout)
			require.True(t, ok, "the stream ended before any output: %s", agtEventList(evs))
			evs = append(evs, ev)
		}

		asked := time.Now()
		res := agtCancel(t, user.Client, queued.Id)
		require.Contains(t, []client.AgentRunStatus{client.AgentRunStatusInProgress, client.AgentRunStatusCancelled}, res.Status)
		run := agtWaitRun(t, user.Client, queued.Id)
		took := time.Since(asked)
		t.Logf("the run was cancelled %s after the request", took)
		require.Equal(t, client.AgentRunStatusCancelled, run.Status, "%s", agtJSON(run))
		require.Less(t, took, 10*time.Second, "cancellation interrupts the model's stream")
		require.True(t, run.Error.IsNull())
		require.False(t, run.CompletedAt.IsNull())

		evs = append(evs, s.rest(t, agtTimeout)...)
		agtCheckEvents(t, run.Id, evs)
		last := evs[len(evs)-1]
		require.Equal(t, "run.cancelled", last.Type, "%s", agtEventList(evs))
		require.NotNil(t, last.Data.Run)
		require.Equal(t, client.AgentRunStatusCancelled, last.Data.Run.Status)
		require.NotContains(t, agtTypes(evs), "run.completed")

		again := agtCancel(t, user.Client, run.Id)
		require.Equal(t, client.AgentRunStatusCancelled, again.Status, "cancelling is idempotent")
		require.Equal(t, run.CompletedAt.MustGet(), again.CompletedAt.MustGet())
		require.Equal(t, 1, f.llm.Hits())
	})

	t.Run("cancelling a completed run is a conflict", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Dana", false)
		ag := agtNewAgent(t, f)
		f.llm.Script(llmtest.Reply{Content: []string{"done"}})
		run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "quick"}).Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status)
		r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agent-runs/%d/cancel", run.Id), user.Token, "")
		apitest.RequireProblem(t, r, http.StatusConflict)
		require.Equal(t, run, agtGetRun(t, user.Client, run.Id), "the run is unchanged")
	})

	t.Run("cancelling a queued run cancels it at once", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
		user := f.env.CreateUser(t, "Eli", false)
		ag := agtNewAgent(t, f)
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "never runs"})
		require.Equal(t, client.AgentRunStatusQueued, agtGetRun(t, user.Client, queued.Id).Status, "nothing executes without workers")
		res := agtCancel(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusCancelled, res.Status)
		require.False(t, res.CompletedAt.IsNull())
		require.True(t, res.StartedAt.IsNull())
		require.Equal(t, client.AgentRunStatusCancelled, agtGetRun(t, user.Client, queued.Id).Status)
		evs := agtReplay(t, user.Client, queued.Id)
		require.Equal(t, []string{"run.status", "run.cancelled"}, agtTypes(evs))
		require.Equal(t, client.AgentRunStatusCancelled, evs[1].Data.Run.Status)
		require.Equal(t, client.AgentRunStatusCancelled, agtCancel(t, user.Client, queued.Id).Status)
		require.Len(t, agtReplay(t, user.Client, queued.Id), 2, "cancelling again adds no event")
		require.Zero(t, f.llm.Hits())
	})

	t.Run("cancelling a run that waits for a retry ends it", func(t *testing.T) {
		t.Parallel()
		// The first attempt fails with a transient error; the retry is a minute away.
		f := agtSetup(t, apitest.WithEnv("LLM_RETRY_BACKOFF", "1m"), apitest.WithEnv("LLM_MAX_ATTEMPTS", "3"))
		user := f.env.CreateUser(t, "Fran", false)
		ag := agtNewAgent(t, f)
		f.llm.Script(llmtest.Reply{Status: http.StatusInternalServerError, Error: "boom"}, llmtest.Reply{Content: []string{"late"}})
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "try"})
		require.Eventually(t, func() bool { return f.llm.Hits() == 1 }, agtTimeout, agtPoll)
		time.Sleep(500 * time.Millisecond) // let the attempt record its failure
		waiting := agtGetRun(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusInProgress, waiting.Status, "%s", agtJSON(waiting))
		require.Equal(t, int32(1), waiting.Attempt)

		agtCancel(t, user.Client, queued.Id)
		run := agtWaitFor(t, user.Client, queued.Id, 10*time.Second, "cancelled", func(r client.AgentRun) bool { return agtTerminal(r.Status) })
		require.Equal(t, client.AgentRunStatusCancelled, run.Status)
		require.Equal(t, 1, f.llm.Hits())
	})
}

// ---------------------------------------------------------------------------------------
// Step bound
// ---------------------------------------------------------------------------------------

func TestAgentRunStepBound(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("AGENT_MAX_STEPS", "2"))
	user := f.env.CreateUser(t, "Gale", false)
	task := agtCreateTask(t, user.Client, "Loop forever")
	ag := agtNewAgent(t, f, client.GetTask)
	call := llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 1, Completion: 1}
	f.llm.Script(call, call, call, call, call)
	run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "loop"}).Id)
	require.Equal(t, client.AgentRunStatusIncomplete, run.Status, "%s", agtJSON(run))
	code, msg := agtRunError(run)
	require.Equal(t, "max_steps_exceeded", code)
	require.NotEmpty(t, msg)
	require.Len(t, run.Steps, 2)
	for _, s := range run.Steps {
		require.Equal(t, "get_task", s.Name)
	}
	require.True(t, run.Output.IsNull())
	require.Equal(t, 2, f.llm.Hits(), "no third turn")
	require.Equal(t, client.AgentRunUsage{PromptTokens: 2, CompletionTokens: 2, TotalTokens: 4, ModelTurns: 2, ToolCalls: 2}, run.Usage)
	evs := agtReplay(t, user.Client, run.Id)
	require.Equal(t, "run.incomplete", evs[len(evs)-1].Type, "%s", agtEventList(evs))
}
