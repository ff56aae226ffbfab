package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "task" so they cannot clash with other test files of the package)
// ---------------------------------------------------------------------------------------

const taskPath = "/api/v1/tasks"

var taskStatuses = []client.TaskStatus{
	client.TaskStatusPending, client.TaskStatusInProgress, client.TaskStatusCompleted,
	client.TaskStatusFailed, client.TaskStatusCancelled,
}

// taskFixture is one running server with the seeded administrator logged in.
type taskFixture struct {
	env        *apitest.Env
	admin      *client.ClientWithResponses
	adminToken string
	adminID    int64
}

// taskSetup starts an environment for the task tests. Rate limits are switched off
// (0 = off): these tests send many requests a minute from one address on purpose.
func taskSetup(t *testing.T) *taskFixture {
	t.Helper()
	env := apitest.Start(t,
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"))
	tok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	f := &taskFixture{env: env, admin: env.As(tok), adminToken: tok}
	me, err := f.admin.GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
	f.adminID = me.JSON200.Id
	return f
}

// deactivate makes a user inactive through the API.
func (f *taskFixture) deactivate(t *testing.T, id int64) {
	t.Helper()
	no := false
	res, err := f.admin.UpdateUserWithResponse(context.Background(), id, nil, client.UserUpdate{IsActive: &no})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "deactivate user %d: %s", id, res.Body)
	require.False(t, res.JSON200.IsActive)
}

func taskETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func taskTerminal(s client.TaskStatus) bool {
	return s == client.TaskStatusCompleted || s == client.TaskStatusFailed || s == client.TaskStatusCancelled
}

// taskCreate creates a task as c and requires 201 with Location and ETag.
func taskCreate(t *testing.T, c *client.ClientWithResponses, body client.TaskCreate) client.Task {
	t.Helper()
	res, err := c.CreateTaskWithResponse(context.Background(), nil, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create task: %s", res.Body)
	got := *res.JSON201
	require.Equal(t, taskPath+"/"+strconv.FormatInt(got.Id, 10), res.HTTPResponse.Header.Get("Location"))
	require.Equal(t, taskETag(got.Version), res.HTTPResponse.Header.Get("ETag"))
	return got
}

// taskGet reads a task as c and requires 200 with the matching ETag.
func taskGet(t *testing.T, c *client.ClientWithResponses, id int64) client.Task {
	t.Helper()
	res, err := c.GetTaskWithResponse(context.Background(), id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "get task %d: %s", id, res.Body)
	require.Equal(t, taskETag(res.JSON200.Version), res.HTTPResponse.Header.Get("ETag"))
	return *res.JSON200
}

// taskGetStatus reads a task as c and returns only the status code.
func taskGetStatus(t *testing.T, c *client.ClientWithResponses, id int64) int {
	t.Helper()
	res, err := c.GetTaskWithResponse(context.Background(), id, nil)
	require.NoError(t, err)
	return res.StatusCode()
}

// taskUpdate patches a task as c and requires 200 with the matching ETag.
func taskUpdate(t *testing.T, c *client.ClientWithResponses, id int64, body client.TaskUpdate) client.Task {
	t.Helper()
	res, err := c.UpdateTaskWithResponse(context.Background(), id, nil, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "update task %d: %s", id, res.Body)
	require.Equal(t, taskETag(res.JSON200.Version), res.HTTPResponse.Header.Get("ETag"))
	return *res.JSON200
}

// taskMove walks a task through legal status changes.
func taskMove(t *testing.T, c *client.ClientWithResponses, id int64, path ...client.TaskStatus) client.Task {
	t.Helper()
	cur := taskGet(t, c, id)
	for _, s := range path {
		cur = taskUpdate(t, c, id, client.TaskUpdate{Status: apitest.Ptr(s)})
		require.Equal(t, s, cur.Status)
	}
	return cur
}

// taskList lists tasks as c (up to 1000) and requires 200.
func taskList(t *testing.T, c *client.ClientWithResponses, p client.ListTasksParams) client.TaskPage {
	t.Helper()
	if p.Limit == nil {
		p.Limit = apitest.Ptr[client.Limit](1000)
	}
	res, err := c.ListTasksWithResponse(context.Background(), &p)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "list tasks: %s", res.Body)
	return *res.JSON200
}

func taskIDs(p client.TaskPage) []int64 {
	ids := make([]int64, len(p.Items))
	for i, it := range p.Items {
		ids[i] = it.Id
	}
	slices.Sort(ids)
	return ids
}

// taskVisibleTotal is how many tasks the user behind c can see.
func taskVisibleTotal(t *testing.T, c *client.ClientWithResponses) int64 {
	t.Helper()
	return taskList(t, c, client.ListTasksParams{}).Total
}

// ---------------------------------------------------------------------------------------
// 1. The full transition table
// ---------------------------------------------------------------------------------------

