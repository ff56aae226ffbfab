package httpapi_test

// Benchmarks of the request hot path: the whole middleware and handler stack in process
// (with a real database), and its pieces alone: contract validation, the service (DB)
// work, problem mapping, JSON encoding of a task page, and the SQL of the user and agent
// run list queries. Run with:
//
//	go test -run xxx -bench . -benchmem ./internal/httpapi/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/api"
	"enterprise-automation/gen/db"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/idempotency"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/user"
)

// benchTaskRows is how many tasks the request benchmarks' database holds.
const benchTaskRows = 20_000

// createTaskBody is a realistic POST /api/v1/tasks body; %d is the assignee.
const createTaskBody = `{"title":"Reconcile November invoices","description":"Match every invoice against the bank statement.",` +
	`"priority":"high","assignee_id":%d,"due_at":"2026-12-01T17:00:00Z","tags":["billing","q4"],` +
	`"metadata":{"source":"crm","ticket":4711}}`

// invalidTaskBody breaks the TaskCreate schema in three fields.
const invalidTaskBody = `{"title":"","priority":"someday","colour":"red"}`

// benchWorld is a seeded database with the services and server wired like internal/app.
type benchWorld struct {
	pool     *pgxpool.Pool
	store    *store.DB
	auth     *auth.Service
	users    *user.Service
	tasks    *task.Service
	agents   *agent.Service
	idem     *idempotency.Service
	admin    auth.Principal
	token    string // the admin's access token
	taskID   int64  // a task to GET
	assignee int64  // the third user (id 3 on a fresh database): the list filter
	// postAssignee is the fourth user: tasks created by the POST benchmarks go to it, so
	// that they do not change what the list benchmarks count and read.
	postAssignee int64
}

// newBenchWorld seeds a fresh database. Call it from a top-level benchmark: that function
// runs once, and the database is dropped when it ends.
func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(b), 0) // configured like production
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	w := &benchWorld{}
	w.wire(b, pool)
	s, authSvc := w.store, w.auth
	admin, err := s.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "x", IsAdmin: true})
	require.NoError(b, err)
	w.admin = auth.Principal{UserID: admin.ID, Email: admin.Email, IsAdmin: true}
	w.token, err = authSvc.AccessToken(admin.ID)
	require.NoError(b, err)
	require.NoError(b, seedUsers(ctx, pool, 50))
	require.NoError(b, pool.QueryRow(ctx, `SELECT id FROM users ORDER BY id OFFSET 2 LIMIT 1`).Scan(&w.assignee))
	require.NoError(b, pool.QueryRow(ctx, `SELECT id FROM users ORDER BY id OFFSET 3 LIMIT 1`).Scan(&w.postAssignee))
	require.NoError(b, seedTasks(ctx, pool, benchTaskRows))
	require.NoError(b, pool.QueryRow(ctx, `SELECT id FROM tasks ORDER BY id OFFSET $1 LIMIT 1`, benchTaskRows/2).Scan(&w.taskID))
	_, err = pool.Exec(ctx, `ANALYZE`)
	require.NoError(b, err)
	return w
}

// wire builds the services over pool, as internal/app does.
func (w *benchWorld) wire(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	s := store.New(pool)
	authSvc, err := auth.NewService(s, auth.Options{
		Secret: []byte("0123456789abcdef0123456789abcdef"), Algorithm: "HS256",
		AccessTTL: 30 * time.Minute, RefreshTTL: 24 * time.Hour,
		Password: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	})
	require.NoError(b, err)
	tasks := task.NewService(s)
	w.pool, w.store, w.auth, w.users, w.tasks = pool, s, authSvc, user.NewService(s, authSvc), tasks
	w.agents, w.idem = agent.NewService(s, tasks, nil, "gpt-4o-mini"), idempotency.NewService(s)
}

// withDefaultPlanCache returns the world over a second pool on the same database that
// leaves plan_cache_mode at PostgreSQL's default (store.Open forces custom plans).
func (w *benchWorld) withDefaultPlanCache(b *testing.B) *benchWorld {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), w.pool.Config().ConnString())
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	w2 := *w
	w2.wire(b, pool)
	return &w2
}

