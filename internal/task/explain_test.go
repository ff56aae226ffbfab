package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

const bigTasks = 100_000

// seedBigTasks inserts 50 users and n tasks in two statements, then ANALYZEs so that the
// planner sees realistic statistics. Every filter has a selective value (about 1% of the
// rows): status failed, priority urgent, tag security, each user as creator (2%) or
// assignee (1.6%), the earliest and latest due dates; titles and descriptions carry words
// and md5 digests for trigram search. created_at follows insertion order, as in production.
//
// The indexes of tasks that back no constraint are dropped before the insert and
// recreated from their own definitions afterwards: a bulk build is much faster than
// maintaining three GIN indexes row by row. No VACUUM: whether it can mark pages
// all-visible depends on other sessions of the server, which would make index-only scans,
// and so the plans, vary from run to run.
func seedBigTasks(ctx context.Context, pool *pgxpool.Pool, n int) error {
	if _, err := pool.Exec(ctx, `INSERT INTO users (name, email, password_hash)
		SELECT 'User ' || g, 'user' || g || '@example.test', 'not-a-hash' FROM generate_series(1, 50) AS g`); err != nil {
		return fmt.Errorf("seed users: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'tasks'::regclass
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)`)
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Def string }])
	if err != nil {
		return fmt.Errorf("list indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{ix.Name}.Sanitize()); err != nil {
			return fmt.Errorf("drop index %s: %w", ix.Name, err)
		}
	}
	if _, err := pool.Exec(ctx, `
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM users),
r AS (
    SELECT g, random() AS r_status, random() AS r_prio, random() AS r_assignee, random() AS r_creator,
           random() AS r_due, random() AS r_tag, random() AS r_word, random() AS r_upd,
           now() - make_interval(secs => ($1::int - g) * 30) AS created_at
    FROM generate_series(1, $1::int) AS g
),
s AS (
    SELECT r.*, CASE WHEN r_status < 0.01 THEN 'failed'
                     WHEN r_status < 0.45 THEN 'pending'
                     WHEN r_status < 0.65 THEN 'in_progress'
                     WHEN r_status < 0.95 THEN 'completed'
                     ELSE 'cancelled' END::task_status AS status
    FROM r
)
INSERT INTO tasks (title, description, status, priority, assignee_id, created_by, due_at, tags,
                   created_at, updated_at, completed_at)
SELECT 'Task ' || g || ' ' || (ARRAY['deploy', 'review', 'migrate', 'backup', 'audit', 'invoice', 'onboard', 'release'])[1 + floor(r_word * 8)::int],
       'Notes for the ' || (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4] || ' team: ' || md5(g::text),
       status,
       CASE WHEN r_prio < 0.01 THEN 'urgent' WHEN r_prio < 0.30 THEN 'low'
            WHEN r_prio < 0.80 THEN 'medium' ELSE 'high' END::task_priority,
       CASE WHEN r_assignee < 0.2 THEN NULL ELSE ids[1 + floor((r_assignee - 0.2) / 0.8 * 50)::int] END,
       ids[1 + floor(r_creator * 50)::int],
       CASE WHEN r_due < 0.1 THEN NULL ELSE date_trunc('hour', now()) + make_interval(hours => floor(r_due * 5000)::int) END,
       CASE WHEN r_tag < 0.01 THEN ARRAY['security', 'ops'] WHEN r_tag < 0.30 THEN ARRAY['backend']
            WHEN r_tag < 0.60 THEN ARRAY['frontend', 'ops'] WHEN r_tag < 0.90 THEN ARRAY['data']
            ELSE '{}' END,
       created_at,
       created_at + make_interval(mins => floor(r_upd * 600)::int),
       CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN created_at + interval '1 hour' END
FROM s, u`, n); err != nil {
		return fmt.Errorf("seed tasks: %w", err)
	}
	for _, ix := range indexes {
		if _, err := pool.Exec(ctx, ix.Def); err != nil {
			return fmt.Errorf("recreate index %s: %w", ix.Name, err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE users, tasks`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// captured is the SQL and arguments of the first query run with a context from capturing.
type captured struct {
	mu   sync.Mutex
	sql  string
	args []any
}

type capturedKey struct{}

func capturing(ctx context.Context) (context.Context, *captured) {
	c := &captured{}
	return context.WithValue(ctx, capturedKey{}, c), c
}

// queryRecorder is a pgx.QueryTracer recording queries into the captured of their context.
type queryRecorder struct{}

func (queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if c, ok := ctx.Value(capturedKey{}).(*captured); ok {
		c.mu.Lock()
		if c.sql == "" {
			c.sql, c.args = d.SQL, slices.Clone(d.Args)
		}
		c.mu.Unlock()
	}
	return ctx
}

func (queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// openTracedPool opens a pool configured like store.Open (custom plans) that records queries.
func openTracedPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = queryRecorder{}
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// planNode is the part of an EXPLAIN (FORMAT JSON) node the assertions need.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	Direction string     `json:"Scan Direction"`
	Rows      float64    `json:"Plan Rows"`
	Cost      float64    `json:"Total Cost"`
	Plans     []planNode `json:"Plans"`
}

func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// summary renders the plan tree compactly for messages.
func (n planNode) summary() string {
	var b strings.Builder
	var rec func(planNode, int)
	rec = func(n planNode, depth int) {
		fmt.Fprintf(&b, "\n%s%s", strings.Repeat("  ", depth), n.NodeType)
		if n.IndexName != "" {
			fmt.Fprintf(&b, " using %s", n.IndexName)
		}
		if n.Relation != "" {
			fmt.Fprintf(&b, " on %s", n.Relation)
		}
		if n.Direction != "" && n.Direction != "Forward" {
			fmt.Fprintf(&b, " (%s)", n.Direction)
		}
		fmt.Fprintf(&b, " (cost %.0f, rows %.0f)", n.Cost, n.Rows)
		for _, c := range n.Plans {
			rec(c, depth+1)
		}
	}
	rec(n, 0)
	return b.String()
}

// explain runs EXPLAIN (FORMAT JSON) on exactly the SQL and arguments a generated query sent.
func explain(t *testing.T, ctx context.Context, pool *pgxpool.Pool, c *captured) planNode {
	t.Helper()
	c.mu.Lock()
	sql, args := c.sql, c.args
	c.mu.Unlock()
	require.NotEmpty(t, sql, "the generated query was not traced")
	var out []byte
	require.NoError(t, pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&out))
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(out, &plans))
	require.Len(t, plans, 1)
	return plans[0].Plan
}

