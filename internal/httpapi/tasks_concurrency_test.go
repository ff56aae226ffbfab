package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Concurrency
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
