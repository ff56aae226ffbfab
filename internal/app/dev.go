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

	"enterprise-automation/internal/config"
	"enterprise-automation/internal/pgembed"
	"enterprise-automation/internal/store"
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
	log := p.logger(cfg)
	flushTraces, err := p.startTracing(ctx, log)
	if err != nil {
		return err
	}
	defer flushTraces()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if cfg.SecretKey == "" {
		if cfg.SecretKey, err = persistentSecret(filepath.Join(*dataDir, "secret_key"), 48); err != nil {
			return err
		}
	}
	if cfg.FirstAdminEmail == "" {
		cfg.FirstAdminEmail = "admin@example.com"
		if cfg.FirstAdminPassword, err = persistentSecret(filepath.Join(*dataDir, "admin_password"), 12); err != nil {
			return err
		}
	}
	if cfg.DatabaseURL == "" {
		cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(*dataDir, "postgres"), Logger: log})
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
	if _, err := p.seedAdmin(ctx, cfg, pool); err != nil {
		return err
	}
	onListen := p.OnListen
	p.OnListen = func(addr string) {
		base := "http://" + displayAddr(addr)
		fmt.Fprintf(p.Stdout, "\nEnterprise Automation API (dev mode)\n  API:      %s/\n  Docs:     %s/api/docs\n  Admin:    %s\n  Password: %s\n\n",
			base, base, cfg.FirstAdminEmail, cfg.FirstAdminPassword)
		if onListen != nil {
			onListen(addr)
		}
	}
	defer func() { p.OnListen = onListen }()
	return p.serveWith(ctx, cfg, log, pool)
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

// persistentSecret reads a secret from path, creating a random one (0600) the first time.
func persistentSecret(path string, n int) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("dev: read %s: %w", path, err)
	}
	secret := randomString(n)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev: write %s: %w", path, err)
	}
	return secret, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func randomSecret() string { return randomString(48) }
