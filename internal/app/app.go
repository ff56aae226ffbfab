// Package app is the program: it parses the command line, loads the configuration,
// wires the dependencies and runs one of the subcommands (serve, migrate, seed, dev,
// openapi). cmd/automation only calls Run.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/config"
	"enterprise-automation/internal/foreground"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/idempotency"
	"enterprise-automation/internal/llm"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/queue"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/tracing"
	"enterprise-automation/internal/user"
	"enterprise-automation/internal/webhook"
)

// Version is the service version reported by GET / and `automation version`; it is the
// contract's info.version (a test keeps them equal).
const Version = "2.1.0"

// Commit is the source revision the binary was built from: set with
// -ldflags "-X enterprise-automation/internal/app.Commit=…", else read from the build's
// version-control stamp, else "unknown".
var Commit = ""

// commit returns Commit, or the revision Go stamped into the build.
func commit() string {
	if Commit != "" {
		return Commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

const usage = `Enterprise Automation API

Usage: automation <command> [arguments]

Commands:
  serve                 serve the API and run agent jobs (WORKER_CONCURRENCY; needs DATABASE_URL)
  worker                run agent jobs only, no HTTP (scale API and workers separately)
  migrate up|down|status
                        apply, roll back one, or list database migrations
  seed                  create the first administrator from FIRST_ADMIN_EMAIL/FIRST_ADMIN_PASSWORD
  dev                   start a private PostgreSQL under .data/postgres, migrate, seed and serve with DEBUG=true
  healthcheck           exit 0 when the server on API_PORT answers 200 on /api/health/ready (container health checks)
  openapi               print the embedded OpenAPI document
  env-example           print every setting with its meaning and default (the text of .env.example)
  version               print the version, the commit and the Go version of this build
  routes                print each operation's request policy: authentication, role, rate limits, Idempotency-Key
`

// Program is one run of the binary. Tests set OnListen to learn the bound address.
type Program struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	// DotEnv is the .env file to read; empty reads none.
	DotEnv string
	// OnListen, when set, is called with the server's address once it accepts connections.
	OnListen func(addr string)
	// PasswordParams overrides the argon2id cost (zero value: the secure default).
	PasswordParams password.Params
	// Tracing, when set, replaces the tracing the OTEL_* variables configure (tests
	// trace into memory).
	Tracing *tracing.Tracing
	// tracing is the tracing of serve, worker and dev (nil: off).
	tracing *tracing.Tracing
	// WebhookResolve, when set, resolves webhook hosts instead of DNS (tests).
	WebhookResolve webhook.ResolveFunc
}

// Run is what main calls: run the program with the process's environment.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	p := &Program{Getenv: getenv, Stdout: stdout, Stderr: stderr, DotEnv: ".env"}
	return p.Run(ctx, args)
}

// Run executes the subcommand in args (args[0] is the command name, not the binary).
func (p *Program) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(p.Stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve", "worker", "migrate", "seed", "dev", "healthcheck", "openapi", "routes", "env-example", "version", "--version", "help", "-h", "--help":
	default:
		fmt.Fprint(p.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	switch cmd {
	case "openapi":
		_, err := p.Stdout.Write(api.SpecYAML)
		return err
	case "env-example":
		text, err := config.Example()
		if err != nil {
			return err
		}
		_, err = p.Stdout.Write(text)
		return err
	case "version", "--version":
		_, err := fmt.Fprintf(p.Stdout, "automation %s (commit %s, %s)\n", Version, commit(), runtime.Version())
		return err
	case "routes":
		policies, err := httpapi.ContractPolicies()
		if err != nil {
			return err
		}
		return httpapi.WritePolicies(p.Stdout, policies)
	case "help", "-h", "--help":
		fmt.Fprint(p.Stdout, usage)
		return nil
	}
	if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help") {
		return p.commandHelp(cmd)
	}
	getenv := p.Getenv
	if cmd == "dev" {
		// dev always runs in debug mode, which also makes SECRET_KEY optional.
		getenv = func(k string) string {
			if k == "DEBUG" {
				return "true"
			}
			return p.Getenv(k)
		}
	}
	cfg, err := config.Load(getenv, p.DotEnv)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		return p.serve(ctx, cfg)
	case "worker":
		return p.worker(ctx, cfg)
	case "migrate":
		return p.migrate(ctx, cfg, rest)
	case "seed":
		return p.seed(ctx, cfg)
	case "dev":
		return p.dev(ctx, cfg, rest)
	case "healthcheck":
		return p.healthcheck(ctx, cfg)
	default:
		fmt.Fprint(p.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// commandHelp prints one command's usage to stdout; asking for help is not an error,
// and needs no configuration.
func (p *Program) commandHelp(cmd string) error {
	switch cmd {
	case "dev":
		fs, _ := devFlags(p.Stdout)
		fmt.Fprintln(p.Stdout, "Usage: automation dev [-data DIR]")
		fmt.Fprintln(p.Stdout, "\nStarts a private PostgreSQL under DIR/postgres (unless DATABASE_URL is set), migrates,\nseeds the first administrator and serves with DEBUG=true.")
		fs.PrintDefaults()
	case "migrate":
		fmt.Fprintln(p.Stdout, "Usage: automation migrate up|down|status")
	default:
		fmt.Fprint(p.Stdout, usage)
	}
	return nil
}

func (p *Program) logger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(cfg.LogLevel)}
	// Lines logged inside a trace carry its trace_id and span_id.
	if cfg.Debug {
		return slog.New(tracing.LogHandler(slog.NewTextHandler(p.Stderr, opts)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(p.Stderr, opts)))
}

// openPool opens the database pool; with DATABASE_ECHO every statement's SQL is logged
// at DEBUG level.
func (p *Program) openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("config: DATABASE_URL is required (or use the dev command for a private database)")
	}
	url, err := config.NormalizeDatabaseURL(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("config: DATABASE_URL is invalid: %w", err)
	}
	opts := store.Options{Tracing: p.tracing}
	if cfg.DatabaseEcho {
		opts.QueryLog = p.logger(cfg)
	}
	return store.OpenWith(ctx, url, opts)
}

