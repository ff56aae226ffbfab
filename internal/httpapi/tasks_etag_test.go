package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// ETags and the runs sub-resource
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
