// Package config reads the server's settings from the environment (and from a .env
// file when present), with the names the seed's deployment already uses.
package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/joho/godotenv"
)

// Config holds every setting. Field tags name the environment variables.
type Config struct {
	// Host is the address the API listens on.
	Host string `env:"API_HOST" envDefault:"0.0.0.0"`
	// Port is the API's port; 0 picks a free one.
	Port int `env:"API_PORT" envDefault:"8000"`
	// Debug turns on text logs and the documentation UIs (Swagger UI at /api/docs, Redoc at
	// /api/redoc), and makes SECRET_KEY optional.
	Debug bool `env:"DEBUG" envDefault:"false"`
	// LogLevel is DEBUG, INFO, WARNING or ERROR.
	LogLevel LogLevel `env:"LOG_LEVEL" envDefault:"INFO"`
	// DatabaseURL is postgres://user:password@host:5432/database (postgresql+asyncpg://
	// is accepted); the dev command starts a private cluster when it is unset.
	DatabaseURL string `env:"DATABASE_URL"`
	// DatabaseEcho logs every SQL statement (never its arguments) at DEBUG level.
	DatabaseEcho bool `env:"DATABASE_ECHO" envDefault:"false"`
	// CORSOrigins are the allowed origins, a comma list or a JSON list; unset sends no
	// CORS headers.
	CORSOrigins Origins `env:"CORS_ORIGINS"`
	// RedisURL (redis://[:password@]host:6379/0) shares the cache and rate limits between
	// instances; unset keeps them in-process (invalidations then travel over PostgreSQL).
	RedisURL string `env:"REDIS_URL"`
	// TrustedProxies are the CIDRs of reverse proxies whose X-Forwarded-For names the
	// client; without any, the client is the connection's peer address.
	TrustedProxies CIDRs `env:"TRUSTED_PROXIES"`
	// CacheTTL bounds how long a cached record (principal, user, task) may be served;
	// writes invalidate it at once. 0 turns the record cache off.
	CacheTTL time.Duration `env:"CACHE_TTL" envDefault:"60s"`
	// CacheMaxEntries bounds the in-process cache (used without REDIS_URL).
	CacheMaxEntries int `env:"CACHE_MAX_ENTRIES" envDefault:"20000"`
	// TaskExactTotalLimit is how many matching tasks a list counts exactly; beyond, the
	// total is an estimate. 0 counts every list exactly.
	TaskExactTotalLimit int `env:"TASK_EXACT_TOTAL_LIMIT" envDefault:"10000"`
	// LLMCacheTTL keeps LLM answers to identical requests at temperature 0; 0 turns it off.
	LLMCacheTTL time.Duration `env:"LLM_CACHE_TTL" envDefault:"1h"`

	// SecretKey signs access tokens and audit cursors: at least 32 bytes; required unless
	// DEBUG.
	SecretKey string `env:"SECRET_KEY"`
	// Algorithm is the JWT signature: HS256, HS384 or HS512.
	Algorithm string `env:"ALGORITHM" envDefault:"HS256"`
	// AccessTokenExpireMinutes is the lifetime of access tokens.
	AccessTokenExpireMinutes int `env:"ACCESS_TOKEN_EXPIRE_MINUTES" envDefault:"30"`
	// RefreshTokenExpireDays is the lifetime of a refresh token (each refresh rotates it).
	RefreshTokenExpireDays int `env:"REFRESH_TOKEN_EXPIRE_DAYS" envDefault:"7"`

	// OpenAIAPIKey is the LLM provider's key; without it runs fail with llm_not_configured.
	OpenAIAPIKey string `env:"OPENAI_API_KEY"`
	// OpenAIBaseURL points at any OpenAI-compatible API (Azure OpenAI, Ollama, vLLM).
	OpenAIBaseURL string `env:"OPENAI_BASE_URL"`
	// LLMModel is the model of agents that name none.
	LLMModel string `env:"LLM_MODEL" envDefault:"gpt-4o"`
	// LLMTimeout bounds one completion, stream included.
	LLMTimeout time.Duration `env:"LLM_TIMEOUT" envDefault:"60s"`
	// LLMMaxAttempts bounds the attempts of an agent run after transient LLM failures.
	LLMMaxAttempts int `env:"LLM_MAX_ATTEMPTS" envDefault:"3"`
	// LLMRetryBackoff is the first retry's delay; it doubles after each attempt.
	LLMRetryBackoff time.Duration `env:"LLM_RETRY_BACKOFF" envDefault:"1s"`
	// AgentMaxSteps bounds the model turns of one run (then it ends incomplete).
	AgentMaxSteps int `env:"AGENT_MAX_STEPS" envDefault:"8"`
	// AgentRunTimeout bounds one job of a run: one model turn and its tool calls (a run
	// executes turn by turn, its state saved between). A worker that dies mid-turn has
	// its job rescued 10 s after this, on River's next rescue pass (every 30 s).
	AgentRunTimeout time.Duration `env:"AGENT_RUN_TIMEOUT" envDefault:"60s"`
	// ApprovalTimeout is how long a run waits for approvals of its tool calls before it
	// ends expired.
	ApprovalTimeout time.Duration `env:"APPROVAL_TIMEOUT" envDefault:"24h"`

	// FirstAdminEmail and FirstAdminPassword create the first administrator (seed, dev).
	FirstAdminEmail string `env:"FIRST_ADMIN_EMAIL"`
	// FirstAdminPassword is the first administrator's password (at least 8 characters).
	FirstAdminPassword string `env:"FIRST_ADMIN_PASSWORD"`

	// RateLimitPerMinute bounds requests per user (per client IP when anonymous); 0 is off.
	RateLimitPerMinute int `env:"RATE_LIMIT_PER_MINUTE" envDefault:"600"`
	// LoginRateLimitPerMinute bounds login attempts per client and failed password checks
	// per account; 0 is off.
	LoginRateLimitPerMinute int `env:"LOGIN_RATE_LIMIT_PER_MINUTE" envDefault:"10"`
	// WorkerConcurrency is how many agent runs a process executes at once. Runs mostly
	// wait on the model, so this is far above the CPU count.
	WorkerConcurrency int `env:"WORKER_CONCURRENCY" envDefault:"100"`
	// PprofAddr, when set, serves Go's profiling endpoints (/debug/pprof/) on this
	// address, apart from the API: for operators, never to be exposed publicly.
	PprofAddr string `env:"PPROF_ADDR"`
	// PprofAllowPublic lets PPROF_ADDR name a non-loopback address; refused otherwise.
	PprofAllowPublic bool `env:"PPROF_ALLOW_PUBLIC" envDefault:"false"`
	// MetricsAddr, when set, serves /metrics on this address instead of the API's.
	MetricsAddr string `env:"METRICS_ADDR"`

	// SessionMaxDays bounds a login session (its refresh-token family) from the login,
	// however often it is refreshed.
	SessionMaxDays int `env:"SESSION_MAX_DAYS" envDefault:"30"`
	// AuditRetentionDays is how long audit events are kept; a daily job deletes older ones.
	AuditRetentionDays int `env:"AUDIT_RETENTION_DAYS" envDefault:"365"`
	// SSEMaxStreamsPerUser bounds a user's concurrent run event streams (429 beyond).
	SSEMaxStreamsPerUser int `env:"SSE_MAX_STREAMS_PER_USER" envDefault:"20"`
	// AgentMaxToolCalls bounds the tool calls of one run (then it ends incomplete).
	AgentMaxToolCalls int `env:"AGENT_MAX_TOOL_CALLS" envDefault:"32"`
	// AgentMaxToolCallsPerTurn bounds the tool calls the model may ask for in one turn.
	AgentMaxToolCallsPerTurn int `env:"AGENT_MAX_TOOL_CALLS_PER_TURN" envDefault:"16"`
	// AgentActiveRunsPerUser bounds a user's runs that are queued, in progress or
	// waiting at once (429 quota-exceeded beyond).
	AgentActiveRunsPerUser int `env:"AGENT_ACTIVE_RUNS_PER_USER" envDefault:"50"`

	// WebhookTimeout bounds one webhook delivery attempt, from connecting to the answer.
	WebhookTimeout time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"15s"`
	// WebhookRetrySchedule is the delay before each retry of a failed webhook delivery
	// (comma list, jittered by ±10 %; a longer Retry-After wins); after the last, the
	// delivery fails.
	WebhookRetrySchedule Durations `env:"WEBHOOK_RETRY_SCHEDULE" envDefault:"5s,5m,30m,2h,5h,10h,14h,20h,24h"`
	// WebhookAllowPrivateNetworks lets webhooks reach loopback, private, link-local and
	// CGNAT addresses: for development and tests only.
	WebhookAllowPrivateNetworks bool `env:"WEBHOOK_ALLOW_PRIVATE_NETWORKS" envDefault:"false"`
	// WebhookWorkers is how many webhook deliveries a process makes at once (0: none).
	WebhookWorkers int `env:"WEBHOOK_WORKERS" envDefault:"100"`
	// WebhookEndpointConcurrency caps a process's deliveries in flight to one endpoint, so
	// that a slow or failing endpoint cannot hold every webhook worker.
	WebhookEndpointConcurrency int `env:"WEBHOOK_ENDPOINT_CONCURRENCY" envDefault:"10"`
	// WebhookBusyRate caps the webhook deliveries a process fans out and the attempts it starts
	// per second while its API is busy (at least twice as many requests in flight as
	// CPUs), so that deliveries yield to requests and catch up when the load drops (0:
	// never paced).
	WebhookBusyRate int `env:"WEBHOOK_BUSY_RATE" envDefault:"100"`
}

// AccessTokenTTL is the lifetime of access tokens.
func (c Config) AccessTokenTTL() time.Duration {
	return time.Duration(c.AccessTokenExpireMinutes) * time.Minute
}

// RefreshTokenTTL is the lifetime of refresh tokens.
func (c Config) RefreshTokenTTL() time.Duration {
	return time.Duration(c.RefreshTokenExpireDays) * 24 * time.Hour
}

// Addr is the listen address.
func (c Config) Addr() string { return fmt.Sprintf("%s:%d", c.Host, c.Port) }

// LogLevel is a slog level that also accepts Python's names (WARNING, CRITICAL).
type LogLevel slog.Level

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LogLevel) UnmarshalText(b []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(b)))
	switch s {
	case "WARNING":
		s = "WARN"
	case "CRITICAL", "FATAL":
		s = "ERROR"
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("want one of DEBUG, INFO, WARNING, ERROR")
	}
	*l = LogLevel(lv)
	return nil
}

// Origins is a list of allowed CORS origins, given as a comma-separated list or a JSON array.
type Origins []string

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Origins) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	var list []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return fmt.Errorf("want a comma-separated list or a JSON array of strings")
		}
	} else {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
	}
	for _, origin := range list {
		if origin != "*" && !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
			return fmt.Errorf("origin %q must start with http:// or https://", origin)
		}
	}
	*o = list
	return nil
}

// CIDRs is a comma-separated list of IP networks (a bare IP means that one address).
type CIDRs []*net.IPNet

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *CIDRs) UnmarshalText(b []byte) error {
	var out CIDRs
	for _, part := range strings.Split(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			if ip := net.ParseIP(part); ip != nil && ip.To4() != nil {
				part += "/32"
			} else {
				part += "/128"
			}
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return fmt.Errorf("want a comma-separated list of IPs or CIDRs such as 10.0.0.0/8")
		}
		out = append(out, n)
	}
	*c = out
	return nil
}

// Load reads the configuration from getenv, falling back to the .env file in the working
// directory (when dotenv is non-empty and the file exists) for variables getenv lacks.
// The error names the offending variable in one line.
func Load(getenv func(string) string, dotenv string) (Config, error) {
	var cfg Config
	file := map[string]string{}
	if dotenv != "" {
		if m, err := godotenv.Read(dotenv); err == nil {
			file = m
		} else if !errors.Is(err, os.ErrNotExist) {
			return cfg, fmt.Errorf("config: reading %s: %w", dotenv, err)
		}
	}
	vars := map[string]string{}
	fieldVar := map[string]string{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		fieldVar[t.Field(i).Name] = key
		if v := getenv(key); v != "" {
			vars[key] = v
		} else if v := file[key]; v != "" {
			vars[key] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return cfg, describe(err, fieldVar, vars)
	}
	return cfg, cfg.validate()
}

// describe turns the env library's errors into one line naming the variable.
func describe(err error, fieldVar, vars map[string]string) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("config: %w", err)
	}
	key := fieldVar[pe.Name]
	why := pe.Err.Error()
	// Types with their own parser (log level, origins) explain themselves.
	if !reflect.PointerTo(pe.Type).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		switch {
		case pe.Type == reflect.TypeFor[time.Duration]():
			why = "want a duration such as 30s or 5m"
		case pe.Type.Kind() == reflect.Int, pe.Type.Kind() == reflect.Int64:
			why = "want an integer"
		case pe.Type.Kind() == reflect.Bool:
			why = "want true or false"
		}
	}
	return fmt.Errorf("config: %s=%q is invalid: %s", key, vars[key], why)
}

func (c Config) validate() error {
	bad := func(key string, value any, why string) error {
		return fmt.Errorf("config: %s=%q is invalid: %s", key, fmt.Sprint(value), why)
	}
	if c.Port < 0 || c.Port > 65535 {
		return bad("API_PORT", c.Port, "want 0..65535")
	}
	switch c.Algorithm {
	case "HS256", "HS384", "HS512":
	default:
		return bad("ALGORITHM", c.Algorithm, "want HS256, HS384 or HS512")
	}
	if c.SecretKey == "" && !c.Debug {
		return errors.New("config: SECRET_KEY is required (at least 32 bytes) unless DEBUG=true")
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		return errors.New("config: SECRET_KEY is invalid: want at least 32 bytes")
	}
	if c.AccessTokenExpireMinutes < 1 {
		return bad("ACCESS_TOKEN_EXPIRE_MINUTES", c.AccessTokenExpireMinutes, "want at least 1")
	}
	if c.RefreshTokenExpireDays < 1 {
		return bad("REFRESH_TOKEN_EXPIRE_DAYS", c.RefreshTokenExpireDays, "want at least 1")
	}
	if c.RateLimitPerMinute < 0 {
		return bad("RATE_LIMIT_PER_MINUTE", c.RateLimitPerMinute, "want 0 (off) or more")
	}
	if c.LoginRateLimitPerMinute < 0 {
		return bad("LOGIN_RATE_LIMIT_PER_MINUTE", c.LoginRateLimitPerMinute, "want 0 (off) or more")
	}
	if c.CacheTTL < 0 {
		return bad("CACHE_TTL", c.CacheTTL, "want 0 (off) or a duration such as 60s")
	}
	if c.CacheMaxEntries < 1 {
		return bad("CACHE_MAX_ENTRIES", c.CacheMaxEntries, "want at least 1")
	}
	if c.TaskExactTotalLimit < 0 {
		return bad("TASK_EXACT_TOTAL_LIMIT", c.TaskExactTotalLimit, "want 0 (always exact) or more")
	}
	if c.LLMCacheTTL < 0 {
		return bad("LLM_CACHE_TTL", c.LLMCacheTTL, "want 0 (off) or a duration such as 1h")
	}
	if c.RedisURL != "" {
		scheme, _, _ := strings.Cut(c.RedisURL, "://")
		if scheme != "redis" && scheme != "rediss" && scheme != "unix" {
			// The value is not echoed: it may carry a password.
			return errors.New("config: REDIS_URL is invalid: want redis://[:password@]host:port/db or rediss://…")
		}
	}
	if c.PprofAddr != "" {
		if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
			return bad("PPROF_ADDR", c.PprofAddr, "want host:port, such as 127.0.0.1:6060")
		}
	}
	if c.PprofAddr != "" && !c.PprofAllowPublic && !IsLoopbackAddr(c.PprofAddr) {
		return bad("PPROF_ADDR", c.PprofAddr, "want a loopback address such as 127.0.0.1:6060 (or set PPROF_ALLOW_PUBLIC=true)")
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return bad("METRICS_ADDR", c.MetricsAddr, "want host:port, such as 127.0.0.1:9090")
		}
	}
	if c.SessionMaxDays < 1 {
		return bad("SESSION_MAX_DAYS", c.SessionMaxDays, "want at least 1")
	}
	if c.AuditRetentionDays < 1 {
		return bad("AUDIT_RETENTION_DAYS", c.AuditRetentionDays, "want at least 1")
	}
	if c.SSEMaxStreamsPerUser < 1 {
		return bad("SSE_MAX_STREAMS_PER_USER", c.SSEMaxStreamsPerUser, "want at least 1")
	}
	if c.AgentMaxToolCalls < 1 || c.AgentMaxToolCalls > 1000 {
		return bad("AGENT_MAX_TOOL_CALLS", c.AgentMaxToolCalls, "want 1..1000")
	}
	if c.AgentMaxToolCallsPerTurn < 1 || c.AgentMaxToolCallsPerTurn > 1000 {
		return bad("AGENT_MAX_TOOL_CALLS_PER_TURN", c.AgentMaxToolCallsPerTurn, "want 1..1000")
	}
	if c.AgentActiveRunsPerUser < 1 {
		return bad("AGENT_ACTIVE_RUNS_PER_USER", c.AgentActiveRunsPerUser, "want at least 1")
	}
	if c.WorkerConcurrency < 0 {
		return bad("WORKER_CONCURRENCY", c.WorkerConcurrency, "want 0 (no workers) or more")
	}
	if c.LLMTimeout <= 0 {
		return bad("LLM_TIMEOUT", c.LLMTimeout, "want a positive duration such as 60s")
	}
	if c.LLMMaxAttempts < 1 || c.LLMMaxAttempts > 25 {
		return bad("LLM_MAX_ATTEMPTS", c.LLMMaxAttempts, "want 1..25")
	}
	if c.LLMRetryBackoff <= 0 {
		return bad("LLM_RETRY_BACKOFF", c.LLMRetryBackoff, "want a positive duration such as 1s")
	}
	if c.AgentMaxSteps < 1 || c.AgentMaxSteps > 100 {
		return bad("AGENT_MAX_STEPS", c.AgentMaxSteps, "want 1..100")
	}
	if c.AgentRunTimeout <= 0 {
		return bad("AGENT_RUN_TIMEOUT", c.AgentRunTimeout, "want a positive duration such as 60s")
	}
	if c.ApprovalTimeout < time.Second {
		return bad("APPROVAL_TIMEOUT", c.ApprovalTimeout, "want a duration of at least 1s, such as 24h")
	}
	if err := c.validateWebhooks(bad); err != nil {
		return err
	}
	if (c.FirstAdminEmail == "") != (c.FirstAdminPassword == "") {
		return errors.New("config: FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD must be set together")
	}
	if c.FirstAdminPassword != "" && len(c.FirstAdminPassword) < 8 {
		return errors.New("config: FIRST_ADMIN_PASSWORD is invalid: want at least 8 characters")
	}
	if c.DatabaseURL != "" {
		if _, err := NormalizeDatabaseURL(c.DatabaseURL); err != nil {
			return errors.New("config: DATABASE_URL is invalid: want postgres://user:password@host:port/database")
		}
	}
	return nil
}

// IsLoopbackAddr reports whether a host:port listen address binds only loopback
// ("localhost", 127.0.0.0/8 or ::1); an empty host binds every interface.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AuditRetention is how long audit events are kept.
func (c Config) AuditRetention() time.Duration {
	return time.Duration(c.AuditRetentionDays) * 24 * time.Hour
}

// SessionMaxAge is the absolute lifetime of a login session.
func (c Config) SessionMaxAge() time.Duration {
	return time.Duration(c.SessionMaxDays) * 24 * time.Hour
}

// NormalizeDatabaseURL accepts the seed's SQLAlchemy URLs (postgresql+asyncpg://…) and
// returns a URL pgx understands.
func NormalizeDatabaseURL(raw string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", errors.New("missing scheme")
	}
	base, _, _ := strings.Cut(scheme, "+")
	switch base {
	case "postgres", "postgresql":
		return "postgres://" + rest, nil
	default:
		return "", fmt.Errorf("unsupported scheme %q", scheme)
	}
}