func (p *Program) migrate(ctx context.Context, cfg config.Config, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: migrate up|down|status")
	}
	pool, err := p.openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := store.NewMigrator(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	log := p.logger(cfg)
	switch fs.Arg(0) {
	case "up":
		return m.Up(ctx, log)
	case "down":
		return m.Down(ctx, log)
	case "status":
		return m.Status(ctx, p.Stdout)
	default:
		return fmt.Errorf("usage: migrate up|down|status (got %q)", fs.Arg(0))
	}
}

func (p *Program) seed(ctx context.Context, cfg config.Config) error {
	if cfg.FirstAdminEmail == "" {
		return errors.New("config: FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD are required for seed")
	}
	pool, err := p.openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	created, err := p.seedAdmin(ctx, cfg, pool)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(p.Stdout, "created administrator %s\n", cfg.FirstAdminEmail)
	} else {
		fmt.Fprintf(p.Stdout, "administrator %s already exists\n", cfg.FirstAdminEmail)
	}
	return nil
}

func (p *Program) seedAdmin(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) (bool, error) {
	s := store.New(pool)
	authSvc, err := p.authService(cfg, s, nil, nil)
	if err != nil {
		return false, err
	}
	return user.NewService(s, authSvc).EnsureAdmin(ctx, cfg.FirstAdminEmail, cfg.FirstAdminPassword)
}

func (p *Program) authService(cfg config.Config, s store.Store, users *cache.Entity[auth.Account], sessions *cache.Entity[auth.Session]) (*auth.Service, error) {
	secret := cfg.SecretKey
	if secret == "" {
		// Only reachable with DEBUG=true (config rejects it otherwise).
		secret = randomSecret()
	}
	return auth.NewService(s, auth.Options{
		Secret: []byte(secret), Algorithm: cfg.Algorithm,
		AccessTTL: cfg.AccessTokenTTL(), RefreshTTL: cfg.RefreshTokenTTL(),
		Password: p.PasswordParams, Users: users, Sessions: sessions, SessionMaxAge: cfg.SessionMaxAge(),
	})
}

func (p *Program) serve(ctx context.Context, cfg config.Config) error {
	log := p.logger(cfg)
	if cfg.SecretKey == "" {
		// Only reachable with DEBUG=true (config rejects it otherwise): tokens die with the process.
		cfg.SecretKey = randomSecret()
		log.Warn("SECRET_KEY is not set; using a random key for this process (debug mode only)")
	}
	flushTraces, err := p.startTracing(ctx, log)
	if err != nil {
		return err
	}
	defer flushTraces()
	pool, err := p.openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return p.serveWith(ctx, cfg, log, pool)
}

