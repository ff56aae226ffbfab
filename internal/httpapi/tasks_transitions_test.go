package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// The full transition table
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
