package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/pgembed"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/user"
)

const (
	benchDatabase = "bench"
	adminEmail    = "admin@" + userEmailDomain
	// secretKey signs the server's tokens during the run (any value of ≥ 32 bytes).
	secretKey = "bench-secret-key-0123456789abcdef-0123456789"
	// loggedInUsers is how many seeded users log in to create tasks.
	loggedInUsers = 8
)

// actor is a logged-in account and its ready-made request headers.
type actor struct {
	id          int64
	principal   auth.Principal
	token       string
	header      http.Header // Authorization
	jsonHeader  http.Header // Authorization + Content-Type: application/json
	patchHeader http.Header // the above + If-Match: "1"
}

func newActor(id int64, email string, admin bool, token string) *actor {
	bearer := "Bearer " + token
	return &actor{
		id: id, token: token, principal: auth.Principal{UserID: id, Email: email, IsAdmin: admin},
		header:      http.Header{"Authorization": {bearer}},
		jsonHeader:  http.Header{"Authorization": {bearer}, "Content-Type": {"application/json"}},
		patchHeader: http.Header{"Authorization": {bearer}, "Content-Type": {"application/json"}, "If-Match": {`"1"`}},
	}
}

// runEnv is everything the scenarios share.
type runEnv struct {
	cfg     Config
	log     *logger
	dbURL   string
	base    string      // the base URL of the server under load
	server  *serverProc // the server under load: cached or noCache
	cached  *serverProc // the server as deployed by default (record cache on)
	noCache *serverProc // the same server with CACHE_TTL=0
	pgPID   int
	tr      *http.Transport
	pool    *pgxpool.Pool // the baselines' pool: max conns = concurrency
	store   *store.DB
	tasks   *task.Service // the services the baselines call, on the baselines' pool
	users   *user.Service
	data    *dataSet
	admin   *actor
	// adminKeyHeader sends an API key of the admin's (scope tasks:read) instead of a token.
	adminKeyHeader http.Header
	actors         []*actor // logged-in seeded users (task creators)
	llm            *llmtest.Server
	agentHTTP      int64 // agent whose runs the server executes
	agentBase      int64 // agent of the pipeline baseline's runs
	agentApproval  int64 // agent whose get_task calls need approval (agent-runs-approval)
	patched        atomic.Int64
	peakRSSMB      float64
}