// services is everything the server and the workers share.
type services struct {
	store   *store.DB
	auth    *auth.Service
	users   *user.Service
	tasks   *task.Service
	agents  *agent.Service
	apiKeys *apikey.Service
	audit   *audit.Service
	hooks   *webhook.Service
	queue   *queue.Queue
	metrics *metrics.Metrics
	shared  *sharedState
	// notifier carries PostgreSQL notifications: run events, the end of event streams'
	// authorizations and, without Redis, cache invalidations.
	notifier *store.Notifier
	// stopProfiles closes the profiling endpoints (PPROF_ADDR; a no-op without them).
	stopProfiles func()
	// stopMetrics closes the metrics listener (METRICS_ADDR; a no-op without it).
	stopMetrics func()
	// stopListening ends the notifier's connection.
	stopListening func()
	// stopDispatching ends the webhook dispatcher (outbox events to deliveries).
	stopDispatching func()
	// foreground counts the API requests in flight; webhook deliveries yield to them.
	foreground *foreground.Gauge
}

// close releases what services started: the profiling and metrics endpoints, the
// notification listener, the cache and limiter.
func (s *services) close() {
	s.stopProfiles()
	s.stopMetrics()
	s.stopDispatching()
	s.stopListening()
	s.shared.close()
}

func (p *Program) services(cfg config.Config, log *slog.Logger, pool *pgxpool.Pool, workers int) (_ *services, err error) {
	m := metrics.New()
	m.RegisterPool(pool)
	s := store.New(pool)
	notifier := store.NewNotifier(pool, log)
	shared, err := newSharedState(cfg, log, m, s, notifier)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			shared.close() // start-up failed: release the cache (a Redis client)
		}
	}()
	// Users (the principal of every request) and agents are few and hot: kept as they are.
	// Tasks are many, read at random, and pointer-rich: kept as JSON (see KeepObjects),
	// and only once read twice (see AdmitOnSecondMiss).
	userCache := cache.NewEntity[auth.Account](shared.cache, "user", cfg.CacheTTL, m).KeepObjects()
	taskCache := cache.NewEntity[task.Task](shared.cache, "task", cfg.CacheTTL, m).AdmitOnSecondMiss()
	agentCache := cache.NewEntity[agent.Agent](shared.cache, "agent", cfg.CacheTTL, m).KeepObjects()
	// Sessions are read on every request too (is the token's session still open?).
	sessionCache := cache.NewEntity[auth.Session](shared.cache, "session", cfg.CacheTTL, m).KeepObjects()
	authSvc, err := p.authService(cfg, s, userCache, sessionCache)
	if err != nil {
		return nil, err
	}
	// API keys are read on every request made with one; revocation invalidates them.
	apiKeys := apikey.NewService(s, authSvc, log).
		WithCache(cache.NewEntity[apikey.Key](shared.cache, "api_key", cfg.CacheTTL, m).KeepObjects())
	tasks := task.NewService(s).WithCache(taskCache).WithExactTotalLimit(cfg.TaskExactTotalLimit)
	client := llm.New(llm.Config{
		APIKey: cfg.OpenAIAPIKey, BaseURL: cfg.OpenAIBaseURL, Timeout: cfg.LLMTimeout, Concurrency: workers,
		Cache: shared.cache, CacheTTL: cfg.LLMCacheTTL, Metrics: m, Tracing: p.tracing,
	})
	runner := agent.NewRunner(s, tasks, client, agent.RunnerOptions{
		MaxSteps: cfg.AgentMaxSteps, MaxToolCalls: cfg.AgentMaxToolCalls, MaxToolCallsPerTurn: cfg.AgentMaxToolCallsPerTurn,
		MaxAttempts: cfg.LLMMaxAttempts, ApprovalTimeout: cfg.ApprovalTimeout, Logger: log, Metrics: m, Users: userCache, Agents: agentCache,
	})
	auditSvc := audit.NewService(s, []byte(cfg.SecretKey))
	fg := &foreground.Gauge{}
	hooks, deliveries := p.webhooks(cfg, log, m, s, fg)
	tasks.WithEvents(hooks)
	runner.WithEvents(hooks)
	q, err := queue.New(pool, runner, queue.Config{
		Workers: workers, MaxAttempts: cfg.LLMMaxAttempts, RetryBackoff: cfg.LLMRetryBackoff,
		RunTimeout: cfg.AgentRunTimeout, Logger: log, Metrics: m, Tracing: p.tracing,
		AuditRetention: func(ctx context.Context) (int64, error) { return auditSvc.Retain(ctx, cfg.AuditRetention()) },
		Register:       deliveries.Register, Queues: webhookQueues(cfg),
	})
	if err != nil {
		return nil, err
	}
	hooks.UseJobs(webhook.RiverJobs{Client: q.River()})
	m.RegisterQueue(q.Depth, log)
	stopProfiles, err := serveProfiles(cfg.PprofAddr, log)
	if err != nil {
		return nil, err
	}
	stopMetrics, err := serveMetrics(cfg.MetricsAddr, m, log)
	if err != nil {
		stopProfiles()
		return nil, err
	}
	// Every process listens, workers included: they cache users and agents too.
	listenCtx, stopListening := context.WithCancel(context.Background())
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		notifier.Run(listenCtx)
	}()
	return &services{
		notifier: notifier, stopListening: func() { stopListening(); <-listening }, stopDispatching: hooks.StartDispatcher(), foreground: fg,
		store: s, auth: authSvc, users: user.NewService(s, authSvc).WithCache(userCache, taskCache, agentCache).WithEvents(hooks), tasks: tasks,
		agents: agent.NewService(s, tasks, q, cfg.LLMModel).WithCache(agentCache).WithActiveRunLimit(cfg.AgentActiveRunsPerUser).
			WithLimits(agent.Limits{MaxSteps: cfg.AgentMaxSteps, MaxToolCalls: cfg.AgentMaxToolCalls}).WithEvents(hooks), queue: q,
		apiKeys: apiKeys, audit: auditSvc, hooks: hooks, metrics: m, shared: shared,
		stopProfiles: stopProfiles, stopMetrics: stopMetrics,
	}, nil
}

