package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"enterprise-automation/internal/metrics"
)

// BenchmarkGetTaskStack serves GET /api/v1/tasks/{id} through the whole server (middleware,
// validation, handler, service, PostgreSQL, JSON) in process, as production wires it but
// without the record cache: the CPU and allocations of a request besides the network.
// Profile it with -cpuprofile / -memprofile.
func BenchmarkGetTaskStack(b *testing.B) {
	w := newBenchWorld(b)
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := w.server(b, log)
	_ = metrics.New()
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