// Execute runs the benchmark and returns its report.
func Execute(ctx context.Context, cfg Config, progress io.Writer) (rep *Report, err error) {
	log := &logger{w: progress, start: time.Now()}
	bin, err := filepath.Abs(cfg.Server)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("server binary %s not found or not executable: build it with `go build -o bin/automation ./cmd/automation`", cfg.Server)
	}

	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	log.printf("work folder %s", dir)

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

	llm := llmtest.Start()
	llm.Auto = approvalReplies
	defer llm.Close()
	serverURL := dbURL
	if cfg.ServerPool > 0 {
		serverURL += fmt.Sprintf("&pool_max_conns=%d", cfg.ServerPool)
	}
	serverVars := map[string]string{
		"DATABASE_URL": serverURL, "SECRET_KEY": secretKey, "LOG_LEVEL": "WARNING",
		"WORKER_CONCURRENCY":          fmt.Sprint(cfg.Workers),
		"OPENAI_API_KEY":              llmtest.APIKey,
		"OPENAI_BASE_URL":             llm.BaseURL(),
		"RATE_LIMIT_PER_MINUTE":       "0", // 0 turns the limiters off
		"LOGIN_RATE_LIMIT_PER_MINUTE": "0",
		"ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
		// The load queues far more runs per user than a person would; the quota is
		// still checked (and its cost measured), it just never refuses.
		"AGENT_ACTIVE_RUNS_PER_USER": "1000000000",
		// The webhooks scenario's receivers listen on loopback.
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
		// A soft memory limit, as a container with a memory limit would set: the GC works
		// harder before the heap outgrows it (argon2id churns 19 MiB per login).
		"GOMEMLIMIT": "100MiB",
	}
	for _, kv := range cfg.ServerEnv {
		k, v, _ := strings.Cut(kv, "=")
		serverVars[k] = v
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		serverVars["PPROF_ADDR"] = "" // startServer picks a free port
	}
	server, err := startServer(ctx, bin, dir, "server.log", serverVars)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := server.stop(30 * time.Second); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	log.printf("server ready at %s (pid %d)", server.baseURL, server.pid())
	// A second instance without the record cache (and without workers) answers the
	// *-nocache scenarios: the same requests with every read reaching PostgreSQL.
	noCacheVars := maps.Clone(serverVars)
	noCacheVars["CACHE_TTL"], noCacheVars["WORKER_CONCURRENCY"] = "0", "0"
	noCache, err := startServer(ctx, bin, dir, "server-nocache.log", noCacheVars)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := noCache.stop(30 * time.Second); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	log.printf("server without record cache ready at %s (pid %d)", noCache.baseURL, noCache.pid())

	pool, err := store.Open(ctx, dbURL, int32(cfg.Concurrency))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	e := &runEnv{
		cfg: cfg, log: log, dbURL: dbURL, base: server.baseURL, server: server, cached: server, noCache: noCache, pgPID: pgPID,
		tr: newTransport(cfg.Concurrency), pool: pool, data: data, llm: llm,
	}
	e.store = store.New(pool)
	e.tasks = task.NewService(e.store)
	e.users = user.NewService(e.store, nil) // Get needs no password hashing
	defer e.tr.CloseIdleConnections()
	if err := e.setup(ctx, adminPassword); err != nil {
		return nil, err
	}

	rep = &Report{
		Date: time.Now().UTC(), Command: strings.Join(cfg.Args, " "), Seeding: data.seeding,
		Concurrency: cfg.Concurrency, DurationSeconds: cfg.Duration.Seconds(), WarmupSeconds: cfg.Warmup.Seconds(),
		WorkerConcurrency: cfg.Workers, ServerPoolMaxConns: cfg.ServerPool, PostgresFast: cfg.PGFast,
	}
	// The second instance serves only the *-nocache scenarios. It is stopped after the
	// last of them (at once when none is selected): idle, it would take part in the
	// background work of the server under test, unpaced (webhook fan-out: a process
	// with no API load of its own never yields to it).
	lastNoCache := -1
	for i, name := range cfg.Scenarios {
		if scenarioByName(name).noCache {
			lastNoCache = i
		}
	}
	stopNoCache := func() error {
		if err := noCache.stop(30 * time.Second); err != nil {
			return fmt.Errorf("server without record cache: %w", err)
		}
		return nil
	}
	if lastNoCache < 0 {
		if err := stopNoCache(); err != nil {
			return nil, err
		}
	}
	for i, name := range cfg.Scenarios {
		def := scenarioByName(name)
		e.server = e.cached
		if def.noCache {
			e.server = e.noCache
		}
		e.base = e.server.baseURL
		var s Scenario
		if def.custom != nil {
			s, err = def.custom(ctx, e, def)
		} else {
			s, err = e.measure(ctx, def)
		}
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		if err := server.alive(); err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		rep.Scenarios = append(rep.Scenarios, s)
		if i == lastNoCache {
			if err := stopNoCache(); err != nil {
				return nil, err
			}
			log.printf("server without record cache stopped: no later scenario uses it")
		}
		rep.OtherCPUPercentMax = max(rep.OtherCPUPercentMax, s.HTTP.OtherCPUPercent, s.Baseline.OtherCPUPercent)
		log.printf("%s: %s req/s (p50 %s ms, p99 %s ms, %d errors); baseline %s ops/s; ratio %.1f%%; other processes %.0f%%/%.0f%% of the CPU",
			name, fmtRate(s.HTTP.PerSecond), fmtMS(s.HTTP.Latency.P50), fmtMS(s.HTTP.Latency.P99), s.HTTP.Errors,
			fmtRate(s.Baseline.PerSecond), s.Ratio*100, s.HTTP.OtherCPUPercent, s.Baseline.OtherCPUPercent)
	}
	_, hwm := memKB(server.pid())
	rep.ServerPeakRSSMB = max(e.peakRSSMB, float64(hwm)/1024)
	rep.Machine = machineInfo(pgVersion)
	if err := server.stop(30 * time.Second); err != nil {
		return nil, err
	}
	if err := stopNoCache(); err != nil {
		return nil, err
	}
	rep.ServerLog, rep.ServerLogSamples = scanLog(server.logPath)
	nc, ncSamples := scanLog(noCache.logPath)
	for level, n := range nc {
		rep.ServerLog[level] += n
	}
	rep.ServerLogSamples = append(rep.ServerLogSamples, ncSamples...)
	return rep, nil
}

// scanLog counts a JSON log's lines by level and keeps the first few.
func scanLog(path string) (map[string]int, []string) {
	counts := map[string]int{}
	var samples []string
	f, err := os.Open(path)
	if err != nil {
		return counts, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec struct {
			Level string `json:"level"`
		}
		level := "OTHER"
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level != "" {
			level = rec.Level
		}
		counts[level]++
		if len(samples) < maxErrorSamples {
			if len(line) > 400 {
				line = line[:400] + "…"
			}
			samples = append(samples, line)
		}
	}
	return counts, samples
}

