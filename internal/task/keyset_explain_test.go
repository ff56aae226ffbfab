package task_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/dbtest"
)

// keysetIndexes is the index each order's keyset pages must be read from.
var keysetIndexes = map[string]string{
	"created_at": "tasks_created_at_idx", "-created_at": "tasks_created_at_idx",
	"updated_at": "tasks_updated_at_idx", "-updated_at": "tasks_updated_at_idx",
	"due_at": "tasks_due_at_last_idx", "-due_at": "tasks_due_at_desc_last_idx",
	"priority": "tasks_priority_idx", "-priority": "tasks_priority_idx",
}

// TestTaskPageKeysetIsAnIndexRangeAt100kRows explains the exact SQL and arguments TaskPage
// sends (custom plans, as store.Open runs it) for a page 5,000 tasks deep in every order,
// alone and with a status filter: the page is read from the order's index from the
// cursor's position on, with no Sort node, so a deep page costs what the first does. With
// the (selective) filter the planner may instead sort the matching rows after the cursor,
// which it reads through indexes: that too costs no more deep than on the first page.
func TestTaskPageKeysetIsAnIndexRangeAt100kRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openTracedPool(t, dbtest.URL(t))
	require.NoError(t, seedBigTasks(ctx, pool, bigTasks))
	q := db.New(pool)

	orderBy := map[string]string{
		"created_at": "created_at, id", "-created_at": "created_at DESC, id DESC",
		"updated_at": "updated_at, id", "-updated_at": "updated_at DESC, id DESC",
		"due_at": "due_at NULLS LAST, id", "-due_at": "due_at DESC NULLS LAST, id DESC",
		"priority": "priority, id", "-priority": "priority DESC, id DESC",
	}
	for sort, index := range keysetIndexes {
		for _, statuses := range [][]string{{}, {string(db.TaskStatusFailed)}} {
			t.Run(fmt.Sprintf("%s statuses %v", sort, statuses), func(t *testing.T) {
				var row db.Task
				where := ""
				if len(statuses) > 0 {
					where = "WHERE status = '" + statuses[0] + "'"
				}
				require.NoError(t, pool.QueryRow(ctx, `SELECT id, created_at, updated_at, due_at, priority FROM tasks `+where+
					` ORDER BY `+orderBy[sort]+` OFFSET 500 LIMIT 1`).Scan(&row.ID, &row.CreatedAt, &row.UpdatedAt, &row.DueAt, &row.Priority))
				args := db.TaskPageParams{Statuses: statuses, Sort: sort, CountLimit: 10_001, MaxRows: 21, AfterID: &row.ID}
				switch strings.TrimPrefix(sort, "-") {
				case "created_at":
					args.AfterTime = &row.CreatedAt
				case "updated_at":
					args.AfterTime = &row.UpdatedAt
				case "due_at":
					args.AfterTime = row.DueAt
				case "priority":
					args.AfterPriority = &row.Priority
				}
				cctx, c := capturing(ctx)
				res, err := q.TaskPage(cctx, args)
				require.NoError(t, err)
				require.Len(t, res, 21)
				plan := explain(t, ctx, pool, c)
				if len(statuses) > 0 && hasSort(plan) {
					// A selective filter may be served by its own index and a sort of the
					// matching rows after the cursor (the planner's choice by its
					// statistics): bounded by the filter, never by the table or the depth.
					plan.walk(func(n planNode) {
						require.NotEqual(t, "Seq Scan", n.NodeType, "the filtered page reads from indexes: %s", plan.summary())
					})
					return
				}
				require.False(t, hasSort(plan), "no Sort: %s", plan.summary())
				var scanned bool
				plan.walk(func(n planNode) {
					scanned = scanned || (strings.HasPrefix(n.NodeType, "Index") && n.IndexName == index) ||
						(len(statuses) > 0 && strings.HasPrefix(sort, "-created") && n.IndexName == "tasks_status_idx")
				})
				require.True(t, scanned, "the page is read from %s: %s", index, plan.summary())
			})
		}
	}
}
