package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/app"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const secretKey = "test-secret-key-of-at-least-32-bytes!"

// cheap keeps argon2id real but fast.
var cheap = password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type testBundle struct {
	vars   map[string]string
	stdout *apitest.SyncBuffer
	stderr *apitest.SyncBuffer
}

// setup returns a bundle whose environment has a valid secret and a local listen address.
func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{
		vars: map[string]string{
			"SECRET_KEY": secretKey,
			"API_HOST":   "127.0.0.1",
			"API_PORT":   "0",
		},
		stdout: &apitest.SyncBuffer{},
		stderr: &apitest.SyncBuffer{},
	}
}

func (b *testBundle) program() *app.Program {
	return &app.Program{
		Getenv:         func(k string) string { return b.vars[k] },
		Stdout:         b.stdout,
		Stderr:         b.stderr,
		PasswordParams: cheap,
	}
}

func (b *testBundle) run(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return b.program().Run(ctx, args)
}

// running is a program started in the background.
type running struct {
	base   string
	cancel context.CancelFunc
	done   chan error
}

// start runs the program with args until it listens, and returns its base URL.
func start(t *testing.T, p *app.Program, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	onListen := p.OnListen
	p.OnListen = func(addr string) {
		if onListen != nil {
			onListen(addr)
		}
		addrc <- addr
	}
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx, args) }()
	select {
	case addr := <-addrc:
		r.base = "http://" + addr
	case err := <-r.done:
		cancel()
		t.Fatalf("%v exited before listening: %v", args, err)
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("%v did not listen within 90s", args)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			_ = err // stop checked it when the test cared; at cleanup it only has to end
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

// stop cancels the program's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the program did not stop within 30s of cancellation")
		return nil
	}
}

func get(t *testing.T, u string) (int, http.Header, []byte) {
	t.Helper()
	res, err := http.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, res.Header, body
}

// requireRefused checks that nothing answers at u any more.
func requireRefused(t *testing.T, u, msg string) {
	t.Helper()
	res, err := http.Get(u)
	if err == nil {
		res.Body.Close()
	}
	require.Error(t, err, msg)
}

func login(t *testing.T, base, email, pw string) (int, map[string]any) {
	t.Helper()
	res, err := http.PostForm(base+"/api/v1/auth/token", url.Values{"username": {email}, "password": {pw}})
	require.NoError(t, err)
	defer res.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	return res.StatusCode, body
}

func TestOpenAPIPrintsTheEmbeddedDocument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars = map[string]string{} // needs no configuration at all
	require.NoError(t, b.run(t, "openapi"))
	out := b.stdout.String()
	require.True(t, strings.HasPrefix(out, "openapi: 3.0"), "starts with %q", out[:min(len(out), 40)])
	require.Contains(t, out, "/api/v1/users")
	require.Contains(t, out, "/api/health")
}

func TestRunIsWhatMainCalls(t *testing.T) {
	t.Parallel()
	var stdout, stderr strings.Builder
	require.NoError(t, app.Run(context.Background(), []string{"help"}, app.Getenv, &stdout, &stderr))
	require.Contains(t, stdout.String(), "Usage: automation <command>")
	require.Error(t, app.Run(context.Background(), nil, app.Getenv, &stdout, &stderr))
	require.Contains(t, stderr.String(), "Usage: automation <command>")
	require.Equal(t, os.Getenv("PATH"), app.Getenv("PATH"))
}

func TestHelpPrintsUsage(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			require.NoError(t, b.run(t, arg))
			require.Contains(t, b.stdout.String(), "Usage: automation <command>")
			require.Contains(t, b.stdout.String(), "migrate up|down|status")
		})
	}
}

func TestCommandHelpNeedsNoConfigurationAndSucceeds(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"dev -h":       "Usage: automation dev [-data DIR]",
		"dev --help":   "-data",
		"serve -h":     "Usage: automation <command>",
		"worker -help": "Usage: automation <command>",
		"migrate -h":   "Usage: automation migrate up|down|status",
	}
	for args, want := range tests {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.vars = map[string]string{} // no SECRET_KEY, no DATABASE_URL
			require.NoError(t, b.run(t, strings.Fields(args)...))
			require.Contains(t, b.stdout.String(), want)
			require.Empty(t, b.stderr.String())
		})
	}
}

func TestNoCommandIsAnErrorWithUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := b.run(t)
	require.ErrorContains(t, err, "no command")
	require.Contains(t, b.stderr.String(), "Usage: automation <command>")
	require.Empty(t, b.stdout.String())
}

