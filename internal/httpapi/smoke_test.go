package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestSmoke(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	res, err := admin.GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode())
	require.Equal(t, apitest.AdminEmail, string(res.JSON200.Email))
	u := env.CreateUser(t, "Bob", false)
	r2, err := u.Client.ListUsersWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, r2.StatusCode())
}