// indexScans returns the indexes of tasksIndexes the plan scans, and whether it reads
// tasks sequentially.
func indexScans(plan planNode, tasksIndexes []string) (used []string, seqScan bool) {
	plan.walk(func(n planNode) {
		switch n.NodeType {
		case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
			if slices.Contains(tasksIndexes, n.IndexName) && !slices.Contains(used, n.IndexName) {
				used = append(used, n.IndexName)
			}
		case "Seq Scan":
			if n.Relation == "tasks" {
				seqScan = true
			}
		}
	})
	return used, seqScan
}

func hasSort(plan planNode) bool {
	found := false
	plan.walk(func(n planNode) { found = found || n.NodeType == "Sort" || n.NodeType == "Incremental Sort" })
	return found
}

// bigFilters are the selective values of the seeded data, one filter at a time.
type bigFilters struct {
	user      int64 // a user who is creator and assignee of ~2% of the tasks each
	q         string
	dueBefore time.Time
	dueAfter  time.Time
}

func loadBigFilters(t *testing.T, ctx context.Context, pool *pgxpool.Pool) bigFilters {
	t.Helper()
	var f bigFilters
	require.NoError(t, pool.QueryRow(ctx, `SELECT min(id) FROM users`).Scan(&f.user))
	// Eight hex digits of one task's digest: one match, as a search for a ticket number would.
	require.NoError(t, pool.QueryRow(ctx, `SELECT upper(substr(md5('4242'), 5, 8))`).Scan(&f.q))
	require.NoError(t, pool.QueryRow(ctx, `SELECT percentile_disc(0.01) WITHIN GROUP (ORDER BY due_at),
		percentile_disc(0.99) WITHIN GROUP (ORDER BY due_at) FROM tasks`).Scan(&f.dueBefore, &f.dueAfter))
	return f
}

func (f bigFilters) cases() []struct {
	name string
	p    db.TaskCountParams
} {
	urgent := db.TaskPriorityUrgent
	return []struct {
		name string
		p    db.TaskCountParams
	}{
		{"status", db.TaskCountParams{Statuses: []string{string(db.TaskStatusFailed)}}},
		{"priority", db.TaskCountParams{Priority: &urgent}},
		{"assignee_id", db.TaskCountParams{AssigneeID: &f.user}},
		{"created_by", db.TaskCountParams{CreatedBy: &f.user}},
		{"tag", db.TaskCountParams{Tag: ptr("security")}},
		{"q", db.TaskCountParams{Q: ptr(page.EscapeLike(f.q))}},
		{"due_before", db.TaskCountParams{DueBefore: &f.dueBefore}},
		{"due_after", db.TaskCountParams{DueAfter: &f.dueAfter}},
		{"visible_to", db.TaskCountParams{VisibleTo: &f.user}},
	}
}

