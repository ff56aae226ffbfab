package httpapi_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// listRow is a task as the list tests need it to compute the expected order.
type listRow struct {
	ID         int64
	Title      string
	Status     string
	Priority   string
	AssigneeID *int64
	CreatedBy  *int64
	DueAt      *time.Time
	Tags       []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

var listPriorityRank = map[string]int{"low": 0, "medium": 1, "high": 2, "urgent": 3}

// listCompare orders two tasks as sort does, ties broken by id in the sort's direction;
// tasks without a due date come last in both due_at orders.
func listCompare(sort string) func(a, b listRow) int {
	desc := strings.HasPrefix(sort, "-")
	key := func(a, b listRow) int {
		switch strings.TrimPrefix(sort, "-") {
		case "created_at":
			return a.CreatedAt.Compare(b.CreatedAt)
		case "updated_at":
			return a.UpdatedAt.Compare(b.UpdatedAt)
		case "priority":
			return cmp.Compare(listPriorityRank[a.Priority], listPriorityRank[b.Priority])
		case "due_at":
			switch {
			case a.DueAt == nil && b.DueAt == nil:
				return 0
			case a.DueAt == nil: // last either way
				if desc {
					return -1
				}
				return 1
			case b.DueAt == nil:
				if desc {
					return 1
				}
				return -1
			}
			return a.DueAt.Compare(*b.DueAt)
		}
		panic("unknown sort " + sort)
	}
	return func(a, b listRow) int {
		c := key(a, b)
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	}
}

// listFilter is a set of list filters and the same test in Go.
type listFilter struct {
	name  string
	apply func(p *client.ListTasksParams)
	match func(r listRow) bool
}

// listSeedTasks inserts n tasks with few distinct keys (many ties in every order, due dates
// missing on about a fifth).
func listSeedTasks(t *testing.T, pool *pgxpool.Pool, r *rand.Rand, n int, users []int64) {
	t.Helper()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	statuses := []string{"pending", "in_progress", "completed"}
	priorities := []string{"low", "medium", "high", "urgent"}
	tagSets := [][]string{{}, {"ops"}, {"ops", "db"}, {"ui"}}
	words := []string{"alpha", "beta", "gamma"}
	for range n {
		status := statuses[r.IntN(len(statuses))]
		var due *time.Time
		if r.IntN(5) > 0 {
			d := base.Add(time.Duration(r.IntN(6)) * 24 * time.Hour)
			due = &d
		}
		var completed *time.Time
		if status == "completed" {
			completed = &base
		}
		created := base.Add(time.Duration(r.IntN(8)) * time.Minute).Add(time.Duration(r.IntN(3)) * time.Microsecond)
		var id int64
		err := pool.QueryRow(t.Context(), `INSERT INTO tasks (title, status, priority, assignee_id, created_by, due_at, tags,
			created_at, updated_at, completed_at)
			VALUES ($1, $2::task_status, $3::task_priority, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			"Task "+words[r.IntN(len(words))], status, priorities[r.IntN(len(priorities))],
			users[r.IntN(len(users))], users[r.IntN(len(users))], due, tagSets[r.IntN(len(tagSets))],
			created, created.Add(time.Duration(r.IntN(4))*time.Hour), completed).Scan(&id)
		require.NoError(t, err)
	}
}

func listAllRows(t *testing.T, pool *pgxpool.Pool) map[int64]listRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT id, title, status::text, priority::text, assignee_id, created_by, due_at, tags,
		created_at, updated_at FROM tasks`)
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[listRow])
	require.NoError(t, err)
	out := make(map[int64]listRow, len(all))
	for _, r := range all {
		out[r.ID] = r
	}
	return out
}

// listWalk follows next_cursor from the first page to the last and returns every id in
// the order received, calling between after each page. It checks each page's shape.
func listWalk(t *testing.T, c *client.ClientWithResponses, p client.ListTasksParams, limit int32, between func()) []int64 {
	t.Helper()
	p.Limit = &limit
	var ids []int64
	for pages := 0; ; pages++ {
		require.Less(t, pages, 500, "the walk does not end")
		res, err := c.ListTasksWithResponse(t.Context(), &p)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		pg := res.JSON200
		require.LessOrEqual(t, len(pg.Items), int(limit))
		for _, it := range pg.Items {
			ids = append(ids, it.Id)
		}
		if between != nil {
			between()
		}
		if pg.NextCursor.IsNull() {
			return ids
		}
		require.Len(t, pg.Items, int(limit), "a page before the last is full")
		next := pg.NextCursor.MustGet()
		require.Regexp(t, `^[A-Za-z0-9_-]+$`, next, "a cursor is URL-safe")
		p.Cursor = &next
	}
}

func listExpected(all map[int64]listRow, sort string, match func(listRow) bool) []int64 {
	var rows []listRow
	for _, r := range all {
		if match(r) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, listCompare(sort))
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

var listSorts = []client.TaskSort{client.MinusCreatedAt, client.CreatedAt, client.UpdatedAt, client.MinusUpdatedAt,
	client.DueAt, client.MinusDueAt, client.Priority, client.MinusPriority}

// TestTaskListCursorWalksEveryTaskOnceInOrder walks the task list by cursor for every sort,
// with filters and as a user who sees only their own tasks: the pages together hold every
// matching task exactly once, in the sort's order (ties by id), like one page of all of
// them; the first page is the same with or without skip=0.
func TestTaskListCursorWalksEveryTaskOnceInOrder(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	u := env.CreateUser(t, "walker", false)
	other := env.CreateUser(t, "other", false)
	pool, err := pgxpool.New(t.Context(), env.DBURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	listSeedTasks(t, pool, rand.New(rand.NewPCG(1, 2)), 90, []int64{u.Id, other.Id})
	all := listAllRows(t, pool)

	pending := []client.TaskStatus{client.TaskStatusPending, client.TaskStatusInProgress}
	filters := []listFilter{
		{"none", func(*client.ListTasksParams) {}, func(listRow) bool { return true }},
		{"status pending,in_progress", func(p *client.ListTasksParams) { p.Status = &pending },
			func(r listRow) bool { return r.Status == "pending" || r.Status == "in_progress" }},
		{"priority high", func(p *client.ListTasksParams) { p.Priority = apitest.Ptr(client.High) },
			func(r listRow) bool { return r.Priority == "high" }},
		{"tag ops and q alpha", func(p *client.ListTasksParams) { p.Tag = apitest.Ptr("ops"); p.Q = apitest.Ptr("ALPHA") },
			func(r listRow) bool { return slices.Contains(r.Tags, "ops") && strings.Contains(r.Title, "alpha") }},
	}
	for _, sort := range listSorts {
		for _, f := range filters {
			p := client.ListTasksParams{Sort: apitest.Ptr(sort)}
			f.apply(&p)
			want := listExpected(all, string(sort), f.match)
			got := listWalk(t, admin, p, 7, nil)
			require.Equal(t, want, got, "sort %s, filter %s", sort, f.name)

			one := p
			one.Limit = apitest.Ptr[int32](1000)
			res, err := admin.ListTasksWithResponse(t.Context(), &one)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			require.Equal(t, want, listPageIDs(res.JSON200.Items), "sort %s, filter %s: one page of everything", sort, f.name)
			require.True(t, res.JSON200.NextCursor.IsNull(), "one page holds everything: no next cursor")
		}
		// A user's walk holds exactly the tasks they created or are assigned.
		mine := func(r listRow) bool {
			return (r.CreatedBy != nil && *r.CreatedBy == u.Id) || (r.AssigneeID != nil && *r.AssigneeID == u.Id)
		}
		require.Equal(t, listExpected(all, string(sort), mine), listWalk(t, u.Client, client.ListTasksParams{Sort: apitest.Ptr(sort)}, 5, nil),
			"sort %s as a user", sort)
	}

	// Total and page on cursor pages: total as without a cursor, page counting the items before.
	first, err := admin.ListTasksWithResponse(t.Context(), &client.ListTasksParams{Limit: apitest.Ptr[int32](10)})
	require.NoError(t, err)
	require.EqualValues(t, 90, first.JSON200.Total)
	second, err := admin.ListTasksWithResponse(t.Context(), &client.ListTasksParams{Limit: apitest.Ptr[int32](10), Cursor: apitest.Ptr(first.JSON200.NextCursor.MustGet())})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, second.StatusCode(), "%s", second.Body)
	require.EqualValues(t, 90, second.JSON200.Total)
	require.EqualValues(t, 2, second.JSON200.Page)
	require.EqualValues(t, 9, second.JSON200.TotalPages)
	skipped, err := admin.ListTasksWithResponse(t.Context(), &client.ListTasksParams{Limit: apitest.Ptr[int32](10), Skip: apitest.Ptr[int32](10)})
	require.NoError(t, err)
	require.Equal(t, listPageIDs(skipped.JSON200.Items), listPageIDs(second.JSON200.Items), "the cursor's page is skip=10's")
	require.False(t, skipped.JSON200.NextCursor.IsNull(), "a skip page also answers the cursor that follows it")
	third, err := admin.ListTasksWithResponse(t.Context(), &client.ListTasksParams{Limit: apitest.Ptr[int32](10), Cursor: apitest.Ptr(skipped.JSON200.NextCursor.MustGet())})
	require.NoError(t, err)
	require.EqualValues(t, 3, third.JSON200.Page, "a skip page's cursor continues after it")
}

// TestTaskListCursorWhileTasksChange inserts and deletes tasks between the pages of a
// cursor walk, for every sort: no task is returned twice, every task that existed
// throughout is returned, and the pages stay in order; offsets would skip or repeat.
func TestTaskListCursorWhileTasksChange(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	u := env.CreateUser(t, "changer", false)
	pool, err := pgxpool.New(t.Context(), env.DBURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	r := rand.New(rand.NewPCG(3, 4))
	listSeedTasks(t, pool, r, 60, []int64{u.Id})

	for _, sort := range listSorts {
		before := listAllRows(t, pool)
		deleted := map[int64]listRow{}
		between := func() {
			listSeedTasks(t, pool, r, 2, []int64{u.Id})
			ids := make([]int64, 0, len(before))
			for id := range before {
				if _, gone := deleted[id]; !gone {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			victim := ids[r.IntN(len(ids))]
			_, err := pool.Exec(t.Context(), `DELETE FROM tasks WHERE id = $1`, victim)
			require.NoError(t, err)
			deleted[victim] = before[victim]
		}
		got := listWalk(t, admin, client.ListTasksParams{Sort: apitest.Ptr(sort)}, 6, between)

		after := listAllRows(t, pool)
		known := map[int64]listRow{}
		for id, row := range after {
			known[id] = row
		}
		for id, row := range deleted {
			known[id] = row
		}
		seen := map[int64]bool{}
		rows := make([]listRow, 0, len(got))
		for _, id := range got {
			require.False(t, seen[id], "sort %s: task %d returned twice", sort, id)
			seen[id] = true
			row, ok := known[id]
			require.True(t, ok, "sort %s: task %d was never there", sort, id)
			rows = append(rows, row)
		}
		for id := range before {
			if _, gone := deleted[id]; !gone {
				require.True(t, seen[id], "sort %s: task %d existed throughout and was not returned", sort, id)
			}
		}
		require.True(t, slices.IsSortedFunc(rows, listCompare(string(sort))), "sort %s: the walk is in order", sort)
		_, err := pool.Exec(t.Context(), `DELETE FROM tasks`)
		require.NoError(t, err)
		listSeedTasks(t, pool, r, 60, []int64{u.Id})
	}
}

// TestListCursorRejectsMisuse: a cursor with skip, a garbage or altered cursor, and a
// cursor used with another sort, other filters, another caller's view or another list
// are 422 problems naming the field, never a 500 or a wrong page.
func TestListCursorRejectsMisuse(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	u := env.CreateUser(t, "misuser", false)
	for i := range 5 {
		_, err := admin.CreateTaskWithResponse(t.Context(), nil, client.TaskCreate{Title: fmt.Sprintf("task %d", i), AssigneeId: nullable.NewNullableWithValue(u.Id)})
		require.NoError(t, err)
	}
	next := func(c *client.ClientWithResponses, p client.ListTasksParams) string {
		t.Helper()
		p.Limit = apitest.Ptr[int32](2)
		res, err := c.ListTasksWithResponse(t.Context(), &p)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		return res.JSON200.NextCursor.MustGet()
	}
	cur := next(admin, client.ListTasksParams{})
	tasks := func(c *client.ClientWithResponses, p client.ListTasksParams) *client.ListTasksResponse {
		t.Helper()
		res, err := c.ListTasksWithResponse(t.Context(), &p)
		require.NoError(t, err)
		return res
	}
	fieldProblem := func(res apitest.Result, field string) {
		t.Helper()
		p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
		apitest.RequireExactFieldErrors(t, p, "query", field)
	}

	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &cur, Skip: apitest.Ptr[int32](0)}), "skip")
	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &cur, Skip: apitest.Ptr[int32](2)}), "skip")
	for _, bad := range []string{"x", "garbage_cursor-value", cur[:len(cur)-1], cur + "A", "A" + cur[1:], strings.Repeat("A", 512)} {
		fieldProblem(tasks(admin, client.ListTasksParams{Cursor: apitest.Ptr(bad)}), "cursor")
	}
	// Every single-character change of a real cursor is caught.
	for i := range len(cur) {
		b := []byte(cur)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		fieldProblem(tasks(admin, client.ListTasksParams{Cursor: apitest.Ptr(string(b))}), "cursor")
	}
	// Characters outside the cursor alphabet fail the contract's pattern.
	fieldProblem(env.Do(t, http.MethodGet, "/api/v1/tasks?cursor=a%2Bb%2F%3D", u.Token, nil), "cursor")

	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &cur, Sort: apitest.Ptr(client.DueAt)}), "cursor")
	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &cur, Priority: apitest.Ptr(client.High)}), "cursor")
	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &cur, AssigneeId: apitest.Ptr(u.Id)}), "cursor")
	fieldProblem(tasks(u.Client, client.ListTasksParams{Cursor: &cur}), "cursor") // the admin's view, not the user's
	// The same filters in another order, and another limit, are fine.
	both := []client.TaskStatus{client.TaskStatusPending, client.TaskStatusInProgress}
	reversed := []client.TaskStatus{client.TaskStatusInProgress, client.TaskStatusPending}
	sc := next(admin, client.ListTasksParams{Status: &both})
	res := tasks(admin, client.ListTasksParams{Status: &reversed, Cursor: &sc, Limit: apitest.Ptr[int32](1)})
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	require.Len(t, res.JSON200.Items, 1)

	// A cursor of another list.
	users, err := admin.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Limit: apitest.Ptr[int32](1)})
	require.NoError(t, err)
	userCursor := users.JSON200.NextCursor.MustGet()
	fieldProblem(tasks(admin, client.ListTasksParams{Cursor: &userCursor}), "cursor")
	runs, err := admin.ListAgentRunsWithResponse(t.Context(), &client.ListAgentRunsParams{Cursor: &userCursor})
	require.NoError(t, err)
	fieldProblem(runs, "cursor")
	usersAgain, err := admin.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Cursor: &cur})
	require.NoError(t, err)
	fieldProblem(usersAgain, "cursor")
	usersSkip, err := admin.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Cursor: &userCursor, Skip: apitest.Ptr[int32](1)})
	require.NoError(t, err)
	fieldProblem(usersSkip, "skip")
	usersQ, err := admin.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Cursor: &userCursor, Q: apitest.Ptr("mis")})
	require.NoError(t, err)
	fieldProblem(usersQ, "cursor")

	// The user list stays administrators only, with or without a cursor.
	forbidden, err := u.Client.ListUsersWithResponse(t.Context(), &client.ListUsersParams{Cursor: &userCursor})
	require.NoError(t, err)
	apitest.RequireProblem(t, forbidden, http.StatusForbidden)
}

