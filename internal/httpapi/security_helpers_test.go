package httpapi_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "sec" so they cannot clash with other test files of the package)
// ---------------------------------------------------------------------------------------

// secSecretKey is the SECRET_KEY of the environments whose tests forge tokens or look
// for the key in the logs.
const secSecretKey = "sec-test-SECRET-KEY-b7c1e0f49a3d4c2e8f6a5b4c3d2e1f00"

// secStart starts an environment with the rate limits off (0 = off): these tests send
// many requests a minute from one address on purpose.
func secStart(t *testing.T, opts ...apitest.Option) *apitest.Env {
	t.Helper()
	return apitest.Start(t, append([]apitest.Option{
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
	}, opts...)...)
}

func secRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secDecode decodes a JSON body into v.
func secDecode[T any](t *testing.T, r *apitest.Response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// secSignature returns the signature segment of a JWT.
func secSignature(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3, "token %q", token)
	return parts[2]
}

// secForms are the ways a secret could show up in a JSON log: as is, JSON-escaped and
// URL-encoded.
func secForms(s string) []string {
	j, _ := json.Marshal(s)
	forms := []string{s, string(j[1 : len(j)-1]), url.QueryEscape(s), url.PathEscape(s)}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// secLogLines returns the server's access-log lines ("msg":"request") keyed by request id.
func secLogLines(logs string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "request" {
			continue
		}
		if id, _ := m["request_id"].(string); id != "" {
			out[id] = m
		}
	}
	return out
}
