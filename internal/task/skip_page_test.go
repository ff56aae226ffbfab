package task_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

// pageRecorder is the store, recording which page query each list ran.
type pageRecorder struct {
	*store.DB
	mu    sync.Mutex
	calls []string
}

func (r *pageRecorder) record(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
}

func (r *pageRecorder) TaskPage(ctx context.Context, arg db.TaskPageParams) ([]db.TaskPageRow, error) {
	r.record("TaskPage")
	return r.DB.TaskPage(ctx, arg)
}

func (r *pageRecorder) TaskPageSkip(ctx context.Context, arg db.TaskPageSkipParams) ([]db.TaskPageSkipRow, error) {
	r.record("TaskPageSkip")
	return r.DB.TaskPageSkip(ctx, arg)
}

// TestTaskListPicksTheSkipPageOnlyForSkipsWithoutCursor lists 30 tasks in pages of 10:
// the first page and every cursor page run TaskPage (a range of the order's index), a
// page that skips tasks without a cursor runs TaskPageSkip, and both return the same
// tasks for the same position.
func TestTaskListPicksTheSkipPageOnlyForSkipsWithoutCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 2)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	rec := &pageRecorder{DB: store.New(pool)}
	svc := task.NewService(rec)
	u, err := rec.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "not-a-hash", IsAdmin: true})
	require.NoError(t, err)
	admin := auth.Principal{UserID: u.ID, Email: u.Email, IsAdmin: true}
	for i := range 30 {
		_, err := pool.Exec(ctx, `INSERT INTO tasks (title, priority, created_by) VALUES ($1, $2, $3)`,
			fmt.Sprintf("Task %d", i), []string{"low", "high", "urgent"}[i%3], u.ID)
		require.NoError(t, err)
	}

	for _, sort := range task.Sorts {
		t.Run(sort, func(t *testing.T) {
			list := func(r page.Request) page.Page[task.Task] {
				rec.mu.Lock()
				rec.calls = nil
				rec.mu.Unlock()
				pg, err := svc.List(ctx, admin, task.ListParams{Sort: sort, Page: r})
				require.NoError(t, err)
				return pg
			}
			called := func() string {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return strings.Join(rec.calls, ",")
			}

			first := list(page.Request{Limit: 10})
			require.Equal(t, "TaskPage", called())
			byCursor := list(page.Request{Limit: 10, Cursor: first.NextCursor})
			require.Equal(t, "TaskPage", called())
			bySkip := list(page.Request{Limit: 10, Skip: 10})
			require.Equal(t, "TaskPageSkip", called())
			require.Len(t, bySkip.Items, 10)
			require.Equal(t, taskIDs(byCursor.Items), taskIDs(bySkip.Items))
			require.Equal(t, byCursor.Total, bySkip.Total)
			require.Equal(t, int64(30), bySkip.Total)
		})
	}
}

// TestTaskPageSkipReadsSkippedTasksFromTheIndexAt100kRows explains the SQL and arguments
// TaskPageSkip sends (custom plans) for a page 5,000 tasks deep in every order, and 500
// deep among the failed tasks: the page is a nested loop that takes the skipped tasks'
// ids from the order's index (with the status, from the status index: 1 % of the
// tasks) and reads only the page's rows from the table, by primary key.
func TestTaskPageSkipReadsSkippedTasksFromTheIndexAt100kRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openTracedPool(t, dbtest.URL(t))
	require.NoError(t, seedBigTasks(ctx, pool, bigTasks))
	q := db.New(pool)

	for sort, index := range keysetIndexes {
		for _, statuses := range [][]string{{}, {string(db.TaskStatusFailed)}} {
			t.Run(fmt.Sprintf("%s statuses %v", sort, statuses), func(t *testing.T) {
				skip := int32(5_000)
				if len(statuses) > 0 {
					skip = 500 // about 1 % of the tasks failed
				}
				cctx, c := capturing(ctx)
				res, err := q.TaskPageSkip(cctx, db.TaskPageSkipParams{Statuses: statuses, Sort: sort, CountLimit: 10_001, MaxRows: 21, SkipRows: skip})
				require.NoError(t, err)
				require.Len(t, res, 21)
				plan := explain(t, ctx, pool, c)
				var skipped, byKey bool
				plan.walk(func(n planNode) {
					if n.NodeType != "Nested Loop" {
						return
					}
					n.walk(func(n planNode) {
						skipped = skipped || (strings.HasPrefix(n.NodeType, "Index") && n.IndexName == index) ||
							(len(statuses) > 0 && n.IndexName == "tasks_status_idx")
						byKey = byKey || (n.NodeType == "Index Scan" && n.IndexName == "tasks_pkey")
					})
				})
				require.True(t, skipped, "the skipped tasks are read from %s: %s", index, plan.summary())
				require.True(t, byKey, "the page's rows are read by primary key: %s", plan.summary())
			})
		}
	}
}
