package httpapi

import (
	"strings"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"

	"enterprise-automation/internal/tracing"
)

// traceRequests makes each request a server span named by its method and route template
// (GET /api/v1/tasks/:id: a bounded set of names), continuing the caller's trace when
// the request carries a traceparent header. Probes and metrics scrapes are not traced:
// they would bury the traces worth reading. Nil when tracing is off.
func traceRequests(t *tracing.Tracing) echo.MiddlewareFunc {
	if !t.Enabled() {
		return nil
	}
	return otelecho.Middleware(tracing.ServiceName,
		otelecho.WithTracerProvider(t.Provider()),
		otelecho.WithPropagators(tracing.Propagator),
		otelecho.WithSkipper(func(c echo.Context) bool {
			p := c.Path()
			return p == "/metrics" || p == "/api/health" || strings.HasPrefix(p, "/api/health/")
		}))
}
