// Package bench is the benchmark harness behind `make bench` (cmd/bench).
//
// One run:
//
//  1. starts a private PostgreSQL (internal/pgembed) listening on 127.0.0.1,
//  2. migrates it and creates the administrator with the server binary itself
//     (`automation migrate up`, `automation seed`),
//  3. seeds a realistic data set with COPY (users, tasks with varied status, priority,
//     assignee, tags and due dates; a fixed random seed),
//  4. starts the real server binary (`automation serve`) as a separate process, with a
//     zero-latency scripted model (internal/llmtest) in this process,
//  5. drives every scenario at fixed concurrency with its own lean HTTP/1.1 load
//     generator (loadgen.go; closed loop: each worker sends its next request on its
//     keep-alive connection when the previous one is answered) and, in the same run,
//     the scenario's raw baseline: the same SQL statements through a pgx pool at the
//     same concurrency, no HTTP,
//  6. prints a table, writes a JSON report and a short markdown summary.
//
// -mode scale (make bench-scale, scale.go) instead runs the read/write scenarios through
// haproxy against one and against two API instances and reports the CPU per request.
//
// Performance is never asserted; bench_test.go only checks that a tiny run produces a
// well-formed report.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config is what the command line sets.
type Config struct {
	Server        string        // path of the server binary (bin/automation)
	Users         int           // seeded users (besides the administrator)
	Tasks         int           // seeded tasks
	Concurrency   int           // concurrent requests (and baseline goroutines and pool size)
	Duration      time.Duration // measured time per scenario, and per baseline
	Warmup        time.Duration // unmeasured load before each measurement
	Workers       int           // WORKER_CONCURRENCY of the server (and of the pipeline baseline)
	ServerPool    int           // pool_max_conns for the server's database pool; 0 keeps its default
	JSONPath      string
	MarkdownPath  string
	Scenarios     []string // selected scenario names, in run order
	DataDir       string   // work folder; empty means a temporary one, removed afterwards
	PGFast        bool     // PostgreSQL without fsync (quick harness checks, not for real numbers)
	ProfileDir    string   // when set, a CPU profile of the server per scenario is written here
	Seed          uint64   // random seed of the data set
	Mode          string   // ModeStandard or ModeScale
	InstanceProcs int      // scale mode: GOMAXPROCS of each API instance; 0 keeps the runtime's default
	ServerEnv     []string // extra KEY=VALUE settings of the server (-server-env), after the bench's own
	Args          []string // the command line, for the report
}

// The modes of a run.
const (
	// ModeStandard measures every scenario against one server and its raw-SQL baseline.
	ModeStandard = "standard"
	// ModeScale measures the read/write scenarios through haproxy in front of one and
	// then of two API instances (see ExecuteScale).
	ModeScale = "scale"
)