func TestTaskTransition(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	u := f.env.CreateUser(t, "Mover", false)

	// The table of the issue, written out independently of the service's own table.
	legal := map[client.TaskStatus][]client.TaskStatus{
		client.TaskStatusPending:    {client.TaskStatusInProgress, client.TaskStatusCancelled},
		client.TaskStatusInProgress: {client.TaskStatusPending, client.TaskStatusCompleted, client.TaskStatusFailed, client.TaskStatusCancelled},
		client.TaskStatusCompleted:  {client.TaskStatusPending},
		client.TaskStatusFailed:     {client.TaskStatusPending},
		client.TaskStatusCancelled:  {client.TaskStatusPending},
	}
	// Legal moves that bring a new (pending) task into each state.
	reach := map[client.TaskStatus][]client.TaskStatus{
		client.TaskStatusPending:    nil,
		client.TaskStatusInProgress: {client.TaskStatusInProgress},
		client.TaskStatusCompleted:  {client.TaskStatusInProgress, client.TaskStatusCompleted},
		client.TaskStatusFailed:     {client.TaskStatusInProgress, client.TaskStatusFailed},
		client.TaskStatusCancelled:  {client.TaskStatusCancelled},
	}
	ctx := context.Background()
	for _, from := range taskStatuses {
		for _, to := range taskStatuses {
			allowed := from == to || slices.Contains(legal[from], to)
			verdict := "conflict"
			switch {
			case from == to:
				verdict = "no_op"
			case allowed:
				verdict = "allowed"
			}
			name := fmt.Sprintf("%s_to_%s_is_%s", from, to, verdict)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				created := taskCreate(t, u.Client, client.TaskCreate{Title: name})
				require.Equal(t, client.TaskStatusPending, created.Status)
				require.True(t, created.CompletedAt.IsNull(), "a new task has no completed_at")
				before := taskMove(t, u.Client, created.Id, reach[from]...)
				require.Equal(t, from, before.Status)
				require.Equal(t, taskTerminal(from), !before.CompletedAt.IsNull(), "completed_at in %s", from)

				res, err := u.Client.UpdateTaskWithResponse(ctx, created.Id, nil, client.TaskUpdate{Status: apitest.Ptr(to)})
				require.NoError(t, err)
				if !allowed {
					p := apitest.RequireProblem(t, res, http.StatusConflict)
					require.NotNil(t, p.Detail)
					require.Contains(t, *p.Detail, string(from), "the detail names the current state")
					require.Contains(t, *p.Detail, string(to), "the detail names the requested state")
					after := taskGet(t, u.Client, created.Id)
					require.Equal(t, from, after.Status, "a rejected transition changes nothing")
					require.Equal(t, before.Version, after.Version)
					require.Equal(t, before.CompletedAt, after.CompletedAt)
					return
				}
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
				got := *res.JSON200
				require.Equal(t, to, got.Status)
				require.Equal(t, taskETag(got.Version), res.HTTPResponse.Header.Get("ETag"))
				switch {
				case from == to:
					require.Equal(t, before.CompletedAt, got.CompletedAt, "staying in a state keeps completed_at")
				case taskTerminal(to):
					require.False(t, got.CompletedAt.IsNull(), "entering %s sets completed_at", to)
					at := got.CompletedAt.MustGet()
					require.False(t, at.Before(before.UpdatedAt.Add(-time.Second)), "completed_at %s is before the last change %s", at, before.UpdatedAt)
					require.False(t, at.After(got.UpdatedAt.Add(time.Second)), "completed_at %s is after updated_at %s", at, got.UpdatedAt)
				default:
					require.True(t, got.CompletedAt.IsNull(), "%s clears completed_at", to)
				}
				again := taskGet(t, u.Client, created.Id)
				require.Equal(t, got.Status, again.Status, "the change is stored")
				require.Equal(t, got.CompletedAt, again.CompletedAt)
				require.Equal(t, got.Version, again.Version)
			})
		}
	}
}

// ---------------------------------------------------------------------------------------
// 2. Authorization matrix
// ---------------------------------------------------------------------------------------

