package config_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/config"
)

// secret is a valid SECRET_KEY (32 bytes).
const secret = "0123456789abcdef0123456789abcdef"

// getenv serves variables from a map, like a process environment would.
func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// load reads the configuration from vars and no .env file.
func load(vars map[string]string) (config.Config, error) {
	return config.Load(getenv(vars), "")
}

// requireOneLineNaming checks the error is a single line that names the variable.
func requireOneLineNaming(t *testing.T, err error, variable string) {
	t.Helper()
	require.Error(t, err)
	require.Contains(t, err.Error(), variable)
	require.NotContains(t, err.Error(), "\n", "error must be one line: %q", err.Error())
}

func TestLoadAppliesSeedDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := load(map[string]string{"SECRET_KEY": secret})
	require.NoError(t, err)

	require.Equal(t, "0.0.0.0", cfg.Host)
	require.Equal(t, 8000, cfg.Port)
	require.Equal(t, "0.0.0.0:8000", cfg.Addr())
	require.False(t, cfg.Debug)
	require.Equal(t, config.LogLevel(slog.LevelInfo), cfg.LogLevel)
	require.Empty(t, cfg.DatabaseURL)
	require.False(t, cfg.DatabaseEcho)
	require.Empty(t, cfg.CORSOrigins)
	require.Empty(t, cfg.RedisURL)
	require.Equal(t, secret, cfg.SecretKey)
	require.Equal(t, "HS256", cfg.Algorithm)
	require.Equal(t, 30, cfg.AccessTokenExpireMinutes)
	require.Equal(t, 30*time.Minute, cfg.AccessTokenTTL())
	require.Equal(t, 7, cfg.RefreshTokenExpireDays)
	require.Equal(t, 7*24*time.Hour, cfg.RefreshTokenTTL())
	require.Equal(t, "gpt-4o", cfg.LLMModel)
	require.Empty(t, cfg.OpenAIAPIKey)
	require.Empty(t, cfg.OpenAIBaseURL)
	require.Empty(t, cfg.FirstAdminEmail)
	require.Empty(t, cfg.FirstAdminPassword)
	require.Equal(t, 600, cfg.RateLimitPerMinute)
	require.Equal(t, 10, cfg.LoginRateLimitPerMinute)
	require.Equal(t, 100, cfg.WorkerConcurrency)
	require.Empty(t, cfg.PprofAddr)
}

func TestLoadReadsEveryVariable(t *testing.T) {
	t.Parallel()
	cfg, err := load(map[string]string{
		"API_HOST":                    "127.0.0.1",
		"API_PORT":                    "9001",
		"DEBUG":                       "true",
		"LOG_LEVEL":                   "debug",
		"DATABASE_URL":                "postgres://u:p@db:5432/app",
		"DATABASE_ECHO":               "1",
		"CORS_ORIGINS":                "https://app.example.com",
		"REDIS_URL":                   "redis://cache:6379/0",
		"SECRET_KEY":                  secret,
		"ALGORITHM":                   "HS512",
		"ACCESS_TOKEN_EXPIRE_MINUTES": "5",
		"REFRESH_TOKEN_EXPIRE_DAYS":   "2",
		"OPENAI_API_KEY":              "sk-test",
		"OPENAI_BASE_URL":             "http://localhost:11434/v1",
		"LLM_MODEL":                   "llama3",
		"FIRST_ADMIN_EMAIL":           "root@example.com",
		"FIRST_ADMIN_PASSWORD":        "a-long-password",
		"RATE_LIMIT_PER_MINUTE":       "0",
		"LOGIN_RATE_LIMIT_PER_MINUTE": "3",
		"WORKER_CONCURRENCY":          "0",
		"PPROF_ADDR":                  "127.0.0.1:6060",
	})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9001", cfg.Addr())
	require.True(t, cfg.Debug)
	require.Equal(t, config.LogLevel(slog.LevelDebug), cfg.LogLevel)
	require.Equal(t, "postgres://u:p@db:5432/app", cfg.DatabaseURL)
	require.True(t, cfg.DatabaseEcho)
	require.Equal(t, config.Origins{"https://app.example.com"}, cfg.CORSOrigins)
	require.Equal(t, "redis://cache:6379/0", cfg.RedisURL)
	require.Equal(t, "HS512", cfg.Algorithm)
	require.Equal(t, 5*time.Minute, cfg.AccessTokenTTL())
	require.Equal(t, 48*time.Hour, cfg.RefreshTokenTTL())
	require.Equal(t, "sk-test", cfg.OpenAIAPIKey)
	require.Equal(t, "http://localhost:11434/v1", cfg.OpenAIBaseURL)
	require.Equal(t, "llama3", cfg.LLMModel)
	require.Equal(t, "root@example.com", cfg.FirstAdminEmail)
	require.Equal(t, "a-long-password", cfg.FirstAdminPassword)
	require.Equal(t, 0, cfg.RateLimitPerMinute)
	require.Equal(t, 3, cfg.LoginRateLimitPerMinute)
	require.Equal(t, 0, cfg.WorkerConcurrency)
	require.Equal(t, "127.0.0.1:6060", cfg.PprofAddr)
}

