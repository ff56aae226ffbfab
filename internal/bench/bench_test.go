package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/bench"
)

// buildServer builds the server binary the harness benchmarks.
func buildServer(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	require.NoError(t, err)
	gomod := strings.TrimSpace(string(out))
	require.NotEmpty(t, gomod, "not inside the module")
	bin := filepath.Join(t.TempDir(), "automation")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/automation")
	cmd.Dir = filepath.Dir(gomod)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", b)
	return bin
}

// TestTinyRunProducesWellFormedReport runs the whole harness on a tiny data set and checks
// the report's shape, never its numbers: performance is not asserted in tests.
func TestTinyRunProducesWellFormedReport(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts PostgreSQL and the server")
	}
	bin := buildServer(t)
	out := t.TempDir()
	jsonPath := filepath.Join(out, "nested", "bench.json")
	mdPath := filepath.Join(out, "RESULTS.md")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := bench.Run(ctx, []string{
		"-server", bin, "-users", "50", "-tasks", "3000", "-concurrency", "4", "-workers", "4",
		"-duration", "700ms", "-warmup", "100ms", "-pg-fast",
		"-json", jsonPath, "-markdown", mdPath, "-profile", filepath.Join(out, "profiles"),
	}, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep bench.Report
	require.NoError(t, dec.Decode(&rep))

	require.Equal(t, 50, rep.Seeding.Users)
	require.Equal(t, 3000, rep.Seeding.Tasks)
	require.Positive(t, rep.Seeding.Seconds)
	require.Equal(t, 4, rep.Concurrency)
	require.Positive(t, rep.Machine.CPUs)
	require.NotEmpty(t, rep.Machine.CPUModel)
	require.Contains(t, rep.Machine.PostgreSQLVersion, "PostgreSQL")
	require.NotEmpty(t, rep.Machine.GoVersion)
	require.Positive(t, rep.ServerPeakRSSMB)
	require.Empty(t, rep.ServerLog, "the server logged warnings or errors: %v", rep.ServerLogSamples)

	for _, s := range rep.Scenarios {
		prof, err := os.ReadFile(filepath.Join(out, "profiles", s.Name+".cpu.pprof"))
		require.NoError(t, err, "a CPU profile of the server for each scenario")
		require.Greater(t, len(prof), 2)
		require.Equal(t, []byte{0x1f, 0x8b}, prof[:2], "%s: a pprof profile is gzip-compressed", s.Name)
	}

	var names []string
	for _, s := range rep.Scenarios {
		names = append(names, s.Name)
		for side, m := range map[string]bench.Measured{"http": s.HTTP, "baseline": s.Baseline} {
			require.NotEmpty(t, m.What, "%s %s", s.Name, side)
			require.Positive(t, m.Operations, "%s %s: no operations", s.Name, side)
			require.Zero(t, m.Errors, "%s %s: errors %v", s.Name, side, m.ErrorSamples)
			require.Positive(t, m.Seconds, "%s %s", s.Name, side)
			require.Positive(t, m.PerSecond, "%s %s", s.Name, side)
			require.Positive(t, m.Latency.P50, "%s %s", s.Name, side)
			require.GreaterOrEqual(t, m.Latency.P99, m.Latency.P50, "%s %s", s.Name, side)
			require.GreaterOrEqual(t, m.Latency.Max, m.Latency.P99, "%s %s", s.Name, side)
			require.GreaterOrEqual(t, m.DBCPUSecondsPerOp, 0.0, "%s %s", s.Name, side)
		}
		require.Positive(t, s.HTTP.ServerCPUSecondsPerOp, s.Name)
		require.Positive(t, s.HTTP.ServerPeakRSSMB, s.Name)
		require.Positive(t, s.Ratio, s.Name)
		require.Equal(t, s.Name == "login", s.Separate, s.Name)
		if s.Name == "agent-runs" {
			require.NotNil(t, s.Pipeline)
			p := s.Pipeline
			require.Positive(t, p.Create.Operations)
			require.Zero(t, p.Create.Errors, "%v", p.Create.ErrorSamples)
			require.Equal(t, p.Runs.Created, p.Runs.Completed, "every run completes")
			require.Equal(t, int64(p.Create.Operations), p.Runs.Created)
			require.Equal(t, p.BaselineRuns.Created, p.BaselineRuns.Completed)
			require.Equal(t, int64(p.BaselineCreate.Operations), p.BaselineRuns.Created)
		} else {
			require.Nil(t, s.Pipeline, s.Name)
			if s.Name == "webhooks" {
				require.NotNil(t, s.Webhooks)
				require.Equal(t, 3*int(s.HTTP.Operations), s.Webhooks.Expected)
				require.Equal(t, s.Webhooks.Expected, s.Webhooks.Delivered, "every delivery arrives")
				require.Positive(t, s.Webhooks.PerSecond)
				require.Positive(t, s.Webhooks.CommitToReceipt.P99)
				require.Positive(t, s.Webhooks.SteadyDeliveries)
				require.Zero(t, s.Webhooks.SteadyDeliveries%3, "three per task created at the steady rate")
				require.Positive(t, s.Webhooks.Steady.P99)
				o := s.Webhooks.Outbox
				require.Positive(t, o.Without.Operations)
				require.Positive(t, o.With.Operations)
				require.Zero(t, o.Without.Errors+o.With.Errors, "%v %v", o.Without.ErrorSamples, o.With.ErrorSamples)
				require.InDelta(t, o.With.PerSecond/o.Without.PerSecond, o.Ratio, 1e-9)
			} else {
				require.Nil(t, s.Webhooks, s.Name)
			}
			if s.Name == "agent-runs-approval" {
				// Its operations are completed runs (each a create, polls and an approval),
				// and its notes give create → completed percentiles.
				require.NotEmpty(t, s.Notes, s.Name)
				continue
			}
			require.Equal(t, s.HTTP.Operations, uint64(s.HTTP.StatusCodes["200"]+s.HTTP.StatusCodes["201"]), s.Name)
		}
	}
	require.Equal(t, bench.ScenarioNames(), names, "every scenario, in order")

	md, err := os.ReadFile(mdPath)
	require.NoError(t, err)
	require.Contains(t, string(md), "| scenario | req/s | p50 ms | p99 ms | max ms | errors |")
	for _, n := range names {
		require.Contains(t, string(md), "| "+n+" |")
	}
	require.Contains(t, string(md), "50 users, 3000 tasks")
	for _, n := range names {
		require.Contains(t, stdout.String(), n)
	}
	require.Contains(t, stdout.String(), "baseline ops/s")
}