// server builds the HTTP server over the world's services, as internal/app does.
func (w *benchWorld) server(b *testing.B, log *slog.Logger) *httpapi.Server {
	b.Helper()
	srv, err := httpapi.New(httpapi.Options{
		Version: "bench", Logger: log, Auth: w.auth, Users: w.users, Tasks: w.tasks, Agents: w.agents,
		Idempotency: w.idem,
	})
	require.NoError(b, err)
	return srv
}

// seedUsers adds n users (every tenth inactive) after the existing ones.
func seedUsers(ctx context.Context, pool *pgxpool.Pool, n int) error {
	_, err := pool.Exec(ctx, `INSERT INTO users (name, email, password_hash, is_active)
		SELECT 'User ' || g, 'user' || g || '@example.test', 'not-a-hash', g % 10 <> 0
		FROM generate_series(1, $1::int) AS g`, n)
	if err != nil {
		return fmt.Errorf("seed users: %w", err)
	}
	return nil
}

// seedTasks adds n tasks spread over the first 51 users, with tags, small metadata and
// a mix of statuses, priorities and due dates.
func seedTasks(ctx context.Context, pool *pgxpool.Pool, n int) error {
	_, err := pool.Exec(ctx, `
WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM (SELECT id FROM users ORDER BY id LIMIT 51) AS x),
s AS (SELECT g, (ARRAY['pending', 'in_progress', 'completed', 'cancelled', 'pending'])[1 + g % 5]::task_status AS status
      FROM generate_series(1, $1::int) AS g)
INSERT INTO tasks (title, description, status, priority, assignee_id, created_by, due_at, tags, metadata,
                   created_at, updated_at, completed_at)
SELECT 'Task ' || g || ' ' || (ARRAY['deploy', 'review', 'migrate', 'backup'])[1 + g % 4],
       'Notes for the ' || (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4] || ' team: ' || md5(g::text),
       status,
       (ARRAY['low', 'medium', 'high', 'urgent'])[1 + (g / 5) % 4]::task_priority,
       CASE WHEN g % 7 = 0 THEN NULL ELSE ids[2 + (g * 7919) % 50] END,
       ids[1 + (g * 104729) % 51],
       CASE WHEN g % 3 = 0 THEN NULL ELSE date_trunc('hour', now()) + make_interval(hours => g % 5000) END,
       CASE g % 4 WHEN 0 THEN ARRAY['backend', 'q4'] WHEN 1 THEN ARRAY['frontend', 'ops']
                  WHEN 2 THEN ARRAY['billing'] ELSE '{}' END,
       jsonb_build_object('source', 'crm', 'ticket', g, 'region', 'eu'),
       now() - make_interval(secs => ($1::int - g) * 30),
       now() - make_interval(secs => ($1::int - g) * 30) + interval '5 minutes',
       CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN now() END
FROM s, u`, n)
	if err != nil {
		return fmt.Errorf("seed tasks: %w", err)
	}
	return nil
}

// dropPosted removes the tasks the POST benchmarks created and vacuums, so that the
// list benchmarks do not depend on the order the cases run in: thousands of newer rows
// make the task list (which scans created_at backwards and filters) read more.
func (w *benchWorld) dropPosted(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	_, err := w.pool.Exec(ctx, `DELETE FROM tasks WHERE assignee_id = $1`, w.postAssignee)
	require.NoError(b, err)
	_, err = w.pool.Exec(ctx, `VACUUM ANALYZE tasks`)
	require.NoError(b, err)
}

// benchRequest is one request of the hot path.
type benchRequest struct {
	name   string
	method string
	target string
	body   string
	header map[string]string
}

func (r benchRequest) build(token string) *http.Request {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.target, body)
	if r.body != "" {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	if token != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return req
}

func (w *benchWorld) requests() (get, post, list benchRequest) {
	get = benchRequest{name: "get_task", method: http.MethodGet, target: "/api/v1/tasks/" + strconv.FormatInt(w.taskID, 10)}
	post = benchRequest{name: "post_task", method: http.MethodPost, target: "/api/v1/tasks", body: fmt.Sprintf(createTaskBody, w.postAssignee)}
	list = benchRequest{name: "list_tasks", method: http.MethodGet,
		target: "/api/v1/tasks?status=pending&assignee_id=" + strconv.FormatInt(w.assignee, 10) + "&limit=20"}
	return get, post, list
}

