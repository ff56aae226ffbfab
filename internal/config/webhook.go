package config

import (
	"errors"
	"strings"
	"time"
)

// Durations is a comma list of positive durations ("5s,5m,30m").
type Durations []time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Durations) UnmarshalText(b []byte) error {
	var out Durations
	for _, part := range strings.Split(string(b), ",") {
		v, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || v <= 0 {
			return errors.New("want a comma list of positive durations such as 5s,5m,30m")
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

func (c Config) validateWebhooks(bad func(key string, value any, why string) error) error {
	if c.WebhookTimeout <= 0 || c.WebhookTimeout > 5*time.Minute {
		return bad("WEBHOOK_TIMEOUT", c.WebhookTimeout, "want a positive duration up to 5m, such as 15s")
	}
	if len(c.WebhookRetrySchedule) > 20 {
		return bad("WEBHOOK_RETRY_SCHEDULE", len(c.WebhookRetrySchedule), "want at most 20 retries")
	}
	if c.WebhookWorkers < 0 {
		return bad("WEBHOOK_WORKERS", c.WebhookWorkers, "want 0 (no deliveries in this process) or more")
	}
	if c.WebhookEndpointConcurrency < 1 {
		return bad("WEBHOOK_ENDPOINT_CONCURRENCY", c.WebhookEndpointConcurrency, "want at least 1")
	}
	if c.WebhookBusyRate < 0 {
		return bad("WEBHOOK_BUSY_RATE", c.WebhookBusyRate, "want 0 (never paced) or a number of attempts per second")
	}
	return nil
}
