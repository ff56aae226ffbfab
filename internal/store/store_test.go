package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type testBundle struct {
	pool  *pgxpool.Pool
	store *store.DB
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	return &testBundle{pool: pool, store: store.New(pool)}
}

func newUser(name, email string) db.UserCreateParams {
	return db.UserCreateParams{Name: name, Email: email, PasswordHash: "not-a-real-hash"}
}

// closedPortURL returns a database URL on 127.0.0.1 where nothing listens.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return fmt.Sprintf("postgres://nobody:secret@127.0.0.1:%d/nothing?sslmode=disable&connect_timeout=5", port)
}

func TestNewExposesThePool(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Same(t, b.pool, b.store.Pool())
}

func TestDuplicateEmailInOtherCaseIsConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, err := b.store.UserCreate(ctx, newUser("Ann", "ann@example.com"))
	require.NoError(t, err)
	require.Positive(t, first.ID)

	_, err = b.store.UserCreate(ctx, newUser("Ann Again", "ANN@Example.COM"))
	require.True(t, apperr.Is(err, apperr.Conflict), "got %v", err)
	require.Contains(t, err.Error(), "users_email_lower_key")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the database error stays the cause")
	require.Equal(t, "23505", pgErr.Code)
}

func TestMissingRowIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.UserGetByID(context.Background(), 987654)
	require.True(t, apperr.Is(err, apperr.NotFound), "got %v", err)
	require.ErrorIs(t, err, pgx.ErrNoRows)

	_, err = b.store.UserGetByEmail(context.Background(), "nobody@example.com")
	require.True(t, apperr.Is(err, apperr.NotFound), "got %v", err)
}

func TestCheckViolationIsInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := map[string]db.UserCreateParams{
		"name of 101 characters": newUser(strings.Repeat("n", 101), "long@example.com"),
		"empty name":             newUser("", "empty@example.com"),
		"email too short":        newUser("Short", "a@"),
	}
	for name, params := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := b.store.UserCreate(context.Background(), params)
			require.True(t, apperr.Is(err, apperr.Invalid), "got %v", err)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "23514", pgErr.Code)
		})
	}
	// A name of exactly 100 characters is fine.
	_, err := b.store.UserCreate(context.Background(), newUser(strings.Repeat("n", 100), "hundred@example.com"))
	require.NoError(t, err)
}

func TestForeignKeyViolationIsInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := b.store.RefreshTokenCreate(context.Background(), db.RefreshTokenCreateParams{
		UserID: 424242, FamilyID: uuid.New(), TokenHash: []byte("hash"), ExpiresAt: time.Now().Add(time.Hour),
	})
	require.True(t, apperr.Is(err, apperr.Invalid), "got %v", err)
	require.Contains(t, err.Error(), "missing record")
}

func TestConstraintViolationsNameTheirConstraint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	missing := int64(424242)
	_, err := b.store.TaskCreate(ctx, db.TaskCreateParams{
		Title: "t", Priority: db.TaskPriorityMedium, AssigneeID: &missing, Tags: []string{}, Metadata: []byte("{}"),
	})
	require.True(t, apperr.Is(err, apperr.Invalid), "got %v", err)
	require.Equal(t, "tasks_assignee_id_fkey", apperr.ConstraintOf(err))

	_, err = b.store.UserCreate(ctx, newUser("Cy", "cy@example.com"))
	require.NoError(t, err)
	_, err = b.store.UserCreate(ctx, newUser("Cy", "CY@example.com"))
	require.True(t, apperr.Is(err, apperr.Conflict), "got %v", err)
	require.Equal(t, "users_email_lower_key", apperr.ConstraintOf(err))

	_, err = b.store.UserCreate(ctx, newUser("", "nameless@example.com"))
	require.True(t, apperr.Is(err, apperr.Invalid), "got %v", err)
	require.NotEmpty(t, apperr.ConstraintOf(err), "a check violation names its check")
}

