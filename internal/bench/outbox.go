package bench

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/webhook"
)

// outboxSchema holds the webhooks scenario's copy of the outbox: webhook_events
// and webhook_endpoints as the migrations made them (columns, identity, indexes), with one
// endpoint subscribed to task.created, found first on its pool's search_path. No
// dispatcher reads it, so the events written there cost their statement and nothing more.
const outboxSchema = "bench_outbox"

// OutboxDetails is the webhooks scenario's measurement of what the outbox costs the
// database alone.
type OutboxDetails struct {
	// Without and With are task.Service.Create (the statement POST /api/v1/tasks runs)
	// per second without and with its task.created event recorded; Ratio is With ÷
	// Without: the ceiling of the webhooks ratio, before HTTP and deliveries.
	Without Measured `json:"without"`
	With    Measured `json:"with"`
	Ratio   float64  `json:"ratio"`
}

// measureOutbox measures what the outbox costs the database alone, without HTTP and
// without deliveries: task.Service.Create as the server runs it for POST /api/v1/tasks,
// without webhooks (the baselines' pool) and with an endpoint subscribed to task.created
// (a pool whose search_path finds outboxSchema first, so the very same TaskCreate
// statement also records the event, in the copy), alternating in webhookRounds rounds
// like the webhooks scenario's HTTP slices.
func measureOutbox(ctx context.Context, e *runEnv) (d OutboxDetails, err error) {
	setup := fmt.Sprintf(`DROP SCHEMA IF EXISTS %[1]s CASCADE; CREATE SCHEMA %[1]s;
		CREATE TABLE %[1]s.webhook_endpoints (LIKE public.webhook_endpoints INCLUDING ALL);
		CREATE TABLE %[1]s.webhook_events (LIKE public.webhook_events INCLUDING ALL);
		INSERT INTO %[1]s.webhook_endpoints (url, events, secret) VALUES ('http://127.0.0.1:9/', '{task.created}', 'whsec_bench')`, outboxSchema)
	if _, err := e.pool.Exec(ctx, setup); err != nil {
		return d, fmt.Errorf("outbox copy: %w", err)
	}
	defer func() {
		if _, dropErr := e.pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+outboxSchema+" CASCADE"); dropErr != nil && err == nil {
			err = dropErr
		}
	}()
	u, err := url.Parse(e.dbURL)
	if err != nil {
		return d, err
	}
	q := u.Query()
	q.Set("search_path", outboxSchema+",public")
	u.RawQuery = q.Encode()
	pool, err := store.Open(ctx, u.String(), int32(e.cfg.Concurrency))
	if err != nil {
		return d, err
	}
	defer pool.Close()
	st := store.New(pool)
	withEvents := task.NewService(st).WithEvents(webhook.NewService(st, webhook.Options{}))

	create := func(svc *task.Service) func(context.Context) error {
		return func(ctx context.Context) error {
			actor := e.randomActor()
			in := e.newTaskInput()
			_, err := svc.Create(ctx, actor.principal, task.CreateParams{
				Title: in.title, Description: in.description, Priority: task.Priority(in.priority),
				AssigneeID: &in.assignee, DueAt: &in.due, Tags: in.tags,
			})
			return err
		}
	}
	off, on := create(e.tasks), create(withEvents)
	// The subscription copy is read in the background on first use: warm it, and the
	// second pool's connections, before measuring.
	closedLoop(ctx, e.cfg.Concurrency, max(e.cfg.Warmup, 200*time.Millisecond), on)
	countEvents := func() (n uint64, err error) {
		err = e.pool.QueryRow(ctx, "SELECT count(*) FROM "+outboxSchema+".webhook_events").Scan(&n)
		return n, err
	}
	warm, err := countEvents()
	if err != nil {
		return d, err
	}

	slice := max(e.cfg.Duration/webhookRounds, time.Second)
	e.log.printf("webhooks: the outbox alone: %d rounds of task.Service.Create without, then with its task.created event recorded; %d concurrent, %s per slice",
		webhookRounds, e.cfg.Concurrency, slice)
	var offPhase, onPhase loopPhase
	var offCPU, onCPU cpuSpan
	for range webhookRounds {
		before := e.cpu()
		offPhase.add(closedLoop(ctx, e.cfg.Concurrency, slice, off))
		mid := e.cpu()
		onPhase.add(closedLoop(ctx, e.cfg.Concurrency, slice, on))
		offCPU.add(before, mid)
		onCPU.add(mid, e.cpu())
	}
	events, err := countEvents()
	if err != nil {
		return d, err
	}
	if events -= warm; events != onPhase.ops {
		return d, fmt.Errorf("the outbox alone: %d creates with the event recorded %d events", onPhase.ops, events)
	}
	d.Without = offPhase.measured("task.Service.Create, no endpoint subscribed")
	offCPU.perOp(&d.Without, d.Without.Operations)
	d.With = onPhase.measured("task.Service.Create, an endpoint subscribed to task.created: its statement also records the event")
	onCPU.perOp(&d.With, d.With.Operations)
	if d.Without.PerSecond > 0 {
		d.Ratio = d.With.PerSecond / d.Without.PerSecond
	}
	return d, nil
}

// add sums o into p, as one phase made of both.
func (p *loopPhase) add(o loopPhase) {
	p.ops += o.ops
	p.errors += o.errors
	p.samples = append(p.samples, o.samples[:min(len(o.samples), max(0, maxErrorSamples-len(p.samples)))]...)
	p.latencies = append(p.latencies, o.latencies...)
	p.exhausted = p.exhausted || o.exhausted
	p.seconds += o.seconds
}
