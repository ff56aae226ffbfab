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

// TestRecordCacheNeverServesStaleOrForeignData reads records until they are cached, then
// changes them and checks that every reader sees the change at once, on both cache
// backends and across two instances sharing Redis; and that cached records never reach
// someone who may not see them.
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
			alice := env.CreateUser(t, "Alice", false)
			bob := env.CreateUser(t, "Bob", false)
			aliceR, bobR := reader.As(alice.Token), reader.As(bob.Token)

			me := func(c *client.ClientWithResponses) *client.GetCurrentUserResponse {
				res, err := c.GetCurrentUserWithResponse(ctx, nil)
				require.NoError(t, err)
				return res
			}
			for range 3 { // cached by now
				require.Equal(t, http.StatusOK, me(aliceR).StatusCode())
			}

			// A rename shows at once.
			newName := "Alice Renamed"
			res, err := admin.UpdateUserWithResponse(ctx, alice.Id, nil, client.UserUpdate{Name: &newName})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			require.Equal(t, newName, me(aliceR).JSON200.Name)

			// A promotion lets her in to admin operations at once, a demotion shuts her out.
			yes, no := true, false
			res, err = admin.UpdateUserWithResponse(ctx, alice.Id, nil, client.UserUpdate{IsAdmin: &yes})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			list, err := aliceR.ListUsersWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, list.StatusCode(), "promoted: %s", list.Body)
			res, err = admin.UpdateUserWithResponse(ctx, alice.Id, nil, client.UserUpdate{IsAdmin: &no})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			list, err = aliceR.ListUsersWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusForbidden, list.StatusCode(), "demoted: %s", list.Body)

			// Deactivation locks her out at once, reactivation lets her back.
			res, err = admin.UpdateUserWithResponse(ctx, alice.Id, nil, client.UserUpdate{IsActive: &no})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			require.Equal(t, http.StatusUnauthorized, me(aliceR).StatusCode())
			res, err = admin.UpdateUserWithResponse(ctx, alice.Id, nil, client.UserUpdate{IsActive: &yes})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			require.Equal(t, http.StatusOK, me(aliceR).StatusCode())

			// Tasks: a cached task is still checked against each reader's visibility.
			created, err := alice.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "private"})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, created.StatusCode())
			id := created.JSON201.Id
			for range 3 {
				got, err := aliceR.GetTaskWithResponse(ctx, id, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, got.StatusCode())
			}
			got, err := bobR.GetTaskWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, got.StatusCode(), "a cached task is not shown to someone who may not see it")

			// Assigning it to Bob shows it to him at once, with the new version.
			upd, err := alice.Client.UpdateTaskWithResponse(ctx, id, nil, client.TaskUpdate{AssigneeId: nullable.NewNullableWithValue(bob.Id)})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, upd.StatusCode(), "%s", upd.Body)
			got, err = bobR.GetTaskWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, got.StatusCode())
			require.Equal(t, upd.JSON200.Version, got.JSON200.Version)
			require.Equal(t, bob.Id, got.JSON200.AssigneeId.MustGet())

			// Deleting Bob detaches him from the task; the cached task shows that at once.
			del, err := admin.DeleteUserWithResponse(ctx, bob.Id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusNoContent, del.StatusCode())
			got, err = aliceR.GetTaskWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, got.StatusCode())
			require.True(t, got.JSON200.AssigneeId.IsNull(), "the detached assignee is gone from the cached task")
			require.Greater(t, got.JSON200.Version, upd.JSON200.Version)
			require.Equal(t, http.StatusUnauthorized, me(bobR).StatusCode(), "a deleted user's token stops working at once")

			// Deleting the task removes it at once.
			tdel, err := alice.Client.DeleteTaskWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusNoContent, tdel.StatusCode())
			got, err = aliceR.GetTaskWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, got.StatusCode())
		})
	}
}