func TestTranslateKeepsTheConstraintName(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"23505", "23503", "23514"} {
		err := store.Translate(&pgconn.PgError{Code: code, ConstraintName: "some_constraint"})
		require.Equal(t, "some_constraint", apperr.ConstraintOf(err), "SQLSTATE %s", code)
	}
	require.Empty(t, apperr.ConstraintOf(store.Translate(pgx.ErrNoRows)))
}

func TestListQueriesReturnRowsAndTranslateTheirErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.store.UserCreate(ctx, newUser("Bea", "bea@example.com"))
	require.NoError(t, err)
	users, err := b.store.UserList(ctx, db.UserListParams{MaxRows: 10})
	require.NoError(t, err)
	require.Len(t, users, 1)
	require.Equal(t, "bea@example.com", users[0].Email)

	// The server reports this error while rows are read, not when the query is sent.
	_, err = b.store.UserList(ctx, db.UserListParams{MaxRows: -1})
	require.Error(t, err)
	require.NotNil(t, apperr.As(err), "row errors are translated too, got %T", err)
	require.Equal(t, apperr.Internal, apperr.KindOf(err))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "2201W", pgErr.Code)
}

func TestOpenFailsWhenTheServerIsUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pool, err := store.Open(context.Background(), closedPortURL(t), 2)
	require.Error(t, err)
	require.Nil(t, pool)
	require.Contains(t, err.Error(), "connect to database")
	require.True(t, apperr.Is(store.Translate(err), apperr.Unavailable), "got %v", store.Translate(err))
	require.Less(t, time.Since(start), 15*time.Second, "a refused connection must fail fast")
}

func TestOpenRejectsAMalformedURL(t *testing.T) {
	t.Parallel()
	_, err := store.Open(context.Background(), "postgres://u:p@host:notaport/db", 0)
	require.ErrorContains(t, err, "parse database URL")
}

func TestOpenConnectsAndLimitsConnections(t *testing.T) {
	t.Parallel()
	pool, err := store.Open(context.Background(), dbtest.URL(t), 3)
	require.NoError(t, err)
	defer pool.Close()
	require.Equal(t, int32(3), pool.Config().MaxConns)
	require.NoError(t, store.New(pool).Ping(context.Background(), time.Second))
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), closedPortURL(t))
	require.NoError(t, err) // connects lazily
	defer pool.Close()
	s := store.New(pool)

	err = s.Ping(context.Background(), 5*time.Second)
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v", err)

	_, err = s.UserGetByID(context.Background(), 1)
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v", err)

	err = s.InTx(context.Background(), func(db.Querier) error { return nil })
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v", err)
}

func TestPingOnAClosedPoolIsUnavailable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), dbtest.URL(t))
	require.NoError(t, err)
	s := store.New(pool)
	require.NoError(t, s.Ping(context.Background(), 5*time.Second))
	pool.Close()

	err = store.Translate(pool.Ping(context.Background()))
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v (kind %s)", err, apperr.KindOf(err))
	err = s.Ping(context.Background(), time.Second)
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v (kind %s)", err, apperr.KindOf(err))
}

func TestServerGoneMidSessionIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var pid int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	// Terminate this backend from another connection, as a server restart would.
	_, err = b.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.True(t, apperr.Is(store.Translate(err), apperr.Unavailable), "got %v (kind %s)", store.Translate(err), apperr.KindOf(store.Translate(err)))
}

func TestInTxCommitsWhenFnSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var created db.User
	err := b.store.InTx(ctx, func(q db.Querier) error {
		var err error
		created, err = q.UserCreate(ctx, newUser("Cy", "cy@example.com"))
		if err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		_, err = q.UserGetByID(ctx, created.ID)
		return err
	})
	require.NoError(t, err)
	got, err := b.store.UserGetByID(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, "cy@example.com", got.Email)
}

func TestInTxRollsBackWhenFnFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := b.store.InTx(ctx, func(q db.Querier) error {
		if _, err := q.UserCreate(ctx, newUser("Di", "di@example.com")); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Same(t, boom, err, "errors from fn are returned as they are")

	_, err = b.store.UserGetByEmail(ctx, "di@example.com")
	require.True(t, apperr.Is(err, apperr.NotFound), "the insert must be rolled back, got %v", err)
}

func TestInTxTranslatesErrorsOfItsQueries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.store.UserCreate(ctx, newUser("Ed", "ed@example.com"))
	require.NoError(t, err)
	err = b.store.InTx(ctx, func(q db.Querier) error {
		if _, err := q.UserCreate(ctx, newUser("Fay", "fay@example.com")); err != nil {
			return err
		}
		_, err := q.UserCreate(ctx, newUser("Ed 2", "ED@example.com"))
		return err
	})
	require.True(t, apperr.Is(err, apperr.Conflict), "got %v", err)
	_, err = b.store.UserGetByEmail(ctx, "fay@example.com")
	require.True(t, apperr.Is(err, apperr.NotFound), "the first insert must be rolled back too")
}

func TestCanceledContextStaysCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := b.store.UserGetByID(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, apperr.As(err), "a canceled request is not a domain error")

	err = b.store.InTx(ctx, func(db.Querier) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, apperr.As(err))

	wrapped := fmt.Errorf("query: %w", context.Canceled)
	require.Same(t, wrapped, store.Translate(wrapped))
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Code: code, ConstraintName: "some_constraint"} }
	tests := []struct {
		name string
		err  error
		want apperr.Kind
	}{
		{name: "no rows", err: pgx.ErrNoRows, want: apperr.NotFound},
		{name: "wrapped no rows", err: fmt.Errorf("scan: %w", pgx.ErrNoRows), want: apperr.NotFound},
		{name: "unique violation", err: pg("23505"), want: apperr.Conflict},
		{name: "foreign key violation", err: pg("23503"), want: apperr.Invalid},
		{name: "check violation", err: pg("23514"), want: apperr.Invalid},
		{name: "string too long", err: pg("22001"), want: apperr.Invalid},
		{name: "serialization failure", err: pg("40001"), want: apperr.Conflict},
		{name: "deadlock", err: pg("40P01"), want: apperr.Conflict},
		{name: "connection failure", err: pg("08006"), want: apperr.Unavailable},
		{name: "admin shutdown", err: pg("57P01"), want: apperr.Unavailable},
		{name: "crash shutdown", err: pg("57P02"), want: apperr.Unavailable},
		{name: "cannot connect now", err: pg("57P03"), want: apperr.Unavailable},
		{name: "too many connections", err: pg("53300"), want: apperr.Unavailable},
		{name: "undefined table", err: pg("42P01"), want: apperr.Internal},
		{name: "syntax error", err: pg("42601"), want: apperr.Internal},
		{name: "deadline exceeded", err: context.DeadlineExceeded, want: apperr.Unavailable},
		{name: "unexpected EOF", err: io.ErrUnexpectedEOF, want: apperr.Unavailable},
		{name: "EOF", err: fmt.Errorf("read: %w", io.EOF), want: apperr.Unavailable},
		{name: "network error", err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, want: apperr.Unavailable},
		{name: "anything else", err: errors.New("something odd"), want: apperr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := store.Translate(tt.err)
			require.Error(t, got)
			e := apperr.As(got)
			require.NotNil(t, e, "Translate must return a domain error, got %T", got)
			require.Equal(t, tt.want, e.Kind, "got %v", got)
			require.ErrorIs(t, got, tt.err, "the cause is kept")
		})
	}
}

func TestTranslateLeavesNilAndDomainErrorsAlone(t *testing.T) {
	t.Parallel()
	require.NoError(t, store.Translate(nil))
	domain := apperr.E(apperr.Forbidden, "no")
	require.Same(t, domain, store.Translate(domain))
	wrapped := fmt.Errorf("svc: %w", domain)
	require.Same(t, wrapped, store.Translate(wrapped))
	require.Same(t, context.Canceled, store.Translate(context.Canceled))
}

