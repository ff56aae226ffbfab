// Package pgembed runs a private PostgreSQL cluster from the server binaries
// installed on the machine, for the dev subcommand (a persistent cluster in
// the project folder) and for tests (a throwaway cluster in a temp folder).
//
// Everything a cluster needs lives in one folder (Options.Dir):
//
//	data/          PGDATA
//	socket/        unix socket directory (moved under os.TempDir when the path would be too long)
//	postgres.log   server log
//	password       generated password of the "postgres" role
//	pgembed.lock   held by the program running the server, from Start to Stop
//
// Starting again on the same folder reuses the cluster without initdb. A server left
// running by a program that died without calling Stop (kill -9, a crash) is an orphan:
// nobody holds the folder's lock any more, so the next Start stops it and starts the
// server afresh with its own options. A folder whose lock is held by a live program is
// refused (ErrAlreadyRunning).
//
// PostgreSQL refuses to run as root, so when the calling process is root the
// server tools run as the "postgres" system user through runuser.
package pgembed

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBinariesNotFound is wrapped by the error Start returns when no folder
// holding initdb, pg_ctl and postgres was found. The error message lists the
// folders searched and how to install the binaries.
var ErrBinariesNotFound = errors.New("pgembed: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")

// ErrAlreadyRunning is wrapped by the error Start returns when another live program
// (or another Cluster of this one) runs or is starting a server on Options.Dir; the
// message includes that program's pid and the server's.
var ErrAlreadyRunning = errors.New("pgembed: a PostgreSQL server is already running on this folder")

const (
	defaultStartTimeout = 30 * time.Second
	// defaultMaxConnections is PostgreSQL's max_connections when Options leave it.
	defaultMaxConnections = 200
	stopTimeout           = 60 * time.Second
	superuser             = "postgres"
	// Socket-only servers listen on no TCP port; the port only names the
	// socket file inside a private directory, so the default cannot clash.
	socketOnlyPort = 5432
	// TCP ports are picked by binding :0 and releasing it, which races with
	// other processes; a few attempts make a collision practically harmless.
	tcpPortAttempts = 5
	logTailLines    = 20
)

// Options configures Start.
type Options struct {
	// Dir is the cluster folder. It is created if missing, and reused
	// without initdb if it already holds a cluster (data/PG_VERSION).
	Dir string
	// BinDir is the folder holding initdb, pg_ctl and postgres. When empty it
	// is auto-detected: /usr/lib/postgresql/*/bin newest first, then
	// `pg_config --bindir`, then the folder of initdb found on PATH.
	BinDir string
	// TCP makes the server also listen on 127.0.0.1 on a free port;
	// otherwise it listens on its unix socket only.
	TCP bool
	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off, initdb --no-sync); meant for tests.
	Fast bool
	// Base is the caller's own folder holding Dir (dev passes its .data): when the
	// server runs as the postgres user (we are root), folders from Dir up to Base get
	// o+x quietly if it needs them, while widening a folder above Base (a home folder,
	// say) is announced first with a warning naming the folder and the mode change.
	// Empty means Dir.
	Base string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds how long the server may take to accept
	// connections; zero means 30s.
	StartTimeout time.Duration
	// MaxConnections is the server's max_connections; zero means 200. Test suites
	// that run many server instances against one cluster need more.
	MaxConnections int
}

// Cluster is a running PostgreSQL server started by Start. Its methods are
// safe for concurrent use.
//
// The server is a separate process: it keeps running if the program exits
// without calling Stop, and a later Start on the same folder then stops that
// orphan before starting its own server. The Cluster holds the folder's lock
// until Stop.
type Cluster struct {
	dir       string
	dataDir   string
	socketDir string
	logPath   string
	password  string
	port      int
	tcp       bool
	maxConns  int
	run       runner
	logger    *slog.Logger

	// Set when an existing cluster lost its password file.
	resetPasswordAfterStart bool

	// unlock releases the folder's lock (nil for a Cluster not made by Start).
	unlock func()

	mu      sync.Mutex
	stopped bool
}

