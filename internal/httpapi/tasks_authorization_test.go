package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Authorization matrix
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
	assign := nullable.NewNullableWithValue[int64]
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
