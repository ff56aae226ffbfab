package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"enterprise-automation/internal/config"
	"enterprise-automation/internal/pgembed"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/user"
)

const devDatabase = "automation"

// devFlags defines the dev command's flags, printing errors to out.
func devFlags(out io.Writer) (fs *flag.FlagSet, dataDir *string) {
	fs = flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(out)
	dataDir = fs.String("data", ".data", "folder for the private database and dev secrets")
	return fs, dataDir
}

// dev runs the whole product on one machine with nothing but PostgreSQL's server
// binaries: a private cluster under <data>/postgres (unless DATABASE_URL is set),
// migrations, the first administrator, and the server in debug mode.
func (p *Program) dev(ctx context.Context, cfg config.Config, args []string) error {
	fs, dataDir := devFlags(p.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Debug = true
	// A newcomer's server is for this machine only unless API_HOST says otherwise.
	if p.Getenv("API_HOST") == "" {
		cfg.Host = "127.0.0.1"
	}
	log := p.logger(cfg)
	// Before PostgreSQL starts: a taken port should cost a second, not a cluster start.
	if err := checkPortFree(cfg.Addr()); err != nil {
		return err
	}
	flushTraces, err := p.startTracing(ctx, log)
	if err != nil {
		return err
	}
	defer flushTraces()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if cfg.SecretKey == "" {
		if cfg.SecretKey, _, err = persistentSecret(filepath.Join(*dataDir, "secret_key"), 48); err != nil {
			return err
		}
	}
	// A generated admin password that is new (first run, or its file was deleted) is
	// applied to an admin that already exists, so the printed credentials always log in.
	newAdminPassword := false
	if cfg.FirstAdminEmail == "" {
		cfg.FirstAdminEmail = "admin@example.com"
		if cfg.FirstAdminPassword, newAdminPassword, err = persistentSecret(filepath.Join(*dataDir, "admin_password"), 12); err != nil {
			return err
		}
	}
	databaseLine := ""
	if cfg.DatabaseURL == "" {
		cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(*dataDir, "postgres"), Base: *dataDir, Logger: log})
		if err != nil {
			return fmt.Errorf("dev: start PostgreSQL: %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				log.Error("stopping PostgreSQL", "error", err)
			}
		}()
		if err := ensureDatabase(ctx, cluster.URL("postgres"), devDatabase); err != nil {
			return err
		}
		cfg.DatabaseURL = cluster.URL(devDatabase)
		databaseLine = fmt.Sprintf("  Database: psql '%s'\n            (DATABASE_URL for the other commands while this runs)\n", cfg.DatabaseURL)
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
	err = m.Up(ctx, log)
	_ = m.Close()
	if err != nil {
		return err
	}
	created, err := p.seedAdmin(ctx, cfg, pool)
	if err != nil {
		return err
	}
	if newAdminPassword && !created {
		if err := p.resetAdminPassword(ctx, cfg, pool); err != nil {
			return err
		}
		log.Info("dev: the administrator's password was set to the newly generated one", "email", cfg.FirstAdminEmail)
	}
	onListen := p.OnListen
	p.OnListen = func(addr string) {
		base := "http://" + displayAddr(addr)
		fmt.Fprintf(p.Stdout, "\nEnterprise Automation API (dev mode)\n  API:      %s/\n  Docs:     %s/api/docs\n  Redoc:    %s/api/redoc\n  Console:  %s/console/\n  Admin:    %s\n  Password: %s\n%s\n",
			base, base, base, base, cfg.FirstAdminEmail, cfg.FirstAdminPassword, databaseLine)
		if onListen != nil {
			onListen(addr)
		}
	}
	defer func() { p.OnListen = onListen }()
	return p.serveWith(ctx, cfg, log, pool)
}

// resetAdminPassword sets FIRST_ADMIN_EMAIL's password to FIRST_ADMIN_PASSWORD.
func (p *Program) resetAdminPassword(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) error {
	s := store.New(pool)
	authSvc, err := p.authService(cfg, s, nil, nil)
	if err != nil {
		return err
	}
	return user.NewService(s, authSvc).ResetPassword(ctx, cfg.FirstAdminEmail, cfg.FirstAdminPassword)
}

// checkPortFree fails with what to set when addr cannot be listened on.
func checkPortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dev: cannot listen on %s (%w): another program uses the port; set API_PORT to a free port (API_PORT=0 picks one), e.g. `API_PORT=8001 make run`", addr, err)
	}
	return ln.Close()
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// ensureDatabase creates the named database unless it exists.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("dev: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("dev: look up database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("dev: create database: %w", err)
	}
	return nil
}

// persistentSecret reads a secret from path, creating a random one (0600) the first
// time (or when the file was deleted or emptied); created tells which.
func persistentSecret(path string, n int) (secret string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("dev: read %s: %w", path, err)
	}
	secret = randomString(n)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("dev: write %s: %w", path, err)
	}
	return secret, true, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func randomSecret() string { return randomString(48) }
