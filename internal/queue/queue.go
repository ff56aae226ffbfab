// Package queue runs agent runs as durable jobs on River, in the same PostgreSQL
// database: a run's job is inserted in the transaction that creates the run, workers in
// any process pick jobs up with SKIP LOCKED, transient failures are retried with
// exponential backoff, and jobs of a crashed worker are rescued and run again.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/tracing"
)

// RunArgs are the arguments of a job that executes one turn of an agent run (the first
// job of a run, the job of its next turn, or its continuation after approvals).
type RunArgs struct {
	RunID int64 `json:"run_id"`
}

// Kind implements river.JobArgs.
func (RunArgs) Kind() string { return "agent_run" }

// ExpireArgs are the arguments of the job that expires a run still waiting for
// approvals at its deadline (scheduled when it starts waiting).
type ExpireArgs struct {
	RunID int64 `json:"run_id"`
}

// Kind implements river.JobArgs.
func (ExpireArgs) Kind() string { return "agent_run_expire" }

// Job priorities (River picks the lowest number first, then the oldest). A run's next
// turn goes first: the run is under way. A new run's priority grows with its creator's
// backlog (runs queued, in progress or waiting when it was created): a user's first
// few runs are picked before the 5th to 16th of any user, those before the 17th to
// 64th, and those before the rest. So another user's single run waits behind at most
// the few first-priority jobs already queued, never behind one user's thousand.
const (
	priorityNext = 1
	maxPriority  = 4
)

// backlogPriority is the priority of a new run whose creator had backlog runs before it.
func backlogPriority(backlog int) int {
	switch {
	case backlog < 4:
		return 1
	case backlog < 16:
		return 2
	case backlog < 64:
		return 3
	}
	return maxPriority
}

// rescueMargin is how long after its job's timeout a job whose worker vanished is
// rescued: River's rescuer then runs at most 30 s later. With the default
// AGENT_RUN_TIMEOUT of 60 s (one turn), a dead worker's run resumes within about 100 s.
const rescueMargin = 10 * time.Second

// rescueAttempts is how many more times than MaxAttempts a run's job may start: a
// rescue after a worker's death counts as an attempt for River, not for the run (the
// runner counts the run's failed model calls itself).
const rescueAttempts = 10

// How often workers look for jobs: at most every FetchCooldown, and at least every
// FetchPollInterval even without an insert notification. River also sends insert
// notifications at most every FetchCooldown; measured with 100 workers, 2 ms, 5 ms and
// 10 ms all gave fewer runs per second than 20 ms (more fetches and notifications of
// fewer jobs each), and 50 ms let a backlog build.
const (
	FetchCooldown     = 20 * time.Millisecond
	FetchPollInterval = 500 * time.Millisecond
)

// Config configures a Queue.
type Config struct {
	// Workers is how many runs this process executes at once; 0 makes an insert-only
	// queue (an API server that leaves execution to `worker` processes).
	Workers int
	// MaxAttempts bounds the attempts of a run (the first plus retries).
	MaxAttempts int
	// RetryBackoff is the delay before the first retry; it doubles for each later one.
	RetryBackoff time.Duration
	// RunTimeout bounds one job: one model turn of a run and its tool calls. A worker
	// that dies mid-turn has its job rescued shortly after this (rescueMargin).
	RunTimeout time.Duration
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
	// AuditRetention, when set, deletes audit events past their retention; with workers,
	// it runs at start and then daily as a periodic job.
	AuditRetention func(ctx context.Context) (int64, error)
	// Tracing, when enabled, spans each job's work in the trace of the request that
	// created the job (nil: off).
	Tracing *tracing.Tracing
	// Register, when set, adds more job kinds to the client's workers (webhook
	// deliveries); Queues names their queues and how many of their jobs this process
	// works at once (with Workers > 0 only).
	Register func(workers *river.Workers)
	Queues   map[string]int
}

// AuditRetentionArgs is the periodic job that applies the audit log's retention.
type AuditRetentionArgs struct{}

// Kind implements river.JobArgs.
func (AuditRetentionArgs) Kind() string { return "audit_retention" }

type auditRetentionWorker struct {
	river.WorkerDefaults[AuditRetentionArgs]
	retain func(ctx context.Context) (int64, error)
	log    *slog.Logger
}