// TestFlags checks the command line's validation.
func TestFlags(t *testing.T) {
	t.Parallel()
	cfg, err := bench.ParseFlags([]string{"-scenarios", "login, tasks-get,login"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{"tasks-get", "login"}, cfg.Scenarios, "canonical order, no duplicates")
	require.Equal(t, "bin/automation", cfg.Server)
	require.Equal(t, 10000, cfg.Users)
	require.Equal(t, 1000000, cfg.Tasks)
	require.Equal(t, 32, cfg.Concurrency)
	require.Equal(t, 10*time.Second, cfg.Duration)
	require.Equal(t, 100, cfg.Workers, "the server's default WORKER_CONCURRENCY")
	require.Empty(t, cfg.ProfileDir)
	require.Equal(t, "artifacts/bench.json", cfg.JSONPath)
	require.Equal(t, "internal/bench/RESULTS.md", cfg.MarkdownPath)

	for _, args := range [][]string{
		{"-scenarios", "nope"}, {"-scenarios", ","}, {"-concurrency", "0"}, {"-duration", "0s"}, {"extra"}, {"-users", "1"},
	} {
		_, err := bench.ParseFlags(args, &bytes.Buffer{})
		require.Error(t, err, "%v", args)
	}
	_, err = bench.ParseFlags([]string{"-h"}, &bytes.Buffer{})
	require.True(t, errors.Is(err, flag.ErrHelp))
}

// TestMissingServerBinary fails fast with a hint.
func TestMissingServerBinary(t *testing.T) {
	t.Parallel()
	err := bench.Run(context.Background(), []string{"-server", filepath.Join(t.TempDir(), "nope")}, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "go build -o bin/automation ./cmd/automation")
}
