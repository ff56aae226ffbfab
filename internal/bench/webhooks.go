package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// webhookReceivers is how many local endpoints the webhooks scenario subscribes.
const webhookReceivers = 3

// WebhookDetails describes the webhooks scenario's deliveries.
type WebhookDetails struct {
	Receivers int `json:"receivers"`
	// Expected is receivers × tasks created with webhooks on; Delivered the distinct
	// (endpoint, webhook-id) pairs received, Duplicates the receipts beyond those.
	Expected   int `json:"expected"`
	Delivered  int `json:"delivered"`
	Duplicates int `json:"duplicates"`
	// PerSecond is deliveries per second from the first task creation to the last receipt.
	PerSecond float64 `json:"deliveries_per_second"`
	// CommitToReceipt is from the event's timestamp (taken in the transaction that
	// commits the task) to its arrival at the receiver.
	CommitToReceipt Latency `json:"commit_to_receipt_ms"`
	DrainSeconds    float64 `json:"drain_seconds"`
	// Outbox is the same creates without HTTP and without deliveries: the database's
	// cost of recording the events alone.
	Outbox OutboxDetails `json:"outbox"`
	// Steady is commit → receipt at webhookSteadyRate creates per second, a load that
	// leaves the API far from busy: the pipeline's latency when nothing is paced, over
	// SteadyDeliveries deliveries.
	Steady           Latency `json:"steady_commit_to_receipt_ms"`
	SteadyDeliveries int     `json:"steady_deliveries"`
}

