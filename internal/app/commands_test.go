package app_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/app"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/httpapi"
)

func TestDatabaseEchoLogsStatementsWithoutArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		echo     string
		wantSQL  bool
		logLevel string
	}{
		"on at debug level":    {echo: "true", logLevel: "DEBUG", wantSQL: true},
		"off at debug level":   {echo: "false", logLevel: "DEBUG", wantSQL: false},
		"on above debug level": {echo: "true", logLevel: "INFO", wantSQL: false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.vars["DATABASE_URL"] = dbtest.URL(t)
			b.vars["DATABASE_ECHO"] = tt.echo
			b.vars["LOG_LEVEL"] = tt.logLevel
			r := start(t, b.program(), "serve")

			const probe = "echo-probe-7f3a@example.com"
			status, _ := login(t, r.base, probe, "a-password-that-is-not-logged")
			require.Equal(t, http.StatusUnauthorized, status)
			require.NoError(t, r.stop(t))

			var sqlLines []string
			for _, line := range strings.Split(b.stderr.String(), "\n") {
				if strings.Contains(line, `"msg":"sql"`) {
					sqlLines = append(sqlLines, line)
				}
			}
			if !tt.wantSQL {
				require.Empty(t, sqlLines)
				return
			}
			require.NotEmpty(t, sqlLines)
			joined := strings.Join(sqlLines, "\n")
			require.Contains(t, joined, "FROM users", "the login's lookup is logged")
			require.Contains(t, joined, `"duration_ms"`)
			require.NotContains(t, b.stderr.String(), probe, "arguments are never logged")
			require.NotContains(t, b.stderr.String(), "a-password-that-is-not-logged")
		})
	}
}

func TestRoutesPrintsThePolicyOfEveryOperation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.vars = map[string]string{} // needs no configuration
	require.NoError(t, b.run(t, "routes"))
	out := b.stdout.String()
	require.True(t, strings.HasPrefix(out, "METHOD"), out)
	require.Regexp(t, `(?m)^POST\s+/api/v1/tasks\s+createTask\s+bearer,api-key\s+user\s+tasks:write\s+user/ip\s+yes\s+application/json\s*$`, out)
	require.Regexp(t, `(?m)^GET\s+/api/v1/users\s+listUsers\s+bearer,api-key\s+admin\s+users:read\s`, out)
	require.Regexp(t, `(?m)^POST\s+/api/v1/api-keys\s+createApiKey\s+bearer\s+user\s+users:write\s`, out)
	require.Regexp(t, `(?m)^POST\s+/api/v1/auth/token\s+createToken\s+public\s+public\s+-\s`, out)
}

func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.vars = map[string]string{} // needs no configuration
			require.NoError(t, b.run(t, arg))
			require.Regexp(t, `^automation `+regexp.QuoteMeta(app.Version)+` \(commit \S+, go1\.\d+`, b.stdout.String())
		})
	}
}

func TestVersionIsTheContractVersion(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	require.Equal(t, doc.Info.Version, app.Version, "GET / and `automation version` report the contract's info.version")
}
