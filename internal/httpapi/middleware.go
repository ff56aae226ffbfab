package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
)

const requestIDHeader = "X-Request-ID"

type requestIDKey struct{}

// requestID returns the request's id as set by withRequestID.
func requestID(c echo.Context) string {
	id, _ := c.Request().Context().Value(requestIDKey{}).(string)
	return id
}

// saneRequestID accepts client ids of 1..128 characters from a conservative set, so
// they are safe to log and echo.
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withRequestID takes the client's X-Request-ID when sane, else makes one, and puts it
// in the context and the response.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(requestIDHeader)
		if !saneRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(requestIDHeader, id)
		c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), requestIDKey{}, id)))
		return next(c)
	}
}

// recoverPanics turns a panic in a handler into a 500 problem and logs its stack.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				s.log.ErrorContext(c.Request().Context(), "panic", "request_id", requestID(c),
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = apperr.E(apperr.Internal, "panic: %v", r)
			}
		}()
		return next(c)
	}
}

// statusClientClosedRequest is logged and counted for a request whose client hung up
// before the answer was written (nginx's 499; no response is sent).
const statusClientClosedRequest = 499

// securityHeaders sets the headers every response carries: nosniff, so browsers trust
// only the declared content type, and on /api/v1, whose answers carry personal data and
// credentials, Cache-Control: no-store (RFC 6749 §5.1 requires it of token responses).
// ETags and If-None-Match keep working: no-store only keeps shared and browser caches
// from storing the answer.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Every response shares these value slices (Set would allocate one per header per
		// request); a header is replaced or appended to, never written in place.
		h := c.Response().Header()
		h["X-Content-Type-Options"] = headerNosniff
		if p := c.Request().URL.Path; p == "/api/v1" || strings.HasPrefix(p, "/api/v1/") {
			h["Cache-Control"] = headerNoStore
			if strings.HasPrefix(p, "/api/v1/auth/") {
				h["Pragma"] = headerNoCache // for HTTP/1.0 caches, as RFC 6749 asks
			}
		}
		return next(c)
	}
}

// The values securityHeaders sets (an append to one copies it: its capacity is its length).
var (
	headerNosniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
	headerNoCache = []string{"no-cache"}
)

// accessLog writes one line per request. It logs the path without the query string and
// never any header, so tokens and secrets stay out of logs.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		req, res := c.Request(), c.Response()
		// A client that hung up before its answer was written (every load test ends so)
		// is no server failure and is left nothing to read: it is logged and counted as
		// 499, the status nginx gives a closed request, whatever error the handler met.
		clientGone := !res.Committed && errors.Is(req.Context().Err(), context.Canceled)
		switch {
		case clientGone:
			res.Status = statusClientClosedRequest
		case err != nil:
			c.Error(err)
		}
		elapsed := time.Since(start)
		level := slog.LevelInfo
		if res.Status >= 500 {
			level = slog.LevelError
		}
		if s.log.Enabled(req.Context(), level) {
			attrs := []slog.Attr{
				slog.String("request_id", requestID(c)),
				slog.String("method", req.Method),
				slog.String("route", c.Path()),
				slog.String("path", req.URL.Path),
				slog.Int("status", res.Status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes", res.Size),
				slog.String("remote_ip", c.RealIP()),
			}
			if p, ok := auth.PrincipalFrom(req.Context()); ok {
				attrs = append(attrs, slog.Int64("user_id", p.UserID))
			}
			if clientGone && err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			s.log.LogAttrs(req.Context(), level, "request", attrs...)
		}
		route := c.Path()
		if _, known := s.lookupOperation(req.Method, route); !known {
			route = "unmatched" // bounds the label's values to the contract's routes
		}
		s.metrics.ObserveRequest(req.Method, route, res.Status, elapsed)
		return nil
	}
}

// apiKeyHeader carries an API key; apiKeyScheme is its security scheme in the contract.
const (
	apiKeyHeader = "X-API-Key"
	apiKeyScheme = "ApiKeyAuth"
)

// authenticate enforces the contract's security requirements: on secured operations it
// verifies the credential (an access token, or an API key in X-API-Key or as a bearer
// token), loads the principal into the request context, and answers 401 otherwise. An
// API key must hold the operation's x-required-scope (403 insufficient-scope) and the
// operation must accept keys (403: key management needs a password session). Public
// operations are passed through untouched.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Echo lets a trailing path parameter swallow further segments
		// (/users/1/extra); those paths do not exist.
		for _, v := range c.ParamValues() {
			if strings.Contains(v, "/") {
				return echo.ErrNotFound
			}
		}
		op, ok := s.operationOf(c)
		if !ok || !op.secured {
			return next(c)
		}
		ctx := c.Request().Context()
		p, isKey, err := s.principal(ctx, c.Request().Header)
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(auth.WithPrincipal(ctx, p)))
		if op.requiredScope != "" && !p.HasScope(op.requiredScope) {
			return apperr.E(apperr.InsufficientScope, "the API key lacks the scope %s", op.requiredScope)
		}
		if isKey && !op.acceptsKey {
			return apperr.E(apperr.Forbidden, "this operation needs a password session; API keys cannot use it")
		}
		// The contract's x-required-role is enforced here for every operation; services
		// still check finer rules (self-or-admin, ownership).
		if op.requiredRole == "admin" && !p.IsAdmin {
			return apperr.E(apperr.Forbidden, "administrator privileges required")
		}
		return next(c)
	}
}

// principal verifies the credential a request carries (see credentials) and returns
// whom it names; isKey says it is an API key. It fails with Unauthorized.
func (s *Server) principal(ctx context.Context, h http.Header) (p auth.Principal, isKey bool, err error) {
	credential, isKey, err := credentials(h)
	if err != nil {
		return auth.Principal{}, false, err
	}
	if isKey {
		if s.apiKeys == nil {
			return auth.Principal{}, true, apperr.E(apperr.Unauthorized, "API keys are not accepted by this server")
		}
		p, err = s.apiKeys.Authenticate(ctx, credential)
	} else {
		p, err = s.auth.Authenticate(ctx, credential)
	}
	return p, isKey, err
}

// credentials reads a request's credential: an API key from X-API-Key, or the bearer
// token of Authorization (an API key when it starts with the key prefix, else an access
// token). A key in X-API-Key together with a different Authorization is refused (401),
// so that no request is authorised as one caller while naming another.
func credentials(h http.Header) (credential string, isKey bool, err error) {
	header := h.Get(echo.HeaderAuthorization)
	scheme, token, found := strings.Cut(header, " ")
	bearer := ""
	if found && strings.EqualFold(scheme, "Bearer") {
		bearer = strings.TrimSpace(token)
	}
	if key := strings.TrimSpace(h.Get(apiKeyHeader)); key != "" || len(h.Values(apiKeyHeader)) > 0 {
		if len(h.Values(apiKeyHeader)) > 1 {
			return "", false, apperr.E(apperr.Unauthorized, "send one %s header", apiKeyHeader)
		}
		if key == "" {
			return "", false, apperr.E(apperr.Unauthorized, "the %s header is empty", apiKeyHeader)
		}
		if header != "" && bearer != key {
			return "", false, apperr.E(apperr.Unauthorized, "%s and Authorization carry different credentials; send one", apiKeyHeader)
		}
		return key, true, nil
	}
	if bearer == "" {
		return "", false, apperr.E(apperr.Unauthorized, "not authenticated: send Authorization: Bearer <access_token> or %s: <api_key>", apiKeyHeader)
	}
	return bearer, apikey.IsKey(bearer), nil
}
