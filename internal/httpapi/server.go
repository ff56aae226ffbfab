// Package httpapi serves the contract in openapi.yaml over HTTP: Echo with the generated
// strict server, middleware (request id, access log, recovery, CORS, body limit,
// authentication, validation against the contract) and the one mapper from errors to
// RFC 9457 problems.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/idempotency"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/tracing"
	"enterprise-automation/internal/user"
	"enterprise-automation/internal/webhook"
)

// maxBodyBytes bounds every request body (413 beyond); the body limit middleware is
// configured with the same 1 MiB ("1M" would mean 10^6 bytes).
const maxBodyBytes = 1 << 20

// Check is one dependency probed by the readiness endpoint.
type Check struct {
	Name     string
	Required bool // a failing required check makes the service unavailable (503)
	// Run probes the dependency. Its detail is public. An error is logged; clients see
	// only the message of an apperr.Error (not Internal) in its chain, or
	// "<Name> unavailable", so a check says in words what failed and keeps addresses out.
	Run func(ctx context.Context) (detail string, err error)
}

// Options configures a Server.
type Options struct {
	Version     string
	Debug       bool // serves Swagger UI at /api/docs
	CORSOrigins []string
	Logger      *slog.Logger
	Auth        *auth.Service
	Users       *user.Service
	Tasks       *task.Service
	Agents      *agent.Service
	APIKeys     *apikey.Service
	Audit       *audit.Service
	Webhooks    *webhook.Service
	RunEvents   RunEvents
	// MaxStreamsPerUser bounds a user's concurrent run event streams on this instance
	// (429 beyond); 0 leaves them unbounded.
	MaxStreamsPerUser int
	Idempotency       *idempotency.Service
	Checks            []Check
	Metrics           *metrics.Metrics // nil records nothing and serves an empty /metrics
	RateLimits        RateLimits       // a nil Limiter turns rate limiting off
	// TrustedProxies may name the client in X-Forwarded-For; without any, the client
	// is the connection's peer (a client cannot choose its own rate-limit key).
	TrustedProxies []*net.IPNet
	// MetricsElsewhere says /metrics is served on a listener of its own (METRICS_ADDR):
	// the API then answers 404 there.
	MetricsElsewhere bool
	// Tracing, when enabled, makes each request a span (nil: off).
	Tracing *tracing.Tracing
}

// Server is the HTTP face of the API.
type Server struct {
	echo      *echo.Echo
	log       *slog.Logger
	auth      *auth.Service
	users     *user.Service
	tasks     *task.Service
	agents    *agent.Service
	apiKeys   *apikey.Service
	audit     *audit.Service
	webhooks  *webhook.Service
	runEvents RunEvents
	streams   streamCounter
	idem      *idempotency.Service
	ops       map[string]*operation
	version   string
	debug     bool
	checks    []Check
	ready     readiness
	metrics   *metrics.Metrics
	limits    RateLimits
	cors      bool          // CORS origins are configured
	stopping  chan struct{} // closed when shutdown begins; ends event streams
	stopOnce  sync.Once
	specYAML  []byte
	specJSON  map[string]any
	// metricsElsewhere: /metrics has a listener of its own and is not served here.
	metricsElsewhere bool
}

// LoadContract parses the embedded openapi.yaml. It fails only if the embedded contract
// is invalid, which would be a build defect.
func LoadContract() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.SpecYAML)
	if err != nil {
		return nil, fmt.Errorf("httpapi: load contract: %w", err)
	}
	return doc, nil
}