func TestUnknownCommandIsAnErrorWithUsage(t *testing.T) {
	t.Parallel()
	tests := map[string]map[string]string{
		"with a valid configuration": {"SECRET_KEY": secretKey},
		// A typo in the command must be reported as such, not as a configuration problem.
		"with no configuration": {},
	}
	for name, vars := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.vars = vars
			err := b.run(t, "frobnicate")
			require.ErrorContains(t, err, `unknown command "frobnicate"`)
			require.Contains(t, b.stderr.String(), "Usage: automation <command>")
		})
	}
}

func TestBadConfigurationStopsEveryCommandNamingTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		vars     map[string]string
		variable string
	}{
		{name: "serve with bad port", args: []string{"serve"}, vars: map[string]string{"API_PORT": "abc"}, variable: "API_PORT"},
		{name: "serve without secret", args: []string{"serve"}, vars: map[string]string{"SECRET_KEY": ""}, variable: "SECRET_KEY"},
		{name: "migrate with bad algorithm", args: []string{"migrate", "status"}, vars: map[string]string{"ALGORITHM": "RS256"}, variable: "ALGORITHM"},
		{name: "seed with bad debug flag", args: []string{"seed"}, vars: map[string]string{"DEBUG": "maybe"}, variable: "DEBUG"},
		{name: "dev with bad log level", args: []string{"dev"}, vars: map[string]string{"LOG_LEVEL": "LOUD"}, variable: "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for k, v := range tt.vars {
				b.vars[k] = v
			}
			err := b.run(t, tt.args...)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.variable)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestMigrateStatusDownUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)

	require.NoError(t, b.run(t, "migrate", "status"))
	require.Regexp(t, `(?m)^00001  applied `, b.stdout.String())
	require.NotContains(t, b.stdout.String(), "pending")

	require.NoError(t, b.run(t, "migrate", "down"))
	require.Contains(t, b.stderr.String(), "migration rolled back")

	b.stdout = &apitest.SyncBuffer{}
	require.NoError(t, b.run(t, "migrate", "status"))
	require.Contains(t, b.stdout.String(), "pending", "the rolled-back migration is pending")

	require.NoError(t, b.run(t, "migrate", "up"))
	require.Contains(t, b.stderr.String(), "migration applied")

	b.stdout = &apitest.SyncBuffer{}
	require.NoError(t, b.run(t, "migrate", "status"))
	require.Regexp(t, `(?m)^00001  applied `, b.stdout.String())
	require.NotContains(t, b.stdout.String(), "pending")
}

func TestMigrateRejectsBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no argument", args: []string{"migrate"}, want: "usage: migrate up|down|status"},
		{name: "two arguments", args: []string{"migrate", "up", "down"}, want: "usage: migrate up|down|status"},
		{name: "unknown argument", args: []string{"migrate", "sideways"}, want: `"sideways"`},
		{name: "unknown flag", args: []string{"migrate", "-force", "up"}, want: "force"},
	}
	dbURL := dbtest.URL(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.vars["DATABASE_URL"] = dbURL
			require.ErrorContains(t, b.run(t, tt.args...), tt.want)
		})
	}
}

func TestMigrateWithoutDatabaseURLNamesIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.ErrorContains(t, b.run(t, "migrate", "status"), "DATABASE_URL")
}

func TestSeedCreatesTheAdministratorOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dbURL := dbtest.URL(t)
	// The seed's SQLAlchemy URL is accepted as well.
	b.vars["DATABASE_URL"] = strings.Replace(dbURL, "postgres://", "postgresql+asyncpg://", 1)
	b.vars["FIRST_ADMIN_EMAIL"] = "root@example.com"
	b.vars["FIRST_ADMIN_PASSWORD"] = "root-password-123"

	require.NoError(t, b.run(t, "seed"))
	require.Equal(t, "created administrator root@example.com\n", b.stdout.String())

	b.stdout = &apitest.SyncBuffer{}
	require.NoError(t, b.run(t, "seed"))
	require.Equal(t, "administrator root@example.com already exists\n", b.stdout.String())

	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	defer pool.Close()
	u, err := store.New(pool).UserGetByEmail(context.Background(), "root@example.com")
	require.NoError(t, err)
	require.True(t, u.IsAdmin)
	require.True(t, u.IsActive)
	ok, err := password.Verify(u.PasswordHash, "root-password-123")
	require.NoError(t, err)
	require.True(t, ok)
	require.NotContains(t, b.stderr.String(), "root-password-123", "secrets never appear in logs")
}

func TestSeedWithoutFirstAdminIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	require.ErrorContains(t, b.run(t, "seed"), "FIRST_ADMIN_EMAIL")
}

func TestSeedWithoutDatabaseURLNamesIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars["FIRST_ADMIN_EMAIL"] = "root@example.com"
	b.vars["FIRST_ADMIN_PASSWORD"] = "root-password-123"
	require.ErrorContains(t, b.run(t, "seed"), "DATABASE_URL")
}