// Start initialises the cluster in opts.Dir if needed, starts the server and
// waits until it accepts connections.
//
// Errors: ErrBinariesNotFound (wrapped) when the server binaries cannot be
// found; ErrAlreadyRunning (wrapped) when another live program holds opts.Dir;
// ctx's error when ctx ends first. A Dir containing ", $, `,
// backslash or newline is rejected because pg_ctl cannot quote it. Any
// other failure (creating the system user, initdb, starting, connecting) is
// returned as an unwrapped error whose message includes the command output
// and the last lines of postgres.log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgembed: Options.Dir is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}

	binDir, err := findBinDir(ctx, opts.BinDir)
	if err != nil {
		return nil, err
	}
	run, err := newRunner(ctx, binDir, logger)
	if err != nil {
		return nil, err
	}

	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: resolving %s: %w", opts.Dir, err)
	}
	if err := checkPathChars(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgembed: creating %s: %w", dir, err)
	}
	// The server process sees real paths; resolving symlinks keeps the
	// traversal check and the socket length check honest.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("pgembed: resolving %s: %w", opts.Dir, err)
	}
	if err := checkPathChars(dir); err != nil {
		return nil, err
	}

	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			unlock()
		}
	}()

	c := &Cluster{
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		socketDir: socketDirFor(dir),
		logPath:   filepath.Join(dir, "postgres.log"),
		tcp:       opts.TCP,
		maxConns:  cmp.Or(opts.MaxConnections, defaultMaxConnections),
		run:       run,
		logger:    logger,
		unlock:    unlock,
	}
	if err := c.prepare(ctx, opts); err != nil {
		return nil, err
	}
	if err := c.start(ctx, opts, timeout); err != nil {
		return nil, err
	}
	started = true
	return c, nil
}