// sharedState is the cache and rate limiter: Redis when REDIS_URL is set (degrading to
// in-process while Redis is unreachable), else in-process, with invalidations carried to
// every process by PostgreSQL notifications.
type sharedState struct {
	cache   cache.Cache
	limiter cache.Limiter
	check   httpapi.Check
	close   func()
}

func newSharedState(cfg config.Config, log *slog.Logger, m *metrics.Metrics, s *store.DB, n *store.Notifier) (*sharedState, error) {
	local := cache.NewMemory(cfg.CacheMaxEntries, nil)
	if cfg.RedisURL == "" {
		shared := cache.NewBroadcast(local, store.NewInvalidationPublisher(s).Publish, n.Connected, log)
		n.Handle(store.CacheInvalidationsChannel, shared.Receive, shared.Resync)
		return &sharedState{
			cache: shared, limiter: local, close: func() {},
			check: httpapi.Check{Name: "cache", Run: func(context.Context) (string, error) { return "in-process", nil }},
		}, nil
	}
	r, err := cache.NewRedis(cfg.RedisURL, "ea:")
	if err != nil {
		return nil, errors.New("config: REDIS_URL is invalid: want redis://[:password@]host:port/db")
	}
	res := cache.NewResilient(r, local, log, m)
	return &sharedState{
		cache: res, limiter: res, close: func() { _ = r.Close() },
		check: httpapi.Check{Name: "cache", Run: func(ctx context.Context) (string, error) {
			if err := r.Ping(ctx); err != nil {
				// The cause names Redis's address: it goes to the log, not to the client.
				return "", apperr.Wrap(apperr.Unavailable, err, "redis is unreachable; cache bypassed and rate limits in-process")
			}
			return "redis", nil
		}},
	}, nil
}

// stopGrace is how long running agent jobs get to finish on shutdown before they are
// handed back to the queue.
const stopGrace = 10 * time.Second