func (w *auditRetentionWorker) Work(ctx context.Context, _ *river.Job[AuditRetentionArgs]) error {
	n, err := w.retain(ctx)
	if err != nil {
		return err
	}
	w.log.InfoContext(ctx, "audit retention applied", "deleted", n)
	return nil
}

// Queue inserts, cancels and (with workers) executes run jobs.
type Queue struct {
	client  *river.Client[pgx.Tx]
	pool    *pgxpool.Pool
	workers int
	log     *slog.Logger
}

// New builds a Queue; runner executes the runs (nil for an insert-only queue).
func New(pool *pgxpool.Pool, runner *agent.Runner, cfg Config) (*Queue, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &runWorker{runner: runner, timeout: cfg.RunTimeout, metrics: cfg.Metrics})
	river.AddWorker(workers, &expireWorker{runner: runner})
	if cfg.AuditRetention != nil {
		river.AddWorker(workers, &auditRetentionWorker{retain: cfg.AuditRetention, log: cfg.Logger})
	}
	if cfg.Register != nil {
		cfg.Register(workers)
	}
	rc := &river.Config{
		Workers:     workers,
		MaxAttempts: cfg.MaxAttempts + rescueAttempts,
		RetryPolicy: &backoff{base: cfg.RetryBackoff},
		JobTimeout:  cfg.RunTimeout,
		// Rescue jobs whose worker vanished soon after they could have timed out.
		RescueStuckJobsAfter: cfg.RunTimeout + min(cfg.RunTimeout, rescueMargin),
		Logger:               cfg.Logger.With("component", "queue"),
		Middleware:           traceMiddleware(cfg.Tracing),
	}
	if cfg.Workers > 0 {
		if runner == nil {
			return nil, errors.New("queue: workers need a runner")
		}
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		for name, n := range cfg.Queues {
			rc.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
		rc.FetchCooldown = FetchCooldown
		rc.FetchPollInterval = FetchPollInterval
		if cfg.AuditRetention != nil {
			rc.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
				func() (river.JobArgs, *river.InsertOpts) {
					return AuditRetentionArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
				}, &river.PeriodicJobOpts{RunOnStart: true})}
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q := &Queue{client: client, pool: pool, workers: cfg.Workers, log: cfg.Logger}
	if runner != nil {
		runner.UseQueue(q)
	}
	return q, nil
}

// River returns the queue's River client, for other job kinds inserted in a transaction
// (webhook deliveries).
func (q *Queue) River() *river.Client[pgx.Tx] { return q.client }

// depthQuery counts the jobs that are not finished yet, by state (River's own table; the
// fetch index covers the state column). It takes no input.
const depthQuery = `SELECT state::text, count(*) FROM river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') GROUP BY state`

// Depth reports the unfinished jobs by state, for metrics.
func (q *Queue) Depth(ctx context.Context) (map[string]int64, error) {
	rows, err := q.pool.Query(ctx, depthQuery)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{"available": 0, "pending": 0, "retryable": 0, "running": 0, "scheduled": 0}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, err
		}
		out[state] = n
	}
	return out, rows.Err()
}

// EnqueueRuns implements agent.Queue: the jobs are inserted in q's transaction, in one
// statement, each with the priority of its creator's backlog; each job's metadata
// carries the trace of the request that created its run.
func (q *Queue) EnqueueRuns(ctx context.Context, dbq db.Querier, runs []agent.NewJob) error {
	return InsertRunJobs(ctx, q.client, dbq, runs, nil)
}

// InsertRunJobs inserts the first jobs of runs with client, in dbq's transaction; opts
// (optional) applies to each, its priority aside.
func InsertRunJobs(ctx context.Context, client *river.Client[pgx.Tx], dbq db.Querier, runs []agent.NewJob, opts *river.InsertOpts) error {
	tx, ok := store.Tx(dbq)
	if !ok {
		return errors.New("queue: inserting jobs needs a transaction")
	}
	params := make([]river.InsertManyParams, len(runs))
	for i, r := range runs {
		o := river.InsertOpts{}
		if opts != nil {
			o = *opts
		}
		o.Priority = backlogPriority(r.Backlog)
		if meta := TraceMetadata(r.Origin); meta != nil {
			o.Metadata = meta
		}
		params[i] = river.InsertManyParams{Args: RunArgs{RunID: r.RunID}, InsertOpts: &o}
	}
	if _, err := client.InsertManyTx(ctx, tx, params); err != nil {
		return store.Translate(err)
	}
	return nil
}

