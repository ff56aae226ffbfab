package app

import (
	"log/slog"
	"net/http"

	"enterprise-automation/internal/metrics"
)

// serveMetrics serves GET /metrics on addr (METRICS_ADDR) until the returned stop is
// called; with no addr the API port keeps /metrics. A private address keeps the
// service's internals (routes, pool, queue and process statistics) from its clients.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return serveAside("METRICS_ADDR", addr, mux, log)
}
