package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"enterprise-automation/internal/metrics"
)

// serveMetrics serves GET /metrics on addr (METRICS_ADDR), apart from the API and its
// middleware, until the returned stop is called; with no addr it serves nothing and the
// API port keeps /metrics. A private address keeps the service's internals (routes,
// pool, queue and process statistics) away from its clients.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "error", err)
		}
	}()
	log.Info("metrics served on their own address", "addr", ln.Addr().String())
	return func() { _ = hs.Shutdown(context.Background()) }, nil
}
