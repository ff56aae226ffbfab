package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/redistest"
)

// TestRecordCacheNeverServesStaleOrForeignData caches records by reading them, then
// changes them and checks that every reader sees the change at once, on both cache
// backends and, with Redis, on a second instance; and that cached records never reach
// someone who may not see them.
//
// An invalidated key refuses fills for a few seconds (cache.InvalidationGuard), so each
// check uses a record that was cached without an invalidation before it: otherwise the
// read after the change would reach the database anyway and prove nothing.
func TestRecordCacheNeverServesStaleOrForeignData(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"in-process", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := []apitest.Option{apitest.WithEnv("CACHE_TTL", "10m"), apitest.WithEnv("SECRET_KEY", strings.Repeat("k", 40))}
			if backend == "redis" {
				opts = append(opts, apitest.WithEnv("REDIS_URL", redistest.Start(t).URL()))
			}
			env := apitest.Start(t, opts...)
			// With Redis, a second instance reads what the first one changes.
			reader := env
			if backend == "redis" {
				reader = apitest.StartOn(t, env.DBURL, opts...)
			}
			admin := env.AsAdmin(t)
			// cached returns a client of u on the reading instance, after reading u's
			// record often enough for it to be cached.
			cached := func(u apitest.User) *client.ClientWithResponses {
				c := reader.As(u.Token)
				for range 3 {
					res, err := c.GetCurrentUserWithResponse(ctx, nil)
					require.NoError(t, err)
					require.Equal(t, http.StatusOK, res.StatusCode())
				}
				return c
			}
			update := func(id int64, u client.UserUpdate) {
				res, err := admin.UpdateUserWithResponse(ctx, id, nil, u)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			}
			yes, no := true, false

			t.Run("a_rename_shows_at_once", func(t *testing.T) {
				u := env.CreateUser(t, "Renamed", false)
				c := cached(u)
				name := "Renamed Twice"
				update(u.Id, client.UserUpdate{Name: &name})
				res, err := c.GetCurrentUserWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, name, res.JSON200.Name)
			})
			t.Run("a_promotion_applies_at_once", func(t *testing.T) {
				u := env.CreateUser(t, "Promoted", false)
				c := cached(u)
				update(u.Id, client.UserUpdate{IsAdmin: &yes})
				res, err := c.ListUsersWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			})
			t.Run("a_demotion_applies_at_once", func(t *testing.T) {
				u := env.CreateUser(t, "Demoted", true)
				c := cached(u)
				update(u.Id, client.UserUpdate{IsAdmin: &no})
				res, err := c.ListUsersWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusForbidden, res.StatusCode(), "%s", res.Body)
			})
			t.Run("a_deactivation_locks_out_at_once", func(t *testing.T) {
				u := env.CreateUser(t, "Deactivated", false)
				c := cached(u)
				update(u.Id, client.UserUpdate{IsActive: &no})
				res, err := c.GetCurrentUserWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusUnauthorized, res.StatusCode())
			})
			t.Run("a_deleted_user_is_locked_out_at_once", func(t *testing.T) {
				u := env.CreateUser(t, "Deleted", false)
				c := cached(u)
				del, err := admin.DeleteUserWithResponse(ctx, u.Id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, del.StatusCode())
				res, err := c.GetCurrentUserWithResponse(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusUnauthorized, res.StatusCode())
			})

			t.Run("tasks", func(t *testing.T) {
				alice := env.CreateUser(t, "Alice", false)
				bob := env.CreateUser(t, "Bob", false)
				aliceR, bobR := reader.As(alice.Token), reader.As(bob.Token)
				newTask := func(assignee *int64) int64 {
					body := client.TaskCreate{Title: "cached"}
					if assignee != nil {
						body.AssigneeId = nullable.NewNullableWithValue(*assignee)
					}
					res, err := alice.Client.CreateTaskWithResponse(ctx, nil, body)
					require.NoError(t, err)
					require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
					for range 3 {
						got, err := aliceR.GetTaskWithResponse(ctx, res.JSON201.Id, nil)
						require.NoError(t, err)
						require.Equal(t, http.StatusOK, got.StatusCode())
					}
					return res.JSON201.Id
				}
				get := func(c *client.ClientWithResponses, id int64) *client.GetTaskResponse {
					got, err := c.GetTaskWithResponse(ctx, id, nil)
					require.NoError(t, err)
					return got
				}

				// A cached task is still checked against each reader's visibility.
				private := newTask(nil)
				require.Equal(t, http.StatusNotFound, get(bobR, private).StatusCode(), "a cached task is not shown to someone who may not see it")

				// Assigning it to Bob shows it to him at once, with the new version.
				upd, err := alice.Client.UpdateTaskWithResponse(ctx, private, nil, client.TaskUpdate{AssigneeId: nullable.NewNullableWithValue(bob.Id)})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, upd.StatusCode(), "%s", upd.Body)
				got := get(bobR, private)
				require.Equal(t, http.StatusOK, got.StatusCode())
				require.Equal(t, upd.JSON200.Version, got.JSON200.Version)

				// Deleting Bob detaches him from a task he was assigned when it was created.
				assigned := newTask(&bob.Id)
				before := get(aliceR, assigned).JSON200.Version
				del, err := admin.DeleteUserWithResponse(ctx, bob.Id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, del.StatusCode())
				got = get(aliceR, assigned)
				require.Equal(t, http.StatusOK, got.StatusCode())
				require.True(t, got.JSON200.AssigneeId.IsNull(), "the detached assignee is gone from the cached task")
				require.Greater(t, got.JSON200.Version, before)

				// Deleting a cached task removes it at once.
				doomed := newTask(nil)
				tdel, err := alice.Client.DeleteTaskWithResponse(ctx, doomed, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, tdel.StatusCode())
				require.Equal(t, http.StatusNotFound, get(aliceR, doomed).StatusCode())
			})

			t.Run("agents", func(t *testing.T) {
				carol := env.CreateUser(t, "Carol", true)
				anyone := reader.As(env.CreateUser(t, "Reader", false).Token)
				newAgent := func(by *client.ClientWithResponses, name string) client.Agent {
					res, err := by.CreateAgentWithResponse(ctx, client.AgentCreate{Name: name + "-" + backend})
					require.NoError(t, err)
					require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
					for range 3 {
						got, err := anyone.GetAgentWithResponse(ctx, res.JSON201.Id, nil)
						require.NoError(t, err)
						require.Equal(t, http.StatusOK, got.StatusCode())
					}
					return *res.JSON201
				}
				get := func(id int64) *client.GetAgentResponse {
					got, err := anyone.GetAgentWithResponse(ctx, id, nil)
					require.NoError(t, err)
					return got
				}

				renamed := newAgent(admin, "renamed")
				name := "renamed-again-" + backend
				au, err := admin.UpdateAgentWithResponse(ctx, renamed.Id, nil, client.AgentUpdate{Name: &name})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, au.StatusCode(), "%s", au.Body)
				require.Equal(t, name, get(renamed.Id).JSON200.Name)

				orphan := newAgent(carol.Client, "orphan")
				del, err := admin.DeleteUserWithResponse(ctx, carol.Id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, del.StatusCode())
				got := get(orphan.Id)
				require.True(t, got.JSON200.CreatedBy.IsNull(), "the deleted creator is gone from the cached agent")

				deleted := newAgent(admin, "deleted")
				adel, err := admin.DeleteAgentWithResponse(ctx, deleted.Id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, adel.StatusCode())
				require.Equal(t, http.StatusNotFound, get(deleted.Id).StatusCode())
			})
		})
	}
}
