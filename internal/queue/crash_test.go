package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// crashRunTimeout is AGENT_RUN_TIMEOUT in the crash tests: River rescues a job whose
// worker vanished RunTimeout + min(RunTimeout, 1m) = 6 s after it started, on its next
// rescuer pass (every 30 s, on the elected leader).
const crashRunTimeout = "3s"

// crashEnv is an API-only server (no workers) plus the LLM stand-in it and its workers use.
type crashEnv struct {
	env   *apitest.Env
	llm   *llmtest.Server
	admin *client.ClientWithResponses
	agent client.Agent
}

func newCrashEnv(t *testing.T, tools ...client.AgentTool) *crashEnv {
	t.Helper()
	llm := llmtest.New(t)
	env := apitest.Start(t,
		apitest.WithEnv("WORKER_CONCURRENCY", "0"),
		apitest.WithEnv("AGENT_RUN_TIMEOUT", crashRunTimeout),
		apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
		apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()),
	)
	admin := env.AsAdmin(t)
	body := client.AgentCreate{Name: "crash-" + randomHex(4)}
	if len(tools) > 0 {
		ts := client.AgentTools(tools)
		body.Tools = &ts
	}
	ag, err := admin.CreateAgentWithResponse(context.Background(), body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, ag.StatusCode(), string(ag.Body))
	return &crashEnv{env: env, llm: llm, admin: admin, agent: *ag.JSON201}
}

func (c *crashEnv) worker(t *testing.T, name string) *workerProc {
	t.Helper()
	return startWorker(t, name, workerVars(c.env.DBURL, c.llm.BaseURL(), map[string]string{
		"AGENT_RUN_TIMEOUT": crashRunTimeout,
	}))
}

func (c *crashEnv) createRun(t *testing.T, input string) client.AgentRun {
	t.Helper()
	res, err := c.admin.CreateAgentRunWithResponse(context.Background(), c.agent.Id, nil, client.AgentRunCreate{Input: input})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), string(res.Body))
	return *res.JSON202
}

func (c *crashEnv) getRun(t *testing.T, id int64) client.AgentRun {
	t.Helper()
	res, err := c.admin.GetAgentRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

// waitRun polls the run until cond holds or within passes.
func (c *crashEnv) waitRun(t *testing.T, id int64, within time.Duration, what string, cond func(client.AgentRun) bool) client.AgentRun {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := c.getRun(t, id)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: %s did not happen within %v; run is %s (attempt %d, error %+v)\nLLM hits: %d",
				id, what, within, r.Status, r.Attempt, r.Error, c.llm.Hits())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func terminal(r client.AgentRun) bool {
	switch r.Status {
	case client.AgentRunStatusCompleted, client.AgentRunStatusFailed, client.AgentRunStatusCancelled, client.AgentRunStatusIncomplete:
		return true
	}
	return false
}

// assertNoneInProgress checks that no run of the server was left in progress.
func (c *crashEnv) assertNoneInProgress(t *testing.T) {
	t.Helper()
	st := client.AgentRunStatusInProgress
	res, err := c.admin.ListAgentRunsWithResponse(context.Background(), &client.ListAgentRunsParams{Status: &st})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	require.Zero(t, res.JSON200.Total, "runs left in progress: %+v", res.JSON200.Items)
}

// jobRow is the run's River job as stored.
type jobRow struct {
	State    string
	Attempt  int
	Errors   []string
	ErrorsAt []time.Time
	Attempts []string
}

func (c *crashEnv) job(t *testing.T, runID int64) jobRow {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, c.env.DBURL)
	require.NoError(t, err)
	defer pool.Close()
	var j jobRow
	var errs []map[string]any
	var attempted []string
	err = pool.QueryRow(ctx, `
		SELECT j.state::text, j.attempt, coalesce(j.errors, '{}'), coalesce(j.attempted_by, '{}')
		FROM river_job j JOIN agent_runs r ON r.job_id = j.id WHERE r.id = $1`, runID).
		Scan(&j.State, &j.Attempt, &errs, &attempted)
	require.NoError(t, err)
	for _, e := range errs {
		j.Errors = append(j.Errors, fmt.Sprint(e["error"]))
		if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["at"])); err == nil {
			j.ErrorsAt = append(j.ErrorsAt, at)
		}
	}
	j.Attempts = attempted
	return j
}

