package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/tracing"
)

// discardExporter drops every span: the cost measured is making and batching them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkGetTaskStackTraced is BenchmarkGetTaskStack with tracing on: each request a
// server span, batched to an exporter that drops them (statements are not spanned here:
// the bench world's pool has no tracer). Compare with BenchmarkGetTaskStack, which is
// the request path with tracing off.
func BenchmarkGetTaskStackTraced(b *testing.B) {
	w := newBenchWorld(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
	srv, err := httpapi.New(httpapi.Options{
		Version: "bench", Logger: log, Auth: w.auth, Users: w.users, Tasks: w.tasks, Agents: w.agents,
		Idempotency: w.idem, Tracing: tracing.With(tp),
	})
	require.NoError(b, err)
	path := "/api/v1/tasks/" + strconv.FormatInt(w.taskID, 10)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Authorization", "Bearer "+w.token)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
