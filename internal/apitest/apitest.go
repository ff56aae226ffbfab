// Package apitest starts the real program (the same Run the binary uses, on port 0) on a
// fresh database and talks to it through the generated Go client, validating every
// response against openapi.yaml: a test fails as soon as the server drifts from its
// contract.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/app"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/tracing"
)

// Admin credentials seeded into every environment.
const (
	AdminEmail    = "admin@example.com"
	AdminPassword = "admin-password-123"
)

// Env is one running server with its own database.
type Env struct {
	BaseURL string
	DBURL   string
	// Client is an anonymous client; use As or AsAdmin for authenticated ones.
	Client *client.ClientWithResponses
	// HTTP is a plain client whose responses are validated against the contract too.
	HTTP *http.Client
	// Logs holds everything the server wrote to its log.
	Logs *SyncBuffer
	t    testing.TB
}

// Option changes the environment of the server before it starts.
type Option func(env map[string]string)

// WithEnv sets one environment variable.
func WithEnv(key, value string) Option { return func(env map[string]string) { env[key] = value } }

// testPasswordParams keep argon2id real but cheap, so suites that create many users stay fast.
var testPasswordParams = password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Start seeds and serves a fresh instance; it is stopped (and must stop cleanly) when
// the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	dbURL := dbtest.URL(t)
	return StartOn(t, dbURL, opts...)
}

// StartOn serves an instance on an existing database (for several instances sharing one).
func StartOn(t testing.TB, dbURL string, opts ...Option) *Env {
	t.Helper()
	return start(t, dbURL, nil, opts...)
}

// StartTraced is Start with the server tracing into tr (in tests, a provider with an
// in-memory exporter) instead of what OTEL_* variables would configure.
func StartTraced(t testing.TB, tr *tracing.Tracing, opts ...Option) *Env {
	t.Helper()
	return start(t, dbtest.URL(t), tr, opts...)
}

func start(t testing.TB, dbURL string, tr *tracing.Tracing, opts ...Option) *Env {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":         dbURL,
		"SECRET_KEY":           randomHex(32),
		"API_HOST":             "127.0.0.1",
		"API_PORT":             "0",
		"FIRST_ADMIN_EMAIL":    AdminEmail,
		"FIRST_ADMIN_PASSWORD": AdminPassword,
		"LOG_LEVEL":            "DEBUG",
		// Suites log in and call far faster than any client should; the rate limit
		// tests turn the limits on.
		"RATE_LIMIT_PER_MINUTE":       "0",
		"LOGIN_RATE_LIMIT_PER_MINUTE": "0",
	}
	for _, o := range opts {
		o(vars)
	}
	logs := &SyncBuffer{}
	getenv := func(k string) string { return vars[k] }
	seed := &app.Program{Getenv: getenv, Stdout: io.Discard, Stderr: logs, PasswordParams: testPasswordParams}
	require.NoError(t, seed.Run(context.Background(), []string{"seed"}), "seed: %s", logs)

	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	prog := &app.Program{Getenv: getenv, Stdout: io.Discard, Stderr: logs, PasswordParams: testPasswordParams,
		OnListen: func(addr string) { addrc <- addr }, Tracing: tr}
	go func() { done <- prog.Run(ctx, []string{"serve"}) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("server exited before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not start within 30s\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	env := &Env{BaseURL: "http://" + addr, DBURL: dbURL, Logs: logs, t: t}
	env.HTTP = &http.Client{Transport: &Validating{T: t, Next: http.DefaultTransport}, Timeout: 30 * time.Second}
	env.Client = env.client(nil)
	return env
}

func (e *Env) client(editor client.RequestEditorFn) *client.ClientWithResponses {
	opts := []client.ClientOption{client.WithHTTPClient(e.HTTP)}
	if editor != nil {
		opts = append(opts, client.WithRequestEditorFn(editor))
	}
	c, err := client.NewClientWithResponses(e.BaseURL, opts...)
	require.NoError(e.t, err)
	return c
}

// As returns a client that sends the given access token.
func (e *Env) As(token string) *client.ClientWithResponses {
	return e.client(Bearer(token))
}

// Bearer is a request editor that sets the Authorization header.
func Bearer(token string) client.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// AsKey returns a client that sends the given API key in X-API-Key.
func (e *Env) AsKey(key string) *client.ClientWithResponses {
	return e.client(APIKey(key))
}

// APIKey is a request editor that sets the X-API-Key header.
func APIKey(key string) client.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-API-Key", key)
		return nil
	}
}

// Login logs in and returns the token pair; the test fails unless it answers 200.
func (e *Env) Login(t testing.TB, email, pw string) client.TokenPair {
	t.Helper()
	res, err := e.Client.CreateTokenWithFormdataBodyWithResponse(context.Background(), client.TokenRequest{Username: email, Password: pw})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "login %s: %s", email, res.Body)
	return *res.JSON200
}