// createDatabase (re)creates the benchmark database and returns the server's version.
func createDatabase(ctx context.Context, adminURL string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + benchDatabase + " WITH (FORCE)",
		"CREATE DATABASE " + benchDatabase,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("%s: %w", sql, err)
		}
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT 'PostgreSQL ' || current_setting('server_version')").Scan(&version); err != nil {
		return "", err
	}
	return version, nil
}

// setup logs in the admin and a few seeded users and creates the agents.
func (e *runEnv) setup(ctx context.Context, adminPassword string) error {
	tok, err := e.login(ctx, adminEmail, adminPassword)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	var adminID int64
	if err := e.pool.QueryRow(ctx, "SELECT id FROM users WHERE lower(email) = lower($1)", adminEmail).Scan(&adminID); err != nil {
		return err
	}
	e.admin = newActor(adminID, adminEmail, true, tok)
	for i := 0; i < loggedInUsers && i < len(e.data.activeIDs); i++ {
		// Spread over the id range: the first, the last and in between.
		k := i * (len(e.data.activeIDs) - 1) / max(1, loggedInUsers-1)
		tok, err := e.login(ctx, e.data.activeEmails[k], UserPassword)
		if err != nil {
			return fmt.Errorf("login %s: %w", e.data.activeEmails[k], err)
		}
		e.actors = append(e.actors, newActor(e.data.activeIDs[k], e.data.activeEmails[k], false, tok))
	}
	for _, a := range []struct {
		name string
		id   *int64
	}{{"bench-http", &e.agentHTTP}, {"bench-baseline", &e.agentBase}, {"bench-approval", &e.agentApproval}} {
		body := map[string]any{
			"name": a.name, "description": "Benchmark agent",
			"instructions": "You summarise tasks and suggest the next step. Answer in one short sentence.",
		}
		if a.id == &e.agentApproval {
			body["tools"], body["approval_required_tools"], body["tool_scope"] = []string{"get_task"}, []string{"get_task"}, "creator"
		}
		var out struct {
			ID int64 `json:"id"`
		}
		if err := e.call(ctx, http.MethodPost, "/api/v1/agents", e.admin, body, http.StatusCreated, &out); err != nil {
			return fmt.Errorf("create agent: %w", err)
		}
		*a.id = out.ID
	}
	var key struct {
		Key string `json:"key"`
	}
	keyBody := map[string]any{"name": "bench", "scopes": []string{"tasks:read"}}
	if err := e.call(ctx, http.MethodPost, "/api/v1/api-keys", e.admin, keyBody, http.StatusCreated, &key); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	e.adminKeyHeader = http.Header{"X-API-Key": {key.Key}}
	e.log.printf("logged in the admin and %d users; agents %d (HTTP) and %d (baseline) created", len(e.actors), e.agentHTTP, e.agentBase)
	return nil
}

