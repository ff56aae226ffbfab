package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Deleted users
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
