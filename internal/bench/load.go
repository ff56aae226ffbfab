package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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

// httpPhase is the outcome of one vegeta attack.
type httpPhase struct {
	metrics   vegeta.Metrics
	success   uint64
	errors    uint64
	samples   []string
	exhausted bool
	seconds   float64
}

// attack runs a closed loop of exactly `concurrency` vegeta workers for d (rate 0 means
// as fast as the workers go; MaxWorkers keeps vegeta from adding more) and collects the
// metrics. A targeter returning errExhausted ends the attack early; that pseudo-request is
// not counted.
func attack(ctx context.Context, tr *http.Transport, concurrency int, d time.Duration, name string, targeter vegeta.Targeter) httpPhase {
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	a := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(concurrency)),
		vegeta.MaxWorkers(uint64(concurrency)),
		// Keep-alive and the idle connections per host are set once, on tr (newTransport):
		// vegeta's KeepAlive and Connections options would write to a transport the
		// previous phase's connections are still reading.
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.MaxBody(512), // enough for an error sample; the rest is read and discarded
	)
	stopOnCancel := context.AfterFunc(ctx, func() { a.Stop() })
	defer stopOnCancel()
	var p httpPhase
	seen := map[string]bool{}
	start := time.Now()
	for res := range a.Attack(targeter, vegeta.Rate{Freq: 0, Per: time.Second}, d, name) {
		if res.Code == 0 && res.Error == errExhausted.Error() {
			p.exhausted = true
			continue
		}
		p.metrics.Add(res)
		if res.Code >= 200 && res.Code < 300 {
			p.success++
			continue
		}
		p.errors++
		msg := res.Error
		if len(res.Body) > 0 {
			msg += ": " + strings.TrimSpace(string(res.Body))
		}
		if !seen[msg] && len(p.samples) < maxErrorSamples {
			seen[msg] = true
			p.samples = append(p.samples, fmt.Sprintf("%s %s → %s", res.Method, res.URL, msg))
		}
	}
	p.metrics.Close()
	p.seconds = time.Since(start).Seconds()
	if p.metrics.Requests > 0 {
		// From the first request sent to the last response received.
		p.seconds = (p.metrics.Duration + p.metrics.Wait).Seconds()
	}
	return p
}

// measured turns an attack into the report's numbers. Only 2xx responses count as
// successes (vegeta counts 3xx too).
func (p httpPhase) measured(what string) Measured {
	m := Measured{
		What:         what,
		Operations:   p.success,
		Errors:       p.errors,
		Seconds:      p.seconds,
		StatusCodes:  p.metrics.StatusCodes,
		ErrorSamples: p.samples,
		Exhausted:    p.exhausted,
		Latency: Latency{
			P50: ms(p.metrics.Latencies.P50), P90: ms(p.metrics.Latencies.P90), P99: ms(p.metrics.Latencies.P99),
			Max: ms(p.metrics.Latencies.Max), Mean: ms(p.metrics.Latencies.Mean),
		},
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