func TestTaskAuthorization(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	ctx := context.Background()
	creator := f.env.CreateUser(t, "Creator", false)
	assignee := f.env.CreateUser(t, "Assignee", false)
	other := f.env.CreateUser(t, "Other", false)
	spare := f.env.CreateUser(t, "Spare", false)

	type role struct {
		name string
		c    *client.ClientWithResponses
		id   int64
	}
	roles := []role{
		{"anonymous", f.env.Client, 0},
		{"creator", creator.Client, creator.Id},
		{"assignee", assignee.Client, assignee.Id},
		{"other_user", other.Client, other.Id},
		{"admin", f.admin, f.adminID},
	}
	newTask := func(t *testing.T) client.Task {
		t.Helper()
		return taskCreate(t, creator.Client, client.TaskCreate{
			Title: "authz " + t.Name(), AssigneeId: nullable.NewNullableWithValue(assignee.Id),
		})
	}
	type op struct {
		name   string
		expect map[string]int
		run    func(t *testing.T, r role, want int)
	}
	ops := []op{
		{
			name:   "createTask",
			expect: map[string]int{"anonymous": 401, "creator": 201, "assignee": 201, "other_user": 201, "admin": 201},
			run: func(t *testing.T, r role, want int) {
				title := "created by " + t.Name()
				res, err := r.c.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: title})
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				found := taskList(t, f.admin, client.ListTasksParams{Q: &title})
				if want != http.StatusCreated {
					require.Zero(t, found.Total, "nothing is created")
					return
				}
				require.Equal(t, r.id, res.JSON201.CreatedBy.MustGet(), "created_by is the caller")
				require.Equal(t, int64(1), found.Total)
			},
		},
		{
			name:   "listTasks",
			expect: map[string]int{"anonymous": 401, "creator": 200, "assignee": 200, "other_user": 200, "admin": 200},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				res, err := r.c.ListTasksWithResponse(ctx, &client.ListTasksParams{Limit: apitest.Ptr[client.Limit](1000)})
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				if want != http.StatusOK {
					return
				}
				page := *res.JSON200
				require.Equal(t, r.name != "other_user", slices.Contains(taskIDs(page), task.Id), "the task is listed to %s", r.name)
				if r.name == "admin" {
					return
				}
				for _, it := range page.Items {
					mine := (it.CreatedBy.IsSpecified() && !it.CreatedBy.IsNull() && it.CreatedBy.MustGet() == r.id) ||
						(it.AssigneeId.IsSpecified() && !it.AssigneeId.IsNull() && it.AssigneeId.MustGet() == r.id)
					require.True(t, mine, "%s sees task %d that they neither created nor are assigned to", r.name, it.Id)
				}
			},
		},
		{
			name:   "getTask",
			expect: map[string]int{"anonymous": 401, "creator": 200, "assignee": 200, "other_user": 404, "admin": 200},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				res, err := r.c.GetTaskWithResponse(ctx, task.Id, nil)
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				if want == http.StatusOK {
					require.Equal(t, task.Id, res.JSON200.Id)
					require.Equal(t, taskETag(task.Version), res.HTTPResponse.Header.Get("ETag"))
				} else {
					apitest.RequireProblem(t, res, want)
				}
			},
		},
		{
			name:   "updateTask",
			expect: map[string]int{"anonymous": 401, "creator": 200, "assignee": 200, "other_user": 404, "admin": 200},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				title := "changed by " + r.name
				res, err := r.c.UpdateTaskWithResponse(ctx, task.Id, nil, client.TaskUpdate{
					Title: &title, Status: apitest.Ptr(client.TaskStatusInProgress),
				})
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				after := taskGet(t, f.admin, task.Id)
				if want == http.StatusOK {
					require.Equal(t, title, after.Title)
					require.Equal(t, client.TaskStatusInProgress, after.Status)
					require.Equal(t, task.Version+1, after.Version)
				} else {
					apitest.RequireProblem(t, res, want)
					require.Equal(t, task.Title, after.Title, "nothing changed")
					require.Equal(t, task.Version, after.Version)
				}
			},
		},
		{
			name:   "updateTask_assignee",
			expect: map[string]int{"anonymous": 401, "creator": 200, "assignee": 403, "other_user": 404, "admin": 200},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				res, err := r.c.UpdateTaskWithResponse(ctx, task.Id, nil, client.TaskUpdate{
					AssigneeId: nullable.NewNullableWithValue(spare.Id),
				})
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				after := taskGet(t, f.admin, task.Id)
				if want == http.StatusOK {
					require.Equal(t, spare.Id, after.AssigneeId.MustGet())
				} else {
					apitest.RequireProblem(t, res, want)
					require.Equal(t, assignee.Id, after.AssigneeId.MustGet(), "the assignee did not change")
					require.Equal(t, task.Version, after.Version)
				}
			},
		},
		{
			name:   "deleteTask",
			expect: map[string]int{"anonymous": 401, "creator": 204, "assignee": 403, "other_user": 404, "admin": 204},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				res, err := r.c.DeleteTaskWithResponse(ctx, task.Id, nil)
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				if want == http.StatusNoContent {
					require.Empty(t, res.Body)
					require.Equal(t, http.StatusNotFound, taskGetStatus(t, f.admin, task.Id), "the task is gone")
				} else {
					apitest.RequireProblem(t, res, want)
					require.Equal(t, http.StatusOK, taskGetStatus(t, f.admin, task.Id), "the task still exists")
				}
			},
		},
		{
			name:   "listTaskRuns",
			expect: map[string]int{"anonymous": 401, "creator": 200, "assignee": 200, "other_user": 404, "admin": 200},
			run: func(t *testing.T, r role, want int) {
				task := newTask(t)
				res, err := r.c.ListTaskRunsWithResponse(ctx, task.Id, nil)
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode(), "%s", res.Body)
				if want == http.StatusOK {
					require.Zero(t, res.JSON200.Total)
					require.Empty(t, res.JSON200.Items)
				} else {
					apitest.RequireProblem(t, res, want)
				}
			},
		},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range roles {
				want := o.expect[r.name]
				t.Run(fmt.Sprintf("%s_gets_%d", r.name, want), func(t *testing.T) {
					t.Parallel()
					o.run(t, r, want)
				})
			}
		})
	}

	t.Run("assignee_cannot_unassign_themselves", func(t *testing.T) {
		t.Parallel()
		task := newTask(t)
		res, err := assignee.Client.UpdateTaskWithResponse(ctx, task.Id, nil, client.TaskUpdate{AssigneeId: nullable.NewNullNullable[int64]()})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusForbidden)
		require.Equal(t, assignee.Id, taskGet(t, f.admin, task.Id).AssigneeId.MustGet())
	})
	t.Run("assignee_may_resend_the_current_assignee", func(t *testing.T) {
		t.Parallel()
		task := newTask(t)
		got := taskUpdate(t, assignee.Client, task.Id, client.TaskUpdate{
			AssigneeId: nullable.NewNullableWithValue(assignee.Id), Title: apitest.Ptr("same assignee"),
		})
		require.Equal(t, assignee.Id, got.AssigneeId.MustGet())
		require.Equal(t, "same assignee", got.Title)
	})
	t.Run("creator_may_unassign", func(t *testing.T) {
		t.Parallel()
		task := newTask(t)
		got := taskUpdate(t, creator.Client, task.Id, client.TaskUpdate{AssigneeId: nullable.NewNullNullable[int64]()})
		require.True(t, got.AssigneeId.IsNull())
		require.Equal(t, http.StatusNotFound, taskGetStatus(t, assignee.Client, task.Id), "the former assignee no longer sees it")
	})
	t.Run("reassigned_task_is_hidden_from_the_former_assignee", func(t *testing.T) {
		t.Parallel()
		task := newTask(t)
		taskUpdate(t, creator.Client, task.Id, client.TaskUpdate{AssigneeId: nullable.NewNullableWithValue(spare.Id)})
		require.Equal(t, http.StatusNotFound, taskGetStatus(t, assignee.Client, task.Id))
		require.Equal(t, http.StatusOK, taskGetStatus(t, spare.Client, task.Id))
		res, err := assignee.Client.UpdateTaskWithResponse(ctx, task.Id, nil, client.TaskUpdate{Title: apitest.Ptr("late")})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusNotFound)
	})
	t.Run("invisible_task_404_looks_like_a_missing_one", func(t *testing.T) {
		t.Parallel()
		task := newTask(t)
		hidden := f.env.Do(t, http.MethodGet, fmt.Sprintf("%s/%d", taskPath, task.Id), other.Token, "")
		missing := f.env.Do(t, http.MethodGet, fmt.Sprintf("%s/%d", taskPath, task.Id+1_000_000), other.Token, "")
		ph := apitest.RequireProblem(t, hidden, http.StatusNotFound)
		pm := apitest.RequireProblem(t, missing, http.StatusNotFound)
		require.Equal(t, pm.Type, ph.Type)
		require.Equal(t, pm.Title, ph.Title)
		require.Equal(t, strings.ReplaceAll(apitest.Deref(pm.Detail), strconv.FormatInt(task.Id+1_000_000, 10), "N"),
			strings.ReplaceAll(apitest.Deref(ph.Detail), strconv.FormatInt(task.Id, 10), "N"), "no hint that the task exists")
	})
	t.Run("list_filters_cannot_widen_visibility", func(t *testing.T) {
		t.Parallel()
		newTask(t)
		require.Zero(t, taskList(t, other.Client, client.ListTasksParams{CreatedBy: &creator.Id}).Total)
		require.Zero(t, taskList(t, other.Client, client.ListTasksParams{AssigneeId: &assignee.Id}).Total)
	})
}

// TestTaskAuthorizationList checks exactly which tasks each caller lists, on a server of
// its own so that the administrator's total is exact.
func TestTaskAuthorizationList(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	u1 := f.env.CreateUser(t, "ListOne", false)
	u2 := f.env.CreateUser(t, "ListTwo", false)
	u3 := f.env.CreateUser(t, "ListThree", false)
	assign := func(id int64) nullable.Nullable[int64] { return nullable.NewNullableWithValue(id) }
	t1 := taskCreate(t, u1.Client, client.TaskCreate{Title: "u1 alone"})
	t2 := taskCreate(t, u1.Client, client.TaskCreate{Title: "u1 for u2", AssigneeId: assign(u2.Id)})
	t3 := taskCreate(t, u2.Client, client.TaskCreate{Title: "u2 for u3", AssigneeId: assign(u3.Id)})
	t4 := taskCreate(t, u3.Client, client.TaskCreate{Title: "u3 for u3", AssigneeId: assign(u3.Id)})
	t5 := taskCreate(t, f.admin, client.TaskCreate{Title: "admin for u1", AssigneeId: assign(u1.Id)})
	t6 := taskCreate(t, f.admin, client.TaskCreate{Title: "admin alone"})
	cases := []struct {
		name string
		c    *client.ClientWithResponses
		want []int64
	}{
		{"first_user_sees_created_and_assigned", u1.Client, []int64{t1.Id, t2.Id, t5.Id}},
		{"second_user_sees_created_and_assigned", u2.Client, []int64{t2.Id, t3.Id}},
		{"third_user_sees_created_and_assigned_once", u3.Client, []int64{t3.Id, t4.Id}},
		{"admin_sees_all", f.admin, []int64{t1.Id, t2.Id, t3.Id, t4.Id, t5.Id, t6.Id}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			page := taskList(t, tc.c, client.ListTasksParams{})
			want := slices.Clone(tc.want)
			slices.Sort(want)
			require.Equal(t, want, taskIDs(page))
			require.Equal(t, int64(len(want)), page.Total)
		})
	}
	t.Run("anonymous_gets_401", func(t *testing.T) {
		t.Parallel()
		r := f.env.Do(t, http.MethodGet, taskPath, "", "")
		p := apitest.RequireProblem(t, r, http.StatusUnauthorized)
		require.Equal(t, "/problems/unauthorized", p.Type)
		require.True(t, strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer"))
	})
}