// SECRET_KEY is optional in debug mode; seeding only hashes a password and must not need it.
func TestSeedInDebugModeNeedsNoSecretKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars = map[string]string{
		"DEBUG":                "true",
		"DATABASE_URL":         dbtest.URL(t),
		"FIRST_ADMIN_EMAIL":    "root@example.com",
		"FIRST_ADMIN_PASSWORD": "root-password-123",
	}
	require.NoError(t, b.run(t, "seed"))
	require.Contains(t, b.stdout.String(), "created administrator root@example.com")
}

func TestServeWithoutDatabaseURLIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.ErrorContains(t, b.run(t, "serve"), "DATABASE_URL")
}

func TestServeWithUnreachableDatabaseIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	b.vars["DATABASE_URL"] = fmt.Sprintf("postgres://u:hidden-pw@127.0.0.1:%d/db?sslmode=disable", port)
	err = b.run(t, "serve")
	require.ErrorContains(t, err, "connect to database")
}

func TestServeOnAPortInUseIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["API_PORT"] = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	require.ErrorContains(t, b.run(t, "serve"), "listen on")
}

func TestServeAnswersAndShutsDownGracefullyOnCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	r := start(t, b.program(), "serve")

	status, header, body := get(t, r.base+"/api/health")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
	require.NotEmpty(t, header.Get("X-Request-ID"))

	status, _, body = get(t, r.base+"/api/health/ready")
	require.Equal(t, http.StatusOK, status, "%s", body)

	status, _, _ = get(t, r.base+"/api/docs")
	require.Equal(t, http.StatusNotFound, status, "no Swagger UI without DEBUG")

	require.NoError(t, r.stop(t), "cancellation is a graceful shutdown, not an error")
	logs := b.stderr.String()
	require.Contains(t, logs, `"msg":"serving"`, "JSON logs outside debug mode")
	require.Contains(t, logs, `"msg":"stopped"`)
	require.NotContains(t, logs, secretKey, "secrets never appear in logs")

	requireRefused(t, r.base+"/api/health", "the listener is closed after shutdown")
}

func TestServeWithPprofAddrInUseIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["PPROF_ADDR"] = ln.Addr().String()
	require.ErrorContains(t, b.run(t, "serve"), "PPROF_ADDR")
}

func TestServeProfilesOnlyOnPprofAddr(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pprofAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["PPROF_ADDR"] = pprofAddr
	r := start(t, b.program(), "serve")

	status, _, body := get(t, "http://"+pprofAddr+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusOK, status)
	require.NotEmpty(t, body)
	status, _, body = get(t, "http://"+pprofAddr+"/debug/pprof/heap?debug=1")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), "heap profile")
	status, _, _ = get(t, r.base+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, status, "the API port serves no profiles")

	require.NoError(t, r.stop(t))
	requireRefused(t, "http://"+pprofAddr+"/debug/pprof/", "the profiling listener is closed after shutdown")
}

func TestServeInDebugModeWithoutSecretKeyUsesARandomOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dbURL := dbtest.URL(t)
	b.vars = map[string]string{"DEBUG": "true", "DATABASE_URL": dbURL, "API_HOST": "127.0.0.1", "API_PORT": "0"}
	r := start(t, b.program(), "serve")
	status, header, body := get(t, r.base+"/api/docs")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, header.Get("Content-Type"), "text/html")
	require.Contains(t, string(body), "swagger-ui")
	require.Contains(t, b.stderr.String(), "SECRET_KEY is not set")
	require.NoError(t, r.stop(t))
}

var (
	bannerAdmin    = regexp.MustCompile(`(?m)^  Admin:\s+(\S+)$`)
	bannerPassword = regexp.MustCompile(`(?m)^  Password:\s+(\S+)$`)
	bannerAPI      = regexp.MustCompile(`(?m)^  API:\s+(http://\S+)/$`)
	bannerDocs     = regexp.MustCompile(`(?m)^  Docs:\s+(http://\S+/api/docs)$`)
)

type banner struct{ api, docs, admin, password, raw string }

func parseBanner(t *testing.T, out string) banner {
	t.Helper()
	b := banner{raw: out}
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *string
	}{{bannerAPI, &b.api}, {bannerDocs, &b.docs}, {bannerAdmin, &b.admin}, {bannerPassword, &b.password}} {
		m := f.re.FindStringSubmatch(out)
		require.NotNil(t, m, "banner line %s missing in:\n%s", f.re, out)
		*f.dst = m[1]
	}
	return b
}