// sortIndexes is the index each order must be read from: no Sort node, no Seq Scan.
var sortIndexes = map[string]string{
	"created_at": "tasks_created_at_idx", "-created_at": "tasks_created_at_idx",
	"updated_at": "tasks_updated_at_idx", "-updated_at": "tasks_updated_at_idx",
	"due_at": "tasks_due_at_idx", "-due_at": "tasks_due_at_desc_idx",
	"priority": "tasks_priority_idx", "-priority": "tasks_priority_idx",
}

// TestListQueriesUseIndexesAt100kRows explains the exact SQL and arguments TaskList and
// TaskCount send (through a traced pool configured like store.Open) on 100k tasks: each
// filter alone and each sort alone must be served by an index of tasks, never a Seq Scan,
// and each sort must come straight from its own index, without a Sort node.
func TestListQueriesUseIndexesAt100kRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openTracedPool(t, dbtest.URL(t))
	var mode string
	require.NoError(t, pool.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode))
	require.Equal(t, "force_custom_plan", mode)

	begin := time.Now()
	require.NoError(t, seedBigTasks(ctx, pool, bigTasks))
	t.Logf("seeded %d tasks in %s", bigTasks, time.Since(begin).Round(time.Millisecond))

	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'tasks'`)
	require.NoError(t, err)
	tasksIndexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, idx := range sortIndexes {
		require.Contains(t, tasksIndexes, idx)
	}
	f := loadBigFilters(t, ctx, pool)
	q := db.New(pool)

	for _, sort := range task.Sorts {
		t.Run("TaskList sort "+sort, func(t *testing.T) {
			t.Parallel()
			cctx, c := capturing(ctx)
			_, err := q.TaskList(cctx, db.TaskListParams{Statuses: []string{}, Sort: sort, MaxRows: page.DefaultLimit})
			require.NoError(t, err)
			plan := explain(t, ctx, pool, c)
			used, seq := indexScans(plan, tasksIndexes)
			require.False(t, seq, "sort %s reads tasks sequentially:%s", sort, plan.summary())
			require.Equal(t, []string{sortIndexes[sort]}, used, "sort %s must be read from its index:%s", sort, plan.summary())
			require.False(t, hasSort(plan), "sort %s must not sort rows:%s", sort, plan.summary())
		})
	}

	for _, fc := range f.cases() {
		t.Run("TaskList filter "+fc.name, func(t *testing.T) {
			t.Parallel()
			cctx, c := capturing(ctx)
			p := fc.p
			if p.Statuses == nil {
				p.Statuses = []string{}
			}
			_, err := q.TaskList(cctx, db.TaskListParams{
				VisibleTo: p.VisibleTo, Statuses: p.Statuses, Priority: p.Priority, AssigneeID: p.AssigneeID,
				CreatedBy: p.CreatedBy, Tag: p.Tag, Q: p.Q, DueBefore: p.DueBefore, DueAfter: p.DueAfter,
				Sort: task.Sorts[0], MaxRows: page.DefaultLimit,
			})
			require.NoError(t, err)
			plan := explain(t, ctx, pool, c)
			used, seq := indexScans(plan, tasksIndexes)
			require.False(t, seq, "filter %s reads tasks sequentially:%s", fc.name, plan.summary())
			require.NotEmpty(t, used, "filter %s uses no index of tasks:%s", fc.name, plan.summary())
			t.Logf("filter %s: %v", fc.name, used)
		})
		t.Run("TaskCount filter "+fc.name, func(t *testing.T) {
			t.Parallel()
			cctx, c := capturing(ctx)
			p := fc.p
			if p.Statuses == nil {
				p.Statuses = []string{}
			}
			n, err := q.TaskCount(cctx, p)
			require.NoError(t, err)
			require.Positive(t, n, "the filter must match some seeded tasks")
			plan := explain(t, ctx, pool, c)
			used, seq := indexScans(plan, tasksIndexes)
			require.False(t, seq, "count with filter %s reads tasks sequentially:%s", fc.name, plan.summary())
			require.NotEmpty(t, used, "count with filter %s uses no index of tasks:%s", fc.name, plan.summary())
			t.Logf("count filter %s (%d rows): %v%s", fc.name, n, used, plan.summary())
		})
	}
}
