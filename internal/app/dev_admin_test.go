package app_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/app"
)

// TestDevAppliesARegeneratedAdminPasswordToTheExistingAdmin: when .data/admin_password
// is deleted, the next `dev` generates a new one and sets it on the administrator the
// database already has, so the printed credentials log in and the old ones no longer do.
// A kept file changes nothing.
func TestDevAppliesARegeneratedAdminPasswordToTheExistingAdmin(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dev")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	vars := map[string]string{"API_HOST": "127.0.0.1", "API_PORT": "0"}
	runDev := func() (string, banner, *apitest.SyncBuffer, func()) {
		stdout, stderr := &apitest.SyncBuffer{}, &apitest.SyncBuffer{}
		p := &app.Program{Getenv: func(k string) string { return vars[k] }, Stdout: stdout, Stderr: stderr, PasswordParams: cheap}
		r := start(t, p, "dev", "-data", dir)
		return r.base, parseBanner(t, stdout.String()), stderr, func() { require.NoError(t, r.stop(t)) }
	}

	base, first, _, stop := runDev()
	status, _ := login(t, base, first.admin, first.password)
	require.Equal(t, http.StatusOK, status)
	stop()

	require.NoError(t, os.Remove(filepath.Join(dir, "admin_password")))
	base, second, logs, stop := runDev()
	require.Equal(t, first.admin, second.admin)
	require.NotEqual(t, first.password, second.password, "a new password was generated")
	status, body := login(t, base, second.admin, second.password)
	require.Equal(t, http.StatusOK, status, "the printed credentials log in: %v", body)
	status, _ = login(t, base, first.admin, first.password)
	require.Equal(t, http.StatusUnauthorized, status, "the old password is gone")
	require.Contains(t, logs.String(), "password was set to the newly generated one")
	require.NotContains(t, logs.String(), second.password, "the password is never logged")
	stop()

	base, third, logs, stop := runDev()
	require.Equal(t, second.password, third.password, "a kept file keeps the password")
	status, _ = login(t, base, third.admin, third.password)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, logs.String(), "password was set")
	stop()
}
