package tracing

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Transport wraps base (nil: http.DefaultTransport) so that each outgoing request is a
// client span of the caller's trace and carries its traceparent header; with tracing
// off it returns base as it is. Outgoing calls (the model provider, webhook deliveries)
// use it for their http.Client.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.Enabled() {
		return base
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(Propagator),
		// A span named by the method only: URLs carry ids (high cardinality).
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }))
}