// waitJob polls the run's job until it is in state.
func (c *crashEnv) waitJob(t *testing.T, runID int64, within time.Duration, state string) jobRow {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := c.job(t, runID)
		if j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: job is %s after %v, want %s (errors %q)", runID, j.State, within, state, j.Errors)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events reads the run's whole event stream (it ends after the terminal event).
func (c *crashEnv) events(t *testing.T, runID int64) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.admin.StreamAgentRunEvents(ctx, runID, nil)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return parseSSE(string(b))
}

// statusAttempts lists the attempt numbers of the run.status in_progress events and
// checks that event ids increase.
func statusAttempts(t *testing.T, evs []sseEvent) []int {
	t.Helper()
	var attempts []int
	last := int64(0)
	for _, ev := range evs {
		id, err := strconv.ParseInt(ev.ID, 10, 64)
		require.NoError(t, err, "event id %q", ev.ID)
		require.Greater(t, id, last, "event ids must increase")
		last = id
		if ev.Type != "run.status" {
			continue
		}
		var d struct {
			Status  string `json:"status"`
			Attempt int    `json:"attempt"`
		}
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &d))
		if d.Status == "in_progress" {
			attempts = append(attempts, d.Attempt)
		}
	}
	return attempts
}

// TestCrashWorkerKilledMidRun: a worker subprocess is SIGKILLed while its run waits on
// the model; nothing else touches the run until River's rescuer (on the fresh worker,
// once it is elected leader) hands the job back, and the fresh worker completes the run
// as attempt 2.
func TestCrashWorkerKilledMidRun(t *testing.T) {
	t.Parallel()
	c := newCrashEnv(t)
	c.llm.Script(llmtest.Reply{Hang: true})

	run := c.createRun(t, "survive a crash")
	require.Equal(t, client.AgentRunStatusQueued, run.Status)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, client.AgentRunStatusQueued, c.getRun(t, run.Id).Status, "an API-only server must not execute runs")

	w1 := c.worker(t, "worker-1")
	r := c.waitRun(t, run.Id, 15*time.Second, "in_progress with the model called", func(r client.AgentRun) bool {
		return r.Status == client.AgentRunStatusInProgress && c.llm.Hits() >= 1
	})
	require.EqualValues(t, 1, r.Attempt)
	startedAt := time.Now()
	w1.kill(t)
	killedAt := time.Now()
	t.Logf("worker-1 killed %v after the run was seen in progress", killedAt.Sub(startedAt).Round(time.Millisecond))

	// Nobody is working on it now: it stays in progress (the job stays "running").
	r = c.getRun(t, run.Id)
	require.Equal(t, client.AgentRunStatusInProgress, r.Status, "after the kill: %+v", r)
	require.EqualValues(t, 1, r.Attempt)
	require.Equal(t, "running", c.job(t, run.Id).State)

	c.llm.Script(llmtest.Reply{Content: []string{"recovered ", "after the crash"}, Prompt: 3, Completion: 4})
	c.worker(t, "worker-2")
	r = c.waitRun(t, run.Id, 60*time.Second, "a terminal status", terminal)
	recovery := time.Since(killedAt)
	t.Logf("time to recovery (SIGKILL → run completed): %v", recovery.Round(time.Millisecond))

	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.GreaterOrEqual(t, r.Attempt, int32(2))
	require.Equal(t, "recovered after the crash", r.Output.MustGet())
	require.EqualValues(t, 7, r.Usage.TotalTokens)
	require.Equal(t, 2, c.llm.Hits(), "one hung request from worker-1, one from worker-2")
	c.assertNoneInProgress(t)

	// River records the job's completion asynchronously (batched), just after the run ends.
	j := c.waitJob(t, run.Id, 10*time.Second, "completed")
	t.Logf("job: state=%s attempt=%d errors=%q attempted_by=%q", j.State, j.Attempt, j.Errors, j.Attempts)
	require.NotEmpty(t, j.ErrorsAt, "the rescue is recorded on the job")
	t.Logf("rescued %v after the kill; completed %v after the rescue",
		j.ErrorsAt[0].Sub(killedAt).Round(time.Millisecond), killedAt.Add(recovery).Sub(j.ErrorsAt[0]).Round(time.Millisecond))
	require.GreaterOrEqual(t, j.Attempt, 2)

	attempts := statusAttempts(t, c.events(t, run.Id))
	require.Equal(t, []int{1, int(r.Attempt)}, attempts, "in_progress events: attempt 1 (killed) then the attempt that completed")
}