// webhookSink is a local receiver that records arrivals.
type webhookSink struct {
	mu         sync.Mutex
	seen       map[string]bool
	duplicates int
	latencies  []time.Duration
	last       time.Time
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var ev struct {
		Timestamp time.Time `json:"timestamp"`
	}
	_ = json.Unmarshal(body, &ev)
	id := r.Header.Get("webhook-id")
	s.mu.Lock()
	if s.seen[id] {
		s.duplicates++
	} else {
		s.seen[id] = true
		s.latencies = append(s.latencies, now.Sub(ev.Timestamp))
	}
	s.last = now
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// webhookRounds is how many times the webhooks scenario alternates a slice of writes
// with webhooks off and one with them on: slow drifts of the machine and the database
// over the scenario (autovacuum, checkpoints, GIN pending lists, a neighbour's load)
// then weigh on both sides alike instead of on whichever ran second.
const webhookRounds = 5

// runWebhooks measures task creation through the API with no webhook endpoint and with
// three local endpoints subscribed to task.created, in webhookRounds alternating slices
// of Duration/webhookRounds each, and the deliveries that follow each slice with
// webhooks on (the next slice starts once they have all arrived, with the endpoints
// deleted): the ratio is write throughput with webhooks on ÷ off over all slices.
func runWebhooks(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc}
	create := tasksCreateTargeter(e)
	slice := max(e.cfg.Duration/webhookRounds, time.Second)
	sinks := make([]*webhookSink, webhookReceivers)
	urls := make([]string, webhookReceivers)
	for i := range sinks {
		sinks[i] = &webhookSink{seen: map[string]bool{}}
		srv := httptest.NewServer(sinks[i])
		defer srv.Close()
		urls[i] = srv.URL
	}
	var ids []int64
	deleteEndpoints := func() {
		for _, id := range ids {
			_ = e.call(context.WithoutCancel(ctx), http.MethodDelete, "/api/v1/webhooks/"+strconv.FormatInt(id, 10), e.admin, nil, http.StatusNoContent, nil)
		}
		ids = ids[:0]
	}
	defer deleteEndpoints()
	createEndpoints := func() error {
		for i, u := range urls {
			var out struct {
				ID int64 `json:"id"`
			}
			body := map[string]any{"url": u, "events": []string{"task.created"}, "description": "bench receiver " + strconv.Itoa(i)}
			if err := e.call(ctx, http.MethodPost, "/api/v1/webhooks", e.admin, body, http.StatusCreated, &out); err != nil {
				return fmt.Errorf("create webhook: %w", err)
			}
			ids = append(ids, out.ID)
		}
		return nil
	}

	var off, on httpPhase
	var offCPU, onCPU cpuSpan
	d := &WebhookDetails{Receivers: webhookReceivers}
	var deliveringSeconds, drainSeconds float64
	profiled := false
	e.log.printf("%s: %d rounds of task creates with webhooks off, then with %d subscribed endpoints and their deliveries; %d concurrent, %s per slice",
		def.name, webhookRounds, webhookReceivers, e.cfg.Concurrency, slice)
	for round := range webhookRounds {
		before := e.cpu()
		before0 := before
		offPhase := attack(ctx, e.tr, e.cfg.Concurrency, slice, def.name+"-off", create)
		offEnd := e.cpu()
		off.add(offPhase)
		offCPU.add(before, offEnd)

		if err := createEndpoints(); err != nil {
			return s, err
		}
		before = e.cpu()
		rss := sampleRSS(e.server.pid())
		finishProfile := func() error { return nil }
		if !profiled {
			finishProfile, profiled = e.server.profile(e.cfg.ProfileDir, def.name, slice), true
		}
		start := time.Now()
		phase := attack(ctx, e.tr, e.cfg.Concurrency, slice, def.name+"-on", create)
		createsDone, onEnd := time.Now(), e.cpu()
		during := received(sinks) - d.Expected // the earlier rounds' deliveries have all arrived
		if err := finishProfile(); err != nil {
			return s, err
		}
		on.add(phase)
		d.Expected += int(phase.success) * webhookReceivers
		last, err := awaitDeliveries(ctx, sinks, d.Expected)
		if err != nil {
			return s, err
		}
		onCPU.add(before, e.cpu())
		_, peakMB := rss.finish()
		s.HTTP.ServerPeakRSSMB = max(s.HTTP.ServerPeakRSSMB, peakMB)
		if last.After(start) {
			deliveringSeconds += last.Sub(start).Seconds()
			drainSeconds += max(0, last.Sub(createsDone).Seconds())
		}
		deleteEndpoints()
		e.log.printf("%s: round %d: %d creates off, %d on (CPU ms per create, server/PostgreSQL/bench: off %s, on before the drain %s); %d deliveries during the slice, the rest drained %.1fs after the last create",
			def.name, round+1, offPhase.success, phase.success, cpuPerOp(before0, offEnd, offPhase.success), cpuPerOp(before, onEnd, phase.success),
			during, max(0, last.Sub(createsDone).Seconds()))
	}
	s.Baseline = off.measured(def.baseWhat)
	offCPU.perOp(&s.Baseline, s.Baseline.Operations)
	peak := s.HTTP.ServerPeakRSSMB
	s.HTTP = on.measured(def.httpWhat)
	onCPU.perOp(&s.HTTP, s.HTTP.Operations)
	s.HTTP.ServerPeakRSSMB = peak
	e.peakRSSMB = max(e.peakRSSMB, peak)

	var err error
	var all []time.Duration
	for _, sk := range sinks {
		sk.mu.Lock()
		d.Delivered += len(sk.seen)
		d.Duplicates += sk.duplicates
		all = append(all, sk.latencies...)
		sk.mu.Unlock()
	}
	if d.Delivered < d.Expected {
		s.Notes = append(s.Notes, fmt.Sprintf("deliveries stalled at %d of %d", d.Delivered, d.Expected))
	}
	d.CommitToReceipt = latencyOf(all)
	d.DrainSeconds = drainSeconds / webhookRounds
	if deliveringSeconds > 0 {
		d.PerSecond = float64(d.Delivered) / deliveringSeconds
	}
	if d.Steady, d.SteadyDeliveries, err = steadyLatency(ctx, e, sinks, createEndpoints, deleteEndpoints, create, slice); err != nil {
		return s, err
	}
	if d.Outbox, err = measureOutbox(ctx, e); err != nil {
		return s, err
	}
	s.Webhooks = d
	if s.Baseline.PerSecond > 0 {
		s.Ratio = s.HTTP.PerSecond / s.Baseline.PerSecond
	}
	s.Notes = append(s.Notes, fmt.Sprintf("%d rounds of %s off then %s on; deliveries: %d of %d (%d duplicates), %s/s from each slice's first create to its last receipt; commit → receipt p50 %s ms, p99 %s ms; drained %.1fs after a slice's last create (mean)",
		webhookRounds, slice, slice, d.Delivered, d.Expected, d.Duplicates, fmtRate(d.PerSecond), fmtMS(d.CommitToReceipt.P50), fmtMS(d.CommitToReceipt.P99), d.DrainSeconds),
		fmt.Sprintf("the outbox alone (task.Service.Create without HTTP, alternated the same way): %s creates/s with the event recorded ÷ %s without = %.1f%% (PostgreSQL CPU per create %.3f ms ÷ %.3f ms): the ceiling of this ratio",
			fmtRate(d.Outbox.With.PerSecond), fmtRate(d.Outbox.Without.PerSecond), d.Outbox.Ratio*100, d.Outbox.With.DBCPUSecondsPerOp*1000, d.Outbox.Without.DBCPUSecondsPerOp*1000),
		fmt.Sprintf("at a steady %d creates/s (the API not busy, nothing paced): commit → receipt p50 %s ms, p99 %s ms over %d deliveries",
			webhookSteadyRate, fmtMS(d.Steady.P50), fmtMS(d.Steady.P99), d.SteadyDeliveries))
	return s, nil
}

