package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// TestSwaggerUI drives the documentation page in a real (headless) Chromium: every tag and
// operation of the contract is rendered, the seeded administrator authorizes through the
// OAuth2 password flow of the Authorize dialog, and "Try it out" on GET /api/v1/users/me
// answers 200 with the administrator's email. It saves artifacts/swagger-ui.png.
func TestSwaggerUI(t *testing.T) {
	t.Parallel()
	want := specOperations(t)

	env := apitest.Start(t, apitest.WithEnv("DEBUG", "true"))

	bctx, step := browserSession(t, "swagger-ui")

	// 1. The page renders every operation of the contract, grouped by tag.
	step("load /api/docs", chromedp.Do(bctx,
		chromedp.Navigate(env.BaseURL+"/api/docs"),
		chromedp.WaitVisible(chromedp.CSS("#swagger-ui .information-container .title"), chromedp.NodeVisible),
	))
	_, err := chromedp.Run(bctx, chromedp.Poll[bool](
		fmt.Sprintf(`document.querySelectorAll("#swagger-ui .opblock").length >= %d`, len(want.blocks)),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#swagger-ui .opblock").length`))
		t.Fatalf("Swagger UI rendered %d operation blocks, want %d: %v", n, len(want.blocks), err)
	}

	sections, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#swagger-ui .opblock-tag-section h3.opblock-tag")).map(h => h.dataset.tag)`))
	step("read tag sections", err)
	for _, tag := range want.tags {
		require.Contains(t, sections, tag, "no section for tag %q in Swagger UI", tag)
	}

	type block struct {
		ID     string `json:"id"`
		Method string `json:"method"`
		Path   string `json:"path"`
	}
	blocks, err := chromedp.Run(bctx, chromedp.Evaluate[[]block](`Array.from(document.querySelectorAll("#swagger-ui .opblock")).map(b => ({
		id: b.id,
		method: (b.querySelector(".opblock-summary-method")?.textContent || "").trim().toUpperCase(),
		path: b.querySelector("[data-path]")?.dataset.path || "",
	}))`))
	step("read operation blocks", err)
	var got []string
	for _, b := range blocks {
		got = append(got, b.ID+" "+b.Method+" "+b.Path)
	}
	sort.Strings(got)
	require.Equal(t, want.blocks, got, "operation blocks rendered by Swagger UI (id method path) differ from the contract")

	// 2. Authorize with the seeded administrator through the OAuth2 password flow dialog.
	const dialog = ".dialog-ux .modal-ux"
	step("open the Authorize dialog", chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#swagger-ui .auth-wrapper button.authorize")),
		chromedp.WaitVisible(chromedp.CSS(dialog+" #oauth_username")),
		chromedp.SendKeys(chromedp.CSS(dialog+" #oauth_username"), apitest.AdminEmail),
		chromedp.SendKeys(chromedp.CSS(dialog+" #oauth_password"), apitest.AdminPassword),
		chromedp.Click(chromedp.CSS(dialog+` button.authorize[aria-label="Apply given OAuth2 credentials"]`)),
	))
	// Either the dialog switches to its authorized state (Logout button) or it lists an error.
	state, err := chromedp.Run(bctx, chromedp.Poll[string](`(() => {
		const d = document.querySelector(".dialog-ux .modal-ux");
		if (!d) return "";
		if (d.querySelector('button[aria-label="Remove authorization"]')) return "authorized";
		const e = d.querySelector(".errors");
		return e && e.textContent.trim() ? "error: " + e.textContent.trim() : "";
	})()`, chromedp.WithPollingTimeout(15*time.Second)))
	step("wait for the authorization", err)
	require.Equal(t, "authorized", state, "the Authorize dialog did not authorize the seeded admin")
	h6, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(dialog+" .auth-container h6")))
	step("read the authorized marker", err)
	require.Equal(t, "Authorized", strings.TrimSpace(h6))
	step("close the Authorize dialog", chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(dialog+" button.btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(".dialog-ux")),
		chromedp.WaitVisible(chromedp.CSS("#swagger-ui .auth-wrapper button.authorize.locked")),
	))

	// 3. Try it out: GET /api/v1/users/me with the token the dialog obtained.
	op := "#" + want.me
	step("open Try it out on GET /api/v1/users/me", chromedp.Do(bctx,
		chromedp.ScrollIntoView(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(op+" button.try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(op+" button.execute")),
	))
	// Try it out prefills the parameters with the contract's examples, and the If-None-Match
	// example ("3") is a real ETag: empty the field (with keystrokes, so React sees it) so the
	// answer cannot become a 304 once the admin's version reaches 3.
	inm := chromedp.CSS(op + ` tr[data-param-name="If-None-Match"][data-param-in="header"] input`)
	if v, err := chromedp.Run(bctx, chromedp.Value(inm, chromedp.AtLeast(0))); err == nil && v != "" {
		step("empty If-None-Match", chromedp.Do(bctx, chromedp.SendKeys(inm, kb.End+strings.Repeat(kb.Backspace, len(v)))))
		v, err = chromedp.Run(bctx, chromedp.Value(inm))
		step("read If-None-Match", err)
		require.Empty(t, v, "could not empty the If-None-Match field")
	}
	step("execute GET /api/v1/users/me", chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(op+" button.execute")),
		chromedp.WaitVisible(chromedp.CSS(op+" .live-responses-table .response .response-col_status")),
	))
	status, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_status")))
	step("read the live response code", err)
	body, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_description")))
	step("read the live response body", err)
	curl, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(op+" .curl-command")))
	step("read the curl command", err)
	require.Equal(t, "200", strings.TrimSpace(status), "live response code; body:\n%s", body)
	require.Contains(t, body, apitest.AdminEmail)
	require.Contains(t, curl, "Authorization: Bearer ", "Swagger UI did not send the token it obtained")

	// 4. The artifact: the whole page with the authorized call and its response.
	step("scroll to the response", chromedp.Do(bctx, chromedp.ScrollIntoView(chromedp.CSS(op))))
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	step("take the screenshot", err)
	t.Logf("screenshot: %s", writeArtifact(t, "swagger-ui.png", png))
}