// AsAdmin returns a client authenticated as the seeded administrator.
func (e *Env) AsAdmin(t testing.TB) *client.ClientWithResponses {
	t.Helper()
	return e.As(e.Login(t, AdminEmail, AdminPassword).AccessToken)
}

// User is a created user with its credentials and an authenticated client.
type User struct {
	client.User
	Password string
	Token    string
	Client   *client.ClientWithResponses
}

// CreateUser creates a user through the API as the administrator and logs it in.
func (e *Env) CreateUser(t testing.TB, name string, admin bool) User {
	t.Helper()
	email := strings.ToLower(name) + "-" + randomHex(4) + "@example.com"
	pw := "password-" + randomHex(4)
	res, err := e.AsAdmin(t).CreateUserWithResponse(context.Background(), nil, client.UserCreate{
		Name: name, Email: openapi_types.Email(email), Password: pw, IsAdmin: &admin,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create user: %s", res.Body)
	tok := e.Login(t, email, pw).AccessToken
	return User{User: *res.JSON201, Password: pw, Token: tok, Client: e.As(tok)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SyncBuffer is a goroutine-safe buffer for the server's log.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specDoc    *openapi3.T
	specErr    error
)

func contract() (*openapi3.T, routers.Router, error) {
	specOnce.Do(func() {
		specDoc, specErr = httpapi.LoadContract()
		if specErr != nil {
			return
		}
		specDoc.Servers = openapi3.Servers{{URL: "/"}}
		specRouter, specErr = gorillamux.NewRouter(specDoc)
	})
	return specDoc, specRouter, specErr
}

// Validating is an http.RoundTripper that checks every response against the contract:
// status declared for the operation, headers and body matching their schemas, and
// problem bodies on every error (also for paths the contract does not have).
type Validating struct {
	T    testing.TB
	Next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (v *Validating) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := v.Next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	if verr := CheckResponse(req, res.StatusCode, res.Header, body); verr != nil {
		v.T.Errorf("response breaks the contract: %s %s → %d: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, verr, truncate(body))
	}
	return res, nil
}

// CheckResponse validates one response against the contract.
func CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	doc, router, err := contract()
	if err != nil {
		return err
	}
	if id := header.Get("X-Request-ID"); id == "" {
		return fmt.Errorf("no X-Request-ID header")
	}
	lookup := req.Clone(context.Background())
	lookup.URL.Path = strings.TrimSuffix(req.URL.Path, "/")
	if lookup.URL.Path == "" {
		lookup.URL.Path = "/"
	}
	route, params, err := router.FindRoute(lookup)
	if err != nil {
		// Not an operation of the contract (unknown path or method): must be a problem.
		if status < 400 {
			return fmt.Errorf("success status for a request the contract does not describe")
		}
		return checkProblem(doc, status, header, body)
	}
	if status >= 400 && declaresProblem(route, status) {
		if err := checkProblem(doc, status, header, body); err != nil {
			return err
		}
	}
	ct := header.Get("Content-Type")
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: lookup, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: httpapi.SchemaOptions,
			// Bodies that are not JSON (HTML, YAML, event streams) are checked by content
			// type only: their schema is just "a string".
			ExcludeResponseBody: !strings.Contains(ct, "json"),
		},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// declaresProblem reports whether the operation's response for status is a problem
// (a few, like readiness's 503, are not).
func declaresProblem(route *routers.Route, status int) bool {
	r := route.Operation.Responses.Status(status)
	if r == nil || r.Value == nil {
		return true
	}
	_, ok := r.Value.Content["application/problem+json"]
	return ok
}

func checkProblem(doc *openapi3.T, status int, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return fmt.Errorf("error response has content type %q, want application/problem+json", ct)
	}
	var v any
	if err := jsonUnmarshal(body, &v); err != nil {
		return fmt.Errorf("problem body is not JSON: %w", err)
	}
	schema := doc.Components.Schemas["Problem"].Value
	if err := schema.VisitJSON(v, httpapi.SchemaOptions...); err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	if m, ok := v.(map[string]any); ok {
		if s, _ := m["status"].(float64); int(s) != status {
			return fmt.Errorf("problem status %v differs from HTTP status %d", m["status"], status)
		}
		if id, _ := m["request_id"].(string); id != header.Get("X-Request-ID") {
			return fmt.Errorf("problem request_id %q differs from X-Request-ID %q", id, header.Get("X-Request-ID"))
		}
	}
	if status == http.StatusUnauthorized && header.Get("WWW-Authenticate") == "" {
		return fmt.Errorf("401 without WWW-Authenticate")
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}