// ---------------------------------------------------------------------------------------
// 3. Concurrency
// ---------------------------------------------------------------------------------------

func TestTaskConcurrency(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	ctx := context.Background()
	u := f.env.CreateUser(t, "Racer", false)
	spare := f.env.CreateUser(t, "RaceSpare", false)

	t.Run("same_if_match_has_exactly_one_winner", func(t *testing.T) {
		t.Parallel()
		const n = 10
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "race"})
		tag := taskETag(task.Version)
		type result struct {
			status int
			title  string
			body   []byte
			err    error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				title := fmt.Sprintf("writer %d", i)
				res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, &client.UpdateTaskParams{IfMatch: &tag}, client.TaskUpdate{Title: &title})
				results[i] = result{title: title, err: err}
				if err == nil {
					results[i].status, results[i].body = res.StatusCode(), res.Body
				}
			})
		}
		close(start)
		wg.Wait()
		var winners []string
		for _, r := range results {
			require.NoError(t, r.err)
			switch r.status {
			case http.StatusOK:
				winners = append(winners, r.title)
			case http.StatusPreconditionFailed:
			default:
				require.Failf(t, "unexpected status", "%d: %s", r.status, r.body)
			}
		}
		require.Len(t, winners, 1, "exactly one writer wins")
		final := taskGet(t, u.Client, task.Id)
		require.Equal(t, task.Version+1, final.Version)
		require.Equal(t, winners[0], final.Title)
	})

	t.Run("without_if_match_every_change_is_applied", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "merge"})
		due := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		changes := []client.TaskUpdate{
			{Title: apitest.Ptr("merged title")},
			{Description: apitest.Ptr("merged description")},
			{Priority: apitest.Ptr(client.Urgent)},
			{Tags: &client.TaskTags{"merged", "tags"}},
			{Metadata: &client.TaskMetadata{"merged": true}},
			{DueAt: nullable.NewNullableWithValue(due)},
			{AssigneeId: nullable.NewNullableWithValue(spare.Id)},
			{Status: apitest.Ptr(client.TaskStatusInProgress)},
		}
		statuses := make([]int, len(changes))
		bodies := make([][]byte, len(changes))
		errs := make([]error, len(changes))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, ch := range changes {
			wg.Go(func() {
				<-start
				res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, nil, ch)
				errs[i] = err
				if err == nil {
					statuses[i], bodies[i] = res.StatusCode(), res.Body
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range changes {
			require.NoError(t, errs[i])
			require.Equal(t, http.StatusOK, statuses[i], "change %d without If-Match must succeed: %s", i, bodies[i])
		}
		final := taskGet(t, u.Client, task.Id)
		require.Equal(t, task.Version+int64(len(changes)), final.Version, "one version per change")
		require.Equal(t, "merged title", final.Title)
		require.Equal(t, "merged description", final.Description)
		require.Equal(t, client.Urgent, final.Priority)
		require.Equal(t, client.TaskTags{"merged", "tags"}, final.Tags)
		require.Equal(t, client.TaskMetadata{"merged": true}, final.Metadata)
		require.True(t, due.Equal(final.DueAt.MustGet()))
		require.Equal(t, spare.Id, final.AssigneeId.MustGet())
		require.Equal(t, client.TaskStatusInProgress, final.Status)
	})
}

// ---------------------------------------------------------------------------------------
// 4. Idempotency-Key
// ---------------------------------------------------------------------------------------

