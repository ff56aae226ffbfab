package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one run; it is what the JSON file holds.
type Report struct {
	Date              time.Time `json:"date"`
	Command           string    `json:"command"`
	Machine           Machine   `json:"machine"`
	Seeding           Seeding   `json:"seeding"`
	Concurrency       int       `json:"concurrency"`
	DurationSeconds   float64   `json:"duration_seconds"`
	WarmupSeconds     float64   `json:"warmup_seconds"`
	WorkerConcurrency int       `json:"worker_concurrency"`
	// ServerPoolMaxConns is the server's database pool size setting (0: its default).
	ServerPoolMaxConns int `json:"server_pool_max_conns"`
	// PostgresFast is true when PostgreSQL ran without fsync (harness checks only).
	PostgresFast bool `json:"postgres_fast"`
	// OtherCPUPercentMax is the highest share of the machine's CPU that other processes
	// used during any measured phase (see Measured.OtherCPUPercent).
	OtherCPUPercentMax float64 `json:"other_cpu_percent_max"`
	// ServerPeakRSSMB is the server's highest resident memory over the whole run.
	ServerPeakRSSMB float64 `json:"server_peak_rss_mb"`
	// ServerLog counts the server's log lines by level (it runs with LOG_LEVEL=WARNING, so
	// any line is worth a look); ServerLogSamples holds the first few.
	ServerLog        map[string]int `json:"server_log_lines_by_level"`
	ServerLogSamples []string       `json:"server_log_samples,omitempty"`
	Scenarios        []Scenario     `json:"scenarios"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs              int    `json:"cpus"`
	CPUModel          string `json:"cpu_model"`
	MemoryMB          int64  `json:"memory_mb"`
	Kernel            string `json:"kernel"`
	GoVersion         string `json:"go_version"`
	PostgreSQLVersion string `json:"postgresql_version"`
}

// Seeding is the data set and how long loading it took.
type Seeding struct {
	Users            int     `json:"users"`
	Tasks            int     `json:"tasks"`
	Seconds          float64 `json:"seconds"`
	UsersSeconds     float64 `json:"users_seconds"`
	TasksCopySeconds float64 `json:"tasks_copy_seconds"`
	IndexSeconds     float64 `json:"index_seconds"`
	VacuumSeconds    float64 `json:"vacuum_seconds"`
	DatabaseMB       float64 `json:"database_mb"`
}

// Scenario is one scenario's HTTP measurement and its raw baseline.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Separate marks scenarios reported apart from the others (login: argon2id is slow on
	// purpose, so its numbers say nothing about the rest of the stack).
	Separate bool     `json:"reported_separately"`
	HTTP     Measured `json:"http"`
	Baseline Measured `json:"baseline"`
	// Ratio is HTTP throughput ÷ baseline throughput.
	Ratio float64 `json:"ratio"`
	// Pipeline holds the agent-run pipeline's details (HTTP side and baseline side).
	Pipeline *PipelineDetails `json:"pipeline,omitempty"`
	// Webhooks holds the webhooks scenario's deliveries.
	Webhooks *WebhookDetails `json:"webhooks,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

// Measured is one side of a scenario: requests through the server, or the baseline's
// operations through a pgx pool. For the agent-run pipeline an operation is a run
// created → completed, and the latencies are from creation to completion.
type Measured struct {
	What        string         `json:"what"`
	Operations  uint64         `json:"operations"`
	Errors      uint64         `json:"errors"`
	Seconds     float64        `json:"seconds"`
	PerSecond   float64        `json:"per_second"`
	Latency     Latency        `json:"latency_ms"`
	StatusCodes map[string]int `json:"status_codes,omitempty"`
	// ErrorSamples are a few distinct error messages or response bodies.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Exhausted is set when the scenario ran out of fresh ids (PATCH) before the end.
	Exhausted bool `json:"exhausted,omitempty"`
	// CPU seconds per operation: the server process (zero for baselines), PostgreSQL
	// (postmaster and backends) and this process (load generator, scripted model,
	// baseline client).
	ServerCPUSecondsPerOp float64 `json:"server_cpu_seconds_per_op"`
	DBCPUSecondsPerOp     float64 `json:"db_cpu_seconds_per_op"`
	BenchCPUSecondsPerOp  float64 `json:"bench_cpu_seconds_per_op"`
	// OtherCPUPercent is the share of the machine's CPU used during the phase by other
	// processes (or stolen by the hypervisor): well above zero means disturbed numbers.
	OtherCPUPercent float64 `json:"other_cpu_percent"`
	// Server memory (HTTP side only): resident at the end and the peak during the phase.
	ServerRSSMB     float64 `json:"server_rss_mb,omitempty"`
	ServerPeakRSSMB float64 `json:"server_peak_rss_mb,omitempty"`
}

// Latency is in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// PipelineDetails describes the agent-run pipeline: the create requests themselves, and
// the runs from creation to completion, for the HTTP side and the baseline.
type PipelineDetails struct {
	Create         Measured     `json:"create_requests"`
	Runs           PipelineRuns `json:"runs"`
	BaselineCreate Measured     `json:"baseline_creates"`
	BaselineRuns   PipelineRuns `json:"baseline_runs"`
}

// PipelineRuns counts runs by outcome and times them.
type PipelineRuns struct {
	Created   int64 `json:"created"`
	Completed int64 `json:"completed"`
	Other     int64 `json:"not_completed"` // failed, cancelled, incomplete
	// Seconds from the first run's creation to the last run's completion.
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	EndToEnd   Latency `json:"created_to_completed_ms"`
	QueueWait  Latency `json:"created_to_started_ms"`
	DrainAfter float64 `json:"drain_seconds_after_creates"`
}

// noisyPercent is the share of the machine's CPU used by other processes from which the
// report warns that its numbers are disturbed.
const noisyPercent = 5

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtRate(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// tableHeader are the columns of the table (stdout and markdown).
var tableHeader = []string{"scenario", "req/s", "p50 ms", "p99 ms", "max ms", "errors",
	"server CPU ms/req", "db CPU ms/req", "server peak RSS MB", "baseline ops/s", "ratio"}

func tableRow(s Scenario) []string {
	h := s.HTTP
	return []string{
		s.Name,
		fmtRate(h.PerSecond),
		fmtMS(h.Latency.P50), fmtMS(h.Latency.P99), fmtMS(h.Latency.Max),
		fmt.Sprint(h.Errors),
		fmt.Sprintf("%.3f", h.ServerCPUSecondsPerOp*1000),
		fmt.Sprintf("%.3f", h.DBCPUSecondsPerOp*1000),
		fmt.Sprintf("%.0f", h.ServerPeakRSSMB),
		fmtRate(s.Baseline.PerSecond),
		fmt.Sprintf("%.1f%%", s.Ratio*100),
	}
}

func split(rep *Report) (main, separate []Scenario) {
	for _, s := range rep.Scenarios {
		if s.Separate {
			separate = append(separate, s)
		} else {
			main = append(main, s)
		}
	}
	return main, separate
}

// WriteTable prints the results as an aligned table.
func WriteTable(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "%d users, %d tasks (seeded in %.1fs); concurrency %d, %s per scenario, %d agent workers; %d CPUs (%s)\n\n",
		rep.Seeding.Users, rep.Seeding.Tasks, rep.Seeding.Seconds, rep.Concurrency,
		time.Duration(rep.DurationSeconds*float64(time.Second)), rep.WorkerConcurrency, rep.Machine.CPUs, rep.Machine.CPUModel)
	main, separate := split(rep)
	table := func(list []Scenario) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(tableHeader, "\t")+"\t")
		for _, s := range list {
			fmt.Fprintln(tw, strings.Join(tableRow(s), "\t")+"\t")
		}
		tw.Flush()
	}
	if len(main) > 0 {
		table(main)
	}
	if len(separate) > 0 {
		fmt.Fprintln(w, "\nReported separately (argon2id password hashing is slow on purpose):")
		table(separate)
	}
	fmt.Fprintln(w)
	for _, line := range notes(rep) {
		fmt.Fprintln(w, line)
	}
	if len(rep.ServerLog) > 0 {
		fmt.Fprintf(w, "\nThe server logged %v (LOG_LEVEL=WARNING); first lines:\n", rep.ServerLog)
		for _, l := range rep.ServerLogSamples {
			fmt.Fprintln(w, "  "+l)
		}
	}
	return nil
}

