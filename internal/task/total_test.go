package task_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

// TestListTotalIsExactUpToTheLimitThenEstimated seeds more tasks than the exact-count
// limit: below the limit totals are exact; above it they are flagged as estimates, never
// below the limit, and paging still reaches every task.
func TestListTotalIsExactUpToTheLimitThenEstimated(t *testing.T) {
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool)
	admin, err := st.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "x", IsAdmin: true})
	require.NoError(t, err)
	actor := auth.Principal{UserID: admin.ID, IsAdmin: true}
	_, err = pool.Exec(ctx, `INSERT INTO tasks (title, status, completed_at, created_by)
		SELECT 'task ' || g, CASE WHEN g <= 30 THEN 'completed' ELSE 'pending' END::task_status,
		       CASE WHEN g <= 30 THEN now() END, $1
		FROM generate_series(1, 120) AS g`, admin.ID)
	require.NoError(t, err)

	list := func(svc *task.Service, p task.ListParams) page.Page[task.Task] {
		res, err := svc.List(ctx, actor, p)
		require.NoError(t, err)
		return res
	}
	all := task.ListParams{Page: page.Request{Limit: 10}}

	exact := list(task.NewService(st), all)
	assert.EqualValues(t, 120, exact.Total, "the default limit counts small lists exactly")
	assert.False(t, exact.TotalIsEstimate)

	capped := task.NewService(st).WithExactTotalLimit(50)
	est := list(capped, all)
	assert.True(t, est.TotalIsEstimate)
	assert.GreaterOrEqual(t, est.Total, int64(51), "an estimate is never below what was counted")
	assert.Len(t, est.Items, 10)

	// Paging past the estimate's doubt still returns the tasks.
	far := list(capped, task.ListParams{Page: page.Request{Skip: 110, Limit: 20}})
	assert.Len(t, far.Items, 10, "the last 10 of 120 tasks")

	// A filter that matches fewer than the limit is counted exactly.
	done := list(capped, task.ListParams{Page: page.Request{Limit: 10}, Statuses: []task.Status{task.StatusCompleted}})
	assert.EqualValues(t, 30, done.Total)
	assert.False(t, done.TotalIsEstimate)
	assert.EqualValues(t, 3, done.TotalPages)

	// Exactly at the limit is still exact.
	atLimit := list(task.NewService(st).WithExactTotalLimit(120), all)
	assert.EqualValues(t, 120, atLimit.Total)
	assert.False(t, atLimit.TotalIsEstimate)

	// 0 always counts exactly.
	always := list(task.NewService(st).WithExactTotalLimit(0), all)
	assert.EqualValues(t, 120, always.Total)
	assert.False(t, always.TotalIsEstimate)
}
