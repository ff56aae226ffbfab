package webhook

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"enterprise-automation/gen/db"
)

// recorder writes the outcomes of delivery attempts to the delivery log in batches: the
// attempts that end while one batch is being written go together in the next, one
// statement and one commit for all of them instead of one each. Each caller waits for
// its own outcome's commit, so a job still completes only after its delivery is
// recorded (a process that dies before leaves the job to River's rescue, as before).
//
// What it buys: at a thousand deliveries per second, one commit per few dozen attempts
// instead of per attempt (the webhooks bench row, deliveries per second and database CPU).
type recorder struct {
	store interface {
		WebhookDeliveryRecord(ctx context.Context, arg db.WebhookDeliveryRecordParams) error
	}
	mu       sync.Mutex
	pending  []pendingOutcome
	flushing bool
}

// maxRecordBatch bounds one statement's outcomes.
const maxRecordBatch = 500

// attemptOutcome is one row of WebhookDeliveryRecord's JSON input.
type attemptOutcome struct {
	ID               int64      `json:"id"`
	Status           string     `json:"status"`
	LastStatusCode   *int32     `json:"last_status_code"`
	LastError        *string    `json:"last_error"`
	LastResponseBody *string    `json:"last_response_body"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
}

type pendingOutcome struct {
	outcome attemptOutcome
	done    chan error
}

// record queues o for the next batch and waits until that batch is written. The write
// goes on when ctx ends (the attempt happened), bounded by its own timeout.
func (r *recorder) record(ctx context.Context, o attemptOutcome) error {
	done := make(chan error, 1)
	r.mu.Lock()
	r.pending = append(r.pending, pendingOutcome{outcome: o, done: done})
	lead := !r.flushing
	r.flushing = true
	r.mu.Unlock()
	if lead {
		go r.flush(context.WithoutCancel(ctx))
	}
	return <-done
}

// flush writes batches until none is waiting.
func (r *recorder) flush(ctx context.Context) {
	for {
		r.mu.Lock()
		batch := r.pending
		if len(batch) > maxRecordBatch {
			batch = batch[:maxRecordBatch]
		}
		r.pending = r.pending[len(batch):]
		if len(batch) == 0 {
			r.flushing = false
			r.pending = nil
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		outcomes := make([]attemptOutcome, len(batch))
		for i, p := range batch {
			outcomes[i] = p.outcome
		}
		err := r.write(ctx, outcomes)
		for _, p := range batch {
			p.done <- err
		}
	}
}

func (r *recorder) write(ctx context.Context, outcomes []attemptOutcome) error {
	raw, err := json.Marshal(outcomes)
	if err != nil {
		return err
	}
	ids := make([]int64, len(outcomes))
	for i, o := range outcomes {
		ids[i] = o.ID
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.store.WebhookDeliveryRecord(ctx, db.WebhookDeliveryRecordParams{Ids: ids, Outcomes: raw})
}
