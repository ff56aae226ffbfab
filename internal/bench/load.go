package bench

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// errExhausted ends a phase early when a scenario runs out of fresh inputs (PATCH needs
// a task still at version 1 for each request).
var errExhausted = errors.New("bench: no fresh inputs left for this scenario")

// maxErrorSamples bounds the distinct error messages kept per phase.
const maxErrorSamples = 5

// newTransport is the HTTP transport of the load generator: one keep-alive connection
// per worker, reused across phases.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
}

// httpPhase is the outcome of one attack.
type httpPhase struct {
	latency     latencyHist
	statusCodes map[string]int
	success     uint64
	errors      uint64
	samples     []string
	exhausted   bool
	seconds     float64
}

// attack runs a closed loop of exactly `concurrency` workers for d, each sending its next
// request when the previous one is answered, and collects the metrics (the engine is
// loadgen.go). A targeter returning errExhausted ends the attack early; that
// pseudo-request is not counted. tr serves the targets the lean engine does not speak
// (anything but plain http://).
func attack(ctx context.Context, tr *http.Transport, concurrency int, d time.Duration, name string, targeter vegeta.Targeter) httpPhase {
	return runLoad(ctx, tr, concurrency, d, name, targeter)
}

// add sums o into p, as one phase made of both.
func (p *httpPhase) add(o httpPhase) {
	p.latency.merge(&o.latency)
	if p.statusCodes == nil {
		p.statusCodes = map[string]int{}
	}
	for code, n := range o.statusCodes {
		p.statusCodes[code] += n
	}
	p.success += o.success
	p.errors += o.errors
	p.samples = append(p.samples, o.samples[:min(len(o.samples), max(0, maxErrorSamples-len(p.samples)))]...)
	p.exhausted = p.exhausted || o.exhausted
	p.seconds += o.seconds
}

// measured turns an attack into the report's numbers. Only 2xx responses count as
// successes.
func (p httpPhase) measured(what string) Measured {
	m := Measured{
		What:         what,
		Operations:   p.success,
		Errors:       p.errors,
		Seconds:      p.seconds,
		StatusCodes:  p.statusCodes,
		ErrorSamples: p.samples,
		Exhausted:    p.exhausted,
		Latency:      p.latency.latency(),
	}
	if p.seconds > 0 {
		m.PerSecond = float64(p.success) / p.seconds
	}
	return m
}

// loopPhase is the outcome of a closed loop of plain function calls (the baselines).
type loopPhase struct {
	ops       uint64
	errors    uint64
	samples   []string
	latencies []time.Duration
	exhausted bool
	seconds   float64
}

// closedLoop calls op from `concurrency` goroutines, each starting its next call when the
// previous one returns, until d has passed. errExhausted stops the goroutine that got it.
func closedLoop(ctx context.Context, concurrency int, d time.Duration, op func(ctx context.Context) error) loopPhase {
	type worker struct {
		lat       []time.Duration
		errs      uint64
		samples   []string
		exhausted bool
	}
	workers := make([]worker, concurrency)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				err := op(ctx)
				if errors.Is(err, errExhausted) {
					w.exhausted = true
					return
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					w.errs++
					if len(w.samples) < maxErrorSamples {
						w.samples = append(w.samples, err.Error())
					}
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
			}
		}(&workers[i])
	}
	wg.Wait()
	p := loopPhase{seconds: time.Since(start).Seconds()}
	seen := map[string]bool{}
	for _, w := range workers {
		p.latencies = append(p.latencies, w.lat...)
		p.errors += w.errs
		p.exhausted = p.exhausted || w.exhausted
		for _, s := range w.samples {
			if !seen[s] && len(p.samples) < maxErrorSamples {
				seen[s] = true
				p.samples = append(p.samples, s)
			}
		}
	}
	p.ops = uint64(len(p.latencies))
	return p
}

func (p loopPhase) measured(what string) Measured {
	m := Measured{
		What: what, Operations: p.ops, Errors: p.errors, Seconds: p.seconds,
		ErrorSamples: p.samples, Exhausted: p.exhausted, Latency: latencyOf(p.latencies),
	}
	if p.seconds > 0 {
		m.PerSecond = float64(p.ops) / p.seconds
	}
	return m
}

// latencyOf computes exact percentiles.
func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 { return ms(s[int(p*float64(len(s)-1)+0.5)]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}