func TestTaskIdempotency(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	ctx := context.Background()
	create := func(c *client.ClientWithResponses, key, title string) (*client.CreateTaskResponse, error) {
		return c.CreateTaskWithResponse(ctx, &client.CreateTaskParams{IdempotencyKey: &key}, client.TaskCreate{
			Title: title, Tags: &client.TaskTags{"idem"},
		})
	}

	t.Run("replay_returns_the_first_response", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Replayer", false)
		first, err := create(u.Client, "replay-key", "only once")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, first.StatusCode(), "%s", first.Body)
		require.Empty(t, first.HTTPResponse.Header.Get("Idempotent-Replayed"), "the first response is not a replay")
		second, err := create(u.Client, "replay-key", "only once")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, second.StatusCode(), "%s", second.Body)
		require.Equal(t, "true", second.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.Equal(t, string(first.Body), string(second.Body), "the same body")
		require.Equal(t, first.HTTPResponse.Header.Get("Location"), second.HTTPResponse.Header.Get("Location"))
		require.Equal(t, first.HTTPResponse.Header.Get("ETag"), second.HTTPResponse.Header.Get("ETag"))
		require.True(t, strings.HasPrefix(second.HTTPResponse.Header.Get("Content-Type"), "application/json"))
		require.Equal(t, int64(1), taskVisibleTotal(t, u.Client), "no second task")
	})

	t.Run("same_key_with_a_different_body_is_422", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Reuser", false)
		first, err := create(u.Client, "reused-key", "first body")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, first.StatusCode(), "%s", first.Body)
		second, err := create(u.Client, "reused-key", "second body")
		require.NoError(t, err)
		p := apitest.RequireProblem(t, second, http.StatusUnprocessableEntity)
		require.NotNil(t, p.Errors)
		require.NotEmpty(t, *p.Errors)
		require.Equal(t, client.FieldErrorLocation("header"), (*p.Errors)[0].Location)
		require.Equal(t, "Idempotency-Key", (*p.Errors)[0].Field)
		page := taskList(t, u.Client, client.ListTasksParams{})
		require.Equal(t, int64(1), page.Total)
		require.Equal(t, "first body", page.Items[0].Title)
	})

	t.Run("request_in_flight_is_409", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Inflight", false)
		const key = "in-flight-key"
		// Hold the first request inside its handler: a lock on the tasks table makes its
		// INSERT wait, after it has claimed the key.
		conn, err := pgx.Connect(ctx, f.env.DBURL)
		require.NoError(t, err)
		defer func() { _ = conn.Close(ctx) }()
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, "LOCK TABLE tasks IN SHARE MODE")
		require.NoError(t, err)

		type result struct {
			res *client.CreateTaskResponse
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := create(u.Client, key, "slow")
			done <- result{res, err}
		}()
		watch, err := pgx.Connect(ctx, f.env.DBURL)
		require.NoError(t, err)
		defer func() { _ = watch.Close(ctx) }()
		require.Eventually(t, func() bool {
			var n int
			err := watch.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status_code IS NULL", u.Id, key).Scan(&n)
			return err == nil && n == 1
		}, 10*time.Second, 10*time.Millisecond, "the first request claims the key")

		second, err := create(u.Client, key, "slow")
		require.NoError(t, err)
		p := apitest.RequireProblem(t, second, http.StatusConflict)
		require.Equal(t, "/problems/conflict", p.Type)
		require.Empty(t, second.HTTPResponse.Header.Get("Idempotent-Replayed"))
		other, err := create(u.Client, key, "different")
		require.NoError(t, err)
		apitest.RequireProblem(t, other, http.StatusUnprocessableEntity)

		require.NoError(t, tx.Rollback(ctx))
		var first result
		select {
		case first = <-done:
		case <-time.After(20 * time.Second):
			require.FailNow(t, "the first request did not finish")
		}
		require.NoError(t, first.err)
		require.Equal(t, http.StatusCreated, first.res.StatusCode(), "%s", first.res.Body)
		require.Empty(t, first.res.HTTPResponse.Header.Get("Idempotent-Replayed"))
		third, err := create(u.Client, key, "slow")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, third.StatusCode(), "%s", third.Body)
		require.Equal(t, "true", third.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.Equal(t, string(first.res.Body), string(third.Body))
		require.Equal(t, int64(1), taskVisibleTotal(t, u.Client))
	})

	t.Run("concurrent_requests_with_the_same_key_create_one_task", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Stampede", false)
		const n = 8
		type result struct {
			status   int
			replayed string
			body     []byte
			err      error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				res, err := create(u.Client, "stampede-key", "stampede")
				results[i].err = err
				if err == nil {
					results[i].status, results[i].body = res.StatusCode(), res.Body
					results[i].replayed = res.HTTPResponse.Header.Get("Idempotent-Replayed")
				}
			})
		}
		close(start)
		wg.Wait()
		var originals, replays, conflicts int
		var original []byte
		for _, r := range results {
			require.NoError(t, r.err)
			switch {
			case r.status == http.StatusCreated && r.replayed == "":
				originals++
				original = r.body
			case r.status == http.StatusCreated && r.replayed == "true":
				replays++
			case r.status == http.StatusConflict:
				conflicts++
			default:
				require.Failf(t, "unexpected response", "%d (replayed %q): %s", r.status, r.replayed, r.body)
			}
		}
		require.Equal(t, 1, originals, "exactly one request creates the task")
		require.Equal(t, n, originals+replays+conflicts)
		for _, r := range results {
			if r.status == http.StatusCreated {
				require.Equal(t, string(original), string(r.body), "replays carry the first body")
			}
		}
		require.Equal(t, int64(1), taskVisibleTotal(t, u.Client), "exactly one task exists")
		t.Logf("%d original, %d replays, %d conflicts", originals, replays, conflicts)
	})

	t.Run("keys_are_scoped_per_user", func(t *testing.T) {
		t.Parallel()
		a := f.env.CreateUser(t, "KeyA", false)
		b := f.env.CreateUser(t, "KeyB", false)
		ra, err := create(a.Client, "shared-key", "same body")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, ra.StatusCode(), "%s", ra.Body)
		rb, err := create(b.Client, "shared-key", "same body")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, rb.StatusCode(), "%s", rb.Body)
		require.Empty(t, rb.HTTPResponse.Header.Get("Idempotent-Replayed"), "another user's key is not a replay")
		require.NotEqual(t, ra.JSON201.Id, rb.JSON201.Id)
		require.Equal(t, b.Id, rb.JSON201.CreatedBy.MustGet())
		require.Equal(t, []int64{ra.JSON201.Id}, taskIDs(taskList(t, a.Client, client.ListTasksParams{})))
		require.Equal(t, []int64{rb.JSON201.Id}, taskIDs(taskList(t, b.Client, client.ListTasksParams{})))
		// A different body under b's key is still rejected for b only.
		rb2, err := create(b.Client, "shared-key", "other body")
		require.NoError(t, err)
		apitest.RequireProblem(t, rb2, http.StatusUnprocessableEntity)
	})

	t.Run("rejected_request_does_not_claim_the_key", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Rejected", false)
		const key = "fix-and-retry-key"
		r := f.env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":""}`, "Idempotency-Key", key)
		p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "title")
		r = f.env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":`, "Idempotency-Key", key)
		apitest.RequireProblem(t, r, http.StatusBadRequest)
		r = f.env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":"ok"}`, "Idempotency-Key", key, "Content-Type", "text/plain")
		apitest.RequireProblem(t, r, http.StatusUnsupportedMediaType)
		require.Zero(t, taskVisibleTotal(t, u.Client))

		ok, err := create(u.Client, key, "fixed")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, ok.StatusCode(), "%s", ok.Body)
		require.Empty(t, ok.HTTPResponse.Header.Get("Idempotent-Replayed"))
		again, err := create(u.Client, key, "fixed")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, again.StatusCode(), "%s", again.Body)
		require.Equal(t, "true", again.HTTPResponse.Header.Get("Idempotent-Replayed"))
		require.Equal(t, int64(1), taskVisibleTotal(t, u.Client))
	})

	t.Run("anonymous_with_a_key_is_401", func(t *testing.T) {
		t.Parallel()
		r := f.env.Do(t, http.MethodPost, taskPath, "", `{"title":"anon"}`, "Idempotency-Key", "anon-key")
		apitest.RequireProblem(t, r, http.StatusUnauthorized)
		require.Empty(t, r.Header.Get("Idempotent-Replayed"))
	})
	// POST /api/v1/users declares no Idempotency-Key (the generated CreateUserParams has
	// no such field), so user creation is not covered here.
}

// ---------------------------------------------------------------------------------------
// 5. Bad input
// ---------------------------------------------------------------------------------------

type taskBadCase struct {
	name   string
	body   string
	status int
	loc    string // expected field error location ("" for none)
	field  string
	header []string
}

