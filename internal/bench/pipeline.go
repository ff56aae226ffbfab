package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/llm"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/queue"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

// baselineQueueName is the River queue of the pipeline baseline's jobs: the server's
// workers only work the default queue, so they never pick these up.
const baselineQueueName = "bench_baseline"

const runInput = "Summarise this task and suggest the next step."

// drainStall bounds how long the runs may make no progress before the scenario fails.
const drainStall = 60 * time.Second

// runPipeline measures the agent-run pipeline: runs are created at fixed concurrency for
// the duration, then the clock runs until every run has finished; throughput is runs
// completed per second from the first creation to the last completion.
func runPipeline(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc, Separate: def.separate, Pipeline: &PipelineDetails{}}

	// HTTP side: the server creates and executes the runs.
	e.log.printf("%s: HTTP creates, %d concurrent, %s, then drain (%d workers in the server)", def.name, e.cfg.Concurrency, e.cfg.Duration, e.cfg.Workers)
	path := e.base + "/api/v1/agents/" + strconv.FormatInt(e.agentHTTP, 10) + "/runs"
	targeter := func(t *vegeta.Target) error {
		t.Method, t.Header, t.URL = http.MethodPost, e.admin.jsonHeader, path
		t.Body = []byte(`{"input": "` + runInput + `", "task_id": ` + strconv.FormatInt(e.randomTask(), 10) + `}`)
		return nil
	}
	before := e.cpu()
	rss := sampleRSS(e.server.pid())
	profiled := e.server.profile(e.cfg.ProfileDir, def.name, e.cfg.Duration)
	hp := attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Duration, def.name, targeter)
	createsDone := time.Now()
	if err := profiled(); err != nil {
		return s, err
	}
	if err := e.drain(ctx, e.agentHTTP); err != nil {
		rss.finish()
		return s, err
	}
	drainSeconds := time.Since(createsDone).Seconds()
	endMB, peakMB := rss.finish()
	after := e.cpu()
	create := hp.measured("POST /api/v1/agents/{id}/runs (202)")
	runs, err := e.runStats(ctx, e.agentHTTP)
	if err != nil {
		return s, err
	}
	runs.DrainAfter = drainSeconds
	s.Pipeline.Create, s.Pipeline.Runs = create, runs
	s.HTTP = pipelineMeasured(def.httpWhat, create, runs)
	s.HTTP.perOp(before, after, s.HTTP.Operations)
	s.HTTP.ServerRSSMB, s.HTTP.ServerPeakRSSMB = endMB, peakMB
	e.peakRSSMB = max(e.peakRSSMB, peakMB)

	// Baseline: the same services and queue code in this process, no HTTP.
	e.log.printf("%s: baseline creates, %d concurrent, %s, then drain (%d workers in this process)", def.name, e.cfg.Concurrency, e.cfg.Duration, e.cfg.Workers)
	bl, err := e.startPipelineBaseline(ctx)
	if err != nil {
		return s, err
	}
	defer bl.stop()
	principal := e.admin.principal
	op := func(ctx context.Context) error {
		taskID := e.randomTask()
		_, err := bl.agents.CreateRun(ctx, principal, e.agentBase, agent.RunParams{Input: runInput, TaskID: &taskID})
		return err
	}
	before = e.cpu()
	bp := closedLoop(ctx, e.cfg.Concurrency, e.cfg.Duration, op)
	createsDone = time.Now()
	if err := e.drain(ctx, e.agentBase); err != nil {
		return s, err
	}
	drainSeconds = time.Since(createsDone).Seconds()
	after = e.cpu()
	bcreate := bp.measured("agent.Service.CreateRun")
	bruns, err := e.runStats(ctx, e.agentBase)
	if err != nil {
		return s, err
	}
	bruns.DrainAfter = drainSeconds
	s.Pipeline.BaselineCreate, s.Pipeline.BaselineRuns = bcreate, bruns
	s.Baseline = pipelineMeasured(def.baseWhat, bcreate, bruns)
	s.Baseline.perOp(before, after, s.Baseline.Operations)
	if s.Baseline.PerSecond > 0 {
		s.Ratio = s.HTTP.PerSecond / s.Baseline.PerSecond
	}
	s.Notes = append(s.Notes, fmt.Sprintf("runs drained %.1fs after the last create (HTTP), %.1fs (baseline)", runs.DrainAfter, bruns.DrainAfter))
	return s, nil
}

// pipelineMeasured is the pipeline's row: operations are completed runs, errors are
// failed create requests plus runs that did not complete, latency is create → completed.
func pipelineMeasured(what string, create Measured, runs PipelineRuns) Measured {
	return Measured{
		What: what, Operations: uint64(runs.Completed), Errors: create.Errors + uint64(runs.Other),
		Seconds: runs.Seconds, PerSecond: runs.PerSecond, Latency: runs.EndToEnd,
		StatusCodes: create.StatusCodes, ErrorSamples: create.ErrorSamples,
	}
}

// drainPoll is how often drain counts the runs left. The count scans the agent's runs
// and competes with the runs for the CPUs, so it is kept rare; the throughput comes from
// the runs' own timestamps, not from when drain notices the end.
const drainPoll = 250 * time.Millisecond