// notes explains the columns and lists each scenario's details.
func notes(rep *Report) []string {
	out := []string{
		"req/s: successful requests per second at fixed concurrency (closed loop); latencies as seen by the load generator.",
		"CPU ms/req: CPU time of the server process / of PostgreSQL (postmaster + backends) per successful request.",
		"baseline: the same service methods, hence the same SQL statements, through a pgx pool (max conns = concurrency) at the same concurrency, no HTTP; ratio = req/s ÷ baseline ops/s. The server as deployed answers the principal from its record cache (CACHE_TTL, invalidated on every write), so those baselines leave the principal lookup out; the -nocache scenarios run against a second instance with CACHE_TTL=0 and their baselines include it.",
	}
	if rep.OtherCPUPercentMax >= noisyPercent {
		out = append(out, fmt.Sprintf("WARNING: other processes (or the hypervisor) took up to %.0f%% of the machine's CPU during the measurements; these numbers are disturbed.", rep.OtherCPUPercentMax))
	}
	for _, s := range rep.Scenarios {
		out = append(out, fmt.Sprintf("- %s: %s; baseline: %s", s.Name, s.HTTP.What, s.Baseline.What))
		if p := s.Pipeline; p != nil {
			out = append(out, fmt.Sprintf("  create requests: %s/s, p50 %s ms, p99 %s ms, %d errors; runs %d created, %d completed, %d not completed, queue wait p50 %s ms; baseline creates %s/s, runs %s/s",
				fmtRate(p.Create.PerSecond), fmtMS(p.Create.Latency.P50), fmtMS(p.Create.Latency.P99), p.Create.Errors,
				p.Runs.Created, p.Runs.Completed, p.Runs.Other, fmtMS(p.Runs.QueueWait.P50),
				fmtRate(p.BaselineCreate.PerSecond), fmtRate(p.BaselineRuns.PerSecond)))
		}
		for _, n := range s.Notes {
			out = append(out, "  "+n)
		}
		for _, e := range s.HTTP.ErrorSamples {
			out = append(out, "  error: "+e)
		}
		for _, e := range s.Baseline.ErrorSamples {
			out = append(out, "  baseline error: "+e)
		}
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteMarkdown writes the short summary the README links to.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	b.WriteString("Produced by `make bench` (`cmd/bench`, package `internal/bench`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s, %d MB RAM, Linux %s\n", rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.MemoryMB, rep.Machine.Kernel)
	fmt.Fprintf(&b, "- Go %s, %s\n", strings.TrimPrefix(rep.Machine.GoVersion, "go"), rep.Machine.PostgreSQLVersion)
	fmt.Fprintf(&b, "- Data set: %d users, %d tasks (database %.0f MB), seeded in %.1fs (COPY %.1fs, indexes %.1fs, vacuum analyze %.1fs)\n",
		rep.Seeding.Users, rep.Seeding.Tasks, rep.Seeding.DatabaseMB, rep.Seeding.Seconds,
		rep.Seeding.TasksCopySeconds, rep.Seeding.IndexSeconds, rep.Seeding.VacuumSeconds)
	pool := "server default"
	if rep.ServerPoolMaxConns > 0 {
		pool = fmt.Sprint(rep.ServerPoolMaxConns)
	}
	fmt.Fprintf(&b, "- Load: concurrency %d (closed loop, keep-alive connection each), %s per scenario after %s warm-up, WORKER_CONCURRENCY=%d, server DB pool: %s\n",
		rep.Concurrency, time.Duration(rep.DurationSeconds*float64(time.Second)), time.Duration(rep.WarmupSeconds*float64(time.Second)),
		rep.WorkerConcurrency, pool)
	if rep.PostgresFast {
		b.WriteString("- PostgreSQL ran without fsync (`-pg-fast`): a harness check, not comparable numbers\n")
	}
	fmt.Fprintf(&b, "- Command: `%s`\n", rep.Command)
	fmt.Fprintf(&b, "- Server peak RSS over the run: %.0f MB\n", rep.ServerPeakRSSMB)
	if len(rep.ServerLog) == 0 {
		b.WriteString("- Server log (LOG_LEVEL=WARNING): empty\n\n")
	} else {
		fmt.Fprintf(&b, "- Server log (LOG_LEVEL=WARNING): %v lines by level (samples in the JSON report)\n\n", rep.ServerLog)
	}
	main, separate := split(rep)
	table := func(list []Scenario) {
		b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat("---|", len(tableHeader)) + "\n")
		for _, s := range list {
			b.WriteString("| " + strings.Join(tableRow(s), " | ") + " |\n")
		}
	}
	if len(main) > 0 {
		table(main)
	}
	if len(separate) > 0 {
		b.WriteString("\nReported separately (argon2id password hashing is slow on purpose):\n\n")
		table(separate)
	}
	b.WriteString("\n")
	for _, line := range notes(rep) {
		switch {
		case strings.HasPrefix(line, "  "):
			b.WriteString("  - " + strings.TrimSpace(line) + "\n") // nested list item
		case strings.HasPrefix(line, "- "):
			b.WriteString(line + "\n")
		default:
			b.WriteString(line + "\n\n")
		}
	}
	b.WriteString("\nThe full numbers (status codes, p90, mean, CPU of the load generator, pipeline queue waits) are in the JSON report (`-json`, default `artifacts/bench.json`).\n")
	_, err := io.WriteString(w, b.String())
	return err
}
