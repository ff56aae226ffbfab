package httpapi

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"

	"enterprise-automation/gen/api"
	"enterprise-automation/gen/docs"
	"enterprise-automation/internal/apperr"
)

// GetRoot implements GET /.
func (s *Server) GetRoot(context.Context, api.GetRootRequestObject) (api.GetRootResponseObject, error) {
	return api.GetRoot200JSONResponse{Message: "Enterprise Automation API", Version: s.version, Docs: "/api/docs"}, nil
}

// GetHealth implements GET /api/health; it touches no dependency.
func (s *Server) GetHealth(context.Context, api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	return api.GetHealth200JSONResponse{Status: api.HealthStatusOk}, nil
}

// readinessTTL is how long a readiness result is reused: anonymous callers polling the
// endpoint cost the dependencies at most one probe per interval.
const readinessTTL = time.Second

// readiness caches the last readiness result; concurrent callers share one probe.
type readiness struct {
	mu      sync.Mutex
	body    api.Readiness
	expires time.Time
	probes  singleflight.Group
}

// GetReadiness implements GET /api/health/ready: every check runs concurrently with a
// bounded timeout; a failing required check answers 503. Results are reused for
// readinessTTL (from the start of the probe), and callers arriving while a probe runs
// wait for it rather than start another.
func (s *Server) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	body, err := s.readinessResult(ctx)
	if err != nil {
		return nil, err
	}
	if body.Status == api.ReadinessStatusUnavailable {
		return api.GetReadiness503JSONResponse(body), nil
	}
	return api.GetReadiness200JSONResponse(body), nil
}

// readinessResult returns the cached result, or the result of the one probe that
// refreshes it (callers arriving meanwhile share it).
func (s *Server) readinessResult(ctx context.Context) (api.Readiness, error) {
	r := &s.ready
	r.mu.Lock()
	body, fresh := r.body, time.Now().Before(r.expires)
	r.mu.Unlock()
	if fresh {
		return body, nil
	}
	ch := r.probes.DoChan("ready", func() (any, error) {
		start := time.Now()
		// The probe is shared: a caller that goes away does not cut it short for the others.
		body := s.probe(context.WithoutCancel(ctx))
		r.mu.Lock()
		r.body, r.expires = body, start.Add(readinessTTL)
		r.mu.Unlock()
		return body, nil
	})
	select {
	case res := <-ch:
		return res.Val.(api.Readiness), nil
	case <-ctx.Done():
		return api.Readiness{}, ctx.Err()
	}
}

// probe runs every check once. A failure's public detail says in words what failed (the
// message of the apperr.Error the check returned, else "<name> unavailable"); the error
// itself, which may name addresses, goes to the log only.
func (s *Server) probe(ctx context.Context) api.Readiness {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	results := make(map[string]api.DependencyCheck, len(s.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	status := api.ReadinessStatusOk
	for _, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			detail, err := c.Run(ctx)
			res := api.DependencyCheck{
				Status:    api.DependencyCheckStatusOk,
				LatencyMs: float64(time.Since(start).Microseconds()) / 1000,
			}
			if detail != "" {
				res.Detail = &detail
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				msg := c.Name + " unavailable"
				if e := apperr.As(err); e != nil && e.Message != "" && e.Kind != apperr.Internal {
					msg = e.Message
				}
				s.log.Warn("readiness check failed", "check", c.Name, "error", err.Error())
				res.Detail = &msg
				if c.Required {
					res.Status = api.DependencyCheckStatusUnavailable
					status = api.ReadinessStatusUnavailable
				} else {
					res.Status = api.DependencyCheckStatusDegraded
					if status == api.ReadinessStatusOk {
						status = api.ReadinessStatusDegraded
					}
				}
			}
			results[c.Name] = res
		}()
	}
	wg.Wait()
	return api.Readiness{Status: status, Checks: results}
}

// GetOpenAPIYAML implements GET /api/openapi.yaml.
func (s *Server) GetOpenAPIYAML(context.Context, api.GetOpenAPIYAMLRequestObject) (api.GetOpenAPIYAMLResponseObject, error) {
	return api.GetOpenAPIYAML200ApplicationyamlResponse{Body: bytes.NewReader(s.specYAML), ContentLength: int64(len(s.specYAML))}, nil
}

