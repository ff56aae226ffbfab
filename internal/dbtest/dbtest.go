// Package dbtest gives each test a fresh, fully migrated PostgreSQL database, cloned from
// a template so that tests run in parallel. It uses TEST_DATABASE_URL when set and
// otherwise a private cluster (pgembed) started once per test binary.
//
// Packages using it must call Main from TestMain so the private cluster is stopped.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for pgtestdb
	"github.com/peterldowns/pgtestdb"

	"enterprise-automation/db/migrations"
	"enterprise-automation/internal/pgembed"
	"enterprise-automation/internal/store"
)

var (
	mu         sync.Mutex
	cluster    *pgembed.Cluster
	clusterDir string
	baseURL    string
	mainUsed   bool
)

// Main runs the package's tests and stops the private cluster afterwards. Call it from
// TestMain: func TestMain(m *testing.M) { dbtest.Main(m) }.
func Main(m *testing.M) {
	mu.Lock()
	mainUsed = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: stop cluster:", err)
		}
		_ = os.RemoveAll(clusterDir)
	}
	mu.Unlock()
	os.Exit(code)
}

// server returns the URL of the server to create test databases on.
func server(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if baseURL != "" {
		return baseURL
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		baseURL = u
		return baseURL
	}
	if !mainUsed {
		t.Fatalf("dbtest: call dbtest.Main(m) from TestMain so the private PostgreSQL is stopped")
	}
	dir, err := os.MkdirTemp("", "dbtest-")
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	// A package's parallel tests each serve an instance (pool, queue listener, their own
	// pools) on this one cluster: under -race on a busy machine they overlap by dozens.
	c, err := pgembed.Start(context.Background(), pgembed.Options{Dir: dir, TCP: true, Fast: true, MaxConnections: 500, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("dbtest: start private PostgreSQL (set TEST_DATABASE_URL to use another server): %v", err)
	}
	cluster, clusterDir, baseURL = c, dir, c.TCPURL("postgres")
	return baseURL
}

// URL returns the URL of a new database with every migration applied. The database is
// dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(server(t))
	if err != nil {
		t.Fatalf("dbtest: parse server URL: %v", err)
	}
	pw, _ := u.User.Password()
	conf := pgtestdb.Config{
		DriverName: "pgx",
		Host:       u.Hostname(),
		Port:       u.Port(),
		User:       u.User.Username(),
		Password:   pw,
		Database:   u.Path[1:],
		Options:    "sslmode=disable",
		// Servers under test may keep pooled connections until the very end.
		ForceTerminateConnections: true,
	}
	if conf.Port == "" {
		conf.Port = "5432"
	}
	return pgtestdb.Custom(t, conf, migrator{}).URL()
}

// Pool returns a pool on a new migrated database, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrator applies the embedded goose migrations to the template database.
type migrator struct{}

// Hash identifies the template by the migrations' names and contents and by the job
// queue module's version, which brings its own migrations.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/riverqueue/river" {
				fmt.Fprintf(h, "river %s\x00", dep.Version)
			}
		}
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Migrate applies every migration, exactly as the migrate command does.
func (migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := store.NewMigrator(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up(ctx, slog.New(slog.DiscardHandler))
}
