package httpapi_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
)

// TestConsoleIsServed checks the web console's embedded build at /console/: every screen
// path gets index.html (revalidated, under a strict CSP), the hashed assets it names are
// served and cached for good, and nothing else under /console/ exists.
func TestConsoleIsServed(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)

	var index string
	for _, path := range []string{"/console", "/console/", "/console/tasks", "/console/runs/12"} {
		r := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: path})
		require.Equal(t, http.StatusOK, r.Status, path)
		require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), r.Header.Get("Content-Type"))
		require.Equal(t, "no-cache", r.Header.Get("Cache-Control"), path)
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Contains(t, string(r.Body), `<div id="root">`)
		index = string(r.Body)
	}

	assets := regexp.MustCompile(`(?:src|href)="(/console/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	require.Len(t, assets, 2, "one script and one stylesheet: %s", index)
	for _, m := range assets {
		r := env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: m[1]})
		require.Equal(t, http.StatusOK, r.Status, m[1])
		require.Equal(t, "public, max-age=31536000, immutable", r.Header.Get("Cache-Control"), m[1])
		require.Regexp(t, `^(text/javascript|application/javascript|text/css)`, r.Header.Get("Content-Type"), m[1])
		require.NotContains(t, string(r.Body), "sourceMappingURL", "the build has no source maps")
		require.Greater(t, len(r.Body), 1000, m[1])
	}

	for _, path := range []string{"/console/assets/no-such-file.js", "/console/assets/index.html", "/console/a/b/c"} {
		apitest.RequireProblem(t, env.Send(t, apitest.Request{Client: plain, Method: http.MethodGet, Path: path}), http.StatusNotFound)
	}
}
