package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/config"
)

func TestEnvExampleIsGeneratedFromTheConfig(t *testing.T) {
	t.Parallel()
	want, err := config.Example()
	require.NoError(t, err)
	got, err := os.ReadFile("../../.env.example")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), ".env.example drifted from internal/config: run make generate")
}

func TestEnvExampleNamesEveryVariableWithItsDefault(t *testing.T) {
	t.Parallel()
	text, err := config.Example()
	require.NoError(t, err)
	s := string(text)
	for _, line := range []string{"API_PORT=8000", "CACHE_TTL=60s", "# SECRET_KEY=", "# DATABASE_URL=", "AGENT_MAX_TOOL_CALLS=32", "SESSION_MAX_DAYS=30"} {
		require.Contains(t, strings.Split(s, "\n"), line)
	}
	require.Contains(t, s, "# CacheTTL bounds how long a cached record", "doc comments come along")

	// The example loads: every default it sets is valid.
	vars := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = v
		}
	}
	vars["SECRET_KEY"] = strings.Repeat("k", 32)
	_, err = config.Load(func(k string) string { return vars[k] }, "")
	require.NoError(t, err)
}
