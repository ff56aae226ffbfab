package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"enterprise-automation/internal/page"
)

// The list scenarios measure pages against the RAW SQL that returns the same result:
// minimal hand-written statements sent through pgx as prepared statements (what
// `pgbench -M prepared` sends), not the service's own queries, so that the ratio shows
// everything the server adds (HTTP, validation, planning, JSON) on top of the database's
// unavoidable work.

// rawExactTotalLimit is the tasks' exact-count limit (TASK_EXACT_TOTAL_LIMIT's default):
// the raw task baselines count up to it and estimate beyond, as the server does.
const rawExactTotalLimit = 10_000

// init registers the list scenarios right after tasks-list, before the scenarios that
// write: those add thousands of tasks to the few logged-in actors whose lists
// tasks-list-filtered reads, so measured after them it would page through a data set
// that depends on how fast the writes ran instead of the seeded one.
func init() {
	at := slices.IndexFunc(scenarios, func(s scenarioDef) bool { return s.name == "tasks-list" }) + 1
	scenarios = slices.Insert(scenarios, at, listScenarios...)
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
	{
		name: "tasks-keyset-first", desc: "GET /api/v1/tasks?limit=20&sort={4 sorts}, the first page (total estimated), as admin",
		httpWhat: "GET /api/v1/tasks?limit=20&sort={-created_at, created_at, due_at or -priority} as the admin: the first page of all tasks, its next_cursor, and the total (counted to 10,001, then estimated from a 1 % sample)",
		baseWhat: "raw prepared SQL: count up to 10,001, count in a 1 % TABLESAMPLE, then the first 21 rows in the sort's index order",
		targeter: func(e *runEnv) vegeta.Targeter { return keysetTargeter(e, false) },
		baseline: func(e *runEnv) func(context.Context) error { return keysetBaseline(e, false) },
	},
	{
		name: "tasks-keyset-deep", desc: "GET /api/v1/tasks?limit=20&sort=…&cursor=… 10,000 tasks deep, as admin",
		httpWhat: "GET /api/v1/tasks?limit=20&sort={-created_at, created_at, due_at or -priority}&cursor={next_cursor after 10,000 tasks, fetched before measuring} as the admin; compare with tasks-keyset-first",
		baseWhat: "raw prepared SQL: the same counts, then the 21 rows after the cursor's (key, id) by a row comparison on the sort's index",
		targeter: func(e *runEnv) vegeta.Targeter { return keysetTargeter(e, true) },
		baseline: func(e *runEnv) func(context.Context) error { return keysetBaseline(e, true) },
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

// keysetSort is one order of the keyset scenarios and its raw SQL.
type keysetSort struct {
	sort    string
	orderBy string // the raw page's ORDER BY
	after   string // the raw keyset condition on $1 (the key) and $2 (the id)
	key     func(string) (any, error)
}

func keysetTime(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func keysetText(s string) (any, error) { return s, nil }

var keysetSorts = []keysetSort{
	{"-created_at", "created_at DESC, id DESC", "(created_at, id) < ($1::timestamptz, $2::bigint)", keysetTime},
	{"created_at", "created_at, id", "(created_at, id) > ($1::timestamptz, $2::bigint)", keysetTime},
	{"due_at", "coalesce(due_at, 'infinity'::timestamptz), id",
		"(coalesce(due_at, 'infinity'::timestamptz), id) > (coalesce($1::timestamptz, 'infinity'::timestamptz), $2::bigint)", keysetTime},
	{"-priority", "priority DESC, id DESC", "(priority, id) < ($1::task_priority, $2::bigint)", keysetText},
}

// keysetDepth is how deep the deep keyset page starts.
const keysetDepth = 10_000

// deepCursor is the cursor 10,000 tasks deep in one order, and its key for the raw SQL.
type deepCursor struct {
	cursor string
	key    any
	id     int64
}

var deepCursors struct {
	sync.Mutex
	byEnv map[*runEnv][]deepCursor
}

// keysetCursors walks each keyset order 10,000 tasks deep through the API (pages of
// 1,000), once per run, before anything is measured.
func keysetCursors(e *runEnv) []deepCursor {
	deepCursors.Lock()
	defer deepCursors.Unlock()
	if c, ok := deepCursors.byEnv[e]; ok {
		return c
	}
	if deepCursors.byEnv == nil {
		deepCursors.byEnv = map[*runEnv][]deepCursor{}
	}
	out := make([]deepCursor, len(keysetSorts))
	client := &http.Client{Transport: e.tr, Timeout: 60 * time.Second}
	// A small data set (the harness's own tests) goes half way down instead.
	depth := max(1, min(keysetDepth, int(e.data.maxTaskID-e.data.minTaskID+1)/2))
	step := min(1000, depth)
	for i, ks := range keysetSorts {
		cursor := ""
		for range depth / step {
			u := fmt.Sprintf("%s/api/v1/tasks?limit=%d&sort=%s", e.base, step, url.QueryEscape(ks.sort))
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			next, err := nextCursorOf(client, u, e.admin.header)
			if err != nil {
				panic(fmt.Sprintf("bench: keyset cursors (%s): %v", ks.sort, err))
			}
			cursor = next
		}
		c, err := page.DecodeCursor(cursor)
		if err != nil {
			panic(fmt.Sprintf("bench: keyset cursor (%s): %v", ks.sort, err))
		}
		key, err := ks.key(c.Key)
		if err != nil {
			panic(fmt.Sprintf("bench: keyset cursor key (%s): %v", ks.sort, err))
		}
		out[i] = deepCursor{cursor: cursor, key: key, id: c.ID}
	}
	e.log.printf("keyset cursors %d tasks deep fetched for %d orders", depth/step*step, len(out))
	deepCursors.byEnv[e] = out
	return out
}

func nextCursorOf(client *http.Client, u string, header http.Header) (string, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header = header.Clone()
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %d %s", u, res.StatusCode, body)
	}
	var pg struct {
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &pg); err != nil {
		return "", err
	}
	if pg.NextCursor == nil {
		return "", fmt.Errorf("%s: no next page", u)
	}
	return *pg.NextCursor, nil
}

func keysetTargeter(e *runEnv, deep bool) vegeta.Targeter {
	var cursors []deepCursor
	if deep {
		cursors = keysetCursors(e)
	}
	return func(t *vegeta.Target) error {
		i := rand.IntN(len(keysetSorts))
		t.Method, t.Header = http.MethodGet, e.admin.header
		t.URL = fmt.Sprintf("%s/api/v1/tasks?limit=20&sort=%s", e.base, url.QueryEscape(keysetSorts[i].sort))
		if deep {
			t.URL += "&cursor=" + url.QueryEscape(cursors[i].cursor)
		}
		return nil
	}
}

func keysetBaseline(e *runEnv, deep bool) func(context.Context) error {
	var cursors []deepCursor
	if deep {
		cursors = keysetCursors(e)
	}
	return func(ctx context.Context) error {
		i := rand.IntN(len(keysetSorts))
		ks := keysetSorts[i]
		var n, sampled int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT $1) AS m`, rawExactTotalLimit+1).Scan(&n); err != nil {
			return err
		}
		if n > rawExactTotalLimit {
			if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM tasks TABLESAMPLE SYSTEM (1)`).Scan(&sampled); err != nil {
				return err
			}
		}
		if !deep {
			return rawRows(ctx, e, `SELECT * FROM tasks ORDER BY `+ks.orderBy+` LIMIT 21`)
		}
		return rawRows(ctx, e, `SELECT * FROM tasks WHERE `+ks.after+` ORDER BY `+ks.orderBy+` LIMIT 21`, cursors[i].key, cursors[i].id)
	}
}
