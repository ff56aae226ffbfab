package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/app"
)

type response struct {
	status int
	header http.Header
	body   []byte
}

// fetch sends a request through c and reads the whole response.
func fetch(t *testing.T, c *http.Client, method, url string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: body}
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v), "body: %s", b)
	return v
}

func requireProblem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json"), r.header.Get("Content-Type"))
	p := decodeJSON(t, r.body)
	require.EqualValues(t, status, p["status"])
	require.NotEmpty(t, p["type"])
	require.NotEmpty(t, p["title"])
	require.Equal(t, r.header.Get("X-Request-ID"), p["request_id"])
	return p
}

func pathKeys(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	require.True(t, ok, "document has paths")
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestRootDescribesTheService(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	r := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, r.header.Get("Content-Type"), "application/json")
	body := decodeJSON(t, r.body)
	require.Equal(t, "Enterprise Automation API", body["message"])
	require.Equal(t, app.Version, body["version"])
	require.Equal(t, "/api/docs", body["docs"])
}

func TestHealthIsOK(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	for _, path := range []string{"/api/health", "/api/health/"} {
		r := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+path, nil)
		require.Equal(t, http.StatusOK, r.status, path)
		require.JSONEq(t, `{"status":"ok"}`, string(r.body))
		require.NotEmpty(t, r.header.Get("X-Request-ID"))
	}
}

func TestRequestIDIsEchoedWhenSaneAndReplacedOtherwise(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	r := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", map[string]string{"X-Request-ID": "trace-123.abc_DEF"})
	require.Equal(t, "trace-123.abc_DEF", r.header.Get("X-Request-ID"))

	r = fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", map[string]string{"X-Request-ID": "bad id with spaces"})
	require.NotEmpty(t, r.header.Get("X-Request-ID"))
	require.NotEqual(t, "bad id with spaces", r.header.Get("X-Request-ID"))
}

func TestReadinessReportsEveryDependency(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	r := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health/ready", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	body := decodeJSON(t, r.body)
	require.Equal(t, "ok", body["status"])
	checks, ok := body["checks"].(map[string]any)
	require.True(t, ok, "checks: %v", body["checks"])
	for _, name := range []string{"database", "migrations", "cache"} {
		check, ok := checks[name].(map[string]any)
		require.True(t, ok, "check %s missing in %v", name, checks)
		require.Equal(t, "ok", check["status"], "check %s: %v", name, check)
		_, hasLatency := check["latency_ms"]
		require.True(t, hasLatency, "check %s has a latency", name)
	}
	require.Regexp(t, `^version \d+$`, checks["migrations"].(map[string]any)["detail"])
	require.Equal(t, "in-process", checks["cache"].(map[string]any)["detail"])
}

// plain fetches responses that apitest's validator cannot decode (YAML and HTML bodies:
// kin-openapi has no text/html decoder and turns YAML into an object where the contract
// says string), so their checks are done here by hand.
var plain = &http.Client{}