// prepare brings the folder into a startable state: no running or stale
// server, an initialised data dir, a known password, and directories the
// server user can reach.
func (c *Cluster) prepare(ctx context.Context, opts Options) error {
	fast := opts.Fast
	if err := c.run.ensureTraversable(c.dir, c.baseDir(opts.Base), c.logger); err != nil {
		return err
	}
	pid, alive, err := postmasterPID(c.dataDir)
	if err != nil {
		return err
	}
	if alive && servesDir(pid, c.dataDir) {
		// We hold the folder's lock, so the program that started this server is gone.
		if err := c.stopOrphan(ctx, pid); err != nil {
			return err
		}
		pid, alive, err = postmasterPID(c.dataDir)
		if err != nil {
			return err
		}
		if alive {
			return fmt.Errorf("pgembed: the orphaned server on %s (pid %d) is still running after pg_ctl stop", c.dir, pid)
		}
	}
	if pid != 0 {
		c.logger.Info("pgembed: removing stale postmaster.pid left by a dead server", "dir", c.dir, "pid", pid)
		if err := os.Remove(filepath.Join(c.dataDir, "postmaster.pid")); err != nil {
			return fmt.Errorf("pgembed: removing stale postmaster.pid: %w", err)
		}
	}

	pwPath := filepath.Join(c.dir, "password")
	initialised := fileExists(filepath.Join(c.dataDir, "PG_VERSION"))
	if initialised {
		b, err := os.ReadFile(pwPath)
		switch {
		case err == nil && strings.TrimSpace(string(b)) != "":
			c.password = strings.TrimSpace(string(b))
		case err == nil || errors.Is(err, fs.ErrNotExist):
			// Local connections are trusted, so the role's password can be
			// reset after start instead of giving up on the cluster.
			c.logger.Info("pgembed: password file missing for existing cluster; a new password will be set", "dir", c.dir)
			c.resetPasswordAfterStart = true
		default:
			return fmt.Errorf("pgembed: reading %s: %w", pwPath, err)
		}
	}
	if c.password == "" {
		if c.password, err = newPassword(); err != nil {
			return err
		}
		if err := os.WriteFile(pwPath, []byte(c.password+"\n"), 0o600); err != nil {
			return fmt.Errorf("pgembed: writing %s: %w", pwPath, err)
		}
		// WriteFile keeps the mode of a file that already existed.
		if err := os.Chmod(pwPath, 0o600); err != nil {
			return fmt.Errorf("pgembed: restricting %s: %w", pwPath, err)
		}
	}

	if initialised {
		if err := c.run.ensureOwned(c.dataDir, c.logger); err != nil {
			return err
		}
	} else if err := c.initdb(ctx, fast); err != nil {
		return err
	}
	if err := c.run.prepareSocketDir(c.socketDir, c.logger); err != nil {
		return err
	}
	if err := c.run.prepareLogFile(c.logPath); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, fast bool) error {
	c.logger.Info("pgembed: initialising cluster", "dir", c.dir)
	begin := time.Now()
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("pgembed: creating %s: %w", c.dataDir, err)
	}
	if err := c.run.chown(c.dataDir); err != nil {
		return err
	}
	// initdb runs as the server user, so it must be able to read the file.
	pwfile := filepath.Join(c.dir, ".initdb-pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgembed: writing %s: %w", pwfile, err)
	}
	defer os.Remove(pwfile)
	if err := c.run.chown(pwfile); err != nil {
		return err
	}
	args := []string{
		"-D", c.dataDir,
		"-U", superuser,
		"--auth-local=trust",
		"--auth-host=scram-sha-256",
		"--pwfile=" + pwfile,
		"-E", "UTF8",
		"--locale=C.UTF-8",
	}
	if fast {
		args = append(args, "--no-sync")
	}
	out, err := c.run.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("pgembed: initdb in %s failed: %w\n%s", c.dataDir, err, lastLines(string(out), logTailLines))
	}
	c.logger.Info("pgembed: cluster initialised", "dir", c.dir, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

func (c *Cluster) start(ctx context.Context, opts Options, timeout time.Duration) error {
	attempts := 1
	if c.tcp {
		attempts = tcpPortAttempts
	}
	var err error
	for range attempts {
		c.port = socketOnlyPort
		if c.tcp {
			if c.port, err = freePort(); err != nil {
				return err
			}
		}
		var portInUse bool
		portInUse, err = c.startOnce(ctx, opts.Fast, timeout)
		if err == nil || !portInUse {
			return err
		}
		c.logger.Info("pgembed: TCP port taken before the server could bind it; retrying", "port", c.port)
	}
	return err
}

// startOnce reports whether a failure was caused by the TCP port being taken,
// which the caller retries with another port.
func (c *Cluster) startOnce(ctx context.Context, fast bool, timeout time.Duration) (portInUse bool, err error) {
	begin := time.Now()
	logOffset := fileSize(c.logPath)
	listen := ""
	if c.tcp {
		listen = "127.0.0.1"
	}
	// pg_ctl hands -o to /bin/sh, and unix_socket_directories is a list whose
	// elements may be double-quoted, hence the two layers of quoting.
	serverOpts := []string{
		"-p", strconv.Itoa(c.port),
		shellQuote("-c", "unix_socket_directories="+`"`+strings.ReplaceAll(c.socketDir, `"`, `""`)+`"`),
		shellQuote("-c", "listen_addresses="+listen),
		"-c", "max_connections=" + strconv.Itoa(c.maxConns),
	}
	if fast {
		serverOpts = append(serverOpts, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	secs := int(math.Ceil(timeout.Seconds()))
	c.logger.Info("pgembed: starting server", "dir", c.dir, "socket_dir", c.socketDir, "port", c.port, "tcp", c.tcp)

	cmdCtx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	out, err := c.run.command(cmdCtx, "pg_ctl",
		"-D", c.dataDir, "-l", c.logPath, "-w", "-t", strconv.Itoa(secs),
		"-o", strings.Join(serverOpts, " "), "start").CombinedOutput()
	if err != nil {
		c.abortStart()
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		tail := logSince(c.logPath, logOffset)
		inUse := c.tcp && (strings.Contains(tail, "Address already in use") || strings.Contains(tail, "could not bind"))
		return inUse, fmt.Errorf("pgembed: starting PostgreSQL in %s failed: %w\npg_ctl output:\n%s\nlast lines of %s:\n%s",
			c.dir, err, strings.TrimSpace(string(out)), c.logPath, tail)
	}

	if err := c.waitReady(ctx, begin.Add(timeout)); err != nil {
		c.abortStart()
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("pgembed: PostgreSQL in %s started but does not accept connections: %w\nlast lines of %s:\n%s",
			c.dir, err, c.logPath, logSince(c.logPath, logOffset))
	}
	if c.resetPasswordAfterStart {
		if err := c.setPassword(ctx); err != nil {
			c.abortStart()
			return false, err
		}
	}
	c.logger.Info("pgembed: server ready", "dir", c.dir, "took", time.Since(begin).Round(time.Millisecond))
	return false, nil
}

// baseDir resolves Options.Base; a base that does not hold the cluster folder is
// ignored (the cluster folder is its own base).
func (c *Cluster) baseDir(base string) string {
	if base == "" {
		return c.dir
	}
	b, err := filepath.Abs(base)
	if err == nil {
		b, err = filepath.EvalSymlinks(b)
	}
	if err != nil {
		return c.dir
	}
	if rel, err := filepath.Rel(b, c.dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return c.dir
	}
	return b
}

// stopOrphan stops a server left running on the folder by a program that died without
// stopping it. Restarting rather than adopting it gives the caller the options it asked
// for (TCP or not, durability) instead of the dead program's.
func (c *Cluster) stopOrphan(ctx context.Context, pid int) error {
	c.logger.Warn("pgembed: stopping an orphaned PostgreSQL server left by a program that exited without stopping it; it restarts with this program's settings",
		"dir", c.dir, "pid", pid)
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	out, err := c.run.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w",
		"-t", strconv.Itoa(int(stopTimeout.Seconds())), "stop").CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, alive, _ := postmasterPID(c.dataDir); alive {
			return fmt.Errorf("pgembed: stopping the orphaned server on %s (pid %d): %w: %s", c.dir, pid, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// abortStart stops a server that pg_ctl may have left running after a
// failed or timed-out start; the folder lock guarantees it is ours.
func (c *Cluster) abortStart() {
	if _, alive, _ := postmasterPID(c.dataDir); !alive {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if out, err := c.run.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		c.logger.Warn("pgembed: could not stop server after failed start", "dir", c.dir, "err", err, "output", strings.TrimSpace(string(out)))
	}
}

func (c *Cluster) waitReady(ctx context.Context, deadline time.Time) error {
	for {
		err := ping(ctx, c.URL("postgres"))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func (c *Cluster) setPassword(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: connecting to set the password: %w", err)
	}
	defer conn.Close(context.Background())
	// Utility statements take no parameters; the password is hex anyway.
	_, err = conn.Exec(ctx, "ALTER ROLE "+superuser+" PASSWORD '"+strings.ReplaceAll(c.password, "'", "''")+"'")
	if err != nil {
		return fmt.Errorf("pgembed: setting the password of role %s: %w", superuser, err)
	}
	return nil
}

// URL returns a pgx-compatible postgres:// URL for database that connects
// over the unix socket (host query parameter) as user "postgres", including
// the password.
func (c *Cluster) URL(database string) string {
	// libpq-style URI parsing (which pgx follows) does not decode '+' as a
	// space, so spaces must be percent-encoded.
	host := strings.ReplaceAll(url.QueryEscape(c.socketDir), "+", "%20")
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Path:     "/" + database,
		RawQuery: "host=" + host + "&port=" + strconv.Itoa(c.port) + "&sslmode=disable",
	}
	return u.String()
}

// TCPURL returns a postgres:// URL for database that connects over TCP to
// 127.0.0.1 as user "postgres" with the password, or "" when Options.TCP was
// false.
func (c *Cluster) TCPURL(database string) string {
	if !c.tcp {
		return ""
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SocketDir returns the directory holding the server's unix socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// Port returns the server port: the TCP port when Options.TCP is set,
// otherwise the number naming the unix socket file (5432).
func (c *Cluster) Port() int { return c.port }

// Stop shuts the server down (fast mode: open transactions are rolled back)
// and waits for it to exit. It is idempotent: calling it again, or on a
// server that was already stopped by other means, returns nil. The error
// reports a pg_ctl failure while the server is still running. Once the server
// is down the folder's lock is released.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if _, alive, _ := postmasterPID(c.dataDir); !alive {
		c.markStopped()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	out, err := c.run.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w",
		"-t", strconv.Itoa(int(stopTimeout.Seconds())), "stop").CombinedOutput()
	if err != nil {
		if _, alive, _ := postmasterPID(c.dataDir); alive {
			return fmt.Errorf("pgembed: stopping PostgreSQL in %s: %w: %s", c.dir, err, strings.TrimSpace(string(out)))
		}
	}
	c.markStopped()
	c.logger.Info("pgembed: server stopped", "dir", c.dir)
	return nil
}

func (c *Cluster) markStopped() {
	c.stopped = true
	if c.unlock != nil {
		c.unlock()
	}
}

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgembed: generating password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgembed: finding a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPathChars rejects characters that pg_ctl cannot pass through: it
// embeds the data dir and log path in a /bin/sh command line inside double
// quotes without escaping them.
func checkPathChars(dir string) error {
	if i := strings.IndexAny(dir, "\"$`\\\n"); i >= 0 {
		return fmt.Errorf("pgembed: folder %q contains %q, which pg_ctl cannot handle in paths; use another folder", dir, dir[i])
	}
	return nil
}

// shellQuote quotes each word for /bin/sh and joins them with spaces.
func shellQuote(words ...string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