func TestLoadRejectsBadValuesWithOneLineNamingTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		vars     map[string]string
		variable string
		says     string // a further fragment the message must contain
	}{
		{name: "port not a number", vars: map[string]string{"API_PORT": "abc"}, variable: "API_PORT", says: "integer"},
		{name: "port out of range", vars: map[string]string{"API_PORT": "70000"}, variable: "API_PORT", says: "65535"},
		{name: "negative port", vars: map[string]string{"API_PORT": "-1"}, variable: "API_PORT", says: "65535"},
		{name: "debug not a boolean", vars: map[string]string{"DEBUG": "maybe"}, variable: "DEBUG", says: "true or false"},
		{name: "database echo not a boolean", vars: map[string]string{"DATABASE_ECHO": "loud"}, variable: "DATABASE_ECHO"},
		{name: "asymmetric algorithm", vars: map[string]string{"ALGORITHM": "RS256"}, variable: "ALGORITHM", says: "HS256"},
		{name: "none algorithm", vars: map[string]string{"ALGORITHM": "none"}, variable: "ALGORITHM"},
		{name: "short secret", vars: map[string]string{"SECRET_KEY": "too-short"}, variable: "SECRET_KEY", says: "32"},
		{name: "missing secret without debug", vars: map[string]string{"SECRET_KEY": ""}, variable: "SECRET_KEY", says: "DEBUG"},
		{name: "unknown log level", vars: map[string]string{"LOG_LEVEL": "LOUD"}, variable: "LOG_LEVEL", says: "INFO"},
		{name: "origin without scheme", vars: map[string]string{"CORS_ORIGINS": "app.example.com"}, variable: "CORS_ORIGINS", says: "http"},
		{name: "bad origin in JSON list", vars: map[string]string{"CORS_ORIGINS": `["https://ok.example.com","ftp://files"]`}, variable: "CORS_ORIGINS", says: "ftp://files"},
		{name: "broken JSON origins", vars: map[string]string{"CORS_ORIGINS": `["https://a.example.com"`}, variable: "CORS_ORIGINS"},
		{name: "token lifetime zero", vars: map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, variable: "ACCESS_TOKEN_EXPIRE_MINUTES"},
		{name: "token lifetime not a number", vars: map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "half an hour"}, variable: "ACCESS_TOKEN_EXPIRE_MINUTES", says: "integer"},
		{name: "refresh lifetime zero", vars: map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "0"}, variable: "REFRESH_TOKEN_EXPIRE_DAYS"},
		{name: "negative rate limit", vars: map[string]string{"RATE_LIMIT_PER_MINUTE": "-5"}, variable: "RATE_LIMIT_PER_MINUTE"},
		{name: "negative login rate limit", vars: map[string]string{"LOGIN_RATE_LIMIT_PER_MINUTE": "-1"}, variable: "LOGIN_RATE_LIMIT_PER_MINUTE"},
		{name: "negative worker concurrency", vars: map[string]string{"WORKER_CONCURRENCY": "-1"}, variable: "WORKER_CONCURRENCY"},
		{name: "profiling address without port", vars: map[string]string{"PPROF_ADDR": "localhost"}, variable: "PPROF_ADDR", says: "host:port"},
		{name: "admin email without password", vars: map[string]string{"FIRST_ADMIN_EMAIL": "root@example.com"}, variable: "FIRST_ADMIN_PASSWORD"},
		{name: "admin password without email", vars: map[string]string{"FIRST_ADMIN_PASSWORD": "a-long-password"}, variable: "FIRST_ADMIN_EMAIL"},
		{name: "short admin password", vars: map[string]string{"FIRST_ADMIN_EMAIL": "root@example.com", "FIRST_ADMIN_PASSWORD": "short"}, variable: "FIRST_ADMIN_PASSWORD", says: "8"},
		{name: "mysql database", vars: map[string]string{"DATABASE_URL": "mysql://u:p@db/app"}, variable: "DATABASE_URL"},
		{name: "database without scheme", vars: map[string]string{"DATABASE_URL": "db:5432/app"}, variable: "DATABASE_URL"},
		// A value with a line break must not split the message into two lines.
		{name: "algorithm with a line break", vars: map[string]string{"ALGORITHM": "HS256\nRS256"}, variable: "ALGORITHM"},
		{name: "port with a line break", vars: map[string]string{"API_PORT": "80\n80"}, variable: "API_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"SECRET_KEY": secret}
			for k, v := range tt.vars {
				vars[k] = v
			}
			_, err := load(vars)
			requireOneLineNaming(t, err, tt.variable)
			require.True(t, strings.HasPrefix(err.Error(), "config: "), "error %q", err)
			if tt.says != "" {
				require.Contains(t, err.Error(), tt.says)
			}
		})
	}
}

func TestLoadKeepsSecretsOutOfErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		vars   map[string]string
		secret string
	}{
		{name: "short secret key", vars: map[string]string{"SECRET_KEY": "hunter2-hunter2"}, secret: "hunter2"},
		{name: "short admin password", vars: map[string]string{"SECRET_KEY": secret, "FIRST_ADMIN_EMAIL": "a@example.com", "FIRST_ADMIN_PASSWORD": "pw7xq"}, secret: "pw7xq"},
		{name: "database password", vars: map[string]string{"SECRET_KEY": secret, "DATABASE_URL": "mysql://app:s3cr3tpass@db/app"}, secret: "s3cr3tpass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tt.vars)
			require.Error(t, err)
			require.NotContains(t, err.Error(), tt.secret)
		})
	}
}

func TestLoadWithoutSecretKeyIsFineInDebugMode(t *testing.T) {
	t.Parallel()
	cfg, err := load(map[string]string{"DEBUG": "true"})
	require.NoError(t, err)
	require.True(t, cfg.Debug)
	require.Empty(t, cfg.SecretKey)
}

func TestLoadAcceptsEveryHMACAlgorithm(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(map[string]string{"SECRET_KEY": secret, "ALGORITHM": alg})
			require.NoError(t, err)
			require.Equal(t, alg, cfg.Algorithm)
		})
	}
}

func TestLoadAcceptsPythonLogLevelNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  slog.Level
	}{
		{"DEBUG", slog.LevelDebug},
		{"debug", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{" info ", slog.LevelInfo},
		{"WARN", slog.LevelWarn},
		{"WARNING", slog.LevelWarn},
		{"warning", slog.LevelWarn},
		{"ERROR", slog.LevelError},
		{"CRITICAL", slog.LevelError},
		{"FATAL", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(map[string]string{"SECRET_KEY": secret, "LOG_LEVEL": tt.value})
			require.NoError(t, err)
			require.Equal(t, config.LogLevel(tt.want), cfg.LogLevel)
		})
	}
}

func TestLoadParsesCORSOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  config.Origins
	}{
		{name: "one origin", value: "https://app.example.com", want: config.Origins{"https://app.example.com"}},
		{name: "comma list with spaces", value: " https://app.example.com , http://localhost:3000,", want: config.Origins{"https://app.example.com", "http://localhost:3000"}},
		{name: "JSON list", value: `["https://app.example.com", "http://localhost:5173"]`, want: config.Origins{"https://app.example.com", "http://localhost:5173"}},
		{name: "JSON list with surrounding space", value: `  ["http://localhost:3000"]  `, want: config.Origins{"http://localhost:3000"}},
		{name: "wildcard", value: "*", want: config.Origins{"*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(map[string]string{"SECRET_KEY": secret, "CORS_ORIGINS": tt.value})
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.CORSOrigins)
		})
	}
}

func TestLoadAcceptsTheSeedsAsyncpgDatabaseURL(t *testing.T) {
	t.Parallel()
	raw := "postgresql+asyncpg://app:pw@db:5432/automation"
	cfg, err := load(map[string]string{"SECRET_KEY": secret, "DATABASE_URL": raw})
	require.NoError(t, err)
	url, err := config.NormalizeDatabaseURL(cfg.DatabaseURL)
	require.NoError(t, err)
	require.Equal(t, "postgres://app:pw@db:5432/automation", url)
}

func TestNormalizeDatabaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    string
		wantErr string
	}{
		{raw: "postgres://u:p@h:5432/d", want: "postgres://u:p@h:5432/d"},
		{raw: "postgresql://u:p@h/d?sslmode=disable", want: "postgres://u:p@h/d?sslmode=disable"},
		{raw: "postgresql+asyncpg://u:p@h/d", want: "postgres://u:p@h/d"},
		{raw: "postgresql+psycopg2://u@h/d", want: "postgres://u@h/d"},
		{raw: "mysql://u:p@h/d", wantErr: "mysql"},
		{raw: "sqlite+aiosqlite:///./app.db", wantErr: "sqlite"},
		{raw: "h:5432/d", wantErr: "scheme"},
		{raw: "", wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			got, err := config.NormalizeDatabaseURL(tt.raw)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoadReadsDotEnvAndTheEnvironmentWins(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".env")
	content := "# the seed's .env\n" +
		"API_PORT=9100\n" +
		"SECRET_KEY=" + secret + "\n" +
		"LLM_MODEL=from-file\n" +
		"DATABASE_URL=postgresql+asyncpg://app:pw@db:5432/automation\n" +
		"CORS_ORIGINS=[\"https://file.example.com\"]\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))

	cfg, err := config.Load(getenv(map[string]string{"LLM_MODEL": "from-env"}), path)
	require.NoError(t, err)
	require.Equal(t, 9100, cfg.Port, "value only in the file is read")
	require.Equal(t, secret, cfg.SecretKey)
	require.Equal(t, "postgresql+asyncpg://app:pw@db:5432/automation", cfg.DatabaseURL)
	require.Equal(t, config.Origins{"https://file.example.com"}, cfg.CORSOrigins)
	require.Equal(t, "from-env", cfg.LLMModel, "the real environment wins over the file")
}

func TestLoadReportsBadValueFromDotEnvByName(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(path, []byte("API_PORT=eighty\n"), 0o600))
	_, err := config.Load(getenv(map[string]string{"SECRET_KEY": secret}), path)
	requireOneLineNaming(t, err, "API_PORT")
}

func TestLoadWithoutDotEnvFileUsesTheEnvironmentOnly(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such.env")
	cfg, err := config.Load(getenv(map[string]string{"SECRET_KEY": secret}), missing)
	require.NoError(t, err)
	require.Equal(t, 8000, cfg.Port)
}

func TestLoadFailsWhenDotEnvCannotBeRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() // a folder, not a file
	_, err := config.Load(getenv(map[string]string{"SECRET_KEY": secret}), dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), dir)
}

// TestFinding13_PprofAddrMustBeLoopbackUnlessAllowedPublic: the profiling endpoints show
// the process's memory and command line, so PPROF_ADDR binds loopback only, unless
// PPROF_ALLOW_PUBLIC=true says otherwise on purpose.
func TestFinding13_PprofAddrMustBeLoopbackUnlessAllowedPublic(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:6060", "127.1.2.3:6060", "localhost:6060", "[::1]:6060", "127.0.0.1:0"} {
		cfg, err := load(map[string]string{"SECRET_KEY": secret, "PPROF_ADDR": addr})
		require.NoError(t, err, addr)
		require.Equal(t, addr, cfg.PprofAddr)
		require.False(t, cfg.PprofAllowPublic)
	}
	for _, addr := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.5:6060", "192.168.1.10:6060",
		"example.com:6060", "localhost.example.com:6060", "[::ffff:10.0.0.1]:6060"} {
		_, err := load(map[string]string{"SECRET_KEY": secret, "PPROF_ADDR": addr})
		requireOneLineNaming(t, err, "PPROF_ADDR")
		require.Contains(t, err.Error(), "PPROF_ALLOW_PUBLIC", "the error says how to allow it: %s", addr)

		cfg, err := load(map[string]string{"SECRET_KEY": secret, "PPROF_ADDR": addr, "PPROF_ALLOW_PUBLIC": "true"})
		require.NoError(t, err, "%s with PPROF_ALLOW_PUBLIC=true", addr)
		require.Equal(t, addr, cfg.PprofAddr)
		require.True(t, cfg.PprofAllowPublic)
	}
	// Not even DEBUG (the dev command) lifts the rule.
	_, err := load(map[string]string{"DEBUG": "true", "PPROF_ADDR": "0.0.0.0:6060"})
	requireOneLineNaming(t, err, "PPROF_ADDR")
	// A malformed address is still reported as malformed, allowed public or not.
	_, err = load(map[string]string{"SECRET_KEY": secret, "PPROF_ADDR": "6060", "PPROF_ALLOW_PUBLIC": "true"})
	requireOneLineNaming(t, err, "PPROF_ADDR")
	_, err = load(map[string]string{"SECRET_KEY": secret, "PPROF_ALLOW_PUBLIC": "maybe"})
	requireOneLineNaming(t, err, "PPROF_ALLOW_PUBLIC")
}

func TestFinding13_IsLoopbackAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:6060":        true,
		"127.255.255.254:1":     true,
		"localhost:6060":        true,
		"[::1]:6060":            true,
		":6060":                 false, // every interface
		"0.0.0.0:6060":          false,
		"[::]:6060":             false,
		"10.1.2.3:6060":         false,
		"[fe80::1]:6060":        false,
		"localhost.evil.:6060":  false,
		"my-host:6060":          false,
		"127.0.0.1":             false, // no port: not a listen address
		"":                      false,
		"[::ffff:8.8.8.8]:6060": false,
	} {
		require.Equal(t, want, config.IsLoopbackAddr(addr), addr)
	}
}
