package app

import (
	"context"
	"fmt"
	"log/slog"

	"enterprise-automation/internal/config"
	"enterprise-automation/internal/foreground"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/webhook"
)

// webhooks builds the webhook service (endpoints, the outbox) and the worker of
// delivery jobs, both behind one address guard.
func (p *Program) webhooks(cfg config.Config, log *slog.Logger, m *metrics.Metrics, s *store.DB, fg *foreground.Gauge) (*webhook.Service, *webhook.Worker) {
	guard := &webhook.Guard{AllowPrivate: cfg.WebhookAllowPrivateNetworks, Resolve: p.WebhookResolve}
	hooks := webhook.NewService(s, webhook.Options{Guard: guard, Encode: httpapi.WebhookData, Render: renderStored, Logger: log,
		// The fan-out yields the CPU to this process's API requests too (WEBHOOK_BUSY_RATE).
		Busy: fg.Busy, BusyRate: float64(cfg.WebhookBusyRate)})
	var deliverer *webhook.Deliverer
	wm := m.RegisterWebhooks(func(ctx context.Context) (map[int64]int64, error) { return deliverer.Depth(ctx) }, log)
	deliverer = webhook.NewDeliverer(s, webhook.DelivererOptions{
		Guard: guard, Timeout: cfg.WebhookTimeout, Schedule: cfg.WebhookRetrySchedule, Jitter: 0.1,
		EndpointConcurrency: cfg.WebhookEndpointConcurrency, UserAgent: "EnterpriseAutomation-Webhooks/" + Version,
		Metrics: wm, Logger: log.With("component", "webhook"),
		// Deliveries yield the CPU to this process's API requests (WEBHOOK_BUSY_RATE).
		Busy: fg.Busy, BusyRate: float64(cfg.WebhookBusyRate),
	})
	return hooks, webhook.NewWorker(deliverer)
}

// renderStored renders the data of an event recorded with its row as stored (task.created)
// as the API returns the resource.
func renderStored(t webhook.EventType, source []byte) ([]byte, error) {
	switch t {
	case webhook.TaskCreated:
		tk, err := task.FromStored(source)
		if err != nil {
			return nil, err
		}
		return httpapi.WebhookData(tk)
	default:
		return nil, fmt.Errorf("no stored rendering of %s events", t)
	}
}

// webhookQueues gives the webhook queue its workers in this process.
func webhookQueues(cfg config.Config) map[string]int {
	if cfg.WebhookWorkers == 0 {
		return nil
	}
	return map[string]int{webhook.QueueName: cfg.WebhookWorkers}
}