// GetOpenAPIJSON implements GET /api/openapi.json.
func (s *Server) GetOpenAPIJSON(context.Context, api.GetOpenAPIJSONRequestObject) (api.GetOpenAPIJSONResponseObject, error) {
	return api.GetOpenAPIJSON200JSONResponse(s.specJSON), nil
}

// docsPage is Swagger UI's page; its assets are embedded in the binary (gen/docs).
const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enterprise Automation API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
`

// docsInit starts Swagger UI; validatorUrl: null keeps it from sending the contract's URL
// to the public validator at validator.swagger.io.
const docsInit = `window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: false,
  displayRequestDuration: true,
  oauth2RedirectUrl: window.location.origin + "/api/docs/oauth2-redirect.html",
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
`

// redocPage is Redoc's page; its bundle is embedded in the binary (gen/docs).
const redocPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enterprise Automation API reference</title>
<link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
</head>
<body>
<div id="redoc"></div>
<script type="module" src="/api/redoc/init.js"></script>
</body>
</html>
`

// redocInit starts Redoc without its telemetry; hash routing keeps every link reloadable.
const redocInit = `import { init } from "/api/redoc/redoc.standalone.js";
init("/api/openapi.json", { disableTelemetry: true, router: "hash" }, document.getElementById("redoc"));
`

// redocCSP keeps the Redoc page to this server: the bundle would otherwise show a logo
// from Redocly's CDN. Its styles are injected at run time, hence 'unsafe-inline' for them.
const redocCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// docsOnlyInDebug is the answer to the documentation UIs without DEBUG.
const docsOnlyInDebug = "the documentation UI is served only in debug mode; the contract is at /api/openapi.json"

// GetDocs implements GET /api/docs: Swagger UI in debug mode, 404 otherwise.
func (s *Server) GetDocs(context.Context, api.GetDocsRequestObject) (api.GetDocsResponseObject, error) {
	if !s.debug {
		return nil, apperr.E(apperr.NotFound, docsOnlyInDebug)
	}
	return api.GetDocs200TexthtmlResponse{Body: strings.NewReader(docsPage), ContentLength: int64(len(docsPage))}, nil
}

// GetRedoc implements GET /api/redoc: Redoc in debug mode, 404 otherwise.
func (s *Server) GetRedoc(context.Context, api.GetRedocRequestObject) (api.GetRedocResponseObject, error) {
	if !s.debug {
		return nil, apperr.E(apperr.NotFound, docsOnlyInDebug)
	}
	csp := redocCSP
	return api.GetRedoc200TexthtmlResponse{
		Body: strings.NewReader(redocPage), ContentLength: int64(len(redocPage)),
		Headers: api.GetRedoc200ResponseHeaders{ContentSecurityPolicy: &csp},
	}, nil
}

// registerDocsAssets serves the documentation UIs' embedded files: Swagger UI's under
// /api/docs/, Redoc's under /api/redoc/, each with the script that starts it.
func (s *Server) registerDocsAssets() {
	serve := func(prefix, init string, files fs.FS) {
		assets := http.FileServer(http.FS(files))
		s.echo.GET(prefix+"init.js", func(c echo.Context) error {
			return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", []byte(init))
		})
		s.echo.GET(prefix+":file", func(c echo.Context) error {
			name := c.Param("file")
			if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
				return apperr.E(apperr.NotFound, "no such documentation asset")
			}
			c.Request().URL.Path = "/" + name
			assets.ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
	swaggerUI, _ := fs.Sub(docs.SwaggerUI, "swagger-ui") // a fixed, embedded directory
	redoc, _ := fs.Sub(docs.Redoc, "redoc")
	serve("/api/docs/", docsInit, swaggerUI)
	serve("/api/redoc/", redocInit, redoc)
}

// GetMetrics implements GET /metrics in the Prometheus text format; 404 when the metrics
// have a listener of their own (METRICS_ADDR).
func (s *Server) GetMetrics(context.Context, api.GetMetricsRequestObject) (api.GetMetricsResponseObject, error) {
	if s.metricsElsewhere {
		return nil, apperr.E(apperr.NotFound, "metrics are not served on this port")
	}
	if s.metrics == nil {
		return api.GetMetrics200TextResponse(""), nil
	}
	text, err := s.metrics.Text()
	if err != nil {
		return nil, apperr.Wrap(apperr.Internal, err, "metrics: gather")
	}
	return api.GetMetrics200TextResponse(text), nil
}