func TestTaskBadInput(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	// bad only ever sends invalid creates, so it must never see a task.
	bad := f.env.CreateUser(t, "BadInput", false)
	owner := f.env.CreateUser(t, "Owner", false)
	inactive := f.env.CreateUser(t, "Inactive", false)
	f.deactivate(t, inactive.Id)
	target := taskCreate(t, owner.Client, client.TaskCreate{Title: "target", Tags: &client.TaskTags{"keep"}})
	targetPath := fmt.Sprintf("%s/%d", taskPath, target.Id)

	long := func(n int) string { return strings.Repeat("x", n) }
	tags := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("%q", "t"+strconv.Itoa(i))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	bigMetadata := `{"blob":"` + long(70_000) + `"}`
	noAssignee := strconv.FormatInt(999_999_999, 10)
	inactiveID := strconv.FormatInt(inactive.Id, 10)

	// Fields both operations share (the body gets a valid title for creates).
	shared := []taskBadCase{
		{name: "title_empty", body: `"title":""`, loc: "body", field: "title"},
		{name: "title_201_chars", body: `"title":"` + long(201) + `"`, loc: "body", field: "title"},
		{name: "title_null", body: `"title":null`, loc: "body", field: "title"},
		{name: "description_10001_chars", body: `"description":"` + long(10_001) + `"`, loc: "body", field: "description"},
		{name: "priority_critical", body: `"priority":"critical"`, loc: "body", field: "priority"},
		{name: "tags_21_items", body: `"tags":` + tags(21), loc: "body", field: "tags"},
		{name: "tag_51_chars", body: `"tags":["` + long(51) + `"]`, loc: "body", field: "tags"},
		{name: "tags_duplicate", body: `"tags":["a","b","a"]`, loc: "body", field: "tags"},
		{name: "tag_empty", body: `"tags":["a",""]`, loc: "body", field: "tags"},
		{name: "tags_not_an_array", body: `"tags":"a,b"`, loc: "body", field: "tags"},
		{name: "metadata_array", body: `"metadata":[1,2]`, loc: "body", field: "metadata"},
		{name: "metadata_string", body: `"metadata":"x"`, loc: "body", field: "metadata"},
		{name: "metadata_over_64KiB", body: `"metadata":` + bigMetadata, loc: "body", field: "metadata"},
		{name: "due_at_tomorrow", body: `"due_at":"tomorrow"`, loc: "body", field: "due_at"},
		{name: "due_at_month_13", body: `"due_at":"2026-13-01T00:00:00Z"`, loc: "body", field: "due_at"},
		{name: "assignee_id_string", body: `"assignee_id":"x"`, loc: "body", field: "assignee_id"},
		{name: "assignee_id_zero", body: `"assignee_id":0`, loc: "body", field: "assignee_id"},
		{name: "assignee_id_nonexistent", body: `"assignee_id":` + noAssignee, loc: "body", field: "assignee_id"},
		{name: "assignee_id_inactive", body: `"assignee_id":` + inactiveID, loc: "body", field: "assignee_id"},
		{name: "created_by_is_not_writable", body: `"created_by":1`, loc: "body", field: "created_by"},
		{name: "version_is_not_writable", body: `"version":99`, loc: "body", field: "version"},
		{name: "id_is_not_writable", body: `"id":1`, loc: "body", field: "id"},
		{name: "completed_at_is_not_writable", body: `"completed_at":"2026-01-01T00:00:00Z"`, loc: "body", field: "completed_at"},
	}
	createBody := func(fields string) string {
		if strings.HasPrefix(fields, `"title"`) {
			return "{" + fields + "}"
		}
		return `{"title":"bad input",` + fields + "}"
	}
	createCases := []taskBadCase{
		{name: "title_missing", body: `{}`, loc: "body", field: "title"},
		{name: "status_is_not_settable_on_create", body: `{"title":"t","status":"completed"}`, loc: "body", field: "status"},
		{name: "body_not_an_object", body: `["title"]`},
		{name: "malformed_json", body: `{"title":`, status: http.StatusBadRequest},
		{name: "not_json", body: `title=x`, status: http.StatusBadRequest},
		{name: "wrong_content_type", body: `{"title":"t"}`, status: http.StatusUnsupportedMediaType, header: []string{"Content-Type", "text/plain"}},
	}
	for _, c := range shared {
		c.body = createBody(c.body)
		createCases = append(createCases, c)
	}
	updateCases := []taskBadCase{
		{name: "status_done", body: `{"status":"done"}`, loc: "body", field: "status"},
		{name: "status_null", body: `{"status":null}`, loc: "body", field: "status"},
		{name: "created_at_is_not_writable", body: `{"created_at":"2026-01-01T00:00:00Z"}`, loc: "body", field: "created_at"},
		{name: "body_not_an_object", body: `"title"`},
		{name: "malformed_json", body: `{"title":`, status: http.StatusBadRequest},
		{name: "wrong_content_type", body: `{"title":"t"}`, status: http.StatusUnsupportedMediaType, header: []string{"Content-Type", "text/plain"}},
	}
	for _, c := range shared {
		c.body = "{" + c.body + "}"
		updateCases = append(updateCases, c)
	}
	check := func(t *testing.T, c taskBadCase, r *apitest.Response) {
		t.Helper()
		status := c.status
		if status == 0 {
			status = http.StatusUnprocessableEntity
		}
		require.Equal(t, status, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, status)
		if c.loc != "" {
			apitest.RequireFieldError(t, p, c.loc, c.field)
		}
	}

	t.Run("createTask", func(t *testing.T) {
		t.Parallel()
		for _, c := range createCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, taskPath, bad.Token, c.body, c.header...)
				check(t, c, r)
				require.Zero(t, taskVisibleTotal(t, bad.Client), "nothing is written")
			})
		}
	})
	t.Run("updateTask", func(t *testing.T) {
		t.Parallel()
		for _, c := range updateCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPatch, targetPath, owner.Token, c.body, c.header...)
				check(t, c, r)
				after := taskGet(t, owner.Client, target.Id)
				require.Equal(t, target.Version, after.Version, "nothing is written")
				require.Equal(t, target.Title, after.Title)
				require.Equal(t, target.Tags, after.Tags)
				require.True(t, after.AssigneeId.IsNull())
			})
		}
	})
	t.Run("listTasks", func(t *testing.T) {
		t.Parallel()
		cases := []struct{ query, field string }{
			{"status=bogus", "status"},
			{"status=pending&status=bogus", "status"},
			{"priority=bogus", "priority"},
			{"assignee_id=abc", "assignee_id"},
			{"assignee_id=0", "assignee_id"},
			{"created_by=abc", "created_by"},
			{"due_before=notadate", "due_before"},
			{"due_after=2026-13-01T00:00:00Z", "due_after"},
			{"limit=0", "limit"},
			{"limit=1001", "limit"},
			{"limit=abc", "limit"},
			{"skip=-1", "skip"},
			{"sort=title", "sort"},
			{"sort=bogus", "sort"},
			{"q=" + long(201), "q"},
		}
		for _, c := range cases {
			name := c.query
			if len(name) > 40 {
				name = c.field + "_too_long"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodGet, taskPath+"?"+c.query, owner.Token, "")
				require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
				p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
				apitest.RequireFieldError(t, p, "query", c.field)
			})
		}
	})
	t.Run("task_id", func(t *testing.T) {
		t.Parallel()
		type opCase struct {
			name, method, suffix, body string
		}
		ops := []opCase{
			{"getTask", http.MethodGet, "", ""},
			{"updateTask", http.MethodPatch, "", `{"title":"nope"}`},
			{"deleteTask", http.MethodDelete, "", ""},
			{"listTaskRuns", http.MethodGet, "/runs", ""},
		}
		ids := []struct {
			name, id string
			status   int
		}{
			{"abc_is_422", "abc", http.StatusUnprocessableEntity},
			{"zero_is_422", "0", http.StatusUnprocessableEntity},
			{"negative_is_422", "-1", http.StatusUnprocessableEntity},
			{"overflow_is_422", "99999999999999999999", http.StatusUnprocessableEntity},
			{"unknown_is_404", "999999999", http.StatusNotFound},
		}
		for _, o := range ops {
			for _, id := range ids {
				t.Run(o.name+"_"+id.name, func(t *testing.T) {
					t.Parallel()
					r := f.env.Do(t, o.method, taskPath+"/"+id.id+o.suffix, owner.Token, o.body)
					require.Equal(t, id.status, r.Status, "body: %s", r.Body)
					p := apitest.RequireProblem(t, r, id.status)
					if id.status == http.StatusUnprocessableEntity {
						apitest.RequireFieldError(t, p, "path", "task_id")
					}
				})
			}
		}
	})
	t.Run("metadata_under_64KiB_with_many_keys_is_accepted", func(t *testing.T) {
		t.Parallel()
		// 64 KiB counts the compact JSON a client sends (the service measures it so too);
		// PostgreSQL's jsonb text form adds a space after every ':' and ','.
		meta := client.TaskMetadata{}
		size := 2
		for i := 0; ; i++ {
			k := fmt.Sprintf("k%05d", i)
			entry := len(k) + 2 + 1 + 1 + 1 // "k": 1 ,
			if size+entry > 64_000 {
				break
			}
			meta[k] = 1
			size += entry
		}
		raw, err := json.Marshal(meta)
		require.NoError(t, err)
		require.Less(t, len(raw), 64<<10)
		res, err := owner.Client.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: "many keys", Metadata: &meta})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "metadata of %d bytes as JSON: %s", len(raw), res.Body)
		require.Len(t, res.JSON201.Metadata, len(meta))
	})
	t.Run("title_of_only_spaces_is_a_field_error", func(t *testing.T) {
		t.Parallel()
		// The service trims titles; one that trims to nothing must be reported like an
		// empty one, not as a database constraint.
		r := f.env.Do(t, http.MethodPost, taskPath, bad.Token, `{"title":"   "}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "title")
		require.Zero(t, taskVisibleTotal(t, bad.Client))
		r = f.env.Do(t, http.MethodPatch, targetPath, owner.Token, `{"title":"   "}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p = apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "title")
		require.Equal(t, target.Version, taskGet(t, owner.Client, target.Id).Version)
	})
}

