package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Webhooks holds the collectors of webhook deliveries: attempts by outcome, their
// latency, and the unfinished deliveries of each endpoint (the queue depth). A nil
// *Webhooks records nothing.
type Webhooks struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
}

// WebhookDepth reads the unfinished (pending or retrying) deliveries of each endpoint.
type WebhookDepth func(ctx context.Context) (map[int64]int64, error)

var webhookDepthDesc = prometheus.NewDesc("webhook_deliveries_pending",
	"Unfinished webhook deliveries (pending or retrying) by endpoint id.", []string{"webhook_id"}, nil)

// RegisterWebhooks registers the webhook collectors; depth is read at scrape time with
// a short timeout (a failed read is logged and the gauge left out of that scrape).
func (m *Metrics) RegisterWebhooks(depth WebhookDepth, log *slog.Logger) *Webhooks {
	if m == nil {
		return nil
	}
	w := &Webhooks{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome (succeeded, retrying, failed, gone).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhook_delivery_duration_seconds",
			Help:    "Time from sending a webhook to the receiver's answer (or the failure).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}),
	}
	m.reg.MustRegister(w.attempts, w.latency, &webhookDepthCollector{depth: depth, log: log})
	return w
}

// WebhookAttempt counts one delivery attempt with its outcome and duration.
func (w *Webhooks) WebhookAttempt(outcome string, d time.Duration) {
	if w == nil {
		return
	}
	w.attempts.WithLabelValues(outcome).Inc()
	w.latency.Observe(d.Seconds())
}

type webhookDepthCollector struct {
	depth WebhookDepth
	log   *slog.Logger
}

func (c *webhookDepthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- webhookDepthDesc }

func (c *webhookDepthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	depth, err := c.depth(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: reading the webhook queue depth", "error", err)
		}
		return
	}
	for id, n := range depth {
		ch <- prometheus.MustNewConstMetric(webhookDepthDesc, prometheus.GaugeValue, float64(n), strconv.FormatInt(id, 10))
	}
}
