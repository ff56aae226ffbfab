package task_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
)

// TestTaskPagePreparedKeepsCustomPlans runs TaskPage through the store's connection
// wrapper as the service does (a prepared statement under PostgreSQL's default
// plan_cache_mode=auto) on 100k tasks, 12 times on one connection with the filters of a
// user's list and of the admin's, and then asks PostgreSQL how the statement was planned:
// every call must have had a custom plan (planned for its values, so each filter and
// order uses its index), none the generic plan, which reads the whole table.
func TestTaskPagePreparedKeepsCustomPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var mode string
	require.NoError(t, pool.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode))
	require.Equal(t, "auto", mode)
	require.NoError(t, seedBigTasks(ctx, pool, bigTasks))
	f := loadBigFilters(t, ctx, pool)

	q := store.New(pool) // one connection: every call and the question below share it
	high := db.TaskPriorityHigh
	const calls = 12
	for i := range calls {
		args := db.TaskPageParams{Statuses: []string{}, Sort: "-created_at", CountLimit: 10_001, MaxRows: 21}
		if i%2 == 0 {
			args.VisibleTo, args.Statuses, args.Priority = &f.user, []string{string(db.TaskStatusPending)}, &high
		}
		_, err := q.TaskPage(ctx, args)
		require.NoError(t, err)
	}

	var generic, custom int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '-- name: TaskPage %'`).Scan(&generic, &custom))
	require.Equal(t, int64(0), generic, "no call ran the generic plan")
	require.Equal(t, int64(calls), custom, "every call was planned for its values")
}