func TestDevRunsOnAPrivatePostgreSQLAndRestartsOnTheSameFolder(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dev")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	vars := map[string]string{"API_HOST": "127.0.0.1", "API_PORT": "0"}

	runDev := func() (*running, banner, *apitest.SyncBuffer) {
		stdout, stderr := &apitest.SyncBuffer{}, &apitest.SyncBuffer{}
		p := &app.Program{Getenv: func(k string) string { return vars[k] }, Stdout: stdout, Stderr: stderr}
		r := start(t, p, "dev", "-data", dir)
		bn := parseBanner(t, stdout.String())
		require.Equal(t, r.base, bn.api)
		require.Equal(t, r.base+"/api/docs", bn.docs)
		return r, bn, stderr
	}

	first, bn, logs := runDev()
	require.Regexp(t, `(?m)^  Database: psql 'postgres://postgres:[^@']+@/automation\?host=`, bn.raw, "the banner says how to reach the database")
	require.Equal(t, "admin@example.com", bn.admin)
	require.Len(t, bn.password, 12)

	status, header, body := get(t, first.base+"/api/docs")
	require.Equal(t, http.StatusOK, status, "dev mode serves Swagger UI")
	require.Contains(t, header.Get("Content-Type"), "text/html")
	require.Contains(t, string(body), "swagger-ui")

	status, tokens := login(t, first.base, bn.admin, bn.password)
	require.Equal(t, http.StatusOK, status, "the printed credentials log in: %v", tokens)
	token, _ := tokens["access_token"].(string)
	require.NotEmpty(t, token)
	require.Equal(t, "bearer", tokens["token_type"])

	require.NoError(t, first.stop(t))
	require.NotContains(t, logs.String(), bn.password, "the admin password is printed on stdout only, never logged")
	require.NoFileExists(t, filepath.Join(dir, "postgres", "data", "postmaster.pid"), "PostgreSQL is stopped on exit")
	require.FileExists(t, filepath.Join(dir, "postgres", "data", "PG_VERSION"), "the cluster is kept for the next run")

	second, bn2, _ := runDev()
	require.Equal(t, bn.admin, bn2.admin)
	require.Equal(t, bn.password, bn2.password, "the admin password is kept across runs")
	status, _ = login(t, second.base, bn2.admin, bn2.password)
	require.Equal(t, http.StatusOK, status)

	// The dev secret is kept too, so tokens survive a restart.
	req, err := http.NewRequest(http.MethodGet, second.base+"/api/v1/users/me", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	require.NoError(t, second.stop(t))
	require.NoFileExists(t, filepath.Join(dir, "postgres", "data", "postmaster.pid"))
}

func TestDevWithDatabaseURLUsesItAndTheConfiguredAdmin(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dev")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	b := setup(t)
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	b.vars["FIRST_ADMIN_EMAIL"] = "boss@example.com"
	b.vars["FIRST_ADMIN_PASSWORD"] = "boss-password-1"
	b.vars["API_HOST"] = "0.0.0.0"
	r := start(t, b.program(), "dev", "-data", dir)

	bn := parseBanner(t, b.stdout.String())
	u, err := url.Parse(r.base)
	require.NoError(t, err)
	require.Equal(t, "http://localhost:"+u.Port(), bn.api, "a wildcard address is shown as one a browser can open")
	require.Equal(t, "boss@example.com", bn.admin)
	require.Equal(t, "boss-password-1", bn.password)
	status, _ := login(t, r.base, bn.admin, bn.password)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, r.stop(t))
	require.NoDirExists(t, filepath.Join(dir, "postgres"), "no private cluster when DATABASE_URL is set")
}

func TestDevRejectsUnknownFlags(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := b.run(t, "dev", "-nope")
	require.ErrorContains(t, err, "-nope")
	require.Contains(t, b.stderr.String(), "-data", "the flag usage is printed")
}

func TestDevListensOnLoopbackUnlessAPIHostSaysOtherwise(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dev")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	b := setup(t)
	delete(b.vars, "API_HOST")
	b.vars["DATABASE_URL"] = dbtest.URL(t)
	r := start(t, b.program(), "dev", "-data", dir)
	u, err := url.Parse(r.base)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", u.Hostname(), "dev binds loopback by default")
	require.NoError(t, r.stop(t))
}

func TestDevRefusesATakenPortBeforeStartingPostgreSQL(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dev")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })
	b := setup(t)
	b.vars["API_PORT"] = fmt.Sprint(taken.Addr().(*net.TCPAddr).Port)
	err = b.run(t, "dev", "-data", dir)
	require.ErrorContains(t, err, "set API_PORT")
	require.NoDirExists(t, filepath.Join(dir, "postgres"), "PostgreSQL was not started")
}
