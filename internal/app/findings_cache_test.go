package app_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// Two instances on one database, no Redis, a long CACHE_TTL: a change made through one
// instance is seen by the other on its very next request.
func TestFinding09_CacheInvalidationReachesOtherInstancesWithoutRedis(t *testing.T) {
	t.Parallel()
	opts := []apitest.Option{apitest.WithEnv("SECRET_KEY", secretKey), apitest.WithEnv("CACHE_TTL", "1h")}
	a := apitest.Start(t, opts...)
	b := apitest.StartOn(t, a.DBURL, append(opts, apitest.WithEnv("WORKER_CONCURRENCY", "0"))...)
	ctx := context.Background()
	adminA := a.AsAdmin(t)

	for round := range 3 {
		boss := a.CreateUser(t, "Boss", true)
		onB := b.As(boss.Token)
		// B caches the principal: an admin-only request succeeds, twice (the second from the cache).
		for range 2 {
			res, err := onB.ListUsersWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "round %d: %s", round, res.Body)
		}

		// A demotes the admin.
		demoted, err := adminA.UpdateUserWithResponse(ctx, boss.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, demoted.StatusCode(), "%s", demoted.Body)

		// B refuses the very next admin-only request.
		res, err := onB.ListUsersWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, res.StatusCode(), "round %d: instance B still serves the demoted admin from its cache: %s", round, res.Body)

		// Deactivation too: B refuses the token at once.
		off, err := adminA.UpdateUserWithResponse(ctx, boss.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, off.StatusCode(), "%s", off.Body)
		me, err := onB.GetCurrentUserWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, me.StatusCode(), "round %d: %s", round, me.Body)
	}
}