// ParseFlags reads the command line.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bench [flags]\n\nSeeds a private PostgreSQL, starts the server binary and measures each scenario\nagainst its raw-SQL baseline. Scenarios: %s.\n\nFlags:\n",
			strings.Join(ScenarioNames(), ", "))
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Server, "server", "bin/automation", "server binary to benchmark (go build -o bin/automation ./cmd/automation)")
	fs.IntVar(&c.Users, "users", 10000, "users to seed")
	fs.IntVar(&c.Tasks, "tasks", 1000000, "tasks to seed")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "concurrent requests per scenario (closed loop); also the baseline's goroutines and pool size")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured duration of each scenario and of each baseline")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured load before each measurement (HTTP and baseline; not for the agent-run pipeline)")
	fs.IntVar(&c.Workers, "workers", 100, "WORKER_CONCURRENCY of the server (agent-run workers; the server's default), also used by the pipeline baseline")
	fs.IntVar(&c.ServerPool, "server-pool", 0, "pool_max_conns of the server's database pool (0 keeps the server's default)")
	fs.StringVar(&c.JSONPath, "json", "artifacts/bench.json", "JSON report path (empty: none)")
	fs.StringVar(&c.MarkdownPath, "markdown", "internal/bench/RESULTS.md", "markdown summary path (empty: none)")
	scenarios := fs.String("scenarios", strings.Join(ScenarioNames(), ","), "comma-separated scenarios to run")
	fs.StringVar(&c.DataDir, "data", "", "work folder for the database and logs (kept); default a temporary folder, removed afterwards")
	fs.StringVar(&c.ProfileDir, "profile", "", "folder for a CPU profile of the server during each scenario's measurement (PPROF_ADDR); empty: none")
	fs.BoolVar(&c.PGFast, "pg-fast", false, "run PostgreSQL without fsync (harness checks only; numbers are not comparable)")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed of the data set")
	fs.StringVar(&c.Mode, "mode", ModeStandard, "standard: every scenario against one server and its raw-SQL baseline; "+
		"scale: the read/write scenarios ("+strings.Join(scaleScenarioNames, ", ")+") through haproxy against one and against two API instances, "+
		"CPU per request and the ratio (JSON and markdown default to artifacts/bench-scale.json and internal/bench/SCALE.md)")
	fs.IntVar(&c.InstanceProcs, "instance-procs", 0, "scale mode: GOMAXPROCS of each API instance, as a container's CPU limit sets it (0: the runtime's default, all CPUs)")
	fs.Func("server-env", "a `KEY=VALUE` setting of the server under test, over the bench's own (repeatable; e.g. WEBHOOK_BUSY_RATE=100 to compare pacing rates)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		c.ServerEnv = append(c.ServerEnv, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch c.Mode {
	case ModeStandard:
	case ModeScale:
		if !set["scenarios"] {
			*scenarios = strings.Join(scaleScenarioNames, ",")
		}
		if !set["json"] {
			c.JSONPath = "artifacts/bench-scale.json"
		}
		if !set["markdown"] {
			c.MarkdownPath = "internal/bench/SCALE.md"
		}
	default:
		return c, fmt.Errorf("unknown -mode %q (standard or scale)", c.Mode)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case c.Users < 10:
		return c, errors.New("-users must be at least 10")
	case c.Tasks < 100:
		return c, errors.New("-tasks must be at least 100")
	case c.Concurrency < 1:
		return c, errors.New("-concurrency must be at least 1")
	case c.Duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.Warmup < 0:
		return c, errors.New("-warmup must not be negative")
	case c.Workers < 1:
		return c, errors.New("-workers must be at least 1")
	case c.ServerPool < 0:
		return c, errors.New("-server-pool must not be negative")
	case c.InstanceProcs < 0:
		return c, errors.New("-instance-procs must not be negative")
	}
	known := ScenarioNames()
	for _, s := range strings.Split(*scenarios, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(known, s) {
			return c, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(known, ", "))
		}
		if c.Mode == ModeScale && !scalable(s) {
			return c, fmt.Errorf("scenario %s cannot run in scale mode (it needs its own server or runs on the workers)", s)
		}
		if !slices.Contains(c.Scenarios, s) {
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	if len(c.Scenarios) == 0 {
		return c, errors.New("-scenarios selects nothing")
	}
	// Run in the canonical order whatever the order given.
	slices.SortStableFunc(c.Scenarios, func(a, b string) int {
		return slices.Index(known, a) - slices.Index(known, b)
	})
	c.Args = append([]string{"bench"}, args...)
	return c, nil
}

// Run is the whole command: parse flags, run the benchmark, print the table and write
// the JSON report and the markdown summary. Progress goes to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.Mode == ModeScale {
		return runScale(ctx, cfg, stdout, stderr)
	}
	rep, err := Execute(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := WriteTable(stdout, rep); err != nil {
		return err
	}
	if cfg.JSONPath != "" {
		if err := writeFile(cfg.JSONPath, func(w io.Writer) error { return WriteJSON(w, rep) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nJSON report: %s\n", cfg.JSONPath)
	}
	if cfg.MarkdownPath != "" {
		if err := writeFile(cfg.MarkdownPath, func(w io.Writer) error { return WriteMarkdown(w, rep) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Markdown summary: %s\n", cfg.MarkdownPath)
	}
	return nil
}

// writeFile writes path atomically, creating its folder.
func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// logger prints timestamped progress lines.
type logger struct {
	w     io.Writer
	start time.Time
}

func (l *logger) printf(format string, args ...any) {
	fmt.Fprintf(l.w, "[%7.1fs] %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}