// TestUserListCursorWalk walks the user list by cursor, with and without filters, while
// users are created and deleted between pages: every user that existed throughout comes
// exactly once, in id order.
func TestUserListCursorWalk(t *testing.T) {
	t.Parallel()
	f := usersStart(t)
	var ids []int64
	for i := range 23 {
		ids = append(ids, usersCreateWith(t, f, fmt.Sprintf("Walker %02d", i), fmt.Sprintf("walker%02d@example.com", i), i%3 == 0).Id)
	}
	walk := func(p client.ListUsersParams, between func()) []int64 {
		t.Helper()
		p.Limit = apitest.Ptr[int32](4)
		var got []int64
		for pages := 0; pages < 100; pages++ {
			res, err := f.admin.ListUsersWithResponse(t.Context(), &p)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			got = append(got, usersIDs(res.JSON200.Items)...)
			if between != nil {
				between()
			}
			if res.JSON200.NextCursor.IsNull() {
				return got
			}
			p.Cursor = apitest.Ptr(res.JSON200.NextCursor.MustGet())
		}
		t.Fatal("the walk does not end")
		return nil
	}
	require.Equal(t, append([]int64{f.adminID}, ids...), walk(client.ListUsersParams{}, nil))
	admins := []int64{f.adminID}
	for i, id := range ids {
		if i%3 == 0 {
			admins = append(admins, id)
		}
	}
	require.Equal(t, admins, walk(client.ListUsersParams{IsAdmin: apitest.Ptr(true)}, nil))
	require.Equal(t, ids, walk(client.ListUsersParams{Q: apitest.Ptr("walker")}, nil))

	n := 0
	var deleted []int64
	got := walk(client.ListUsersParams{Q: apitest.Ptr("walker")}, func() {
		n++
		usersCreateWith(t, f, fmt.Sprintf("Walker late %02d", n), fmt.Sprintf("walker-late%02d@example.com", n), false)
		victim := ids[len(ids)-n]
		res, err := f.admin.DeleteUserWithResponse(t.Context(), victim, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "%s", res.Body)
		deleted = append(deleted, victim)
	})
	require.True(t, slices.IsSorted(got), "id order: %v", got)
	require.Len(t, slices.Compact(slices.Clone(got)), len(got), "no user twice: %v", got)
	for _, id := range ids {
		if !slices.Contains(deleted, id) {
			require.Contains(t, got, id, "a user that existed throughout")
		}
	}
}