// awaitDeliveries waits until the sinks have received want distinct deliveries, or until
// none has arrived for drainStall; it returns the time of the last receipt.
func awaitDeliveries(ctx context.Context, sinks []*webhookSink, want int) (time.Time, error) {
	progress, lastProgress := -1, time.Now()
	for {
		n := 0
		var last time.Time
		for _, sk := range sinks {
			sk.mu.Lock()
			n += len(sk.seen)
			if sk.last.After(last) {
				last = sk.last
			}
			sk.mu.Unlock()
		}
		if n >= want {
			return last, nil
		}
		if n != progress {
			progress, lastProgress = n, time.Now()
		}
		if time.Since(lastProgress) > drainStall {
			return last, nil
		}
		if err := ctx.Err(); err != nil {
			return last, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuSpan adds up the CPU of several measured intervals.
type cpuSpan struct {
	sum cpuSnap // differences; at holds the zero time plus the summed wall time
}

func (c *cpuSpan) add(before, after cpuSnap) {
	c.sum.server += after.server - before.server
	c.sum.db += after.db - before.db
	c.sum.self += after.self - before.self
	c.sum.machine += after.machine - before.machine
	c.sum.at = c.sum.at.Add(after.at.Sub(before.at))
}

// perOp sets m's CPU fields over the summed intervals.
func (c *cpuSpan) perOp(m *Measured, ops uint64) { m.perOp(cpuSnap{}, c.sum, ops) }

// cpuPerOp formats the CPU per operation of the server, PostgreSQL and the bench between
// two snapshots, in milliseconds.
func cpuPerOp(before, after cpuSnap, ops uint64) string {
	if ops == 0 {
		return "-"
	}
	n := float64(ops)
	ms := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000/n, 'f', 3, 64) }
	return ms(after.server-before.server) + "/" + ms(after.db-before.db) + "/" + ms(after.self-before.self)
}

// received counts the distinct deliveries the sinks have received.
func received(sinks []*webhookSink) int {
	n := 0
	for _, sk := range sinks {
		sk.mu.Lock()
		n += len(sk.seen)
		sk.mu.Unlock()
	}
	return n
}

// webhookSteadyRate is the task creations per second of the webhooks scenario's latency
// phase: well below what saturates the machine, so that no delivery is paced.
const webhookSteadyRate = 100

// steadyLatency creates tasks at webhookSteadyRate for d with the endpoints subscribed and
// returns commit → receipt of their deliveries, and how many there were.
func steadyLatency(ctx context.Context, e *runEnv, sinks []*webhookSink, createEndpoints func() error, deleteEndpoints func(),
	create vegeta.Targeter, d time.Duration) (Latency, int, error) {
	if err := createEndpoints(); err != nil {
		return Latency{}, 0, err
	}
	defer deleteEndpoints()
	marks := make([]int, len(sinks))
	for i, sk := range sinks {
		sk.mu.Lock()
		marks[i] = len(sk.latencies)
		sk.mu.Unlock()
	}
	var mu sync.Mutex
	next := time.Now()
	paced := func(t *vegeta.Target) error {
		mu.Lock()
		at := next
		next = next.Add(time.Second / webhookSteadyRate)
		mu.Unlock()
		time.Sleep(time.Until(at))
		return create(t)
	}
	e.log.printf("webhooks: commit → receipt at a steady %d creates/s for %s", webhookSteadyRate, d)
	phase := attack(ctx, e.tr, 4, d, "webhooks-steady", paced)
	want := sum(marks) + int(phase.success)*webhookReceivers
	if _, err := awaitDeliveries(ctx, sinks, want); err != nil {
		return Latency{}, 0, err
	}
	var all []time.Duration
	for i, sk := range sinks {
		sk.mu.Lock()
		all = append(all, sk.latencies[marks[i]:]...)
		sk.mu.Unlock()
	}
	if len(all) < want-sum(marks) {
		return Latency{}, 0, fmt.Errorf("steady phase: %d of %d deliveries arrived", len(all), want-sum(marks))
	}
	return latencyOf(all), len(all), nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