// serve runs one request through h and fails unless it answers want.
func serve(b *testing.B, h http.Handler, req *http.Request, want int) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: status %d, want %d: %s", req.Method, req.URL, rec.Code, want, rec.Body)
	}
}

// BenchmarkRequestValidation measures a request through the whole stack (Echo,
// middleware, strict handler, service, database, JSON) and then the pieces alone, so
// that their share of a request can be read off:
//
//   - stack: httpapi.Server.ServeHTTP in process, no network;
//   - kin_only: openapi3filter.ValidateRequest with the server's route and options;
//   - validate_middleware: a bare Echo with only the validation middleware (so also its
//     own body pre-checks) in front of a handler that does nothing, and bare_echo, the
//     same without the middleware, to subtract;
//   - service_only: the task service calls the handlers make (the database work);
//   - auth_only: Authenticate, which the auth middleware calls on every request.
func BenchmarkRequestValidation(b *testing.B) {
	w := newBenchWorld(b)
	srv := w.server(b, nil) // access log to slog.DiscardHandler: records are built, not written
	// Production logs every request as JSON at INFO; this one writes those lines to io.Discard.
	srvJSONLog := w.server(b, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	get, post, list := w.requests()
	ctx := context.Background()
	// The same server over a pool at PostgreSQL's default plan_cache_mode, for comparison.
	srvPlanCache := w.withDefaultPlanCache(b).server(b, nil)

	b.Run("stack", func(b *testing.B) {
		cases := []struct {
			req  benchRequest
			srv  http.Handler
			want int
			key  bool // send a fresh Idempotency-Key
		}{
			{get, srv, http.StatusOK, false},
			{post, srv, http.StatusCreated, false},
			{list, srv, http.StatusOK, false},
			{benchRequest{name: "get_task_json_access_log", method: get.method, target: get.target}, srvJSONLog, http.StatusOK, false},
			{benchRequest{name: "post_task_idempotency_key", method: post.method, target: post.target, body: post.body}, srv, http.StatusCreated, true},
			{benchRequest{name: "get_task_default_plan_cache", method: get.method, target: get.target}, srvPlanCache, http.StatusOK, false},
			{benchRequest{name: "list_tasks_default_plan_cache", method: list.method, target: list.target}, srvPlanCache, http.StatusOK, false},
			// No database: the stack's own cost (Echo, middleware, JSON, recorder).
			{benchRequest{name: "health_no_db", method: http.MethodGet, target: "/api/health"}, srv, http.StatusOK, false},
			{benchRequest{name: "get_task_bad_token_no_db", method: get.method, target: get.target,
				header: map[string]string{echo.HeaderAuthorization: "Bearer " + w.token[:len(w.token)-4] + "AAAA"}}, srv, http.StatusUnauthorized, false},
		}
		for _, c := range cases {
			b.Run(c.req.name, func(b *testing.B) {
				if c.want == http.StatusCreated {
					b.Cleanup(func() { w.dropPosted(b) })
				}
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					req := c.req.build(w.token)
					if c.key {
						n++
						req.Header.Set("Idempotency-Key", "bench-"+strconv.Itoa(n)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
					}
					serve(b, c.srv, req, c.want)
				}
			})
		}
	})

	b.Run("kin_only", func(b *testing.B) {
		cases := []struct {
			req     benchRequest
			path    string // Echo path template
			params  map[string]string
			wantErr bool
		}{
			{get, "/api/v1/tasks/:task_id", map[string]string{"task_id": strconv.FormatInt(w.taskID, 10)}, false},
			{post, "/api/v1/tasks", map[string]string{}, false},
			{list, "/api/v1/tasks", map[string]string{}, false},
			{benchRequest{name: "post_task_invalid_3_fields", method: post.method, target: post.target, body: invalidTaskBody}, "/api/v1/tasks", map[string]string{}, true},
		}
		for _, c := range cases {
			b.Run(c.req.name, func(b *testing.B) {
				route := srv.Route(c.req.method, c.path)
				require.NotNil(b, route)
				req := c.req.build(w.token)
				body := strings.NewReader(c.req.body)
				rc := io.NopCloser(body)
				in := &openapi3filter.RequestValidationInput{Request: req, PathParams: c.params, Route: route, Options: httpapi.ValidationOptions}
				validate := func() error {
					if c.req.body != "" {
						body.Reset(c.req.body)
						req.Body = rc
					}
					return openapi3filter.ValidateRequest(ctx, in)
				}
				if err := validate(); (err != nil) != c.wantErr {
					b.Fatalf("validate: %v", err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := validate(); (err != nil) != c.wantErr {
						b.Fatalf("validate: %v", err)
					}
				}
			})
		}
	})

	b.Run("validate_middleware", func(b *testing.B) {
		noop := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
		bare, validated := echo.New(), echo.New()
		mw := srv.ValidateMiddleware()
		for _, e := range []*echo.Echo{bare, validated} {
			var mws []echo.MiddlewareFunc
			if e == validated {
				mws = []echo.MiddlewareFunc{mw}
			}
			e.GET("/api/v1/tasks/:task_id", noop, mws...)
			e.POST("/api/v1/tasks", noop, mws...)
			e.GET("/api/v1/tasks", noop, mws...)
		}
		for _, e := range []struct {
			name string
			h    http.Handler
		}{{"bare_echo", bare}, {"with_validation", validated}} {
			for _, r := range []benchRequest{get, post, list} {
				b.Run(e.name+"/"+r.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						serve(b, e.h, r.build(w.token), http.StatusNoContent)
					}
				})
			}
		}
	})

	b.Run("service_only", func(b *testing.B) {
		due := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
		cases := []struct {
			name    string
			run     func() error
			creates bool
		}{
			{"get_task", func() error { _, err := w.tasks.Get(ctx, w.admin, w.taskID); return err }, false},
			{"post_task", func() error {
				_, err := w.tasks.Create(ctx, w.admin, task.CreateParams{
					Title: "Reconcile November invoices", Description: "Match every invoice against the bank statement.",
					Priority: task.PriorityHigh, AssigneeID: &w.postAssignee, DueAt: &due, Tags: []string{"billing", "q4"},
					Metadata: []byte(`{"source":"crm","ticket":4711}`),
				})
				return err
			}, true},
			{"list_tasks", func() error {
				res, err := w.tasks.List(ctx, w.admin, task.ListParams{
					Page: page.Request{Limit: 20}, Statuses: []task.Status{task.StatusPending}, AssigneeID: &w.assignee,
				})
				if err == nil && len(res.Items) != 20 {
					err = fmt.Errorf("got %d tasks, want a full page of 20", len(res.Items))
				}
				return err
			}, false},
		}
		for _, c := range cases {
			b.Run(c.name, func(b *testing.B) {
				if c.creates {
					b.Cleanup(func() { w.dropPosted(b) })
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := c.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})

	b.Run("auth_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.auth.Authenticate(ctx, w.token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProblemMapping measures turning an error into a problem body: toProblem and
// the json.Marshal that handleError does.
func BenchmarkProblemMapping(b *testing.B) {
	srv, err := httpapi.New(httpapi.Options{})
	require.NoError(b, err)
	// A real kin-openapi error for a body with three bad fields, as the middleware sees it.
	route := srv.Route(http.MethodPost, "/api/v1/tasks")
	req := httptest.NewRequest(http.MethodPost, "/api/v1/tasks", strings.NewReader(invalidTaskBody))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	kinErr := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: map[string]string{}, Route: route, Options: httpapi.ValidationOptions,
	})
	require.Error(b, kinErr)
	mapped := httpapi.ValidationError(kinErr)
	require.Len(b, apperr.As(mapped).Fields, 3, "want three field errors: %v", mapped)

	e := echo.New()
	cases := []struct {
		name   string
		target string
		err    func() error // built per iteration where building is part of the cost
		fields int
	}{
		{"validation_3_fields", "/api/v1/tasks", func() error {
			return apperr.Validation(
				apperr.FieldError{Location: "body", Field: "title", Message: "must be at least 1 characters"},
				apperr.FieldError{Location: "body", Field: "priority", Message: "must be one of: low, medium, high, urgent"},
				apperr.FieldError{Location: "body", Field: "colour", Message: "is not a known field"},
			)
		}, 3},
		{"kin_error_3_fields", "/api/v1/tasks", func() error { return httpapi.ValidationError(kinErr) }, 3},
		{"not_found", "/api/v1/tasks/42", func() error { return apperr.E(apperr.NotFound, "task %d not found", 42) }, 0},
		{"echo_no_route", "/api/v1/nowhere", func() error { return echo.ErrNotFound }, 0},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			c2 := e.NewContext(httptest.NewRequest(http.MethodPost, c.target, nil), httptest.NewRecorder())
			p := httpapi.ToProblem(c.err(), c2)
			got := 0
			if p.Errors != nil {
				got = len(*p.Errors)
			}
			require.Equal(b, c.fields, got)
			b.ReportAllocs()
			for b.Loop() {
				p := httpapi.ToProblem(c.err(), c2)
				if _, err := json.Marshal(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDBTasks returns n stored tasks as the database gives them back.
func benchDBTasks(n int) []task.Task {
	base := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	out := make([]task.Task, n)
	for i := range out {
		assignee, creator := int64(3+i%40), int64(1+i%7)
		t := task.Task{
			ID: int64(1000 + i), Title: fmt.Sprintf("Reconcile November invoices #%d", i),
			Description: "Match every invoice against the bank statement and flag the differences for review.",
			Status:      task.StatusPending, Priority: task.PriorityMedium,
			AssigneeID: &assignee, CreatedBy: &creator,
			Tags:      []string{"billing", "q4"},
			Metadata:  fmt.Appendf(nil, `{"source": "crm", "ticket": %d, "region": "eu"}`, 4711+i),
			CreatedAt: base.Add(time.Duration(i) * time.Minute), UpdatedAt: base.Add(time.Duration(i)*time.Minute + time.Second),
			Version: int64(1 + i%3),
		}
		if i%3 != 0 {
			due := base.Add(30 * 24 * time.Hour)
			t.DueAt = &due
		}
		out[i] = t
	}
	return out
}

// benchPage returns a page of n tasks as the handler builds it.
func benchPage(b *testing.B, n int) api.ListTasks200JSONResponse {
	items := make([]api.Task, n)
	for i, t := range benchDBTasks(n) {
		var err error
		items[i], err = httpapi.ToTask(t)
		require.NoError(b, err)
	}
	return api.ListTasks200JSONResponse{Items: items, Total: int64(n) * 10, Page: 1, PageSize: int32(n), TotalPages: 10}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// ptrTask is the same task with plain pointers for the nullable fields and the metadata
// passed through as stored: a comparison for what the generated types cost.
type ptrTask struct {
	AssigneeID  *int64          `json:"assignee_id"`
	CompletedAt *time.Time      `json:"completed_at"`
	CreatedAt   time.Time       `json:"created_at"`
	CreatedBy   *int64          `json:"created_by"`
	Description string          `json:"description"`
	DueAt       *time.Time      `json:"due_at"`
	ID          int64           `json:"id"`
	Metadata    json.RawMessage `json:"metadata"`
	Priority    string          `json:"priority"`
	Status      string          `json:"status"`
	Tags        []string        `json:"tags"`
	Title       string          `json:"title"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Version     int64           `json:"version"`
}

type ptrTaskPage struct {
	Items      []ptrTask `json:"items"`
	Page       int32     `json:"page"`
	PageSize   int32     `json:"page_size"`
	Total      int64     `json:"total"`
	TotalPages int32     `json:"total_pages"`
}

// BenchmarkTaskPageJSON measures the response side of GET /api/v1/tasks: what ListTasks
// does now (direct: the page written from the stored rows), and what it did before:
// converting the rows (toTask, which decodes each task's metadata) and encoding the page
// the way the generated strict handler does (json.NewEncoder into a fresh bytes.Buffer,
// then copied to the writer).
func BenchmarkTaskPageJSON(b *testing.B) {
	for _, n := range []int{20, 100} {
		rows := benchDBTasks(n)
		resp := benchPage(b, n)
		b.Run(fmt.Sprintf("items_%d/direct", n), func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				if err := httpapi.VisitTaskPage(w, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("items_%d/to_task", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				items := make([]api.Task, len(rows))
				for i, t := range rows {
					var err error
					if items[i], err = httpapi.ToTask(t); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("items_%d/strict_visit", n), func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				if err := resp.VisitListTasksResponse(w); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("items_%d/encoder_reused_buffer", n), func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := json.NewEncoder(&buf).Encode(resp); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "bytes/page")
		})
		// For comparison only: no nullable maps, metadata passed through as stored.
		b.Run(fmt.Sprintf("items_%d/alt_pointers_raw_metadata", n), func(b *testing.B) {
			alt := ptrTaskPage{Items: make([]ptrTask, n), Page: 1, PageSize: int32(n), Total: int64(n) * 10, TotalPages: 10}
			for i, t := range rows {
				alt.Items[i] = ptrTask{AssigneeID: t.AssigneeID, CompletedAt: t.CompletedAt, CreatedAt: t.CreatedAt,
					CreatedBy: t.CreatedBy, Description: t.Description, DueAt: t.DueAt, ID: t.ID, Metadata: t.Metadata,
					Priority: string(t.Priority), Status: string(t.Status), Tags: t.Tags, Title: t.Title,
					UpdatedAt: t.UpdatedAt, Version: t.Version}
			}
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := json.NewEncoder(&buf).Encode(alt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// seedListWorld adds 5,000 users, 5 agents, 1,000 tasks and 20,000 agent runs.
func seedListWorld(ctx context.Context, pool *pgxpool.Pool) error {
	if err := seedUsers(ctx, pool, 5000); err != nil {
		return err
	}
	if err := seedTasks(ctx, pool, 1000); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO agents (name, model, instructions, tools, created_by)
		SELECT 'Agent ' || g, 'gpt-4o-mini', 'You triage tasks.', ARRAY['get_task', 'update_task'], (SELECT min(id) FROM users)
		FROM generate_series(1, 5) AS g`); err != nil {
		return fmt.Errorf("seed agents: %w", err)
	}
	_, err := pool.Exec(ctx, `
WITH a AS (SELECT array_agg(id ORDER BY id) AS ids FROM agents),
t AS (SELECT array_agg(id ORDER BY id) AS ids FROM tasks),
u AS (SELECT array_agg(id ORDER BY id) AS ids FROM (SELECT id FROM users ORDER BY id LIMIT 51) AS x),
s AS (SELECT g, (ARRAY['completed', 'completed', 'completed', 'failed', 'queued', 'in_progress', 'cancelled', 'completed'])[1 + g % 8]::agent_run_status AS status
      FROM generate_series(1, $1::int) AS g)
INSERT INTO agent_runs (agent_id, task_id, status, input, output, steps, error_code, error_message, model,
                        prompt_tokens, completion_tokens, total_tokens, attempt, metadata, created_by,
                        created_at, started_at, completed_at, updated_at)
SELECT a.ids[1 + g % 5],
       CASE WHEN g % 2 = 0 THEN t.ids[1 + g % 1000] END,
       status,
       'Summarise task ' || g || ' and propose the next step. ' || md5(g::text),
       CASE WHEN status = 'completed' THEN repeat('The task is on track; next, ' || md5(g::text) || '. ', 6) END,
       CASE WHEN status IN ('completed', 'failed')
            THEN jsonb_build_array(jsonb_build_object('tool', 'get_task', 'call_id', 'call_' || g, 'turn', 1,
                                                      'arguments', jsonb_build_object('task_id', g), 'result', 'ok'))
            ELSE '[]' END,
       CASE WHEN status = 'failed' THEN 'llm_error' END,
       CASE WHEN status = 'failed' THEN 'the model did not answer' END,
       'gpt-4o-mini', 800, 200, 1000, 1, '{"source": "bench"}',
       u.ids[1 + g % 51],
       now() - make_interval(secs => ($1::int - g) * 10),
       CASE WHEN status <> 'queued' THEN now() - make_interval(secs => ($1::int - g) * 10) END,
       CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN now() END,
       now()
FROM s, a, t, u`, 20_000)
	if err != nil {
		return fmt.Errorf("seed agent runs: %w", err)
	}
	_, err = pool.Exec(ctx, `ANALYZE`)
	return err
}

// BenchmarkListSQL measures the generated user and agent run list queries (through the
// store's error-translating wrapper, as the services call them) on 5,000 users and
// 20,000 runs, pages of 20, and the services' List, which runs count and page in one
// transaction. The task list SQL is benchmarked in internal/task.
func BenchmarkListSQL(b *testing.B) {
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(b), 0)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	require.NoError(b, seedListWorld(ctx, pool))
	s := store.New(pool)
	var adminID, someUser, someAgent int64
	require.NoError(b, pool.QueryRow(ctx, `SELECT min(id) FROM users`).Scan(&adminID))
	require.NoError(b, pool.QueryRow(ctx, `SELECT id FROM users ORDER BY id OFFSET 2 LIMIT 1`).Scan(&someUser))
	require.NoError(b, pool.QueryRow(ctx, `SELECT min(id) FROM agents`).Scan(&someAgent))
	admin := auth.Principal{UserID: adminID, IsAdmin: true}
	users := user.NewService(s, nil)
	tasks := task.NewService(s)
	agents := agent.NewService(s, tasks, nil, "gpt-4o-mini")
	q, inactive := "user12", false
	completed := "completed"
	completedStatus := agent.RunCompleted
	const limit = 20

	type listCase struct {
		name string
		run  func() (int, error) // returns the number of rows (or the count)
		want int                 // rows expected (0: anything above zero)
	}
	usersList := func(p db.UserListParams) func() (int, error) {
		return func() (int, error) { r, err := s.UserList(ctx, p); return len(r), err }
	}
	usersCount := func(p db.UserCountParams) func() (int, error) {
		return func() (int, error) { n, err := s.UserCount(ctx, p); return int(n), err }
	}
	runsList := func(p db.AgentRunListParams) func() (int, error) {
		return func() (int, error) { r, err := s.AgentRunList(ctx, p); return len(r), err }
	}
	runsCount := func(p db.AgentRunCountParams) func() (int, error) {
		return func() (int, error) { n, err := s.AgentRunCount(ctx, p); return int(n), err }
	}
	cases := []listCase{
		{"users/list_first_page", usersList(db.UserListParams{MaxRows: limit}), limit},
		{"users/list_offset_4000", usersList(db.UserListParams{SkipRows: 4000, MaxRows: limit}), limit},
		{"users/list_q", usersList(db.UserListParams{Q: &q, MaxRows: limit}), limit},
		{"users/list_inactive", usersList(db.UserListParams{IsActive: &inactive, MaxRows: limit}), limit},
		{"users/count_no_filter", usersCount(db.UserCountParams{}), 0},
		{"users/count_q", usersCount(db.UserCountParams{Q: &q}), 0},
		{"users/service_list_first_page", func() (int, error) {
			p, err := users.List(ctx, admin, user.ListParams{Page: page.Request{Limit: limit}})
			return len(p.Items), err
		}, limit},
		{"agent_runs/list_first_page", runsList(db.AgentRunListParams{MaxRows: limit}), limit},
		{"agent_runs/list_offset_10000", runsList(db.AgentRunListParams{SkipRows: 10000, MaxRows: limit}), limit},
		{"agent_runs/list_created_by", runsList(db.AgentRunListParams{CreatedBy: &someUser, MaxRows: limit}), limit},
		{"agent_runs/list_status", runsList(db.AgentRunListParams{Status: &completed, MaxRows: limit}), limit},
		{"agent_runs/list_agent", runsList(db.AgentRunListParams{AgentID: &someAgent, MaxRows: limit}), limit},
		{"agent_runs/count_no_filter", runsCount(db.AgentRunCountParams{}), 0},
		{"agent_runs/count_created_by", runsCount(db.AgentRunCountParams{CreatedBy: &someUser}), 0},
		{"agent_runs/service_list_first_page", func() (int, error) {
			p, err := agents.ListRuns(ctx, admin, agent.RunListParams{Page: page.Request{Limit: limit}})
			return len(p.Items), err
		}, limit},
		{"agent_runs/service_list_status_non_admin", func() (int, error) {
			p, err := agents.ListRuns(ctx, auth.Principal{UserID: someUser},
				agent.RunListParams{Page: page.Request{Limit: limit}, Status: &completedStatus})
			return len(p.Items), err
		}, limit},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			n, err := c.run()
			require.NoError(b, err)
			if c.want > 0 {
				require.Equal(b, c.want, n, "the case must fill a page to measure anything")
			} else {
				require.Positive(b, n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