func TestReadinessIsUnavailableWhileMigrationsAreBehind(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	migrate := func(arg string) {
		t.Helper()
		p := &app.Program{
			Getenv: func(k string) string {
				return map[string]string{"DATABASE_URL": env.DBURL, "SECRET_KEY": strings.Repeat("k", 32)}[k]
			},
			Stdout: io.Discard, Stderr: io.Discard,
		}
		require.NoError(t, p.Run(context.Background(), []string{"migrate", arg}))
	}
	migrate("down")

	// The plain client: apitest's validator wants every status >= 400 to be a problem, but
	// the contract declares this 503 with a Readiness body.
	r := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/health/ready", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
	body := decodeJSON(t, r.body)
	require.Equal(t, "unavailable", body["status"])
	checks := body["checks"].(map[string]any)
	migrations := checks["migrations"].(map[string]any)
	require.Equal(t, "unavailable", migrations["status"])
	require.Contains(t, migrations["detail"], "migrate up")
	require.Equal(t, "ok", checks["database"].(map[string]any)["status"])

	// Liveness does not depend on the database.
	require.Equal(t, http.StatusOK, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", nil).status)

	migrate("up")
	// Readiness results are reused for a second (anonymous polling must not load the
	// database): the next probe after that sees the migrations.
	require.Eventually(t, func() bool {
		return fetch(t, plain, http.MethodGet, env.BaseURL+"/api/health/ready", nil).status == http.StatusOK
	}, 3*time.Second, 100*time.Millisecond)
	r = fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health/ready", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

func TestOpenAPIDocumentIsServedAsYAMLAndJSON(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)

	y := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/openapi.yaml", nil)
	require.Equal(t, http.StatusOK, y.status)
	require.True(t, strings.HasPrefix(y.header.Get("Content-Type"), "application/yaml"), y.header.Get("Content-Type"))
	var yamlDoc map[string]any
	require.NoError(t, yaml.Unmarshal(y.body, &yamlDoc))
	require.Regexp(t, `^3\.0\.\d+$`, yamlDoc["openapi"])

	j := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/openapi.json", nil)
	require.Equal(t, http.StatusOK, j.status)
	require.Contains(t, j.header.Get("Content-Type"), "application/json")
	jsonDoc := decodeJSON(t, j.body)
	require.Regexp(t, `^3\.0\.\d+$`, jsonDoc["openapi"])

	require.Equal(t, pathKeys(t, yamlDoc), pathKeys(t, jsonDoc), "both documents describe the same paths")
	require.Contains(t, pathKeys(t, jsonDoc), "/api/v1/users")
	require.Equal(t, yamlDoc["info"], jsonDoc["info"])
}

// The YAML endpoint serves the hand-written contract (the single source of truth), not a
// JSON re-encoding of it.
func TestOpenAPIYAMLIsTheHandWrittenContract(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	y := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/openapi.yaml", nil)
	require.Equal(t, http.StatusOK, y.status)
	require.False(t, strings.HasPrefix(strings.TrimSpace(string(y.body)), "{"), "the YAML endpoint serves JSON: %.60s…", y.body)
	contract, err := os.ReadFile("../../openapi.yaml")
	require.NoError(t, err)
	require.Equal(t, string(contract), string(y.body))
}

func TestDocsAreHiddenWithoutDebug(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	p := requireProblem(t, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/docs", nil), http.StatusNotFound)
	require.Contains(t, p["detail"], "debug")
	requireProblem(t, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/docs/swagger-ui-bundle.js", nil), http.StatusNotFound)
	requireProblem(t, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/docs/init.js", nil), http.StatusNotFound)

	j := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/openapi.json", nil)
	require.Equal(t, http.StatusOK, j.status, "the contract stays available")
}

func TestDocsAreServedInDebugMode(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))

	for _, path := range []string{"/api/docs", "/api/docs/"} {
		r := fetch(t, plain, http.MethodGet, env.BaseURL+path, nil)
		require.Equal(t, http.StatusOK, r.status, path)
		require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/html"), r.header.Get("Content-Type"))
		require.Contains(t, string(r.body), `id="swagger-ui"`)
		require.Contains(t, string(r.body), "/api/docs/swagger-ui-bundle.js")
	}

	// Assets are not operations of the contract, so they are fetched with a plain client.
	bundle := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/docs/swagger-ui-bundle.js", nil)
	require.Equal(t, http.StatusOK, bundle.status)
	require.Contains(t, bundle.header.Get("Content-Type"), "javascript")
	require.Greater(t, len(bundle.body), 100_000, "the real Swagger UI bundle is embedded")
	require.NotEmpty(t, bundle.header.Get("X-Request-ID"))

	css := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/docs/swagger-ui.css", nil)
	require.Equal(t, http.StatusOK, css.status)
	require.Contains(t, css.header.Get("Content-Type"), "text/css")

	init := fetch(t, plain, http.MethodGet, env.BaseURL+"/api/docs/init.js", nil)
	require.Equal(t, http.StatusOK, init.status)
	require.Contains(t, init.header.Get("Content-Type"), "javascript")
	require.Contains(t, string(init.body), `url: "/api/openapi.json"`)

	// Swagger UI's own page and initializer would point at the petstore; they are hidden.
	for _, path := range []string{"/api/docs/index.html", "/api/docs/swagger-initializer.js", "/api/docs/no-such-file.js"} {
		requireProblem(t, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+path, nil), http.StatusNotFound)
	}
}

func preflight(origin string) map[string]string {
	return map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  http.MethodPost,
		"Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
	}
}

func TestCORSAllowsOnlyConfiguredOrigins(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("CORS_ORIGINS", "https://app.example.com"))
	// Preflights are not operations of the contract, so they go through the plain client.

	ok := fetch(t, plain, http.MethodOptions, env.BaseURL+"/api/v1/users", preflight("https://app.example.com"))
	require.Less(t, ok.status, 300, "preflight status")
	require.Equal(t, "https://app.example.com", ok.header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, ok.header.Get("Access-Control-Allow-Methods"), http.MethodPost)
	require.Contains(t, strings.ToLower(ok.header.Get("Access-Control-Allow-Headers")), "authorization")
	require.Contains(t, strings.ToLower(ok.header.Get("Access-Control-Allow-Headers")), "idempotency-key")
	require.Equal(t, "600", ok.header.Get("Access-Control-Max-Age"))

	other := fetch(t, plain, http.MethodOptions, env.BaseURL+"/api/v1/users", preflight("https://evil.example.com"))
	require.Empty(t, other.header.Get("Access-Control-Allow-Origin"))

	// Actual requests from the allowed origin expose the headers clients need.
	get := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", map[string]string{"Origin": "https://app.example.com"})
	require.Equal(t, http.StatusOK, get.status)
	require.Equal(t, "https://app.example.com", get.header.Get("Access-Control-Allow-Origin"))
	exposed := strings.ToLower(get.header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"etag", "location", "x-request-id", "retry-after"} {
		require.Contains(t, exposed, h)
	}
	get = fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", map[string]string{"Origin": "https://evil.example.com"})
	require.Equal(t, http.StatusOK, get.status)
	require.Empty(t, get.header.Get("Access-Control-Allow-Origin"))
}

func TestCORSIsOffWithoutConfiguredOrigins(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	pre := fetch(t, plain, http.MethodOptions, env.BaseURL+"/api/v1/users", preflight("https://app.example.com"))
	require.Empty(t, pre.header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, pre.header.Get("Access-Control-Allow-Methods"))

	get := fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/health", map[string]string{"Origin": "https://app.example.com"})
	require.Equal(t, http.StatusOK, get.status)
	require.Empty(t, get.header.Get("Access-Control-Allow-Origin"))
}

func TestUnknownRouteIsAProblem(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	p := requireProblem(t, fetch(t, env.HTTP, http.MethodGet, env.BaseURL+"/api/nope", nil), http.StatusNotFound)
	require.Equal(t, "/api/nope", p["instance"])
	requireProblem(t, fetch(t, env.HTTP, http.MethodDelete, env.BaseURL+"/api/health", nil), http.StatusMethodNotAllowed)
}
