// Package metrics defines the Prometheus metrics of the service and renders them in the
// text exposition format. A nil *Metrics is valid and records nothing, so components
// built without metrics (tests, tools) need no special case.
package metrics

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Metrics holds the service's collectors in their own registry.
type Metrics struct {
	reg          *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	jobOutcomes  *prometheus.CounterVec
	llmTokens    *prometheus.CounterVec
	llmDuration  *prometheus.HistogramVec
	cacheLookups *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	fallbacks    *prometheus.CounterVec
}

// New builds the metrics with the Go runtime and process collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		jobOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agent_run_jobs_total",
			Help: "Agent run job executions by outcome (completed, failed, cancelled, incomplete, retried, released).",
		}, []string{"outcome"}),
		llmTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llm_tokens_total",
			Help: "LLM tokens used, by model and kind (prompt or completion).",
		}, []string{"model", "kind"}),
		llmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llm_request_duration_seconds",
			Help:    "LLM completion latency by model and outcome (ok, error, cached).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"model", "outcome"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_lookups_total",
			Help: "Cache lookups by cache and result (hit, miss).",
		}, []string{"cache", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rate_limited_requests_total",
			Help: "Requests refused with 429, by policy.",
		}, []string{"policy"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redis_fallbacks_total",
			Help: "Operations that could not use Redis and fell back (cache bypassed or in-process limiter), by operation.",
		}, []string{"op"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.jobOutcomes, m.llmTokens, m.llmDuration,
		m.cacheLookups, m.rateLimited, m.fallbacks,
	)
	return m
}

// Registry exposes the registry, for tests and for registering extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest records one HTTP request. route must come from a bounded set (the
// contract's route templates); the method is bounded here, since any client can send any.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method = MethodLabel(method)
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// MethodLabel returns method when it is one of HTTP's standard methods and "OTHER"
// otherwise, so invented methods cannot add label values.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// JobOutcome records how one execution of an agent run job ended.
func (m *Metrics) JobOutcome(outcome string) {
	if m == nil {
		return
	}
	m.jobOutcomes.WithLabelValues(outcome).Inc()
}

// LLMCompletion records one completion: its latency, outcome and token usage.
func (m *Metrics) LLMCompletion(model, outcome string, d time.Duration, promptTokens, completionTokens int64) {
	if m == nil {
		return
	}
	m.llmDuration.WithLabelValues(model, outcome).Observe(d.Seconds())
	if promptTokens > 0 {
		m.llmTokens.WithLabelValues(model, "prompt").Add(float64(promptTokens))
	}
	if completionTokens > 0 {
		m.llmTokens.WithLabelValues(model, "completion").Add(float64(completionTokens))
	}
}

// CacheLookup records a hit or a miss of the named cache.
func (m *Metrics) CacheLookup(cache string, hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cacheLookups.WithLabelValues(cache, result).Inc()
}

// RateLimited records a request refused under policy.
func (m *Metrics) RateLimited(policy string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(policy).Inc()
}

// RedisFallback records an operation that could not use Redis.
func (m *Metrics) RedisFallback(op string) {
	if m == nil {
		return
	}
	m.fallbacks.WithLabelValues(op).Inc()
}

// RegisterPool exports the database pool's statistics.
func (m *Metrics) RegisterPool(pool *pgxpool.Pool) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&poolCollector{pool: pool})
}

// QueueDepth reports the number of jobs per state; it is called at scrape time.
type QueueDepth func(ctx context.Context) (map[string]int64, error)

// RegisterQueue exports the job queue's depth by state, read at scrape time with a short
// timeout (a failed read is logged and the gauge left out of that scrape).
func (m *Metrics) RegisterQueue(depth QueueDepth, log *slog.Logger) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&queueCollector{depth: depth, log: log})
}

// Handler serves every metric in the Prometheus exposition format, for a listener of its
// own (METRICS_ADDR).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Text renders every metric in the Prometheus text exposition format.
func (m *Metrics) Text() (string, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return "", err
		}
	}
	return buf.String(), nil
}

var (
	poolDescs = struct {
		total, idle, inUse, max, acquires, waits, waitSeconds *prometheus.Desc
	}{
		total:       prometheus.NewDesc("db_pool_connections", "Open database connections.", nil, nil),
		idle:        prometheus.NewDesc("db_pool_idle_connections", "Idle database connections.", nil, nil),
		inUse:       prometheus.NewDesc("db_pool_acquired_connections", "Database connections in use.", nil, nil),
		max:         prometheus.NewDesc("db_pool_max_connections", "The pool's connection limit.", nil, nil),
		acquires:    prometheus.NewDesc("db_pool_acquires_total", "Connections acquired from the pool.", nil, nil),
		waits:       prometheus.NewDesc("db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil),
		waitSeconds: prometheus.NewDesc("db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", nil, nil),
	}
	queueDesc = prometheus.NewDesc("agent_run_jobs", "Agent run jobs in the queue by state.", []string{"state"}, nil)
)

type poolCollector struct{ pool *pgxpool.Pool }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolDescs.total
	ch <- poolDescs.idle
	ch <- poolDescs.inUse
	ch <- poolDescs.max
	ch <- poolDescs.acquires
	ch <- poolDescs.waits
	ch <- poolDescs.waitSeconds
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolDescs.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolDescs.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolDescs.inUse, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolDescs.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolDescs.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolDescs.waits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolDescs.waitSeconds, prometheus.CounterValue, s.AcquireDuration().Seconds())
}

type queueCollector struct {
	depth QueueDepth
	log   *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	depth, err := c.depth(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: reading the queue depth", "error", err)
		}
		return
	}
	for state, n := range depth {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), state)
	}
}
