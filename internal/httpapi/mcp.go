package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	genmcp "enterprise-automation/gen/mcp"
	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/apperr"
)

// The Model Context Protocol face of the API (DESIGN §9): /mcp speaks MCP's Streamable
// HTTP transport, stateless (any replica answers any request) with plain JSON answers.
// Its tools are generated from the contract (gen/mcp, from the operations marked
// x-mcp). A tool call is turned into the operation's HTTP request, with the caller's
// credentials, and served in-process by this same Echo instance: authentication,
// scopes, audit, rate limits, validation and idempotency apply to it exactly as to the
// HTTP request, and its answer is the operation's answer.
const (
	mcpPath = "/mcp"
	// protectedResourcePath serves the RFC 9728 metadata of /mcp.
	protectedResourcePath = "/.well-known/oauth-protected-resource"
	// mcpMaxBodyBytes bounds a JSON-RPC message: room for a tool's largest body (the
	// operation's own 1 MiB limit then answers 413 inside the call) and its envelope.
	mcpMaxBodyBytes = 2 * maxBodyBytes
)

// mcpCallKey carries, in the context of a /mcp request, what a tool call passes on to
// the operation's request.
type mcpCallKey struct{}

type mcpCall struct {
	requestID  string
	remoteAddr string
}

// registerMCP mounts /mcp and its protected-resource metadata. It fails only if the
// generated tools cannot be read, which would be a build defect.
func (s *Server) registerMCP() error {
	tools, err := genmcp.Tools()
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	// The SDK logs every stateless request's session at INFO (three lines a call); the
	// access log already has the request, so only its warnings and errors are kept.
	sdkLog := slog.New(minLevel{Handler: s.log.Handler(), min: slog.LevelWarn})
	srv := mcp.NewServer(&mcp.Implementation{Name: "enterprise-automation", Title: "Enterprise Automation API", Version: s.version},
		&mcp.ServerOptions{
			Instructions: "Tools of the Enterprise Automation API: tasks, agents and agent runs. " +
				"Each tool is one API operation and answers with its JSON; errors are RFC 9457 problems.",
			Logger: sdkLog,
		})
	for i := range tools {
		t := &tools[i]
		tool := &mcp.Tool{
			Name:        t.Name,
			Title:       t.Title,
			Description: t.Description,
			InputSchema: t.InputSchema,
			Annotations: &mcp.ToolAnnotations{
				ReadOnlyHint:    t.Annotations.ReadOnlyHint,
				DestructiveHint: t.Annotations.DestructiveHint,
				IdempotentHint:  t.Annotations.IdempotentHint,
				OpenWorldHint:   &t.Annotations.OpenWorldHint,
			},
		}
		if len(t.OutputSchema) > 0 {
			tool.OutputSchema = t.OutputSchema
		}
		srv.AddTool(tool, s.callTool(t))
	}
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		// Every /mcp request needs a bearer token or an API key, which browsers never
		// attach by themselves, so DNS rebinding gains nothing; and behind a reverse
		// proxy on the same host the Host header is the public name.
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        mcpMaxBodyBytes,
		Logger:                     sdkLog,
	})
	// Only POST: the server offers no stream, so GET (and DELETE: no sessions) answer
	// 405 with Allow, as any method the API does not serve.
	s.echo.POST(mcpPath, echo.WrapHandler(handler), s.mcpAuthenticate)
	s.echo.GET(protectedResourcePath, s.protectedResource)
	s.echo.GET(protectedResourcePath+mcpPath, s.protectedResource)
	return nil
}

