package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// onceEnv is an API-only server, the scripted model, an agent whose update_task_status
// calls need approval, and a task to change; workers are started by each test, with
// the default settings unless it says otherwise.
type onceEnv struct {
	env   *apitest.Env
	llm   *llmtest.Server
	admin *client.ClientWithResponses
	agent client.Agent
	task  client.Task
	pool  *pgxpool.Pool
}

func newOnceEnv(t *testing.T) *onceEnv {
	t.Helper()
	llm := llmtest.New(t)
	env := apitest.Start(t,
		apitest.WithEnv("WORKER_CONCURRENCY", "0"),
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
		apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()),
	)
	admin := env.AsAdmin(t)
	tools := client.AgentTools{client.UpdateTaskStatus}
	ag, err := admin.CreateAgentWithResponse(context.Background(), client.AgentCreate{
		Name: "once-" + randomHex(4), Tools: &tools, ApprovalRequiredTools: &[]client.AgentTool{client.UpdateTaskStatus},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, ag.StatusCode(), string(ag.Body))
	tk, err := admin.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: "once-" + randomHex(4)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, tk.StatusCode(), string(tk.Body))
	pool, err := pgxpool.New(context.Background(), env.DBURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &onceEnv{env: env, llm: llm, admin: admin, agent: *ag.JSON201, task: *tk.JSON201, pool: pool}
}

// worker starts a worker process with the default settings plus extra.
func (o *onceEnv) worker(t *testing.T, name string, extra map[string]string) *workerProc {
	t.Helper()
	vars := workerVars(o.env.DBURL, o.llm.BaseURL(), extra)
	return startWorker(t, name, vars)
}

// scriptUpdate makes the model ask to start the task, then answer.
func (o *onceEnv) scriptUpdate(callID string) {
	o.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: callID, Name: "update_task_status",
			Arguments: fmt.Sprintf(`{"task_id":%d,"status":"in_progress"}`, o.task.Id)}}, Prompt: 10, Completion: 5},
		llmtest.Reply{Content: []string{"Started."}, Prompt: 20, Completion: 2},
	)
}

func (o *onceEnv) startRun(t *testing.T) client.AgentRun {
	t.Helper()
	res, err := o.admin.CreateAgentRunWithResponse(context.Background(), o.agent.Id, nil, client.AgentRunCreate{Input: "start the task"})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), string(res.Body))
	return *res.JSON202
}