// TestCrashWorkerKilledAfterToolStep: the worker dies after a tool call was recorded and
// while the next model turn is pending; the fresh worker resumes from the recorded step
// (the tool is not run again) and the model sees the earlier call and its result.
func TestCrashWorkerKilledAfterToolStep(t *testing.T) {
	t.Parallel()
	c := newCrashEnv(t, client.CreateTask)
	title := "crash-probe-" + randomHex(4)
	c.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_probe", Name: "create_task", Arguments: `{"title":"` + title + `"}`}}, Prompt: 10, Completion: 5},
		llmtest.Reply{Hang: true},
	)
	run := c.createRun(t, "create the probe task")
	w1 := c.worker(t, "worker-1")
	r := c.waitRun(t, run.Id, 15*time.Second, "one step recorded with the next turn pending", func(r client.AgentRun) bool {
		return len(r.Steps) == 1 && c.llm.Hits() >= 2
	})
	require.Equal(t, client.AgentRunStatusInProgress, r.Status)
	w1.kill(t)
	killedAt := time.Now()
	r = c.getRun(t, run.Id)
	require.Equal(t, client.AgentRunStatusInProgress, r.Status)
	require.Len(t, r.Steps, 1)

	c.llm.Script(llmtest.Reply{Content: []string{"Created ", title}, Prompt: 20, Completion: 4})
	c.worker(t, "worker-2")
	r = c.waitRun(t, run.Id, 60*time.Second, "a terminal status", terminal)
	t.Logf("time to recovery (SIGKILL → run completed): %v", time.Since(killedAt).Round(time.Millisecond))

	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.GreaterOrEqual(t, r.Attempt, int32(2))
	require.Equal(t, "Created "+title, r.Output.MustGet())
	require.Len(t, r.Steps, 1, "the recorded step is kept, not repeated")
	require.Equal(t, "create_task", r.Steps[0].Name)
	require.EqualValues(t, 10+5+20+4, r.Usage.TotalTokens, "usage of the turn before the crash is kept")
	c.assertNoneInProgress(t)
	j := c.waitJob(t, run.Id, 10*time.Second, "completed")
	require.GreaterOrEqual(t, j.Attempt, 2)

	// The tool ran exactly once: one task with the probe title.
	q := title
	tasks, err := c.admin.ListTasksWithResponse(context.Background(), &client.ListTasksParams{Q: &q})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tasks.StatusCode(), string(tasks.Body))
	require.EqualValues(t, 1, tasks.JSON200.Total, "the tool call must not be executed again after the crash")

	// The request after the crash replays the call and its result to the model.
	reqs := c.llm.Requests()
	require.Len(t, reqs, 3)
	msgs, _ := json.Marshal(reqs[2]["messages"])
	require.Contains(t, string(msgs), `"call_probe"`, "the resumed conversation carries the earlier tool call")
	require.Contains(t, string(msgs), `"role":"tool"`)
	require.True(t, strings.Contains(string(msgs), title))
}