// login runs the OAuth2 password grant and returns the access token.
func (e *runEnv) login(ctx context.Context, email, password string) (string, error) {
	form := url.Values{"username": {email}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/api/v1/auth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := e.do(req, http.StatusOK, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", errors.New("no access_token in the response")
	}
	return out.AccessToken, nil
}

// call sends a JSON request as a and decodes the answer.
func (e *runEnv) call(ctx context.Context, method, path string, a *actor, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range a.jsonHeader {
		req.Header[k] = v
	}
	return e.do(req, want, out)
}

func (e *runEnv) do(req *http.Request, want int, out any) error {
	res, err := (&http.Client{Transport: e.tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, res.StatusCode, want, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// cpuSnap is the CPU time used so far by the server, PostgreSQL, this process and the
// whole machine.
type cpuSnap struct {
	server, db, self, machine time.Duration
	at                        time.Time
}

func (e *runEnv) cpu() cpuSnap {
	return cpuSnap{
		server: cpuTime(e.server.pid()), db: treeCPUTime(e.pgPID), self: selfCPUTime(),
		machine: systemBusy(), at: time.Now(),
	}
}

// perOp sets the CPU fields of m from two snapshots: CPU per operation of the server,
// PostgreSQL and this process, and the share of the machine other processes used.
func (m *Measured) perOp(before, after cpuSnap, ops uint64) {
	server, db, self := after.server-before.server, after.db-before.db, after.self-before.self
	if wall := after.at.Sub(before.at); wall > 0 {
		other := after.machine - before.machine - server - db - self
		m.OtherCPUPercent = max(0, 100*other.Seconds()/(wall.Seconds()*float64(runtime.NumCPU())))
	}
	if ops == 0 {
		return
	}
	n := float64(ops)
	m.ServerCPUSecondsPerOp = server.Seconds() / n
	m.DBCPUSecondsPerOp = db.Seconds() / n
	m.BenchCPUSecondsPerOp = self.Seconds() / n
}

// measure runs a scenario's HTTP load, then its baseline, each after a warm-up.
func (e *runEnv) measure(ctx context.Context, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc, Separate: def.separate}
	e.log.printf("%s: HTTP, %d concurrent, %s", def.name, e.cfg.Concurrency, e.cfg.Duration)
	targeter := def.targeter(e)
	if e.cfg.Warmup > 0 {
		attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Warmup, def.name+"-warmup", targeter)
	}
	before := e.cpu()
	rss := sampleRSS(e.server.pid())
	profiled := e.server.profile(e.cfg.ProfileDir, def.name, e.cfg.Duration)
	hp := attack(ctx, e.tr, e.cfg.Concurrency, e.cfg.Duration, def.name, targeter)
	endMB, peakMB := rss.finish()
	after := e.cpu()
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if err := profiled(); err != nil {
		return s, err
	}
	s.HTTP = hp.measured(def.httpWhat)
	s.HTTP.perOp(before, after, s.HTTP.Operations)
	s.HTTP.ServerRSSMB, s.HTTP.ServerPeakRSSMB = endMB, peakMB
	e.peakRSSMB = max(e.peakRSSMB, peakMB)
	if hp.exhausted {
		s.Notes = append(s.Notes, fmt.Sprintf("ran out of fresh tasks after %.1fs (seed more tasks for longer runs)", s.HTTP.Seconds))
	}

	e.log.printf("%s: baseline, %d concurrent, %s", def.name, e.cfg.Concurrency, e.cfg.Duration)
	op := def.baseline(e)
	if e.cfg.Warmup > 0 {
		closedLoop(ctx, e.cfg.Concurrency, e.cfg.Warmup, op)
	}
	before = e.cpu()
	bp := closedLoop(ctx, e.cfg.Concurrency, e.cfg.Duration, op)
	after = e.cpu()
	if err := ctx.Err(); err != nil {
		return s, err
	}
	s.Baseline = bp.measured(def.baseWhat)
	s.Baseline.perOp(before, after, s.Baseline.Operations)
	if bp.exhausted {
		s.Notes = append(s.Notes, fmt.Sprintf("baseline ran out of fresh tasks after %.1fs", s.Baseline.Seconds))
	}
	if s.Baseline.PerSecond > 0 {
		s.Ratio = s.HTTP.PerSecond / s.Baseline.PerSecond
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// machineInfo describes this machine.
func machineInfo(pgVersion string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), PostgreSQLVersion: pgVersion}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if m.CPUModel == "" {
		m.CPUModel = runtime.GOARCH
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemoryMB = int64(si.Totalram) * int64(si.Unit) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// benchDB is the benchmark's PostgreSQL: migrated by the server binary, with the
// administrator and the seeded data set.
type benchDB struct {
	pgPID         int
	pgVersion     string
	url           string
	adminPassword string
	data          *dataSet
}

// startDatabase starts a private PostgreSQL under dir, creates the benchmark database,
// migrates it and creates the administrator with bin, and seeds the data set; stop stops
// the cluster (on an error it is already stopped).
func startDatabase(ctx context.Context, cfg Config, bin, dir string, log *logger) (_ *benchDB, stop func() error, err error) {
	cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(dir, "postgres"), TCP: true, Fast: cfg.PGFast})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = cluster.Stop()
		}
	}()
	db := &benchDB{adminPassword: randomHex(12)}
	if db.pgPID, err = postmasterPID(filepath.Join(dir, "postgres", "data")); err != nil {
		return nil, nil, fmt.Errorf("postgres pid: %w", err)
	}
	if db.pgVersion, err = createDatabase(ctx, cluster.TCPURL("postgres")); err != nil {
		return nil, nil, err
	}
	db.url = cluster.TCPURL(benchDatabase)
	log.printf("PostgreSQL ready (%s)", db.pgVersion)
	vars := map[string]string{
		"DATABASE_URL": db.url, "SECRET_KEY": secretKey, "LOG_LEVEL": "WARNING",
		"FIRST_ADMIN_EMAIL": adminEmail, "FIRST_ADMIN_PASSWORD": db.adminPassword,
	}
	if err := runCommand(ctx, bin, dir, vars, "migrate", "up"); err != nil {
		return nil, nil, err
	}
	if err := runCommand(ctx, bin, dir, vars, "seed"); err != nil {
		return nil, nil, err
	}
	log.printf("migrated; administrator created; seeding %d users and %d tasks", cfg.Users, cfg.Tasks)
	if db.data, err = seedData(ctx, db.url, cfg.Users, cfg.Tasks, cfg.Seed, log); err != nil {
		return nil, nil, err
	}
	return db, cluster.Stop, nil
}
