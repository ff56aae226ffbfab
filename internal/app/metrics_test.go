package app_test

import (
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/dbtest"
)

// freeAddr returns a loopback address no one listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestFinding08_MetricsAddrMovesMetricsOffTheAPIPort: with METRICS_ADDR the metrics are
// served there only; the API port answers /metrics with a 404 problem.
func TestFinding08_MetricsAddrMovesMetricsOffTheAPIPort(t *testing.T) {
	t.Parallel()
	b := setup(t)
	metricsAddr := freeAddr(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["METRICS_ADDR"] = metricsAddr
	r := start(t, b.program(), "serve")

	status, _, _ := get(t, r.base+"/api/health")
	require.Equal(t, http.StatusOK, status)
	status, header, body := get(t, "http://"+metricsAddr+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, header.Get("Content-Type"), "text/plain")
	require.Contains(t, string(body), `http_requests_total{method="GET",route="/api/health",status="200"} 1`,
		"the private listener serves the API's metrics")
	require.Contains(t, string(body), "go_goroutines")
	require.Contains(t, string(body), "db_pool_max_connections")

	status, header, body = get(t, r.base+"/metrics")
	require.Equal(t, http.StatusNotFound, status, "the API port serves no metrics: %s", body)
	require.Equal(t, "application/problem+json", header.Get("Content-Type"))
	require.NotContains(t, string(body), "http_requests_total")
	status, _, _ = get(t, "http://"+metricsAddr+"/api/health")
	require.Equal(t, http.StatusNotFound, status, "the metrics listener serves nothing else")

	require.NoError(t, r.stop(t))
	requireRefused(t, "http://"+metricsAddr+"/metrics", "the metrics listener is closed after shutdown")
}

// TestFinding08_MetricsOnTheAPIPortWithoutMetricsAddr: without METRICS_ADDR nothing
// changes, /metrics stays on the API port.
func TestFinding08_MetricsOnTheAPIPortWithoutMetricsAddr(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	r := start(t, b.program(), "serve")
	status, _, body := get(t, r.base+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), "go_goroutines")
	require.NoError(t, r.stop(t))
}

func TestFinding08_MetricsAddrInUseIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["METRICS_ADDR"] = ln.Addr().String()
	require.ErrorContains(t, b.run(t, "serve"), "METRICS_ADDR")
}

// TestFinding08_WorkerServesMetricsOnMetricsAddr: a worker has no API port; with
// METRICS_ADDR its job metrics can still be scraped.
func TestFinding08_WorkerServesMetricsOnMetricsAddr(t *testing.T) {
	t.Parallel()
	b := setup(t)
	metricsAddr := freeAddr(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["METRICS_ADDR"] = metricsAddr
	b.vars["WORKER_CONCURRENCY"] = "1"
	r := start(t, b.program(), "worker")
	status, _, body := get(t, "http://"+metricsAddr+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), "go_goroutines")
	require.NoError(t, r.stop(t))
}
