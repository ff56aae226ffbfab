package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"enterprise-automation/internal/fleet"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/user"
)

// scaleScenarioNames are the scenarios scale mode runs by default: reads and writes of
// the API itself (no second server, no workers, no argon2id).
var scaleScenarioNames = []string{"users-get", "tasks-get", "tasks-list", "tasks-create", "tasks-patch"}

// scalable tells whether a scenario can run through the balancer: plain HTTP requests
// against the instances as deployed.
func scalable(name string) bool {
	def := scenarioByName(name)
	return def.custom == nil && !def.noCache && !def.separate
}

// ScaleReport is the outcome of a scale run (the JSON file of -mode scale).
type ScaleReport struct {
	Date            time.Time `json:"date"`
	Command         string    `json:"command"`
	Machine         Machine   `json:"machine"`
	Seeding         Seeding   `json:"seeding"`
	Concurrency     int       `json:"concurrency"`
	DurationSeconds float64   `json:"duration_seconds"`
	WarmupSeconds   float64   `json:"warmup_seconds"`
	PostgresFast    bool      `json:"postgres_fast"`
	// InstanceProcs is each instance's GOMAXPROCS (0: the runtime's default).
	InstanceProcs int `json:"instance_gomaxprocs"`
	// OtherCPUPercentMax is the highest share of the machine's CPU other processes used
	// during any measured phase.
	OtherCPUPercentMax float64         `json:"other_cpu_percent_max"`
	ServerLog          map[string]int  `json:"server_log_lines_by_level"`
	ServerLogSamples   []string        `json:"server_log_samples,omitempty"`
	Scenarios          []ScaleScenario `json:"scenarios"`
}

// ScaleScenario is one scenario through the balancer with one and with two instances.
type ScaleScenario struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	One         ScaleMeasured `json:"one_instance"`
	Two         ScaleMeasured `json:"two_instances"`
	// ThroughputRatio is req/s with two instances ÷ req/s with one. On a machine whose
	// cores are already busy with one instance, PostgreSQL and the load generator, it
	// cannot reach 2.
	ThroughputRatio float64 `json:"throughput_ratio"`
	// APICPURatio is the API instances' CPU per request with two ÷ with one: what a
	// request costs the API tier once it is spread over two processes (1.05: 5 % more).
	APICPURatio float64 `json:"api_cpu_per_request_ratio"`
	// TotalCPURatio is the same for the API instances, haproxy and PostgreSQL together.
	TotalCPURatio float64 `json:"total_cpu_per_request_ratio"`
}

// ScaleMeasured is one side: the requests through haproxy (HTTP.ServerCPUSecondsPerOp
// is the sum over the API instances) plus haproxy's own CPU per request.
type ScaleMeasured struct {
	Instances               int      `json:"instances"`
	HTTP                    Measured `json:"http"`
	BalancerCPUSecondsPerOp float64  `json:"balancer_cpu_seconds_per_op"`
	// InstanceCPUShare is each instance's share of the API tier's CPU (round robin
	// should make them even).
	InstanceCPUShare []float64 `json:"instance_cpu_share"`
}

// totalCPUPerOp is the CPU per request of the API tier, haproxy and PostgreSQL.
func (m ScaleMeasured) totalCPUPerOp() float64 {
	return m.HTTP.ServerCPUSecondsPerOp + m.BalancerCPUSecondsPerOp + m.HTTP.DBCPUSecondsPerOp
}

