// Package store opens the PostgreSQL pool and gives services the sqlc queries with
// transactions, translating database errors into domain errors exactly once.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/tracing"
)

// Store is what services depend on: every sqlc query, plus transactions.
type Store interface {
	db.Querier
	// InTx runs fn in one transaction, committing when fn returns nil and rolling back
	// otherwise. fn must use only the Querier it is given.
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// DB is the pgx-backed Store.
type DB struct {
	*db.Queries
	pool *pgxpool.Pool
}

var _ Store = (*DB)(nil)

// New wraps a pool.
func New(pool *pgxpool.Pool) *DB {
	return &DB{Queries: db.New(translating{pool}), pool: pool}
}

// Pool returns the underlying pool (for migrations, health checks and metrics).
func (s *DB) Pool() *pgxpool.Pool { return s.pool }

// InTx implements Store. Errors from fn are returned as they are; commit failures are
// translated like any database error.
func (s *DB) InTx(ctx context.Context, fn func(q db.Querier) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Translate(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(txQueries{Queries: db.New(translating{tx}), tx: tx}); err != nil {
		return err
	}
	return Translate(tx.Commit(ctx))
}

// txQueries is the Querier InTx hands out; it remembers its transaction so that the job
// queue can join it (see Tx).
type txQueries struct {
	*db.Queries
	tx pgx.Tx
}

// Tx returns the transaction behind a Querier given out by InTx, so that libraries that
// take a pgx.Tx (the job queue) write in the same transaction. ok is false outside InTx.
func Tx(q db.Querier) (tx pgx.Tx, ok bool) {
	t, ok := q.(txQueries)
	return t.tx, ok
}

// Ping checks that the database answers, within timeout.
func (s *DB) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return Translate(s.pool.Ping(ctx))
}

// Open connects a pool to url and checks it answers. The error says whether the URL
// is malformed or the server unreachable.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return OpenWith(ctx, url, Options{MaxConns: maxConns})
}

// Options configures OpenWith.
type Options struct {
	// MaxConns bounds the pool (0: pgx's default).
	MaxConns int32
	// QueryLog, when set, receives every statement's SQL at DEBUG level (DATABASE_ECHO);
	// never its arguments.
	QueryLog *slog.Logger
	// Tracing, when enabled, makes each statement run inside a trace a span of it
	// (nil: off).
	Tracing *tracing.Tracing
}

// OpenWith is Open with options. It fails like Open.
func OpenWith(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	var tracers []pgx.QueryTracer
	if opts.QueryLog != nil {
		tracers = append(tracers, queryLog{log: opts.QueryLog})
	}
	if opts.Tracing.Enabled() {
		tracers = append(tracers, newSQLTracer(opts.Tracing.Provider()))
	}
	switch len(tracers) {
	case 1:
		cfg.ConnConfig.Tracer = tracers[0]
	case 2:
		cfg.ConnConfig.Tracer = multitracer.New(tracers...)
	}
	// Fail fast when the database is gone instead of hanging requests.
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to database: %w", err)
	}
	return pool, nil
}

// Translate maps a database error to a domain error: no rows → NotFound, unique
// violation → Conflict, foreign key or check violation → Invalid, lost connection →
// Unavailable; anything else → Internal. Constraint violations keep the constraint's
// name (apperr.ConstraintOf). nil stays nil.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if apperr.As(err) != nil || errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return apperr.Wrap(apperr.NotFound, err, "not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return withConstraint(apperr.Wrap(apperr.Conflict, err, "already exists (%s)", pgErr.ConstraintName), pgErr)
		case pgErr.Code == "23503":
			return withConstraint(apperr.Wrap(apperr.Invalid, err, "refers to a missing record (%s)", pgErr.ConstraintName), pgErr)
		case pgErr.Code == "22021", pgErr.Code == "22P05":
			return apperr.Wrap(apperr.Invalid, err, "text contains characters that cannot be stored (NUL bytes or invalid UTF-8)")
		case pgErr.Code == "23514", pgErr.Code == "22001":
			return withConstraint(apperr.Wrap(apperr.Invalid, err, "violates a constraint (%s)", pgErr.ConstraintName), pgErr)
		case pgErr.Code == "40001", pgErr.Code == "40P01":
			return apperr.Wrap(apperr.Conflict, err, "concurrent update; retry")
		case strings.HasPrefix(pgErr.Code, "08"), pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", pgErr.Code == "53300":
			return apperr.Wrap(apperr.Unavailable, err, "the database is unavailable")
		}
		return apperr.Wrap(apperr.Internal, err, "database error")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.Timeout(err) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return apperr.Wrap(apperr.Unavailable, err, "the database is unavailable")
	}
	return apperr.Wrap(apperr.Internal, err, "database error")
}