// EnqueueNext implements agent.Queue: the job of a run's next turn, first in line.
func (q *Queue) EnqueueNext(ctx context.Context, dbq db.Querier, runID int64) (int64, error) {
	tx, ok := store.Tx(dbq)
	if !ok {
		return 0, errors.New("queue: inserting jobs needs a transaction")
	}
	// The next turn continues the trace of the turn (or of the approval) that queues it.
	res, err := q.client.InsertTx(ctx, tx, RunArgs{RunID: runID}, &river.InsertOpts{Priority: priorityNext, Metadata: TraceMetadata(ctx)})
	if err != nil {
		return 0, store.Translate(err)
	}
	return res.Job.ID, nil
}

// ScheduleExpiry implements agent.Queue.
func (q *Queue) ScheduleExpiry(ctx context.Context, dbq db.Querier, runID int64, at time.Time) error {
	tx, ok := store.Tx(dbq)
	if !ok {
		return errors.New("queue: inserting jobs needs a transaction")
	}
	_, err := q.client.InsertTx(ctx, tx, ExpireArgs{RunID: runID}, &river.InsertOpts{ScheduledAt: at, Priority: priorityNext})
	return store.Translate(err)
}

// CancelJob implements agent.Queue: a waiting job is cancelled; a running one has its
// context cancelled in whichever process runs it, once the transaction commits.
func (q *Queue) CancelJob(ctx context.Context, dbq db.Querier, jobID int64) (bool, error) {
	tx, ok := store.Tx(dbq)
	if !ok {
		return false, errors.New("queue: CancelJob needs a transaction")
	}
	job, err := q.client.JobCancelTx(ctx, tx, jobID)
	if errors.Is(err, river.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, store.Translate(err)
	}
	return job.State == rivertype.JobStateRunning, nil
}

// Start begins executing jobs (a no-op for an insert-only queue).
func (q *Queue) Start(ctx context.Context) error {
	if q.workers == 0 {
		return nil
	}
	return q.client.Start(ctx)
}

// Stop lets running jobs finish for up to grace, then cancels them; a cancelled run's
// progress is saved and its job retried by another worker.
func (q *Queue) Stop(ctx context.Context, grace time.Duration) error {
	if q.workers == 0 {
		return nil
	}
	softCtx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := q.client.Stop(softCtx); err == nil {
		return nil
	}
	q.log.Warn("runs still in progress at shutdown; handing them back to the queue")
	hardCtx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel2()
	return q.client.StopAndCancel(hardCtx)
}

// runWorker executes one run per job.
type runWorker struct {
	river.WorkerDefaults[RunArgs]
	runner  *agent.Runner
	timeout time.Duration
	metrics *metrics.Metrics
}

func (w *runWorker) Timeout(*river.Job[RunArgs]) time.Duration { return w.timeout }

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	err := w.runner.Execute(ctx, agent.Job{RunID: job.Args.RunID, JobID: job.ID, Attempt: job.Attempt})
	var retry *agent.RetryableError
	switch {
	case err == nil:
		// The run ended; the runner counted its final status.
	case errors.As(err, &retry):
		w.metrics.JobOutcome("retried")
	default:
		w.metrics.JobOutcome("released") // shutting down: another worker takes the job
	}
	return err
}

// expireWorker expires a run that still waits for approvals at its deadline.
type expireWorker struct {
	river.WorkerDefaults[ExpireArgs]
	runner *agent.Runner
}

func (w *expireWorker) Work(ctx context.Context, job *river.Job[ExpireArgs]) error {
	return w.runner.Expire(ctx, job.Args.RunID)
}

// backoff retries after base, 2×base, 4×base, … capped at ten minutes.
type backoff struct{ base time.Duration }

func (b *backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := time.Duration(float64(b.base) * math.Pow(2, float64(max(job.Attempt-1, 0))))
	return time.Now().Add(min(d, 10*time.Minute))
}