// New builds the server from the embedded contract. It fails only if the embedded
// contract cannot be loaded, which would be a build defect.
func New(opts Options) (*Server, error) {
	doc, err := LoadContract()
	if err != nil {
		return nil, err
	}
	doc.SetStringFormatValidators(map[string]openapi3.StringFormatValidator{"email": emailFormat{}})
	specJSON, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("httpapi: contract as JSON: %w", err)
	}
	var specMap map[string]any
	if err := json.Unmarshal(specJSON, &specMap); err != nil {
		return nil, fmt.Errorf("httpapi: contract as JSON: %w", err)
	}
	s := &Server{
		echo:      echo.New(),
		log:       opts.Logger,
		auth:      opts.Auth,
		users:     opts.Users,
		tasks:     opts.Tasks,
		agents:    opts.Agents,
		apiKeys:   opts.APIKeys,
		audit:     opts.Audit,
		webhooks:  opts.Webhooks,
		runEvents: opts.RunEvents,
		streams:   streamCounter{max: opts.MaxStreamsPerUser},
		idem:      opts.Idempotency,
		ops:       operations(doc),
		version:   opts.Version,
		debug:     opts.Debug,
		checks:    opts.Checks,
		metrics:   opts.Metrics,
		limits:    opts.RateLimits,
		stopping:  make(chan struct{}),
		cors:      len(opts.CORSOrigins) > 0,
		specYAML:  api.SpecYAML,
		specJSON:  specMap,
	}
	s.metricsElsewhere = opts.MetricsElsewhere
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if len(opts.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range opts.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}
	e.Pre(middleware.RemoveTrailingSlash(), securityHeaders)
	e.Use(withRequestID)
	if mw := traceRequests(opts.Tracing); mw != nil {
		e.Use(mw) // outside the access log, whose line then carries the trace id
	}
	e.Use(s.accessLog, s.recoverPanics, s.rejectOptions, s.rejectUnknownMethods)
	if len(opts.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: opts.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{"Authorization", apiKeyHeader, "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID", "Last-Event-ID"},
			ExposeHeaders: []string{"ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed",
				"RateLimit", "RateLimit-Policy", "WWW-Authenticate"},
			MaxAge: 600,
		}))
	}
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1MiB", Skipper: s.takesNoBody}), s.authenticate, s.auditContext, s.rateLimit, s.validate, s.passwordGuard, s.idempotent)
	api.RegisterHandlers(e, api.NewStrictHandler(s, nil))
	if err := s.registerMCP(); err != nil {
		return nil, err
	}
	if s.debug {
		s.registerDocsAssets()
	}
	if err := s.registerConsole(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return s, nil
}

// takesNoBody tells the body limit to leave alone requests to operations that declare no
// body: nothing reads their body, so its size cannot matter.
func (s *Server) takesNoBody(c echo.Context) bool {
	op, ok := s.operationOf(c)
	return !ok || op.bodyTypes == nil
}

// rejectOptions answers OPTIONS with 405 and the Allow header, like any method the
// contract does not declare, unless it is a CORS preflight the CORS middleware handles.
func (s *Server) rejectOptions(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodOptions ||
			(s.cors && req.Header.Get("Origin") != "" && req.Header.Get("Access-Control-Request-Method") != "") {
			return next(c)
		}
		allow := s.allowedMethods(c.Path())
		if len(allow) == 0 {
			return echo.ErrNotFound
		}
		c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
		return echo.ErrMethodNotAllowed
	}
}

// rejectUnknownMethods answers 405 to any method the API never serves (invented ones,
// CONNECT, TRACE), on any path, with the Allow header of the path (empty when the path
// is unknown).
func (s *Server) rejectUnknownMethods(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
			http.MethodDelete, http.MethodOptions:
			return next(c)
		}
		c.Response().Header().Set(echo.HeaderAllow, strings.Join(s.allowedMethods(c.Path()), ", "))
		return echo.ErrMethodNotAllowed
	}
}

// allowedMethods lists the methods the contract declares for an Echo path template.
func (s *Server) allowedMethods(path string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if _, ok := s.ops[routeKey(m, path)]; ok {
			allow = append(allow, m)
		}
	}
	return allow
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// HTTPServer wraps the handler in an http.Server with timeouts that bound slow clients.
// Its Shutdown also ends open event streams, which would otherwise hold it up.
func (s *Server) HTTPServer(addr string) *http.Server {
	hs := &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.StopStreams)
	return hs
}

// StopStreams ends every open event stream (their clients reconnect and resume).
func (s *Server) StopStreams() { s.stopOnce.Do(func() { close(s.stopping) }) }

// RequiredScopes lists each operation's declared x-required-scope ("" for none), keyed
// like RequiredRoles; tests use it to check every scope.
func (s *Server) RequiredScopes() map[string]string {
	out := make(map[string]string, len(s.ops))
	for k, op := range s.ops {
		out[k] = op.requiredScope
	}
	return out
}

// RequiredRoles lists each operation's declared x-required-role, keyed by
// "METHOD /path/template" in Echo syntax; tests use it to build authorization matrices.
func (s *Server) RequiredRoles() map[string]string {
	out := make(map[string]string, len(s.ops))
	for k, op := range s.ops {
		out[k] = op.requiredRole
	}
	return out
}

var _ api.StrictServerInterface = (*Server)(nil)
