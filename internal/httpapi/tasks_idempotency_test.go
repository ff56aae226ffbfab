package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Idempotency-Key
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
