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

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v), "body: %s", b)
	return v
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
	r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Contains(t, r.Header.Get("Content-Type"), "application/json")
	body := decodeJSON(t, r.Body)
	require.Equal(t, "Enterprise Automation API", body["message"])
	require.Equal(t, app.Version, body["version"])
	require.Equal(t, "/api/docs", body["docs"])
}

func TestHealthIsOK(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	for _, path := range []string{"/api/health", "/api/health/"} {
		r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: path})
		require.Equal(t, http.StatusOK, r.Status, path)
		require.JSONEq(t, `{"status":"ok"}`, string(r.Body))
		require.NotEmpty(t, r.Header.Get("X-Request-ID"))
	}
}

func TestRequestIDIsEchoedWhenSaneAndReplacedOtherwise(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"X-Request-ID": "trace-123.abc_DEF"}})
	require.Equal(t, "trace-123.abc_DEF", r.Header.Get("X-Request-ID"))

	r = env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"X-Request-ID": "bad id with spaces"}})
	require.NotEmpty(t, r.Header.Get("X-Request-ID"))
	require.NotEqual(t, "bad id with spaces", r.Header.Get("X-Request-ID"))
}

func TestReadinessReportsEveryDependency(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health/ready"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	body := decodeJSON(t, r.Body)
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
	r := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/health/ready"})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	body := decodeJSON(t, r.Body)
	require.Equal(t, "unavailable", body["status"])
	checks := body["checks"].(map[string]any)
	migrations := checks["migrations"].(map[string]any)
	require.Equal(t, "unavailable", migrations["status"])
	require.Contains(t, migrations["detail"], "migrate up")
	require.Equal(t, "ok", checks["database"].(map[string]any)["status"])

	// Liveness does not depend on the database.
	require.Equal(t, http.StatusOK, env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health"}).Status)

	migrate("up")
	// Readiness results are reused for a second (anonymous polling must not load the
	// database): the next probe after that sees the migrations.
	require.Eventually(t, func() bool {
		return env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/health/ready"}).Status == http.StatusOK
	}, 3*time.Second, 100*time.Millisecond)
	r = env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health/ready"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
}

func TestOpenAPIDocumentIsServedAsYAMLAndJSON(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)

	y := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/openapi.yaml"})
	require.Equal(t, http.StatusOK, y.Status)
	require.True(t, strings.HasPrefix(y.Header.Get("Content-Type"), "application/yaml"), y.Header.Get("Content-Type"))
	var yamlDoc map[string]any
	require.NoError(t, yaml.Unmarshal(y.Body, &yamlDoc))
	require.Regexp(t, `^3\.0\.\d+$`, yamlDoc["openapi"])

	j := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/openapi.json"})
	require.Equal(t, http.StatusOK, j.Status)
	require.Contains(t, j.Header.Get("Content-Type"), "application/json")
	jsonDoc := decodeJSON(t, j.Body)
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
	y := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/openapi.yaml"})
	require.Equal(t, http.StatusOK, y.Status)
	require.False(t, strings.HasPrefix(strings.TrimSpace(string(y.Body)), "{"), "the YAML endpoint serves JSON: %.60s…", y.Body)
	contract, err := os.ReadFile("../../openapi.yaml")
	require.NoError(t, err)
	require.Equal(t, string(contract), string(y.Body))
}

func TestDocsAreHiddenWithoutDebug(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	p := apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/docs"}), http.StatusNotFound)
	require.Contains(t, apitest.Deref(p.Detail), "debug")
	apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/docs/swagger-ui-bundle.js"}), http.StatusNotFound)
	apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/docs/init.js"}), http.StatusNotFound)

	j := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/openapi.json"})
	require.Equal(t, http.StatusOK, j.Status, "the contract stays available")
}

func TestDocsAreServedInDebugMode(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))

	for _, path := range []string{"/api/docs", "/api/docs/"} {
		r := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: path})
		require.Equal(t, http.StatusOK, r.Status, path)
		require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), r.Header.Get("Content-Type"))
		require.Contains(t, string(r.Body), `id="swagger-ui"`)
		require.Contains(t, string(r.Body), "/api/docs/swagger-ui-bundle.js")
	}

	// Assets are not operations of the contract, so they are fetched with a plain client.
	bundle := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/docs/swagger-ui-bundle.js"})
	require.Equal(t, http.StatusOK, bundle.Status)
	require.Contains(t, bundle.Header.Get("Content-Type"), "javascript")
	require.Greater(t, len(bundle.Body), 100_000, "the real Swagger UI bundle is embedded")
	require.NotEmpty(t, bundle.Header.Get("X-Request-ID"))

	css := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/docs/swagger-ui.css"})
	require.Equal(t, http.StatusOK, css.Status)
	require.Contains(t, css.Header.Get("Content-Type"), "text/css")

	init := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/docs/init.js"})
	require.Equal(t, http.StatusOK, init.Status)
	require.Contains(t, init.Header.Get("Content-Type"), "javascript")
	require.Contains(t, string(init.Body), `url: "/api/openapi.json"`)

	// Swagger UI's own page and initializer would point at the petstore; they are hidden.
	for _, path := range []string{"/api/docs/index.html", "/api/docs/swagger-initializer.js", "/api/docs/no-such-file.js"} {
		apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodGet, Path: path}), http.StatusNotFound)
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

	ok := env.Send(t, apitest.Request{Client: plain, Method: http.MethodOptions, Path: "/api/v1/users", Header: preflight("https://app.example.com")})
	require.Less(t, ok.Status, 300, "preflight status")
	require.Equal(t, "https://app.example.com", ok.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, ok.Header.Get("Access-Control-Allow-Methods"), http.MethodPost)
	require.Contains(t, strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "authorization")
	require.Contains(t, strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "idempotency-key")
	require.Equal(t, "600", ok.Header.Get("Access-Control-Max-Age"))

	other := env.Send(t, apitest.Request{Client: plain, Method: http.MethodOptions, Path: "/api/v1/users", Header: preflight("https://evil.example.com")})
	require.Empty(t, other.Header.Get("Access-Control-Allow-Origin"))

	// Actual requests from the allowed origin expose the headers clients need.
	get := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"Origin": "https://app.example.com"}})
	require.Equal(t, http.StatusOK, get.Status)
	require.Equal(t, "https://app.example.com", get.Header.Get("Access-Control-Allow-Origin"))
	exposed := strings.ToLower(get.Header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"etag", "location", "x-request-id", "retry-after"} {
		require.Contains(t, exposed, h)
	}
	get = env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"Origin": "https://evil.example.com"}})
	require.Equal(t, http.StatusOK, get.Status)
	require.Empty(t, get.Header.Get("Access-Control-Allow-Origin"))
}

func TestCORSIsOffWithoutConfiguredOrigins(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	pre := env.Send(t, apitest.Request{Client: plain, Method: http.MethodOptions, Path: "/api/v1/users", Header: preflight("https://app.example.com")})
	require.Empty(t, pre.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, pre.Header.Get("Access-Control-Allow-Methods"))

	get := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"Origin": "https://app.example.com"}})
	require.Equal(t, http.StatusOK, get.Status)
	require.Empty(t, get.Header.Get("Access-Control-Allow-Origin"))
}

func TestUnknownRouteIsAProblem(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	p := apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/nope"}), http.StatusNotFound)
	require.Equal(t, "/api/nope", apitest.Deref(p.Instance))
	apitest.RequireProblem(t, env.Send(t, apitest.Request{Method: http.MethodDelete, Path: "/api/health"}), http.StatusMethodNotAllowed)
}
