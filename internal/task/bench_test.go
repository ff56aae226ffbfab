package task_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

// benchWorld is the 100k-task database the list benchmarks share.
type benchWorld struct {
	svc  *task.Service
	user int64 // a user with ~2% of the tasks as creator and ~1.6% as assignee
}

var (
	benchOnce sync.Once
	benchData benchWorld
)

// seedBench seeds the shared database once per process. It must be called from the
// top-level benchmark: that function runs exactly once per process (only its
// sub-benchmarks are re-run for b.N, -count and -cpu), so the database, dropped when b
// ends, outlives every case.
func seedBench(b *testing.B) benchWorld {
	b.Helper()
	benchOnce.Do(func() {
		ctx := context.Background()
		pool, err := store.Open(ctx, dbtest.URL(b), 4)
		require.NoError(b, err)
		b.Cleanup(pool.Close)
		rows := bigTasks
		if v, err := strconv.Atoi(os.Getenv("TASK_BENCH_ROWS")); err == nil && v > 0 {
			rows = v // e.g. TASK_BENCH_ROWS=1000000 for the 1M figures
		}
		require.NoError(b, seedBigTasks(ctx, pool, rows))
		benchData.svc = task.NewService(store.New(pool))
		require.NoError(b, pool.QueryRow(ctx, `SELECT min(id) FROM users`).Scan(&benchData.user))
	})
	require.NotNil(b, benchData.svc, "seeding failed in an earlier benchmark")
	return benchData
}

// BenchmarkTaskList measures the service's List (count and page in one transaction) on
// 100k tasks, through a pool configured like production (store.Open).
func BenchmarkTaskList(b *testing.B) {
	w := seedBench(b)
	admin := auth.Principal{UserID: w.user, IsAdmin: true}
	first := page.Request{Limit: 20}
	cases := []struct {
		name  string
		actor auth.Principal
		p     task.ListParams
	}{
		{"default_sort_no_filter", admin, task.ListParams{Page: first}},
		{"status_and_assignee", admin, task.ListParams{Page: first, Statuses: []task.Status{task.StatusPending}, AssigneeID: &w.user}},
		{"q_search", admin, task.ListParams{Page: first, Q: ptr("migrate")}},
		{"tag", admin, task.ListParams{Page: first, Tag: ptr("security")}},
		{"non_admin_visibility", auth.Principal{UserID: w.user}, task.ListParams{Page: first}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			got, err := w.svc.List(ctx, c.actor, c.p)
			require.NoError(b, err)
			require.Len(b, got.Items, int(first.Limit), "the case must fill a page to measure anything")
			for b.Loop() {
				if _, err := w.svc.List(ctx, c.actor, c.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