// withConstraint keeps the violated constraint's name on e, so that services decide by
// name (apperr.ConstraintOf) rather than by reading messages.
func withConstraint(e *apperr.Error, pgErr *pgconn.PgError) *apperr.Error {
	e.Constraint = pgErr.ConstraintName
	return e
}

// translating wraps a pgx connection, pool or transaction so that every error the
// generated queries see is already translated.
type translating struct{ inner db.DBTX }

func (t translating) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.inner.Exec(ctx, sql, withPlanMode(sql, args)...)
	return tag, Translate(err)
}

func (t translating) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.inner.Query(ctx, sql, withPlanMode(sql, args)...)
	if err != nil {
		return nil, Translate(err)
	}
	return translatingRows{rows}, nil
}

func (t translating) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return translatingRow{t.inner.QueryRow(ctx, sql, withPlanMode(sql, args)...)}
}

// customPlanQueries names the queries (as sqlc names them) that take optional filters as
// "$n IS NULL OR …" and a sort parameter. Run as unnamed statements they are planned for
// each call's values, which folds the unused filters and sort cases away so every filter
// and order uses its index. Every other query keeps pgx's cached prepared statement and
// its cheaper generic plan. TestCustomPlanQueriesExistAndRunUnprepared fails when a name
// here no longer matches a generated query.
//
// The list pages TaskPage, TaskPageSkip and UserPageFiltered are catch-all queries too, but they run
// prepared: PostgreSQL's plan_cache_mode=auto plans a prepared statement for each call's
// values as long as its generic plan is estimated dearer than the custom ones, and their
// generic plans read the whole table (TaskPage at 100k tasks: cost ~48,000 against ~250),
// so every call still gets its own plan while parse and analysis happen once per
// connection (TestTaskPagePreparedKeepsCustomPlans counts the plans PostgreSQL made).
var customPlanQueries = []string{
	"TaskList", "TaskCount", "TaskCountUpTo", "TaskCountSample",
	"UserList", "UserCount",
	"AgentList", "AgentCount",
	"AgentRunList", "AgentRunCount", "AgentRunPage",
}

// customPlanPrefixes are the first bytes of the SQL of customPlanQueries: sqlc starts
// every statement with its "-- name: <Name> :<kind>" line.
var customPlanPrefixes = func() []string {
	p := make([]string, len(customPlanQueries))
	for i, name := range customPlanQueries {
		p[i] = "-- name: " + name + " "
	}
	return p
}()

// withPlanMode asks pgx to run sql as an unnamed statement, planned for its values, when
// it is one of customPlanQueries.
func withPlanMode(sql string, args []any) []any {
	for _, prefix := range customPlanPrefixes {
		if strings.HasPrefix(sql, prefix) {
			return append([]any{pgx.QueryExecModeExec}, args...)
		}
	}
	return args
}

type translatingRows struct{ pgx.Rows }

func (r translatingRows) Err() error { return Translate(r.Rows.Err()) }

type translatingRow struct{ pgx.Row }

func (r translatingRow) Scan(dest ...any) error { return Translate(r.Row.Scan(dest...)) }
