package app

import (
	"context"
	"log/slog"

	"enterprise-automation/internal/config"
	"enterprise-automation/internal/foreground"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/webhook"
)

// webhooks builds the webhook service (endpoints, the outbox) and the worker of
// delivery jobs, both behind one address guard.
func (p *Program) webhooks(cfg config.Config, log *slog.Logger, m *metrics.Metrics, s *store.DB, fg *foreground.Gauge) (*webhook.Service, *webhook.Worker) {
	guard := &webhook.Guard{AllowPrivate: cfg.WebhookAllowPrivateNetworks, Resolve: p.WebhookResolve}
	hooks := webhook.NewService(s, webhook.Options{Guard: guard, Encode: httpapi.WebhookData, Logger: log})
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

// webhookQueues gives the webhook queue its workers in this process.
func webhookQueues(cfg config.Config) map[string]int {
	if cfg.WebhookWorkers == 0 {
		return nil
	}
	return map[string]int{webhook.QueueName: cfg.WebhookWorkers}
}