// runScale is Run for -mode scale.
func runScale(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	rep, err := ExecuteScale(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	WriteScaleTable(stdout, rep)
	if cfg.JSONPath != "" {
		if err := writeFile(cfg.JSONPath, func(w io.Writer) error { return writeIndentedJSON(w, rep) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nJSON report: %s\n", cfg.JSONPath)
	}
	if cfg.MarkdownPath != "" {
		if err := writeFile(cfg.MarkdownPath, func(w io.Writer) error { return WriteScaleMarkdown(w, rep) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Markdown summary: %s\n", cfg.MarkdownPath)
	}
	return nil
}

// ExecuteScale runs the scale benchmark: the same PostgreSQL and data set as the
// standard run, two API instances as deployed behind a balancer (`serve` with
// WORKER_CONCURRENCY=0 and the record cache on, same settings), and two haproxy
// processes with the README's configuration: one forwarding to instance A only, one
// round-robin over A and B. Each scenario runs through the first, then through the
// second, with the CPU time of every process (/proc/<pid>/stat) read before and after.
func ExecuteScale(ctx context.Context, cfg Config, progress io.Writer) (rep *ScaleReport, err error) {
	log := &logger{w: progress, start: time.Now()}
	bin, dir, cleanup, err := prepareRun(cfg, log)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	bdb, stopDB, err := startDatabase(ctx, cfg, bin, dir, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := stopDB(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	pgPID, pgVersion, dbURL, adminPassword, data := bdb.pgPID, bdb.pgVersion, bdb.url, bdb.adminPassword, bdb.data

	serverURL := dbURL
	if cfg.ServerPool > 0 {
		serverURL += fmt.Sprintf("&pool_max_conns=%d", cfg.ServerPool)
	}
	instances := make([]*serverProc, 2)
	for i := range instances {
		vars := map[string]string{
			"DATABASE_URL": serverURL, "SECRET_KEY": secretKey, "LOG_LEVEL": "WARNING",
			"WORKER_CONCURRENCY":          "0", // API instances behind a balancer, as compose.yaml runs them
			"RATE_LIMIT_PER_MINUTE":       "0",
			"LOGIN_RATE_LIMIT_PER_MINUTE": "0",
			"ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
			"GOMEMLIMIT":                  "100MiB",
		}
		if cfg.InstanceProcs > 0 {
			vars["GOMAXPROCS"] = fmt.Sprint(cfg.InstanceProcs)
		}
		for _, kv := range cfg.ServerEnv {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		s, startErr := startServer(ctx, bin, dir, fmt.Sprintf("server-%c.log", 'a'+i), vars)
		if startErr != nil {
			return nil, startErr
		}
		defer func() {
			if stopErr := s.stop(30 * time.Second); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
		instances[i] = s
		log.printf("API instance %c ready at %s (pid %d)", 'A'+i, s.baseURL, s.pid())
	}
	addr := func(s *serverProc) string { return strings.TrimPrefix(s.baseURL, "http://") }
	balancers := make([]*fleet.Balancer, 2)
	for n := 1; n <= 2; n++ {
		backends := []string{addr(instances[0])}
		if n == 2 {
			backends = append(backends, addr(instances[1]))
		}
		lbDir := filepath.Join(dir, fmt.Sprintf("haproxy-%d", n))
		if err := os.MkdirAll(lbDir, 0o755); err != nil {
			return nil, err
		}
		lb, lbErr := fleet.StartBalancer(lbDir, backends)
		if lbErr != nil {
			return nil, lbErr
		}
		defer lb.Stop()
		balancers[n-1] = lb
		log.printf("haproxy in front of %d instance(s) at %s (pid %d)", n, lb.URL(), lb.Pid())
	}

	pool, err := store.Open(ctx, dbURL, int32(cfg.Concurrency))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	e := &runEnv{
		cfg: cfg, log: log, dbURL: dbURL, base: instances[0].baseURL, server: instances[0], cached: instances[0],
		pgPID: pgPID, tr: newTransport(cfg.Concurrency), pool: pool, data: data,
	}
	e.store = store.New(pool)
	e.tasks = task.NewService(e.store)
	e.users = user.NewService(e.store, nil)
	defer e.tr.CloseIdleConnections()
	if err := e.setup(ctx, adminPassword); err != nil {
		return nil, err
	}

	rep = &ScaleReport{
		Date: time.Now().UTC(), Command: strings.Join(cfg.Args, " "), Seeding: data.seeding,
		Concurrency: cfg.Concurrency, DurationSeconds: cfg.Duration.Seconds(), WarmupSeconds: cfg.Warmup.Seconds(),
		PostgresFast: cfg.PGFast, InstanceProcs: cfg.InstanceProcs,
	}
	for _, name := range cfg.Scenarios {
		def := scenarioByName(name)
		s := ScaleScenario{Name: def.name, Description: def.desc}
		for n := 1; n <= 2; n++ {
			m, err := e.measureThrough(ctx, def, balancers[n-1], instances[:n])
			if err != nil {
				return nil, fmt.Errorf("scenario %s, %d instance(s): %w", name, n, err)
			}
			for _, inst := range instances {
				if err := inst.alive(); err != nil {
					return nil, fmt.Errorf("scenario %s: %w", name, err)
				}
			}
			rep.OtherCPUPercentMax = max(rep.OtherCPUPercentMax, m.HTTP.OtherCPUPercent)
			if n == 1 {
				s.One = m
			} else {
				s.Two = m
			}
		}
		if s.One.HTTP.PerSecond > 0 {
			s.ThroughputRatio = s.Two.HTTP.PerSecond / s.One.HTTP.PerSecond
		}
		if s.One.HTTP.ServerCPUSecondsPerOp > 0 {
			s.APICPURatio = s.Two.HTTP.ServerCPUSecondsPerOp / s.One.HTTP.ServerCPUSecondsPerOp
		}
		if t := s.One.totalCPUPerOp(); t > 0 {
			s.TotalCPURatio = s.Two.totalCPUPerOp() / t
		}
		rep.Scenarios = append(rep.Scenarios, s)
		log.printf("%s: %s → %s req/s (×%.2f); API CPU per request %s → %s ms (%+.1f%%)", name,
			fmtRate(s.One.HTTP.PerSecond), fmtRate(s.Two.HTTP.PerSecond), s.ThroughputRatio,
			fmtCPU(s.One.HTTP.ServerCPUSecondsPerOp), fmtCPU(s.Two.HTTP.ServerCPUSecondsPerOp), (s.APICPURatio-1)*100)
	}
	rep.Machine = machineInfo(pgVersion)
	rep.ServerLog = map[string]int{}
	for _, inst := range instances {
		if err := inst.stop(30 * time.Second); err != nil {
			return nil, err
		}
		counts, samples := scanLog(inst.logPath)
		for level, n := range counts {
			rep.ServerLog[level] += n
		}
		rep.ServerLogSamples = append(rep.ServerLogSamples, samples...)
	}
	return rep, nil
}

// scaleSnap is the CPU time used so far by each API instance, haproxy (master and
// worker), PostgreSQL, this process and the whole machine.
type scaleSnap struct {
	instances         []time.Duration
	lb, db, self, all time.Duration
	at                time.Time
}

func snapScale(instances []*serverProc, lb *fleet.Balancer, pgPID int) scaleSnap {
	s := scaleSnap{lb: treeCPUTime(lb.Pid()), db: treeCPUTime(pgPID), self: selfCPUTime(), all: systemBusy(), at: time.Now()}
	for _, inst := range instances {
		s.instances = append(s.instances, cpuTime(inst.pid()))
	}
	return s
}

// measureThrough runs a scenario's HTTP load through lb, which forwards to instances.
func (e *runEnv) measureThrough(ctx context.Context, def scenarioDef, lb *fleet.Balancer, instances []*serverProc) (ScaleMeasured, error) {
	m := ScaleMeasured{Instances: len(instances)}
	e.base = lb.URL()
	e.log.printf("%s: through haproxy to %d instance(s), %d concurrent, %s", def.name, len(instances), e.cfg.Concurrency, e.cfg.Duration)
	targeter := def.targeter(e)
	if e.cfg.Warmup > 0 {
		attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Warmup, def.name+"-warmup", targeter)
	}
	before := snapScale(instances, lb, e.pgPID)
	hp := attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Duration, def.name, targeter)
	after := snapScale(instances, lb, e.pgPID)
	if err := ctx.Err(); err != nil {
		return m, err
	}
	m.HTTP = hp.measured(def.httpWhat)
	var api time.Duration
	perInstance := make([]time.Duration, len(instances))
	for i := range instances {
		perInstance[i] = after.instances[i] - before.instances[i]
		api += perInstance[i]
	}
	for _, d := range perInstance {
		share := 0.0
		if api > 0 {
			share = d.Seconds() / api.Seconds()
		}
		m.InstanceCPUShare = append(m.InstanceCPUShare, share)
	}
	lbCPU, db, self := after.lb-before.lb, after.db-before.db, after.self-before.self
	if wall := after.at.Sub(before.at); wall > 0 {
		other := after.all - before.all - api - lbCPU - db - self
		m.HTTP.OtherCPUPercent = max(0, 100*other.Seconds()/(wall.Seconds()*float64(runtime.NumCPU())))
	}
	if ops := float64(m.HTTP.Operations); ops > 0 {
		m.HTTP.ServerCPUSecondsPerOp = api.Seconds() / ops
		m.HTTP.DBCPUSecondsPerOp = db.Seconds() / ops
		m.HTTP.BenchCPUSecondsPerOp = self.Seconds() / ops
		m.BalancerCPUSecondsPerOp = lbCPU.Seconds() / ops
	}
	if hp.exhausted {
		m.HTTP.ErrorSamples = append(m.HTTP.ErrorSamples, fmt.Sprintf("ran out of fresh tasks after %.1fs (seed more tasks for longer runs)", m.HTTP.Seconds))
	}
	return m, nil
}

// prepareRun checks the server binary and makes the work folder (a temporary one,
// removed by cleanup, unless -data names one).
func prepareRun(cfg Config, log *logger) (bin, dir string, cleanup func(), err error) {
	cleanup = func() {}
	if bin, err = filepath.Abs(cfg.Server); err != nil {
		return "", "", cleanup, err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", "", cleanup, fmt.Errorf("server binary %s not found or not executable: build it with `go build -o bin/automation ./cmd/automation`", cfg.Server)
	}
	if cfg.DataDir == "" {
		if dir, err = os.MkdirTemp("", "bench-"); err != nil {
			return "", "", cleanup, err
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
	} else {
		if dir, err = filepath.Abs(cfg.DataDir); err != nil {
			return "", "", cleanup, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", cleanup, err
		}
	}
	log.printf("work folder %s", dir)
	return bin, dir, cleanup, nil
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtCPU(secondsPerOp float64) string { return fmt.Sprintf("%.3f", secondsPerOp*1000) }

var scaleHeader = []string{"scenario", "instances", "req/s", "p50 ms", "p99 ms", "errors",
	"API CPU ms/req", "haproxy CPU ms/req", "db CPU ms/req", "total CPU ms/req", "CPU share per instance"}

func scaleRows(s ScaleScenario) [][]string {
	var rows [][]string
	for _, m := range []ScaleMeasured{s.One, s.Two} {
		shares := make([]string, len(m.InstanceCPUShare))
		for i, v := range m.InstanceCPUShare {
			shares[i] = fmt.Sprintf("%.0f%%", v*100)
		}
		rows = append(rows, []string{
			s.Name, fmt.Sprint(m.Instances), fmtRate(m.HTTP.PerSecond),
			fmtMS(m.HTTP.Latency.P50), fmtMS(m.HTTP.Latency.P99), fmt.Sprint(m.HTTP.Errors),
			fmtCPU(m.HTTP.ServerCPUSecondsPerOp), fmtCPU(m.BalancerCPUSecondsPerOp), fmtCPU(m.HTTP.DBCPUSecondsPerOp),
			fmtCPU(m.totalCPUPerOp()), strings.Join(shares, " / "),
		})
	}
	return rows
}

// ratioLine says what the second instance did to one scenario.
func ratioLine(s ScaleScenario) string {
	return fmt.Sprintf("%s: two instances serve ×%.2f the requests per second of one; API CPU per request %+.1f%%, all processes' CPU per request %+.1f%%",
		s.Name, s.ThroughputRatio, (s.APICPURatio-1)*100, (s.TotalCPURatio-1)*100)
}

func scaleNotes(rep *ScaleReport) []string {
	out := []string{
		fmt.Sprintf("Both API instances run `serve` with the same settings (WORKER_CONCURRENCY=0, record cache on) on this one machine of %d CPUs, with PostgreSQL, haproxy and the load generator: two instances cannot serve twice the requests of one when the cores are already busy, so the figure that matters is CPU per request, which says what adding an instance costs.", rep.Machine.CPUs),
		"API CPU ms/req: CPU time of the API instances together (utime+stime from /proc/<pid>/stat, before and after each phase) per successful request; haproxy: its master and worker; db: the postmaster and its backends.",
		"Writes (tasks-create, tasks-patch) cost every instance a little: each receives and applies the record-cache invalidation of every write, wherever it was made.",
	}
	if rep.OtherCPUPercentMax >= noisyPercent {
		out = append(out, fmt.Sprintf("WARNING: other processes (or the hypervisor) took up to %.0f%% of the machine's CPU during the measurements; these numbers are disturbed.", rep.OtherCPUPercentMax))
	}
	for _, s := range rep.Scenarios {
		out = append(out, "- "+ratioLine(s))
		for _, e := range append(s.One.HTTP.ErrorSamples, s.Two.HTTP.ErrorSamples...) {
			out = append(out, "  error: "+e)
		}
	}
	return out
}

// WriteScaleTable prints a scale run as an aligned table.
func WriteScaleTable(w io.Writer, rep *ScaleReport) {
	fmt.Fprintf(w, "%d users, %d tasks; concurrency %d, %s per phase, through haproxy; %d CPUs (%s)\n\n",
		rep.Seeding.Users, rep.Seeding.Tasks, rep.Concurrency,
		time.Duration(rep.DurationSeconds*float64(time.Second)), rep.Machine.CPUs, rep.Machine.CPUModel)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(scaleHeader, "\t")+"\t")
	for _, s := range rep.Scenarios {
		for _, r := range scaleRows(s) {
			fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, line := range scaleNotes(rep) {
		fmt.Fprintln(w, line)
	}
	if len(rep.ServerLog) > 0 {
		fmt.Fprintf(w, "\nThe instances logged %v (LOG_LEVEL=WARNING); first lines:\n", rep.ServerLog)
		for _, l := range rep.ServerLogSamples {
			fmt.Fprintln(w, "  "+l)
		}
	}
}

// WriteScaleMarkdown writes the scale run's summary.
func WriteScaleMarkdown(w io.Writer, rep *ScaleReport) error {
	var b strings.Builder
	b.WriteString("# Scale-out results\n\n")
	b.WriteString("Produced by `make bench-scale` (`cmd/bench -mode scale`, package `internal/bench`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s, %d MB RAM, Linux %s\n", rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.MemoryMB, rep.Machine.Kernel)
	fmt.Fprintf(&b, "- Go %s, %s\n", strings.TrimPrefix(rep.Machine.GoVersion, "go"), rep.Machine.PostgreSQLVersion)
	fmt.Fprintf(&b, "- Data set: %d users, %d tasks\n", rep.Seeding.Users, rep.Seeding.Tasks)
	fmt.Fprintf(&b, "- Load: concurrency %d (closed loop, keep-alive connection each) through haproxy, %s per phase after %s warm-up\n",
		rep.Concurrency, time.Duration(rep.DurationSeconds*float64(time.Second)), time.Duration(rep.WarmupSeconds*float64(time.Second)))
	if rep.PostgresFast {
		b.WriteString("- PostgreSQL ran without fsync (`-pg-fast`): a harness check, not comparable numbers\n")
	}
	fmt.Fprintf(&b, "- Command: `%s`\n\n", rep.Command)
	b.WriteString("| " + strings.Join(scaleHeader, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(scaleHeader)) + "\n")
	for _, s := range rep.Scenarios {
		for _, r := range scaleRows(s) {
			b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		}
	}
	b.WriteString("\n")
	for _, line := range scaleNotes(rep) {
		switch {
		case strings.HasPrefix(line, "  "):
			b.WriteString("  - " + strings.TrimSpace(line) + "\n")
		case strings.HasPrefix(line, "- "):
			b.WriteString(line + "\n")
		default:
			b.WriteString(line + "\n\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
