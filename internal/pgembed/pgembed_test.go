package pgembed

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// tempDir uses os.MkdirTemp because t.TempDir paths can exceed the unix
// socket path limit.
func tempDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func testOptions(t *testing.T, dir string) Options {
	return Options{
		Dir:    dir,
		Fast:   true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// startCluster registers Stop as a cleanup, which runs before the RemoveAll
// registered earlier by tempDir.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	begin := time.Now()
	c, err := Start(t.Context(), opts)
	require.NoError(t, err)
	t.Logf("Start took %s", time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	return c
}

func connect(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestRestartOnSameDirKeepsDataWithoutReinitialising(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	opts := testOptions(t, dir)

	first := startCluster(t, opts)
	conn := connect(t, first.URL("postgres"))
	_, err := conn.Exec(t.Context(), "CREATE TABLE kept (id int PRIMARY KEY, note text)")
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "INSERT INTO kept VALUES (1, 'survives restart')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	require.NoError(t, first.Stop())

	password, err := os.ReadFile(filepath.Join(dir, "password"))
	require.NoError(t, err)
	pgVersion, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION"))
	require.NoError(t, err)

	second := startCluster(t, opts)
	conn = connect(t, second.URL("postgres"))
	var note string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT note FROM kept WHERE id = 1").Scan(&note))
	require.Equal(t, "survives restart", note)

	passwordAfter, err := os.ReadFile(filepath.Join(dir, "password"))
	require.NoError(t, err)
	require.Equal(t, string(password), string(passwordAfter), "restart must keep the password")
	pgVersionAfter, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION"))
	require.NoError(t, err)
	require.Equal(t, pgVersion.ModTime(), pgVersionAfter.ModTime(), "restart must not rerun initdb")
	require.NoError(t, second.Stop())
}

func TestURLUsesUnixSocketAndTCPURLIsEmptyWithoutTCP(t *testing.T) {
	t.Parallel()
	c := startCluster(t, testOptions(t, tempDir(t, "pgembed")))

	require.Empty(t, c.TCPURL("postgres"))
	require.Equal(t, 5432, c.Port())
	info, err := os.Stat(c.SocketDir())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	u, err := url.Parse(c.URL("app"))
	require.NoError(t, err)
	require.Equal(t, c.SocketDir(), u.Query().Get("host"))
	require.Equal(t, "postgres", u.User.Username())
	pw, ok := u.User.Password()
	require.True(t, ok)
	require.NotEmpty(t, pw)

	conn := connect(t, c.URL("postgres"))
	var addr *string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT inet_server_addr()::text").Scan(&addr))
	require.Nil(t, addr, "connection should use the unix socket")
	var listen string
	require.NoError(t, conn.QueryRow(t.Context(), "SHOW listen_addresses").Scan(&listen))
	require.Empty(t, listen)
}

func TestTCPURLAcceptsPasswordAndRejectsWrongPassword(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, tempDir(t, "pgembed"))
	opts.TCP = true
	c := startCluster(t, opts)

	tcpURL := c.TCPURL("postgres")
	require.Contains(t, tcpURL, "@127.0.0.1:"+strconv.Itoa(c.Port())+"/")
	conn := connect(t, tcpURL)
	var addr string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT inet_server_addr()::text").Scan(&addr))
	require.Equal(t, "127.0.0.1/32", addr)

	// The unix socket keeps working alongside TCP.
	connect(t, c.URL("postgres"))

	u, err := url.Parse(tcpURL)
	require.NoError(t, err)
	u.User = url.UserPassword("postgres", "wrong-password")
	_, err = pgx.Connect(t.Context(), u.String())
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a server error, got %v", err)
	require.Equal(t, "28P01", pgErr.Code) // invalid_password
}

func TestStartReportsMissingBinariesAndSearchedFolder(t *testing.T) {
	t.Parallel()
	emptyBin := tempDir(t, "pgembed-bin")
	opts := testOptions(t, filepath.Join(tempDir(t, "pgembed"), "cluster"))
	opts.BinDir = emptyBin

	c, err := Start(t.Context(), opts)
	require.Nil(t, c)
	t.Log(err)
	require.ErrorIs(t, err, ErrBinariesNotFound)
	require.ErrorContains(t, err, emptyBin)
	require.ErrorContains(t, err, "apt-get install postgresql")
	require.NoDirExists(t, opts.Dir, "nothing should be created without binaries")
}

func TestStopTwiceReturnsNoError(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	c := startCluster(t, testOptions(t, dir))

	require.NoError(t, c.Stop())
	require.NoFileExists(t, filepath.Join(dir, "data", "postmaster.pid"))
	require.NoError(t, c.Stop())
}

func TestStopSucceedsWhenServerWasStoppedElsewhere(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	c := startCluster(t, testOptions(t, dir))

	other := &Cluster{dir: c.dir, dataDir: c.dataDir, run: c.run, logger: c.logger}
	require.NoError(t, other.Stop())
	require.NoError(t, c.Stop())
}

func TestStartOnDirWithRunningServerFailsAndLeavesItRunning(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	first := startCluster(t, testOptions(t, dir))
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	require.NoError(t, err)
	pid, _, _ := strings.Cut(string(pidFile), "\n")

	second, err := Start(t.Context(), testOptions(t, dir))
	require.Nil(t, second)
	t.Log(err)
	require.ErrorIs(t, err, ErrAlreadyRunning)
	require.ErrorContains(t, err, "pid "+pid)
	require.ErrorContains(t, err, dir)

	conn := connect(t, first.URL("postgres"))
	var one int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT 1").Scan(&one))
}

func TestStartRemovesStalePostmasterPID(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	opts := testOptions(t, dir)
	first := startCluster(t, opts)
	require.NoError(t, first.Stop())

	// A pid that certainly belongs to no live process: a child we reaped.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	stale := strconv.Itoa(dead.Process.Pid) + "\n" + filepath.Join(dir, "data") + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(stale), 0o600))

	second := startCluster(t, opts)
	connect(t, second.URL("postgres"))
}

func TestLongDirUsesShortSocketDirInTemp(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t, "pgembed"), strings.Repeat("long-folder-name-", 6))
	require.Greater(t, len(filepath.Join(dir, "socket", ".s.PGSQL.5432")), maxSocketPath)

	c := startCluster(t, testOptions(t, dir))
	t.Cleanup(func() { _ = os.RemoveAll(c.SocketDir()) })
	require.True(t, strings.HasPrefix(c.SocketDir(), os.TempDir()), c.SocketDir())
	require.LessOrEqual(t, len(filepath.Join(c.SocketDir(), ".s.PGSQL.5432")), maxSocketPath)
	connect(t, c.URL("postgres"))
}

func TestDirWithSpacesAndSingleQuotesWorks(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t, "pgembed"), "it's a dir")
	c := startCluster(t, testOptions(t, dir))
	require.Equal(t, filepath.Join(dir, "socket"), c.SocketDir())
	connect(t, c.URL("postgres"))
}

func TestDirWithDoubleQuoteIsRejectedBeforeCreatingAnything(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t, "pgembed"), `a "quoted" dir`)
	c, err := Start(t.Context(), testOptions(t, dir))
	require.Nil(t, c)
	require.ErrorContains(t, err, "pg_ctl cannot handle")
	require.NoDirExists(t, dir)
}

func TestMissingPasswordFileIsRegeneratedForExistingCluster(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	opts := testOptions(t, dir)
	opts.TCP = true
	first := startCluster(t, opts)
	require.NoError(t, first.Stop())
	require.NoError(t, os.Remove(filepath.Join(dir, "password")))

	second := startCluster(t, opts)
	require.NotEqual(t, first.password, second.password)
	connect(t, second.TCPURL("postgres"))
}