// ---------------------------------------------------------------------------------------
// 6. Deleted users
// ---------------------------------------------------------------------------------------

func TestTaskUserDeleted(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	ctx := context.Background()
	deleteUser := func(t *testing.T, id int64) {
		t.Helper()
		res, err := f.admin.DeleteUserWithResponse(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "delete user %d: %s", id, res.Body)
	}

	t.Run("tasks_survive_with_references_cleared", func(t *testing.T) {
		t.Parallel()
		a := f.env.CreateUser(t, "Leaver", false)
		b := f.env.CreateUser(t, "Stayer", false)
		task := taskCreate(t, a.Client, client.TaskCreate{Title: "orphan", AssigneeId: nullable.NewNullableWithValue(b.Id)})
		require.Equal(t, a.Id, task.CreatedBy.MustGet())

		deleteUser(t, a.Id)
		got := taskGet(t, f.admin, task.Id)
		require.True(t, got.CreatedBy.IsNull(), "created_by is null once the creator is deleted")
		require.Equal(t, b.Id, got.AssigneeId.MustGet())
		require.Equal(t, task.Title, got.Title)
		require.Equal(t, http.StatusOK, taskGetStatus(t, b.Client, task.Id), "the assignee still sees it")

		deleteUser(t, b.Id)
		got = taskGet(t, f.admin, task.Id)
		require.True(t, got.CreatedBy.IsNull())
		require.True(t, got.AssigneeId.IsNull(), "assignee_id is null once the assignee is deleted")
		require.Contains(t, taskIDs(taskList(t, f.admin, client.ListTasksParams{})), task.Id)

		// The orphan can still be changed and deleted by an administrator.
		upd := taskUpdate(t, f.admin, task.Id, client.TaskUpdate{Status: apitest.Ptr(client.TaskStatusInProgress)})
		require.Equal(t, client.TaskStatusInProgress, upd.Status)
		res, err := f.admin.DeleteTaskWithResponse(ctx, task.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode(), "%s", res.Body)
	})

	t.Run("deleted_user_cannot_be_assigned", func(t *testing.T) {
		t.Parallel()
		gone := f.env.CreateUser(t, "Gone", false)
		deleteUser(t, gone.Id)
		r := f.env.Do(t, http.MethodPost, taskPath, f.adminToken, fmt.Sprintf(`{"title":"t","assignee_id":%d}`, gone.Id))
		p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "assignee_id")
	})

	t.Run("etag_changes_when_a_reference_is_cleared", func(t *testing.T) {
		t.Parallel()
		// created_by is part of the representation, and the ETag is a strong validator:
		// a client holding the old ETag must not be told "not modified".
		a := f.env.CreateUser(t, "Vanisher", false)
		task := taskCreate(t, a.Client, client.TaskCreate{Title: "stale cache"})
		deleteUser(t, a.Id)
		old := taskETag(task.Version)
		res, err := f.admin.GetTaskWithResponse(ctx, task.Id, &client.GetTaskParams{IfNoneMatch: &old})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "the representation changed (created_by %d → null) but the ETag %s did not", a.Id, old)
		require.True(t, res.JSON200.CreatedBy.IsNull())
		require.NotEqual(t, old, res.HTTPResponse.Header.Get("ETag"))
	})
}