// TestAgentRunListCursorWalk walks the run list (newest first) by cursor with and without
// filters, as an administrator and as a user who sees only their own runs.
func TestAgentRunListCursorWalk(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	u := env.CreateUser(t, "runner", false)
	agentID := agtCreateAgent(t, admin, client.AgentCreate{Name: "walker", Instructions: apitest.Ptr("Walk.")}).Id
	pool, err := pgxpool.New(t.Context(), env.DBURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var all, mine, completed []int64
	for i := range 30 {
		status, creator := "completed", u.Id
		if i%3 == 0 {
			status = "failed"
		}
		if i%4 == 0 {
			creator = 1
		}
		var id int64
		require.NoError(t, pool.QueryRow(t.Context(), `INSERT INTO agent_runs (agent_id, status, input, model, created_by, error_code, error_message)
			VALUES ($1, $2::agent_run_status, 'go', 'm', $3, CASE WHEN $2 = 'failed' THEN 'x' END, CASE WHEN $2 = 'failed' THEN 'x' END)
			RETURNING id`, agentID, status, creator).Scan(&id))
		all = append([]int64{id}, all...)
		if creator == u.Id {
			mine = append([]int64{id}, mine...)
		}
		if status == "completed" {
			completed = append([]int64{id}, completed...)
		}
	}
	walk := func(c *client.ClientWithResponses, p client.ListAgentRunsParams) []int64 {
		t.Helper()
		p.Limit = apitest.Ptr[int32](4)
		var got []int64
		for pages := 0; pages < 100; pages++ {
			res, err := c.ListAgentRunsWithResponse(t.Context(), &p)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			got = append(got, agtRunIDs(res.JSON200.Items)...)
			if res.JSON200.NextCursor.IsNull() {
				return got
			}
			p.Cursor = apitest.Ptr(res.JSON200.NextCursor.MustGet())
		}
		t.Fatal("the walk does not end")
		return nil
	}
	require.Equal(t, all, walk(admin, client.ListAgentRunsParams{}))
	require.Equal(t, completed, walk(admin, client.ListAgentRunsParams{Status: apitest.Ptr(client.AgentRunStatusCompleted)}))
	require.Equal(t, mine, walk(u.Client, client.ListAgentRunsParams{}))
}

func listPageIDs(items []client.Task) []int64 {
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.Id
	}
	return ids
}
