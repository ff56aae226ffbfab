package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The list scenarios measure pages against the RAW SQL that returns the same result:
// minimal hand-written statements sent through pgx as prepared statements (what
// `pgbench -M prepared` sends), not the service's own queries, so that the ratio shows
// everything the server adds (HTTP, validation, planning, JSON) on top of the database's
// unavoidable work.

// rawExactTotalLimit is the tasks' exact-count limit (TASK_EXACT_TOTAL_LIMIT's default):
// the raw task baselines count up to it and estimate beyond, as the server does.
const rawExactTotalLimit = 10_000

// init registers the list scenarios before the separate ones (login stays last).
func init() {
	scenarios = slices.Insert(scenarios, slices.IndexFunc(scenarios, func(s scenarioDef) bool { return s.separate }), listScenarios...)
}

var listScenarios = []scenarioDef{
	{
		name: "users-list", desc: "GET /api/v1/users?skip={0..9980}&limit=20, count + page, as admin",
		httpWhat: "GET /api/v1/users?skip={random 0..9,980}&limit=20 as the admin (total and a page ordered by id)",
		baseWhat: "raw prepared SQL: SELECT count(*) FROM users; SELECT * FROM users ORDER BY id LIMIT 20 OFFSET $1",
		targeter: func(e *runEnv) vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.Header = http.MethodGet, e.admin.header
				t.URL = fmt.Sprintf("%s/api/v1/users?skip=%d&limit=20", e.base, randomUserSkip(e))
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				var total int64
				if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&total); err != nil {
					return err
				}
				return rawRows(ctx, e, `SELECT * FROM users ORDER BY id LIMIT 20 OFFSET $1`, randomUserSkip(e))
			}
		},
	},
	{
		name: "tasks-list-filtered", desc: "GET /api/v1/tasks?status=…&priority=…&limit=20 as a normal user (own and assigned tasks)",
		httpWhat: "GET /api/v1/tasks?status={random}&priority={random}&limit=20 (default sort -created_at) as a random logged-in seeded user: only the tasks they created or are assigned",
		baseWhat: "raw prepared SQL: count up to 10,001 of (created_by = $1 OR assignee_id = $1) AND status AND priority, then the page ORDER BY created_at DESC, id DESC LIMIT 20",
		targeter: func(e *runEnv) vegeta.Targeter {
			return func(t *vegeta.Target) error {
				a := e.randomActor()
				t.Method, t.Header = http.MethodGet, a.header
				t.URL = fmt.Sprintf("%s/api/v1/tasks?status=%s&priority=%s&limit=20", e.base, randomStatus(), randomPriority())
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				a, status, prio := e.randomActor(), randomStatus(), randomPriority()
				var total int64
				if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM tasks
					WHERE (created_by = $1 OR assignee_id = $1) AND status = $2::task_status AND priority = $3::task_priority
					LIMIT $4) AS m`, a.id, status, prio, rawExactTotalLimit+1).Scan(&total); err != nil {
					return err
				}
				return rawRows(ctx, e, `SELECT * FROM tasks
					WHERE (created_by = $1 OR assignee_id = $1) AND status = $2::task_status AND priority = $3::task_priority
					ORDER BY created_at DESC, id DESC LIMIT 20`, a.id, status, prio)
			}
		},
	},
}

// randomUserSkip is a skip into the seeded users that leaves a page of 20.
func randomUserSkip(e *runEnv) int {
	return rand.IntN(max(1, len(e.data.userIDs)-20) + 1)
}

func randomPriority() string { return priorities[rand.IntN(len(priorities))] }

// rawRows runs a prepared query and reads every column of every row, as a client would.
func rawRows(ctx context.Context, e *runEnv, sql string, args ...any) error {
	rows, err := e.pool.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			return err
		}
	}
	return rows.Err()
}