// TestDocsOnlyInDebug: without DEBUG the UI is gone but the contract is still served.
func TestDocsOnlyInDebug(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	for path, code := range map[string]int{"/api/docs": http.StatusNotFound, "/api/openapi.json": http.StatusOK} {
		res, err := env.HTTP.Get(env.BaseURL + path)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, code, res.StatusCode, "GET %s", path)
	}
}

type contractOperations struct {
	tags   []string // every tag: declared at the top level or used by an operation
	blocks []string // "operations-<tag>-<operationId> METHOD /path", once per tag of each operation, sorted
	me     string   // the element id of GET /api/v1/users/me
}

// specOperations reads the tags and operations from the embedded contract, so new ones
// are covered without touching this test.
func specOperations(t *testing.T) contractOperations {
	t.Helper()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	var c contractOperations
	for _, tag := range doc.Tags {
		c.tags = append(c.tags, tag.Name)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			tags := op.Tags
			if len(tags) == 0 {
				tags = []string{"default"}
			}
			for _, tag := range tags {
				if !slices.Contains(c.tags, tag) {
					c.tags = append(c.tags, tag)
				}
				c.blocks = append(c.blocks, fmt.Sprintf("operations-%s-%s %s %s", tag, op.OperationID, strings.ToUpper(method), path))
			}
		}
	}
	sort.Strings(c.blocks)
	require.NotEmpty(t, c.blocks)
	// The embedded (and served) contract is what oapi-codegen embeds, whose operation ids
	// may be spelled differently from openapi.yaml (GetCurrentUser vs getCurrentUser): take
	// the id from the same document Swagger UI renders.
	me := doc.Paths.Find("/api/v1/users/me")
	require.NotNil(t, me, "the contract has no /api/v1/users/me")
	require.NotNil(t, me.Get, "the contract has no GET /api/v1/users/me")
	require.NotEmpty(t, me.Get.Tags)
	c.me = "operations-" + me.Get.Tags[0] + "-" + me.Get.OperationID
	return c
}

// browserSession starts a headless Chromium for a documentation page's test, or skips the
// test when none is installed. The browser lives for at most a minute and goes with the
// test; a failed test leaves what the browser showed in artifacts/<name>-failure.png. step
// fails the test when err is not nil, saying which step and how long into the session.
func browserSession(t *testing.T, name string) (context.Context, func(step string, err error)) {
	t.Helper()
	browser := findChromium()
	if browser == "" {
		t.Skipf("no Chromium found (/usr/bin/chromium, chromium, chromium-browser, google-chrome); install it to run the %s browser test", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		if t.Failed() && bctx.Err() == nil {
			if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
				t.Logf("failure screenshot: %s", writeArtifact(t, name+"-failure.png", png))
			}
		}
		cancelBrowser()
		cancelAlloc()
		cancel()
	})
	start := time.Now()
	return bctx, func(step string, err error) {
		t.Helper()
		require.NoError(t, err, "%s (after %s)", step, time.Since(start).Round(time.Millisecond))
	}
}

func findChromium() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// writeArtifact stores data under <repo root>/artifacts and returns its path.
func writeArtifact(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test's working directory")
		dir = parent
	}
	dir = filepath.Join(dir, "artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}