// mcpAuthenticate admits a /mcp request only with a valid credential (an access token
// or an API key, as for the API); otherwise 401 with a WWW-Authenticate that points to
// the protected-resource metadata (RFC 9728 §5.1). Scopes are checked per tool call,
// by the operation.
func (s *Server) mcpAuthenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if _, _, err := s.principal(req.Context(), req.Header); err != nil {
			if apperr.KindOf(err) == apperr.Unauthorized {
				c.Response().Header().Set("WWW-Authenticate",
					fmt.Sprintf(`Bearer resource_metadata=%q`, baseURL(c)+protectedResourcePath+mcpPath))
			}
			return err
		}
		ctx := context.WithValue(req.Context(), mcpCallKey{}, mcpCall{requestID: requestID(c), remoteAddr: req.RemoteAddr})
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// protectedResource serves the RFC 9728 metadata of /mcp: the credentials are the
// API's (a bearer access token from /api/v1/auth/token, or an API key), sent in a header.
func (s *Server) protectedResource(c echo.Context) error {
	c.Response().Header().Set("Access-Control-Allow-Origin", "*") // public metadata, read cross-origin by browser clients
	return c.JSON(http.StatusOK, oauthex.ProtectedResourceMetadata{
		Resource:               baseURL(c) + mcpPath,
		ScopesSupported:        apikey.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Enterprise Automation API (MCP)",
		ResourceDocumentation:  baseURL(c) + "/api/openapi.yaml",
	})
}

// baseURL is the scheme and host the client addressed.
func baseURL(c echo.Context) string { return c.Scheme() + "://" + c.Request().Host }

// callTool serves one tool: its arguments become the operation's request, which this
// server handles in-process with the caller's credentials.
func (s *Server) callTool(t *genmcp.Tool) mcp.ToolHandler {
	return func(ctx context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		info, _ := ctx.Value(mcpCallKey{}).(mcpCall)
		rec := &toolResponse{header: http.Header{}}
		req, err := t.Request(ctx, call.Params.Arguments)
		if err != nil {
			var ae *genmcp.ArgumentError
			if !errors.As(err, &ae) {
				return nil, err
			}
			// The same problem the operation gives a bad parameter, from the one mapper.
			bad, _ := http.NewRequestWithContext(context.WithValue(ctx, requestIDKey{}, info.requestID), t.HTTP.Method, t.HTTP.Path, nil)
			s.handleError(apperr.Validation(apperr.FieldError{Location: ae.Location, Field: ae.Field, Message: ae.Message}),
				s.echo.NewContext(bad, rec))
			return rec.result(), nil
		}
		if call.Extra != nil {
			for _, h := range mcpForwardedHeaders {
				if v := call.Extra.Header[h]; len(v) > 0 {
					req.Header[h] = v
				}
			}
		}
		if info.requestID != "" {
			req.Header.Set(requestIDHeader, info.requestID)
		}
		req.RemoteAddr = info.remoteAddr
		s.echo.ServeHTTP(rec, req)
		return rec.result(), nil
	}
}

// mcpForwardedHeaders are the headers of the /mcp request a tool call's request
// carries (canonical keys): the credential and the client address.
var mcpForwardedHeaders = []string{
	http.CanonicalHeaderKey(echo.HeaderAuthorization), http.CanonicalHeaderKey(apiKeyHeader),
	http.CanonicalHeaderKey(echo.HeaderXForwardedFor), http.CanonicalHeaderKey(echo.HeaderXRealIP),
}

// toolResponse records the operation's answer in memory.
type toolResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *toolResponse) Header() http.Header { return r.header }

func (r *toolResponse) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *toolResponse) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// result is the tool result of the operation's answer: a success carries its JSON as
// structuredContent and as text; an error is isError with the problem JSON as text.
func (r *toolResponse) result() *mcp.CallToolResult {
	body := r.body.Bytes()
	text := string(body)
	if r.status >= 300 {
		if text == "" {
			text = fmt.Sprintf(`{"status":%d,"title":%q}`, r.status, http.StatusText(r.status))
		}
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	}
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	if strings.HasPrefix(r.header.Get(echo.HeaderContentType), echo.MIMEApplicationJSON) &&
		len(body) > 0 && body[0] == '{' {
		res.StructuredContent = json.RawMessage(body)
	}
	if text == "" {
		res.Content[0] = &mcp.TextContent{Text: fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))}
	}
	return res
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
