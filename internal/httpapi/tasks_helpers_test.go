package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"

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