func newMigrator(t *testing.T, pool *pgxpool.Pool) *store.Migrator {
	t.Helper()
	m, err := store.NewMigrator(pool)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

func TestMigratorOnAFreshDatabaseIsUpToDate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMigrator(t, b.pool)
	ctx := context.Background()

	current, latest, err := m.Version(ctx)
	require.NoError(t, err)
	require.Positive(t, latest)
	require.Equal(t, latest, current)

	var out bytes.Buffer
	require.NoError(t, m.Status(ctx, &out))
	require.Regexp(t, `(?m)^00001  applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S*00001_create_users\.sql$`, out.String())
	require.NotContains(t, out.String(), "pending")

	// Up on an up-to-date database is a no-op.
	var log bytes.Buffer
	require.NoError(t, m.Up(ctx, slog.New(slog.NewTextHandler(&log, nil))))
	require.NotContains(t, log.String(), "migration applied")
}

func TestMigratorDownRollsBackOneAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMigrator(t, b.pool)
	ctx := context.Background()
	_, latest, err := m.Version(ctx)
	require.NoError(t, err)

	var log bytes.Buffer
	require.NoError(t, m.Down(ctx, slog.New(slog.NewTextHandler(&log, nil))))
	require.Contains(t, log.String(), "migration rolled back")
	require.Contains(t, log.String(), fmt.Sprintf("version=%d", latest))

	current, _, err := m.Version(ctx)
	require.NoError(t, err)
	require.Less(t, current, latest, "down rolls back the newest migration")
	var out bytes.Buffer
	require.NoError(t, m.Status(ctx, &out))
	require.Regexp(t, fmt.Sprintf(`(?m)^%05d  pending\s`, latest), out.String())
	require.Regexp(t, `(?m)^00001  applied `, out.String(), "older migrations stay applied")
}

func TestMigratorDownToZeroThenUpRoundTrips(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := newMigrator(t, b.pool)
	ctx := context.Background()
	_, latest, err := m.Version(ctx)
	require.NoError(t, err)

	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	for current := latest; current > 0; {
		require.NoError(t, m.Down(ctx, logger))
		next, _, err := m.Version(ctx)
		require.NoError(t, err)
		require.Less(t, next, current)
		current = next
	}
	require.Contains(t, log.String(), "migration rolled back")

	var out bytes.Buffer
	require.NoError(t, m.Status(ctx, &out))
	require.Regexp(t, `(?m)^00001  pending\s+\S*00001_create_users\.sql$`, out.String())
	require.NotContains(t, out.String(), "applied")
	_, err = b.store.UserGetByID(ctx, 1)
	require.Error(t, err, "the users table is gone after rolling everything back")
	require.False(t, apperr.Is(err, apperr.NotFound), "a missing table is not a missing row")

	// Nothing left to roll back.
	require.Error(t, m.Down(ctx, logger))

	log.Reset()
	require.NoError(t, m.Up(ctx, logger))
	require.Contains(t, log.String(), "migration applied")
	require.Contains(t, log.String(), "00001_create_users.sql")
	current, latest2, err := m.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, latest2)
	require.Equal(t, latest, current, "after up the database is at the newest version")
	out.Reset()
	require.NoError(t, m.Status(ctx, &out))
	require.NotContains(t, out.String(), "pending")

	_, err = b.store.UserCreate(ctx, newUser("Gus", "gus@example.com"))
	require.NoError(t, err, "the schema works again after up")
}

func TestMigratorVersionOnUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), closedPortURL(t))
	require.NoError(t, err)
	defer pool.Close()
	m := newMigrator(t, pool)
	_, _, err = m.Version(context.Background())
	require.True(t, apperr.Is(err, apperr.Unavailable), "got %v", err)
}
