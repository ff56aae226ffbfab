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

// runWebhooks measures task creation through the API with no webhook endpoint, then with
// three local endpoints subscribed to task.created, and the deliveries that follow: the
// ratio is write throughput with webhooks on ÷ off.
func runWebhooks(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc}
	create := tasksCreateTargeter(e)

	e.log.printf("%s: task creates with webhooks off, %d concurrent, %s", def.name, e.cfg.Concurrency, e.cfg.Duration)
	before := e.cpu()
	off := attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Duration, def.name+"-off", create)
	s.Baseline = off.measured(def.baseWhat)
	s.Baseline.perOp(before, e.cpu(), s.Baseline.Operations)

	sinks := make([]*webhookSink, webhookReceivers)
	ids := make([]int64, webhookReceivers)
	for i := range sinks {
		sinks[i] = &webhookSink{seen: map[string]bool{}}
		srv := httptest.NewServer(sinks[i])
		defer srv.Close()
		var out struct {
			ID int64 `json:"id"`
		}
		body := map[string]any{"url": srv.URL, "events": []string{"task.created"}, "description": "bench receiver " + strconv.Itoa(i)}
		if err := e.call(ctx, http.MethodPost, "/api/v1/webhooks", e.admin, body, http.StatusCreated, &out); err != nil {
			return s, fmt.Errorf("create webhook: %w", err)
		}
		ids[i] = out.ID
	}
	defer func() {
		for _, id := range ids {
			_ = e.call(context.WithoutCancel(ctx), http.MethodDelete, "/api/v1/webhooks/"+strconv.FormatInt(id, 10), e.admin, nil, http.StatusNoContent, nil)
		}
	}()

	e.log.printf("%s: task creates with %d subscribed endpoints, %d concurrent, %s, then drain", def.name, webhookReceivers, e.cfg.Concurrency, e.cfg.Duration)
	before = e.cpu()
	rss := sampleRSS(e.server.pid())
	profiled := e.server.profile(e.cfg.ProfileDir, def.name, e.cfg.Duration)
	start := time.Now()
	on := attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Duration, def.name+"-on", create)
	createsDone := time.Now()
	if err := profiled(); err != nil {
		return s, err
	}
	s.HTTP = on.measured(def.httpWhat)
	d := &WebhookDetails{Receivers: webhookReceivers, Expected: int(on.success) * webhookReceivers}
	progress, lastProgress := -1, time.Now()
	for {
		n := 0
		for _, sk := range sinks {
			sk.mu.Lock()
			n += len(sk.seen)
			sk.mu.Unlock()
		}
		if n >= d.Expected {
			break
		}
		if n != progress {
			progress, lastProgress = n, time.Now()
		}
		if time.Since(lastProgress) > drainStall {
			s.Notes = append(s.Notes, fmt.Sprintf("deliveries stalled at %d of %d", n, d.Expected))
			break
		}
		if err := ctx.Err(); err != nil {
			return s, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	endMB, peakMB := rss.finish()
	s.HTTP.perOp(before, e.cpu(), s.HTTP.Operations)
	s.HTTP.ServerRSSMB, s.HTTP.ServerPeakRSSMB = endMB, peakMB
	e.peakRSSMB = max(e.peakRSSMB, peakMB)
	var all []time.Duration
	last := start
	for _, sk := range sinks {
		sk.mu.Lock()
		d.Delivered += len(sk.seen)
		d.Duplicates += sk.duplicates
		all = append(all, sk.latencies...)
		if sk.last.After(last) {
			last = sk.last
		}
		sk.mu.Unlock()
	}
	d.CommitToReceipt = latencyOf(all)
	d.DrainSeconds = last.Sub(createsDone).Seconds()
	if secs := last.Sub(start).Seconds(); secs > 0 {
		d.PerSecond = float64(d.Delivered) / secs
	}
	s.Webhooks = d
	if s.Baseline.PerSecond > 0 {
		s.Ratio = s.HTTP.PerSecond / s.Baseline.PerSecond
	}
	s.Notes = append(s.Notes, fmt.Sprintf("deliveries: %d of %d (%d duplicates), %s/s from first create to last receipt; commit → receipt p50 %s ms, p99 %s ms; drained %.1fs after the last create",
		d.Delivered, d.Expected, d.Duplicates, fmtRate(d.PerSecond), fmtMS(d.CommitToReceipt.P50), fmtMS(d.CommitToReceipt.P99), d.DrainSeconds))
	return s, nil
}