// drain waits until no run of the agent is queued or in progress.
func (e *runEnv) drain(ctx context.Context, agentID int64) error {
	last, lastChange := int64(-1), time.Now()
	for {
		var pending, total int64
		err := e.pool.QueryRow(ctx, `SELECT count(*) FROM agent_runs
			WHERE agent_id = $1 AND status IN ('queued', 'in_progress')`, agentID).Scan(&pending)
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		if pending == 0 {
			return nil
		}
		if pending != last {
			last, lastChange = pending, time.Now()
		}
		if time.Since(lastChange) > drainStall {
			_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM agent_runs WHERE agent_id = $1`, agentID).Scan(&total)
			return fmt.Errorf("agent runs stuck: %d of %d still queued or in progress after %s without progress", pending, total, drainStall)
		}
		if err := e.server.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(drainPoll):
		}
	}
}

// runStats reads the agent's runs back from the database.
func (e *runEnv) runStats(ctx context.Context, agentID int64) (PipelineRuns, error) {
	rows, err := e.pool.Query(ctx, `SELECT status::text, created_at, started_at, completed_at FROM agent_runs WHERE agent_id = $1`, agentID)
	if err != nil {
		return PipelineRuns{}, err
	}
	var (
		out         PipelineRuns
		e2e, wait   []time.Duration
		first, last time.Time
	)
	for rows.Next() {
		var (
			status             string
			created            time.Time
			started, completed *time.Time
		)
		if err := rows.Scan(&status, &created, &started, &completed); err != nil {
			return out, err
		}
		out.Created++
		if first.IsZero() || created.Before(first) {
			first = created
		}
		if status != "completed" || completed == nil {
			out.Other++
			continue
		}
		out.Completed++
		e2e = append(e2e, completed.Sub(created))
		if started != nil {
			wait = append(wait, started.Sub(created))
		}
		if completed.After(last) {
			last = *completed
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	out.EndToEnd, out.QueueWait = latencyOf(e2e), latencyOf(wait)
	if out.Completed > 0 && last.After(first) {
		out.Seconds = last.Sub(first).Seconds()
		out.PerSecond = float64(out.Completed) / out.Seconds
	}
	return out, nil
}

// pipelineBaseline is the run pipeline assembled in this process: the same services,
// runner and River job as the server's, on a queue of its own.
type pipelineBaseline struct {
	store  *store.DB
	agents *agent.Service
	client *river.Client[pgx.Tx]
	close  func()
}

func (b *pipelineBaseline) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = b.client.Stop(ctx)
	b.close()
}

// baselineQueue implements agent.Queue on the baseline's River client.
type baselineQueue struct{ client *river.Client[pgx.Tx] }

func (q baselineQueue) EnqueueRuns(ctx context.Context, dbq db.Querier, runIDs []int64, origins []context.Context) error {
	return queue.InsertRunJobs(ctx, q.client, dbq, runIDs, origins, &river.InsertOpts{Queue: baselineQueueName})
}

func (q baselineQueue) CancelJob(context.Context, db.Querier, int64) (bool, error) {
	return false, errors.New("bench: cancel is not part of the benchmark")
}

// baselineWorker executes a run like the server's queue worker does.
type baselineWorker struct {
	river.WorkerDefaults[queue.RunArgs]
	runner *agent.Runner
}

func (w *baselineWorker) Work(ctx context.Context, job *river.Job[queue.RunArgs]) error {
	return w.runner.Execute(ctx, agent.Job{RunID: job.Args.RunID, JobID: job.ID, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts})
}

func (e *runEnv) startPipelineBaseline(ctx context.Context) (*pipelineBaseline, error) {
	pool, err := store.Open(ctx, e.dbURL, int32(e.cfg.Concurrency+e.cfg.Workers+2))
	if err != nil {
		return nil, err
	}
	s := store.New(pool)
	tasks := task.NewService(s)
	runner := agent.NewRunner(s, tasks, llm.New(llm.Config{APIKey: llmtest.APIKey, BaseURL: e.llm.BaseURL(), Timeout: time.Minute, Concurrency: e.cfg.Workers}),
		agent.RunnerOptions{})
	workers := river.NewWorkers()
	river.AddWorker(workers, &baselineWorker{runner: runner})
	const runTimeout = 10 * time.Minute
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers:              workers,
		Queues:               map[string]river.QueueConfig{baselineQueueName: {MaxWorkers: e.cfg.Workers}},
		MaxAttempts:          3,
		JobTimeout:           runTimeout,
		RescueStuckJobsAfter: runTimeout + time.Minute,
		FetchCooldown:        queue.FetchCooldown, // as the server's queue
		FetchPollInterval:    queue.FetchPollInterval,
		Logger:               slog.New(slog.DiscardHandler),
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline queue: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline queue: %w", err)
	}
	return &pipelineBaseline{
		store: s, agents: agent.NewService(s, tasks, baselineQueue{client}, "gpt-4o"), client: client, close: pool.Close,
	}, nil
}
