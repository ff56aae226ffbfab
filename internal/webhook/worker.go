package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/store"
)

// QueueName is the River queue of delivery jobs, apart from agent runs so that a burst
// of events never waits behind runs (and the other way round).
const QueueName = "webhooks"

// DeliverArgs are the arguments of the job that carries out one delivery.
type DeliverArgs struct {
	DeliveryID int64 `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "webhook_delivery" }

// InsertOpts implements river.JobArgsWithInsertOpts. River's own attempts count only
// failures of the worker itself (a database error, a process that died mid-attempt):
// the delivery's attempts and their schedule are the delivery row's, and the job
// sleeps between them (snooze).
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: 25}
}

// Worker is the River worker of delivery jobs.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	deliverer *Deliverer
	timeout   time.Duration
}

// NewWorker builds the worker of delivery jobs over d.
func NewWorker(d *Deliverer) *Worker {
	return &Worker{deliverer: d, timeout: d.opts.Timeout + 30*time.Second}
}

// Register adds the worker to a River client's workers.
func (w *Worker) Register(workers *river.Workers) { river.AddWorker(workers, w) }

// Timeout implements river.Worker: one attempt and its bookkeeping.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	if err := w.deliverer.Pace(ctx); err != nil {
		return err
	}
	res, err := w.deliverer.Attempt(ctx, job.Args.DeliveryID)
	if err != nil {
		return err
	}
	if res.Retry > 0 {
		return river.JobSnooze(res.Retry)
	}
	return nil
}

// RiverJobs inserts delivery jobs with a River client, in the caller's transaction.
type RiverJobs struct {
	Client *river.Client[pgx.Tx]
}

// EnqueueDeliveries implements Jobs: one job per delivery, in q's transaction (one
// COPY for all of them).
func (j RiverJobs) EnqueueDeliveries(ctx context.Context, q db.Querier, ids []int64) error {
	tx, ok := store.Tx(q)
	if !ok {
		return errors.New("webhook: inserting jobs needs a transaction")
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: DeliverArgs{DeliveryID: id}}
	}
	if _, err := j.Client.InsertManyFastTx(ctx, tx, params); err != nil {
		return store.Translate(err)
	}
	return nil
}
