package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/bench"
	"enterprise-automation/internal/fleet"
)

// TestTinyScaleRunProducesWellFormedReport runs -mode scale on a tiny data set (two API
// instances, haproxy in front of one and of both) and checks the report's shape, never
// its numbers.
func TestTinyScaleRunProducesWellFormedReport(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts PostgreSQL, two servers and haproxy")
	}
	if _, err := fleet.HAProxyPath(); err != nil {
		t.Fatal(err)
	}
	bin := buildServer(t)
	out := t.TempDir()
	jsonPath, mdPath := filepath.Join(out, "scale.json"), filepath.Join(out, "SCALE.md")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := bench.Run(ctx, []string{
		"-mode", "scale", "-server", bin, "-users", "50", "-tasks", "3000", "-concurrency", "4",
		"-duration", "500ms", "-warmup", "100ms", "-pg-fast", "-scenarios", "tasks-get,tasks-create",
		"-json", jsonPath, "-markdown", mdPath,
	}, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep bench.ScaleReport
	require.NoError(t, dec.Decode(&rep))
	require.Empty(t, rep.ServerLog, "the instances logged warnings or errors: %v", rep.ServerLogSamples)
	require.Len(t, rep.Scenarios, 2)
	for _, s := range rep.Scenarios {
		for n, m := range []bench.ScaleMeasured{s.One, s.Two} {
			require.Equal(t, n+1, m.Instances)
			require.Positive(t, m.HTTP.Operations, "%s/%d", s.Name, m.Instances)
			require.Zero(t, m.HTTP.Errors, "%s/%d: %v", s.Name, m.Instances, m.HTTP.ErrorSamples)
			require.Positive(t, m.HTTP.PerSecond)
			require.GreaterOrEqual(t, m.HTTP.Latency.P99, m.HTTP.Latency.P50)
			require.Positive(t, m.HTTP.ServerCPUSecondsPerOp, "%s/%d: the instances' CPU is read", s.Name, m.Instances)
			require.GreaterOrEqual(t, m.BalancerCPUSecondsPerOp, 0.0)
			require.Len(t, m.InstanceCPUShare, m.Instances)
		}
		require.Positive(t, s.Two.InstanceCPUShare[1], "%s: the second instance served requests", s.Name)
		require.Positive(t, s.ThroughputRatio)
		require.Positive(t, s.APICPURatio)
		require.Positive(t, s.TotalCPURatio)
	}
	md, err := os.ReadFile(mdPath)
	require.NoError(t, err)
	require.Contains(t, string(md), "| scenario | instances | req/s |")
	require.Contains(t, string(md), "API CPU per request")
	require.Contains(t, stdout.String(), "tasks-create: two instances serve")
}

// TestScaleFlags: scale mode runs the read/write scenarios by default, writes its own
// reports, and refuses scenarios it cannot run through the balancer.
func TestScaleFlags(t *testing.T) {
	t.Parallel()
	cfg, err := bench.ParseFlags([]string{"-mode", "scale"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{"users-get", "tasks-get", "tasks-list", "tasks-create", "tasks-patch"}, cfg.Scenarios)
	require.Equal(t, "artifacts/bench-scale.json", cfg.JSONPath)
	require.Equal(t, "internal/bench/SCALE.md", cfg.MarkdownPath)
	for _, args := range [][]string{
		{"-mode", "scale", "-scenarios", "agent-runs"},
		{"-mode", "scale", "-scenarios", "tasks-get-nocache"},
		{"-mode", "scale", "-instance-procs", "-1"},
		{"-mode", "sideways"},
	} {
		_, err := bench.ParseFlags(args, &bytes.Buffer{})
		require.Error(t, err, "%v", args)
	}
}