// ---------------------------------------------------------------------------------------
// 7. ETags and the runs sub-resource
// ---------------------------------------------------------------------------------------

func TestTaskETag(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	ctx := context.Background()
	u := f.env.CreateUser(t, "Tagger", false)
	other := f.env.CreateUser(t, "Outsider", false)
	path := func(id int64) string { return fmt.Sprintf("%s/%d", taskPath, id) }

	t.Run("get_returns_the_version_as_etag", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "etag"})
		require.Equal(t, int64(1), task.Version)
		res, err := u.Client.GetTaskWithResponse(ctx, task.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		require.Equal(t, `"1"`, res.HTTPResponse.Header.Get("ETag"))
	})

	t.Run("if_none_match_current_is_304", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "conditional get"})
		for _, h := range []string{`"1"`, `W/"1"`, `"7", "1"`, `*`} {
			r := f.env.Do(t, http.MethodGet, path(task.Id), u.Token, "", "If-None-Match", h)
			require.Equal(t, http.StatusNotModified, r.Status, "If-None-Match %s", h)
			require.Empty(t, r.Body, "304 has no body")
			require.Equal(t, `"1"`, r.Header.Get("ETag"))
		}
		r := f.env.Do(t, http.MethodGet, path(task.Id), u.Token, "", "If-None-Match", `"2"`)
		require.Equal(t, http.StatusOK, r.Status)
		require.Equal(t, `"1"`, r.Header.Get("ETag"))
	})

	t.Run("invisible_task_is_404_even_with_if_none_match", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "private"})
		r := f.env.Do(t, http.MethodGet, path(task.Id), other.Token, "", "If-None-Match", `"1"`)
		apitest.RequireProblem(t, r, http.StatusNotFound)
	})

	t.Run("patch_returns_the_new_etag", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "v1"})
		res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, nil, client.TaskUpdate{Title: apitest.Ptr("v2")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, `"2"`, res.HTTPResponse.Header.Get("ETag"))
		require.Equal(t, int64(2), res.JSON200.Version)
		r := f.env.Do(t, http.MethodGet, path(task.Id), u.Token, "", "If-None-Match", `"1"`)
		require.Equal(t, http.StatusOK, r.Status, "the old ETag no longer matches")
		require.Equal(t, `"2"`, r.Header.Get("ETag"))
	})

	t.Run("stale_if_match_on_patch_is_412", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "v1"})
		taskUpdate(t, u.Client, task.Id, client.TaskUpdate{Title: apitest.Ptr("v2")})
		for _, h := range []string{`"1"`, `W/"2"`, `"3"`, `garbage`} {
			res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, &client.UpdateTaskParams{IfMatch: apitest.Ptr(h)}, client.TaskUpdate{Title: apitest.Ptr("lost update")})
			require.NoError(t, err)
			p := apitest.RequireProblem(t, res, http.StatusPreconditionFailed)
			require.Equal(t, "/problems/precondition-failed", p.Type, "If-Match %s", h)
		}
		after := taskGet(t, u.Client, task.Id)
		require.Equal(t, "v2", after.Title, "nothing changed")
		require.Equal(t, int64(2), after.Version)
	})

	t.Run("stale_if_match_on_delete_is_412", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "v1"})
		taskUpdate(t, u.Client, task.Id, client.TaskUpdate{Title: apitest.Ptr("v2")})
		res, err := u.Client.DeleteTaskWithResponse(ctx, task.Id, &client.DeleteTaskParams{IfMatch: apitest.Ptr(`"1"`)})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusPreconditionFailed)
		require.Equal(t, int64(2), taskGet(t, u.Client, task.Id).Version, "the task still exists unchanged")
	})

	t.Run("matching_if_match_applies", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "v1"})
		res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, &client.UpdateTaskParams{IfMatch: apitest.Ptr(`"1"`)}, client.TaskUpdate{Title: apitest.Ptr("v2")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		res, err = u.Client.UpdateTaskWithResponse(ctx, task.Id, &client.UpdateTaskParams{IfMatch: apitest.Ptr(`"9", "2"`)}, client.TaskUpdate{Title: apitest.Ptr("v3")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "a list containing the current ETag matches: %s", res.Body)
		require.Equal(t, `"3"`, res.HTTPResponse.Header.Get("ETag"))
		del, err := u.Client.DeleteTaskWithResponse(ctx, task.Id, &client.DeleteTaskParams{IfMatch: apitest.Ptr(`"3"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, del.StatusCode(), "%s", del.Body)
		require.Equal(t, http.StatusNotFound, taskGetStatus(t, u.Client, task.Id))
	})

	t.Run("if_match_star_applies", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "v1"})
		taskUpdate(t, u.Client, task.Id, client.TaskUpdate{Title: apitest.Ptr("v2")})
		res, err := u.Client.UpdateTaskWithResponse(ctx, task.Id, &client.UpdateTaskParams{IfMatch: apitest.Ptr("*")}, client.TaskUpdate{Title: apitest.Ptr("v3")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, `"3"`, res.HTTPResponse.Header.Get("ETag"))
		del, err := u.Client.DeleteTaskWithResponse(ctx, task.Id, &client.DeleteTaskParams{IfMatch: apitest.Ptr("*")})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, del.StatusCode(), "%s", del.Body)
		require.Equal(t, http.StatusNotFound, taskGetStatus(t, u.Client, task.Id))
	})

	t.Run("if_match_on_a_missing_task_is_404", func(t *testing.T) {
		t.Parallel()
		res, err := u.Client.UpdateTaskWithResponse(ctx, 999_999_999, &client.UpdateTaskParams{IfMatch: apitest.Ptr("*")}, client.TaskUpdate{Title: apitest.Ptr("x")})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusNotFound)
	})

	t.Run("runs_of_a_visible_task_is_an_empty_page", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "no runs yet"})
		res, err := u.Client.ListTaskRunsWithResponse(ctx, task.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.NotNil(t, res.JSON200.Items)
		require.Empty(t, res.JSON200.Items)
		require.Zero(t, res.JSON200.Total)
		require.Zero(t, res.JSON200.TotalPages)
		require.Equal(t, int32(100), res.JSON200.PageSize)
		var raw map[string]any
		require.NoError(t, json.Unmarshal(res.Body, &raw))
		require.Equal(t, []any{}, raw["items"], "items is an empty array, not null")
	})

	t.Run("runs_of_an_invisible_task_is_404", func(t *testing.T) {
		t.Parallel()
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "someone else's runs"})
		res, err := other.Client.ListTaskRunsWithResponse(ctx, task.Id, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusNotFound)
		res, err = u.Client.ListTaskRunsWithResponse(ctx, 999_999_999, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusNotFound)
	})
}
