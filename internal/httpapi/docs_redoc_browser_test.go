package httpapi_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// TestRedoc drives the Redoc page in a real (headless) Chromium: the contract's title
// and version and every tag are rendered, each tag lists every operation of the contract
// under it, an operation's page shows its method and path, and the page loads nothing
// from anywhere but the server (telemetry off, the remote logo blocked by its CSP). It saves artifacts/redoc.png.
func TestRedoc(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	// Redoc's links: #/<tag> for a tag, #/<tag>/<operationid in lower case> for an operation.
	want := map[string][]string{}
	for _, tag := range doc.Tags {
		want[tag.Name] = nil
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, tag := range op.Tags {
				want[tag] = append(want[tag], "#/"+tag+"/"+strings.ToLower(op.OperationID))
			}
		}
	}
	// Redoc shows what the API posts to webhook endpoints (x-webhooks) in a section of its
	// own whose anchor, #/webhooks, is also the webhooks tag's.
	hooks, ok := doc.Extensions["x-webhooks"].(map[string]any)
	require.True(t, ok, "the contract declares x-webhooks")
	for _, item := range hooks {
		for _, op := range item.(map[string]any) {
			id, ok := op.(map[string]any)["operationId"].(string)
			require.True(t, ok, "every x-webhooks entry has an operationId")
			want["webhooks"] = append(want["webhooks"], "#/webhooks/"+strings.ToLower(id))
		}
	}
	for tag := range want {
		sort.Strings(want[tag])
	}

	env := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))

	bctx, step := browserSession(t, "redoc")

	// Every response the page receives, to check below that all come from the server.
	var mu sync.Mutex
	var received []string
	err = chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok {
			mu.Lock()
			received = append(received, e.Response.URL)
			mu.Unlock()
		}
	})
	step("listen to network events", err)

	// 1. The page renders the contract's title and version and a menu entry per tag.
	step("load /api/redoc", chromedp.Do(bctx,
		chromedp.Navigate(env.BaseURL+"/api/redoc"),
		chromedp.WaitVisible(chromedp.CSS(`#redoc h1`), chromedp.NodeVisible),
	))
	title, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#redoc h1`)))
	step("read the title", err)
	require.Equal(t, fmt.Sprintf("%s (%s)", doc.Info.Title, doc.Info.Version), strings.TrimSpace(title))
	menu, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#redoc [data-testid=menu-item-label]")).map(e => e.textContent.trim())`))
	step("read the menu", err)
	for tag := range want {
		require.Contains(t, menu, tag, "no menu entry for tag %q in Redoc", tag)
	}

	// 2. Each tag's page links every operation the contract has under it.
	for tag, ops := range want {
		got, err := chromedp.Run(bctx, chromedp.Poll[[]string](fmt.Sprintf(`(() => {
			if (location.hash !== %[1]q) location.hash = %[1]q;
			const links = new Set(Array.from(document.querySelectorAll('#redoc a[href^="%[1]s/"]'))
				.map(a => a.getAttribute("href")).filter(h => !h.slice(2).includes("#")));
			return links.size >= %[2]d ? Array.from(links).sort() : null;
		})()`, "#/"+tag, len(ops)), chromedp.WithPollingTimeout(10*time.Second)))
		step(fmt.Sprintf("read the operations of tag %q", tag), err)
		require.Equal(t, ops, got, "operations Redoc links under tag %q differ from the contract", tag)
	}

	// 3. An operation's page shows its method and path.
	me := doc.Paths.Find("/api/v1/users/me")
	require.NotNil(t, me)
	require.NotNil(t, me.Get)
	link := "#/" + me.Get.Tags[0] + "/" + strings.ToLower(me.Get.OperationID)
	shown, err := chromedp.Run(bctx, chromedp.Poll[bool](fmt.Sprintf(`(() => {
		if (location.hash !== %[1]q) location.hash = %[1]q;
		return Array.from(document.querySelectorAll("#redoc button")).some(b => b.textContent.replace(/\s+/g, "") === "GET/api/v1/users/me");
	})()`, link), chromedp.WithPollingTimeout(10*time.Second)))
	step("open GET /api/v1/users/me", err)
	require.True(t, shown)

	// 4. Everything came from the server: no telemetry, no CDN (the page's
	// Content-Security-Policy blocks the rest before it reaches the network).
	mu.Lock()
	got := append([]string(nil), received...)
	mu.Unlock()
	require.Contains(t, got, env.BaseURL+"/api/redoc/redoc.standalone.js")
	require.Contains(t, got, env.BaseURL+"/api/openapi.json")
	for _, u := range got {
		require.True(t, strings.HasPrefix(u, env.BaseURL+"/"), "Redoc loaded %s from outside the server", u)
	}

	// The viewport, on the operation's page (the whole page is a very long strip).
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	step("take the screenshot", err)
	t.Logf("screenshot: %s", writeArtifact(t, "redoc.png", png))
}

// TestDocsAssetsOnlyInDebug: the documentation UIs' files are served in debug mode only,
// without source maps, and nothing outside the embedded directories is reachable.
func TestDocsAssetsOnlyInDebug(t *testing.T) {
	t.Parallel()
	debug := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))
	plain := apitest.Start(t)
	for path, code := range map[string]int{
		"/api/docs/swagger-ui-bundle.js":     http.StatusOK,
		"/api/docs/swagger-ui.css":           http.StatusOK,
		"/api/docs/oauth2-redirect.html":     http.StatusOK,
		"/api/docs/init.js":                  http.StatusOK,
		"/api/redoc":                         http.StatusOK,
		"/api/redoc/redoc.standalone.js":     http.StatusOK,
		"/api/redoc/init.js":                 http.StatusOK,
		"/api/docs/swagger-ui-bundle.js.map": http.StatusNotFound,
		"/api/docs/swagger-ui.css.map":       http.StatusNotFound,
		"/api/docs/index.html":               http.StatusNotFound,
		"/api/docs/swagger-initializer.js":   http.StatusNotFound,
		"/api/redoc/swagger-ui.css":          http.StatusNotFound,
		"/api/docs/redoc.standalone.js":      http.StatusNotFound,
	} {
		// The assets are outside the contract: a plain client, not the validating one.
		res, err := http.Get(debug.BaseURL + path)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, code, res.StatusCode, "GET %s in debug mode", path)
		if path == "/api/redoc" {
			require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
		}
		if code != http.StatusOK {
			continue
		}
		res, err = http.Get(plain.BaseURL + path)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode, "GET %s without DEBUG", path)
	}
}