func (o *onceEnv) waitRun(t *testing.T, id int64, within time.Duration, what string, cond func(client.AgentRun) bool) client.AgentRun {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := o.admin.GetAgentRunWithResponse(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
		if cond(*res.JSON200) {
			return *res.JSON200
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: %s did not happen within %v; run is %s: %s", id, what, within, res.JSON200.Status, res.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (o *onceEnv) approve(callID string, runID int64) (int, error) {
	res, err := o.admin.SubmitAgentRunApprovalsWithResponse(context.Background(), runID, client.AgentRunApprovals{
		Decisions: []client.AgentRunDecision{{ToolCallId: callID, Decision: client.AgentRunDecisionDecisionApprove}}})
	if err != nil {
		return 0, err
	}
	return res.StatusCode(), nil
}

// requireChangedOnce checks that the task was moved to in_progress by exactly one
// committed tool call: one audit event of the tool, on the task.
func (o *onceEnv) requireChangedOnce(t *testing.T) {
	t.Helper()
	var n int
	err := o.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_events WHERE action = 'update_task_status' AND resource_type = 'task' AND resource_id = $1`,
		o.task.Id).Scan(&n)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the approved tool call took effect exactly once")
	res, err := o.admin.GetTaskWithResponse(context.Background(), o.task.Id, nil)
	require.NoError(t, err)
	require.Equal(t, client.TaskStatusInProgress, res.JSON200.Status)
	var calls int
	require.NoError(t, o.pool.QueryRow(context.Background(), `SELECT count(*) FROM agent_run_tool_calls`).Scan(&calls))
	require.Equal(t, 1, calls)
}

func ended(r client.AgentRun) bool {
	return terminal(r) || r.Status == client.AgentRunStatusExpired
}

// TestExactlyOnceConcurrentApprovalsTwoWorkers: two worker processes, eight concurrent
// submissions of the same approval: one wins, the others get 409, and the tool runs once.
func TestExactlyOnceConcurrentApprovalsTwoWorkers(t *testing.T) {
	t.Parallel()
	o := newOnceEnv(t)
	o.worker(t, "worker-1", nil)
	o.worker(t, "worker-2", nil)
	o.scriptUpdate("call_conc")
	run := o.startRun(t)
	o.waitRun(t, run.Id, 30*time.Second, "requires_action", func(r client.AgentRun) bool { return r.Status == client.AgentRunStatusRequiresAction })

	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = o.approve("call_conc", run.Id)
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, c, "%v", codes)
		if c == http.StatusAccepted {
			won++
		}
	}
	require.Equal(t, 1, won, "%v", codes)
	r := o.waitRun(t, run.Id, 30*time.Second, "ended", ended)
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.Len(t, r.Steps, 1)
	o.requireChangedOnce(t)
}

// TestExactlyOnceWorkerKilledMidTool: the approved tool call blocks inside its
// transaction (this test holds the task's row lock), the worker is SIGKILLed there, the
// lock is released, and a fresh worker with the default settings resumes the run within
// two minutes: the task changed exactly once, with one audit event.
func TestExactlyOnceWorkerKilledMidTool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := newOnceEnv(t)
	w1 := o.worker(t, "worker-1", nil)
	o.scriptUpdate("call_kill")
	run := o.startRun(t)
	o.waitRun(t, run.Id, 30*time.Second, "requires_action", func(r client.AgentRun) bool { return r.Status == client.AgentRunStatusRequiresAction })

	lock, err := o.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(ctx) }()
	_, err = lock.Exec(ctx, `SELECT id FROM tasks WHERE id = $1 FOR UPDATE`, o.task.Id)
	require.NoError(t, err)

	code, err := o.approve("call_kill", run.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
	// The worker's tool waits for the task's lock, its claim of the call not committed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		require.NoError(t, o.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting))
		if waiting > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the worker's tool call never blocked on the task")
		time.Sleep(20 * time.Millisecond)
	}
	w1.kill(t)
	killedAt := time.Now()
	require.NoError(t, lock.Rollback(ctx)) // the dead worker's statement goes on, and its transaction is never committed

	r := o.waitRun(t, run.Id, 5*time.Second, "still in progress", func(r client.AgentRun) bool { return true })
	require.Equal(t, client.AgentRunStatusInProgress, r.Status)
	require.Empty(t, r.Steps, "nothing of the killed call was recorded")

	o.worker(t, "worker-2", nil) // default AGENT_RUN_TIMEOUT
	r = o.waitRun(t, run.Id, 150*time.Second, "ended", ended)
	resumed := time.Since(killedAt)
	t.Logf("SIGKILL mid-tool → run completed by worker-2: %v", resumed.Round(time.Millisecond))
	require.Less(t, resumed, 2*time.Minute, "with the default settings a dead worker's run resumes within two minutes")
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.Len(t, r.Steps, 1)
	require.Equal(t, client.AgentRunApprovalDecisionApprove, r.Steps[0].Approval.Decision)
	require.Equal(t, 2, o.llm.Hits(), "the tool phase is resumed without asking the model again")
	o.requireChangedOnce(t)
}

// TestExactlyOnceRiverRetryAfterEffect: the tool's effect commits, then the statement
// that hands the run to its next turn fails (a trigger fails it once): River retries the
// job, which finds the call recorded and does not run it again.
func TestExactlyOnceRiverRetryAfterEffect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := newOnceEnv(t)
	_, err := o.pool.Exec(ctx, `
		CREATE SEQUENCE test_continue_failures;
		CREATE FUNCTION test_fail_continue_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.pending_tool_calls = '[]'::jsonb AND OLD.pending_tool_calls <> '[]'::jsonb
			   AND nextval('test_continue_failures') = 1 THEN
				RAISE EXCEPTION 'injected failure after the tool call committed';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER test_fail_continue_once BEFORE UPDATE ON agent_runs
			FOR EACH ROW EXECUTE FUNCTION test_fail_continue_once();`)
	require.NoError(t, err)
	o.worker(t, "worker-1", map[string]string{"LLM_RETRY_BACKOFF": "100ms"})
	o.scriptUpdate("call_retry")
	run := o.startRun(t)
	o.waitRun(t, run.Id, 30*time.Second, "requires_action", func(r client.AgentRun) bool { return r.Status == client.AgentRunStatusRequiresAction })
	code, err := o.approve("call_retry", run.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)

	r := o.waitRun(t, run.Id, 60*time.Second, "ended", ended)
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.Len(t, r.Steps, 1)
	var failures int64
	require.NoError(t, o.pool.QueryRow(ctx, `SELECT last_value FROM test_continue_failures`).Scan(&failures))
	require.GreaterOrEqual(t, failures, int64(2), "the failing statement ran again on the retry")
	var errs int
	require.NoError(t, o.pool.QueryRow(ctx,
		`SELECT count(*) FROM river_job, jsonb_array_elements(to_jsonb(errors)) e
		 WHERE kind = 'agent_run' AND e->>'error' LIKE '%injected failure%'`).Scan(&errs))
	require.Equal(t, 1, errs, "River retried the job after the injected failure")
	o.requireChangedOnce(t)
}

// TestCrashRescueCostsNoModelAttempt: with LLM_MAX_ATTEMPTS=1, a worker killed while
// its model call hangs is rescued, and the fresh worker still asks the model and
// completes the run: a worker's death is not one of the run's attempts.
func TestCrashRescueCostsNoModelAttempt(t *testing.T) {
	t.Parallel()
	c := newCrashEnv(t)
	c.llm.Script(llmtest.Reply{Hang: true})
	vars := workerVars(c.env.DBURL, c.llm.BaseURL(), map[string]string{
		"AGENT_RUN_TIMEOUT": crashRunTimeout, "LLM_MAX_ATTEMPTS": "1",
	})
	run := c.createRun(t, "one attempt only")
	w1 := startWorker(t, "worker-1", vars)
	c.waitRun(t, run.Id, 15*time.Second, "the model called", func(r client.AgentRun) bool {
		return r.Status == client.AgentRunStatusInProgress && c.llm.Hits() >= 1
	})
	w1.kill(t)
	c.llm.Script(llmtest.Reply{Content: []string{"after the rescue"}, Prompt: 1, Completion: 1})
	startWorker(t, "worker-2", vars)
	r := c.waitRun(t, run.Id, 60*time.Second, "a terminal status", terminal)
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r)
	require.Equal(t, "after the rescue", r.Output.MustGet())
	require.Equal(t, 2, c.llm.Hits())
}