func (p *Program) serveWith(ctx context.Context, cfg config.Config, log *slog.Logger, pool *pgxpool.Pool) error {
	svc, err := p.services(cfg, log, pool, cfg.WorkerConcurrency)
	if err != nil {
		return err
	}
	defer svc.close()
	migrator, err := store.NewMigrator(pool)
	if err != nil {
		return err
	}
	defer migrator.Close()
	idem := idempotency.NewService(svc.store)
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	go janitor(bgCtx, log, time.Hour, []purge{
		{"expired idempotency keys", idem.Purge},
		{"expired refresh tokens", func(ctx context.Context) (int64, error) {
			return svc.store.RefreshTokenDeleteExpired(ctx, time.Now())
		}},
		{"sessions past their lifetime", func(ctx context.Context) (int64, error) {
			return svc.store.SessionDeleteStartedBefore(ctx, time.Now().Add(-cfg.SessionMaxAge()))
		}},
	})
	if err := svc.queue.Start(bgCtx); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	srv, err := httpapi.New(httpapi.Options{
		Version:     Version,
		Debug:       cfg.Debug,
		CORSOrigins: cfg.CORSOrigins,
		Logger:      log,
		Auth:        svc.auth,
		Users:       svc.users,
		Tasks:       svc.tasks,
		Agents:      svc.agents,
		APIKeys:     svc.apiKeys,
		Audit:       svc.audit,
		Webhooks:    svc.hooks,
		RunEvents:   svc.notifier,
		// Counted per instance: a user reaches the limit on each instance behind a balancer.
		MaxStreamsPerUser: cfg.SSEMaxStreamsPerUser,
		Idempotency:       idem,
		Metrics:           svc.metrics,
		// With METRICS_ADDR the metrics live on their own listener only.
		MetricsElsewhere: cfg.MetricsAddr != "",
		RateLimits: httpapi.RateLimits{
			Limiter: svc.shared.limiter, PerMinute: cfg.RateLimitPerMinute, LoginPerMinute: cfg.LoginRateLimitPerMinute,
		},
		TrustedProxies: cfg.TrustedProxies,
		Tracing:        p.tracing,
		Checks: []httpapi.Check{
			{Name: "database", Required: true, Run: func(ctx context.Context) (string, error) {
				if err := svc.store.Ping(ctx, 2*time.Second); err != nil {
					return "", apperr.Wrap(apperr.Unavailable, err, "database unreachable")
				}
				return "", nil
			}},
			{Name: "migrations", Required: true, Run: func(ctx context.Context) (string, error) {
				cur, latest, err := migrator.Version(ctx)
				if err != nil {
					return "", apperr.Wrap(apperr.Unavailable, err, "migration version unreadable")
				}
				if cur < latest {
					return "", apperr.E(apperr.Unavailable, "version %d, want %d: run migrate up", cur, latest)
				}
				return fmt.Sprintf("version %d", cur), nil
			}},
			svc.shared.check,
			{Name: "queue", Run: func(context.Context) (string, error) {
				if cfg.WorkerConcurrency == 0 {
					return "no workers in this process (WORKER_CONCURRENCY=0)", nil
				}
				return fmt.Sprintf("%d workers", cfg.WorkerConcurrency), nil
			}},
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr(), err)
	}
	hs := srv.HTTPServer(cfg.Addr())
	hs.Handler = svc.foreground.Wrap(hs.Handler)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("serving", "addr", addr, "debug", cfg.Debug, "workers", cfg.WorkerConcurrency)
	if p.OnListen != nil {
		p.OnListen(addr)
	}
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	log.Info("shutting down; finishing in-flight requests and running jobs")
	// Requests drain and jobs finish (or are handed back) at the same time, so the whole
	// shutdown stays within a 30 s termination grace period.
	workersStopped := make(chan struct{})
	go func() {
		defer close(workersStopped)
		if err := svc.queue.Stop(context.WithoutCancel(ctx), stopGrace); err != nil {
			log.Error("stopping workers", "error", err)
		}
	}()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 25*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("shutdown: %w", err)
	}
	<-workersStopped
	stopBackground()
	switch {
	case serveErr == nil:
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve: %w", err)
		}
	case errors.Is(serveErr, http.ErrServerClosed):
		serveErr = nil
	default:
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}
	log.Info("stopped")
	return serveErr
}

// worker runs agent jobs without serving HTTP.
func (p *Program) worker(ctx context.Context, cfg config.Config) error {
	log := p.logger(cfg)
	if cfg.WorkerConcurrency < 1 {
		return errors.New("config: WORKER_CONCURRENCY must be at least 1 for the worker command")
	}
	flushTraces, err := p.startTracing(ctx, log)
	if err != nil {
		return err
	}
	defer flushTraces()
	pool, err := p.openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	svc, err := p.services(cfg, log, pool, cfg.WorkerConcurrency)
	if err != nil {
		return err
	}
	defer svc.close()
	if err := svc.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	log.Info("working", "workers", cfg.WorkerConcurrency)
	if p.OnListen != nil {
		p.OnListen("")
	}
	<-ctx.Done()
	log.Info("shutting down; finishing running jobs")
	if err := svc.queue.Stop(context.WithoutCancel(ctx), stopGrace); err != nil {
		return fmt.Errorf("stop workers: %w", err)
	}
	log.Info("stopped")
	return nil
}

// Getenv adapts os.Getenv for Run.
func Getenv(key string) string { return os.Getenv(key) }

// purge is one periodic clean-up job.
type purge struct {
	what string
	run  func(context.Context) (int64, error)
}

// janitor runs the clean-up jobs at start and then every interval until ctx ends.
func janitor(ctx context.Context, log *slog.Logger, interval time.Duration, jobs []purge) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, j := range jobs {
			n, err := j.run(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("purge failed", "what", j.what, "error", err)
			case n > 0:
				log.Info("purged", "what", j.what, "rows", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
