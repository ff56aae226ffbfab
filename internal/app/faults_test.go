package app_test

// Fault-injection tests: the real program under load while a real fault happens to it.
//
//   - TestDatabaseOutageFailsFastAndRecovers stops the server's (private) PostgreSQL in the
//     middle of the load, checks that while it is down every request answers fast, with a
//     503 problem when it needs the database (cached reads may still be served) and never
//     a 500 or a 401 for a valid token, then starts it again on the same folder and checks
//     that the same server process recovers by itself.
//   - TestSigtermUnderLoadLosesNoAcceptedRequest runs `serve` as a separate OS process,
//     sends it SIGTERM in the middle of the load with agent runs in progress, and checks
//     that no accepted request fails, that it exits 0 in time, and that the run it could
//     not finish is handed back to the queue and completed by a fresh server.
//
// A model that never answers is covered elsewhere: internal/httpapi/agents_test.go
// (TestAgentRunRetries, "a model that never answers times out") and the crash tests in
// internal/queue/crash_test.go (a worker SIGKILLed while its model request hangs).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/pgembed"
)

// ---------------------------------------------------------------------------------------
// Load generator shared by both tests: workers loop over a mix of authenticated reads and
// writes and record every outcome with its timing.
// ---------------------------------------------------------------------------------------

const (
	opGetTask    = "GET /api/v1/tasks/{id}"
	opGetMe      = "GET /api/v1/users/me"
	opCreateTask = "POST /api/v1/tasks"
	opListTasks  = "GET /api/v1/tasks"
)

var faultOps = []string{opGetTask, opGetMe, opCreateTask, opListTasks}

// cacheable reports whether the server may answer op from its record cache (CACHE_TTL)
// without the database: the principal, the current user and a task by id are cached.
func cacheable(op string) bool { return op == opGetTask || op == opGetMe }

// faultResult is the outcome of one request.
type faultResult struct {
	op         string
	title      string // the created task's title (POST only)
	key        string // Idempotency-Key sent, if any (POST only)
	body       []byte // request body (POST only)
	start, end time.Time
	status     int // 0 when no response arrived
	ctype      string
	problem    string // the problem's type, for problem responses
	err        error  // no response: the transport's error
	bodyErr    error  // a response whose body was cut short or is not what it claims
	contract   error  // a response that breaks openapi.yaml
}

func (r faultResult) latency() time.Duration { return r.end.Sub(r.start) }

func (r faultResult) String() string {
	s := fmt.Sprintf("%s at +%v took %v", r.op, r.start.Format("15:04:05.000"), r.latency().Round(time.Millisecond))
	switch {
	case r.err != nil:
		return s + ": error " + r.err.Error()
	case r.bodyErr != nil:
		return fmt.Sprintf("%s: %d with a bad body: %v", s, r.status, r.bodyErr)
	default:
		return fmt.Sprintf("%s: %d %s %s", s, r.status, r.ctype, r.problem)
	}
}

func (r faultResult) want() int {
	if r.op == opCreateTask {
		return http.StatusCreated
	}
	return http.StatusOK
}

type faultLoad struct {
	base    string
	token   string
	taskID  int64
	prefix  string
	client  *http.Client
	seq     atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []faultResult
}

func newFaultLoad(t *testing.T, base, token string, taskID int64, prefix string, timeout time.Duration) *faultLoad {
	t.Helper()
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &faultLoad{
		base: base, token: token, taskID: taskID, prefix: prefix,
		client: &http.Client{Transport: tr, Timeout: timeout},
		stop:   make(chan struct{}),
	}
}

// start runs workers until halt.
func (l *faultLoad) start(workers int) {
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				r := l.do(faultOps[i%len(faultOps)])
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if r.err != nil {
					time.Sleep(25 * time.Millisecond) // no busy loop against a closed port
				}
			}
		}()
	}
}

// halt stops the workers and returns every result, in start order.
func (l *faultLoad) halt() []faultResult {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]faultResult(nil), l.results...)
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

func (l *faultLoad) do(op string) faultResult {
	n := l.seq.Add(1)
	r := faultResult{op: op}
	method, path := http.MethodGet, ""
	switch op {
	case opGetTask:
		path = fmt.Sprintf("/api/v1/tasks/%d", l.taskID)
	case opGetMe:
		path = "/api/v1/users/me"
	case opListTasks:
		path = "/api/v1/tasks?limit=5&sort=-created_at"
	case opCreateTask:
		method, path = http.MethodPost, "/api/v1/tasks"
		r.title = fmt.Sprintf("%s-%d", l.prefix, n)
		r.body, _ = json.Marshal(map[string]any{"title": r.title, "priority": "low"})
		if n%2 == 0 {
			r.key = fmt.Sprintf("%s-key-%d", l.prefix, n)
		}
	}
	return l.send(r, method, path)
}

// send performs one request for r and fills in its outcome.
func (l *faultLoad) send(r faultResult, method, path string) faultResult {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(method, l.base+path, body)
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	r.start = time.Now()
	res, err := l.client.Do(req)
	if err != nil {
		r.end, r.err = time.Now(), err
		return r
	}
	b, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	r.end = time.Now()
	r.status, r.ctype = res.StatusCode, res.Header.Get("Content-Type")
	switch {
	case err != nil:
		r.bodyErr = fmt.Errorf("reading the body: %w", err)
	case res.ContentLength >= 0 && int64(len(b)) != res.ContentLength:
		r.bodyErr = fmt.Errorf("body of %d bytes, Content-Length %d", len(b), res.ContentLength)
	case strings.Contains(r.ctype, "json") && !json.Valid(b):
		r.bodyErr = fmt.Errorf("invalid JSON body (truncated?): %q", truncateFault(b))
	}
	if r.bodyErr == nil {
		if strings.HasPrefix(r.ctype, "application/problem+json") {
			var p struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(b, &p)
			r.problem = p.Type
		}
		r.contract = apitest.CheckResponse(req, res.StatusCode, res.Header, b)
	}
	return r
}

func truncateFault(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// firstFew formats up to n results for a failure message.
func firstFew(rs []faultResult, n int) string {
	var sb strings.Builder
	for i, r := range rs {
		if i == n {
			fmt.Fprintf(&sb, "\n  … and %d more", len(rs)-n)
			break
		}
		sb.WriteString("\n  " + r.String())
	}
	return sb.String()
}

func filterResults(rs []faultResult, keep func(faultResult) bool) []faultResult {
	var out []faultResult
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func maxLatency(rs []faultResult) time.Duration {
	var m time.Duration
	for _, r := range rs {
		m = max(m, r.latency())
	}
	return m
}

// readiness is GET /api/health/ready's body.
type readiness struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string  `json:"status"`
		Detail *string `json:"detail"`
	} `json:"checks"`
}

type probe struct {
	status  int
	ctype   string
	body    []byte
	latency time.Duration
	err     error
}

func probeHTTP(hc *http.Client, req *http.Request) probe {
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return probe{err: err, latency: time.Since(start)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return probe{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: b, latency: time.Since(start), err: err}
}

func probeGet(hc *http.Client, u string) probe {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return probe{err: err}
	}
	return probeHTTP(hc, req)
}

// ---------------------------------------------------------------------------------------
// 1. The database goes away under load and comes back.
// ---------------------------------------------------------------------------------------

// downBound is the longest a request may take while the database is down: failing fast
// means well under a client's patience, and far under any connect or statement timeout.
const downBound = 3 * time.Second

func TestDatabaseOutageFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// A dedicated cluster (socket only: the same folder gives the same address after a
	// restart), so stopping it affects no other test.
	dir, err := os.MkdirTemp("", "faults-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	opts := pgembed.Options{Dir: dir, Fast: true}
	cluster, err := pgembed.Start(ctx, opts)
	require.NoError(t, err)
	// Registered before the server, so it runs after the server has stopped.
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE faults")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	dbURL := cluster.URL("faults")
	b := setup(t)
	b.vars["DATABASE_URL"] = dbURL
	require.NoError(t, b.run(t, "migrate", "up"), "migrate: %s", b.stderr)

	// The default configuration (record cache on); only the access log is left out.
	env := apitest.StartOn(t, dbURL,
		apitest.WithEnv("LOG_LEVEL", "WARNING"),
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
	)
	token := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	created, err := env.As(token).CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "outage probe"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), "%s", created.Body)
	// A user whose valid token is first used while the database is down: no cache can
	// vouch for it, so the server must say 503, not 401.
	bob := env.CreateUser(t, "Bob", false)

	load := newFaultLoad(t, env.BaseURL, token, created.JSON201.Id, "outage-"+randomHexFault(4), 10*time.Second)
	load.start(8)
	probes := &http.Client{Timeout: 10 * time.Second}

	// Healthy load first.
	time.Sleep(time.Second)
	stopBegin := time.Now()
	require.NoError(t, cluster.Stop())
	stopEnd := time.Now()
	t.Logf("PostgreSQL stopped (fast shutdown) in %v", stopEnd.Sub(stopBegin).Round(time.Millisecond))

	// While it is down: liveness stays up, readiness says why it is not ready, a login
	// with the right password is not refused as bad credentials, a valid token is not
	// refused as invalid, and the load goes on.
	var readyWhileDown, healthWhileDown []probe
	for range 5 {
		h := probeGet(probes, env.BaseURL+"/api/health")
		require.NoError(t, h.err)
		healthWhileDown = append(healthWhileDown, h)
		r := probeGet(probes, env.BaseURL+"/api/health/ready")
		require.NoError(t, r.err)
		readyWhileDown = append(readyWhileDown, r)
		time.Sleep(400 * time.Millisecond)
	}
	loginReq, err := http.NewRequest(http.MethodPost, env.BaseURL+"/api/v1/auth/token",
		strings.NewReader(url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}}.Encode()))
	require.NoError(t, err)
	loginReq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	loginDown := probeHTTP(probes, loginReq)
	require.NoError(t, loginDown.err)
	bobReq, err := http.NewRequest(http.MethodGet, env.BaseURL+"/api/v1/users/me", nil)
	require.NoError(t, err)
	bobReq.Header.Set("Authorization", "Bearer "+bob.Token)
	bobDown := probeHTTP(probes, bobReq)
	require.NoError(t, bobDown.err)
	restartBegin := time.Now()

	cluster, err = pgembed.Start(ctx, opts)
	require.NoError(t, err, "restart PostgreSQL on the same folder")
	restartEnd := time.Now()
	t.Logf("PostgreSQL restarted on the same folder in %v (down for %v)",
		restartEnd.Sub(restartBegin).Round(time.Millisecond), restartEnd.Sub(stopEnd).Round(time.Millisecond))

	// The same server process must recover on its own.
	var readyAt time.Time
	var lastReady probe
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		lastReady = probeGet(probes, env.BaseURL+"/api/health/ready")
		if lastReady.err == nil && lastReady.status == http.StatusOK {
			readyAt = time.Now()
			break
		}
	}
	require.False(t, readyAt.IsZero(), "readiness did not return to 200 within 20s of the restart: %d %s %v",
		lastReady.status, lastReady.body, lastReady.err)
	time.Sleep(2 * time.Second) // load on the recovered server
	results := load.halt()

	// ---- the probes while down ----
	for i, h := range healthWhileDown {
		assert.Equal(t, http.StatusOK, h.status, "GET /api/health %d while the database is down: %s", i, h.body)
		assert.Less(t, h.latency, downBound, "GET /api/health %d latency", i)
	}
	for i, r := range readyWhileDown {
		var body readiness
		assert.Equal(t, http.StatusServiceUnavailable, r.status, "readiness probe %d while down: %s", i, r.body)
		assert.Less(t, r.latency, downBound, "readiness probe %d while down took %v", i, r.latency)
		if assert.NoError(t, json.Unmarshal(r.body, &body), "readiness body: %s", r.body) {
			assert.Equal(t, "unavailable", body.Status, "%s", r.body)
			assert.Equal(t, "unavailable", body.Checks["database"].Status, "database check: %s", r.body)
		}
	}
	for name, p := range map[string]probe{"a login with valid credentials": loginDown, "a valid token's first request": bobDown} {
		assert.Equal(t, http.StatusServiceUnavailable, p.status,
			"%s while the database is down must be 503 (not the client's fault): %s", name, p.body)
		assert.Contains(t, p.ctype, "application/problem+json", name)
		assert.Contains(t, string(p.body), `"/problems/unavailable"`, name)
		assert.Less(t, p.latency, downBound, name)
	}

	// ---- the load ----
	require.NotEmpty(t, results)
	noResponse := filterResults(results, func(r faultResult) bool { return r.err != nil || r.bodyErr != nil })
	assert.Empty(t, noResponse, "the server stays up: every request gets a complete response:%s", firstFew(noResponse, 10))
	broken := filterResults(results, func(r faultResult) bool { return r.contract != nil })
	if len(broken) > 0 {
		t.Errorf("%d responses break the contract, e.g. %s: %v", len(broken), broken[0], broken[0].contract)
	}
	slow := filterResults(results, func(r faultResult) bool { return r.latency() >= downBound })
	assert.Empty(t, slow, "no request may take %v or more (no hangs):%s", downBound, firstFew(slow, 10))
	// Only success or a 503 problem: never a 500, and never 401/403 for a valid token.
	unavailable := func(r faultResult) bool {
		return r.status == http.StatusServiceUnavailable && strings.HasPrefix(r.ctype, "application/problem+json") &&
			r.problem == "/problems/unavailable"
	}
	wrong := filterResults(results, func(r faultResult) bool { return r.err == nil && r.status != r.want() && !unavailable(r) })
	assert.Empty(t, wrong, "every response is a success or a 503 unavailable problem (not 500, not 401 for a valid token):%s",
		firstFew(wrong, 10))

	before := filterResults(results, func(r faultResult) bool { return r.end.Before(stopBegin) })
	beforeFailed := filterResults(before, func(r faultResult) bool { return r.status != r.want() })
	assert.NotEmpty(t, before)
	assert.Empty(t, beforeFailed, "before the outage everything succeeds:%s", firstFew(beforeFailed, 10))

	// While down, what needs the database is a 503; what the record cache holds may
	// still be served.
	down := filterResults(results, func(r faultResult) bool { return !r.start.Before(stopEnd) && r.end.Before(restartBegin) })
	downDB := filterResults(down, func(r faultResult) bool { return !cacheable(r.op) })
	require.NotEmpty(t, downDB, "no database-bound request ran while the database was down")
	notUnavailable := filterResults(downDB, func(r faultResult) bool { return !unavailable(r) })
	assert.Empty(t, notUnavailable, "while the database is down every request that needs it is a 503 /problems/unavailable problem:%s",
		firstFew(notUnavailable, 10))
	servedFromCache := filterResults(down, func(r faultResult) bool { return cacheable(r.op) && r.status == r.want() })

	after := filterResults(results, func(r faultResult) bool { return r.start.After(readyAt.Add(500 * time.Millisecond)) })
	afterFailed := filterResults(after, func(r faultResult) bool { return r.status != r.want() })
	assert.NotEmpty(t, after)
	assert.Empty(t, afterFailed, "once ready again, every request succeeds:%s", firstFew(afterFailed, 10))

	// Recovery: the last failure after the restart, or readiness, whichever is later.
	recoveredAt := readyAt
	for _, r := range results {
		if r.status != r.want() && r.end.After(recoveredAt) {
			recoveredAt = r.end
		}
	}
	recovery := recoveredAt.Sub(restartEnd)
	assert.Less(t, recovery, 10*time.Second, "recovery after the restart")

	// A client that retries its refused POST with the same Idempotency-Key after the
	// outage gets the task created (the key was never claimed while the database was down).
	var retried, retriedOK int
	for _, r := range down {
		if r.op != opCreateTask || r.key == "" || retried == 10 {
			continue
		}
		retried++
		req, err := http.NewRequest(http.MethodPost, env.BaseURL+"/api/v1/tasks", bytes.NewReader(r.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", r.key)
		p := probeHTTP(probes, req)
		require.NoError(t, p.err)
		if assert.Equal(t, http.StatusCreated, p.status, "retry of %s with key %s after the outage: %s", r.op, r.key, p.body) {
			retriedOK++
		}
	}
	bobAfter := probeHTTP(probes, bobReq.Clone(ctx))
	require.NoError(t, bobAfter.err)
	assert.Equal(t, http.StatusOK, bobAfter.status, "the same token works once the database is back: %s", bobAfter.body)

	counts := map[string]map[int]int{}
	for _, r := range down {
		if counts[r.op] == nil {
			counts[r.op] = map[int]int{}
		}
		counts[r.op][r.status]++
	}
	t.Logf("requests: %d in total, %d before the outage, %d while down, %d after recovery", len(results), len(before), len(down), len(after))
	t.Logf("while down, by operation and status: %v (%d cached reads served)", counts, len(servedFromCache))
	t.Logf("max latency: %v while the database was down (bound %v), %v over the whole test",
		maxLatency(down).Round(time.Millisecond), downBound, maxLatency(results).Round(time.Millisecond))
	var rl []string
	for _, r := range readyWhileDown {
		rl = append(rl, r.latency.Round(time.Millisecond).String())
	}
	t.Logf("while down: readiness %d in %v; login %d in %v; a fresh valid token %d in %v",
		readyWhileDown[0].status, strings.Join(rl, ", "), loginDown.status, loginDown.latency.Round(time.Millisecond),
		bobDown.status, bobDown.latency.Round(time.Millisecond))
	t.Logf("recovery: readiness 200 %v after PostgreSQL was back, last failed request ended %v after; "+
		"%d/%d refused POSTs retried with their key succeeded",
		readyAt.Sub(restartEnd).Round(time.Millisecond), recovery.Round(time.Millisecond), retriedOK, retried)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHexFault(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------------------
// 2. SIGTERM under load, with agent runs in progress.
// ---------------------------------------------------------------------------------------

// The server child is this test binary re-executed with only TestFaultsServeChild
// selected and faultsChildEnv set: it runs `serve` exactly as cmd/automation's main does
// (a context cancelled by SIGTERM or SIGINT), so the parent can signal a real process.
const (
	faultsChildEnv    = "APP_FAULTS_SERVE_CHILD"
	faultsReadyMarker = "APP_FAULTS_SERVE_LISTENING"
)

// TestFaultsServeChild is the body of the server subprocess; it is skipped in normal runs.
func TestFaultsServeChild(t *testing.T) {
	apitest.RunChild(t, faultsChildEnv, faultsReadyMarker, cheap, "serve")
}

// childOutput collects the child's output and reports its address once it listens.
type childOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addr  chan string
	found bool
}

var listeningLine = regexp.MustCompile(faultsReadyMarker + ` (\S+)\n`)

func (c *childOutput) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.buf.Write(p)
	if !c.found {
		if m := listeningLine.FindSubmatch(c.buf.Bytes()); m != nil {
			c.found = true
			c.addr <- string(m[1])
		}
	}
	return n, err
}

func (c *childOutput) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

type serverChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *childOutput
	addr   string
	exited chan struct{}
	err    error
}

func startServerChild(t *testing.T, vars map[string]string) *serverChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultsServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), faultsChildEnv+"=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v) // later duplicates win
	}
	out := &childOutput{addr: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	c := &serverChild{cmd: cmd, stdin: stdin, out: out, exited: make(chan struct{})}
	started := time.Now()
	require.NoError(t, cmd.Start())
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
		_ = stdin.Close()
		if t.Failed() {
			t.Logf("server process output (tail):\n%s", tailLines(out.String(), 80))
		}
	})
	select {
	case c.addr = <-out.addr:
		t.Logf("server process %d listening on %s after %v", cmd.Process.Pid, c.addr, time.Since(started).Round(time.Millisecond))
	case <-c.exited:
		t.Fatalf("server process exited before listening: %v\n%s", c.err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("server process not listening within 30s\n%s", out.String())
	}
	return c
}

// connErrKind names a transport error: refused (nothing listens), reset/eof (the
// connection was closed under the request), timeout (a hang), or other.
func connErrKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case strings.Contains(err.Error(), "server closed idle connection"):
		return "closed-idle"
	}
	return "other"
}

// sigtermExitBound: in-flight requests finish at once, the running job that cannot
// finish gets the queue's 10 s grace (app.stopGrace) and is then handed back.
const sigtermExitBound = 20 * time.Second

func TestSigtermUnderLoadLosesNoAcceptedRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.URL(t)
	b := setup(t)
	b.vars["DATABASE_URL"] = dbURL
	b.vars["FIRST_ADMIN_EMAIL"] = apitest.AdminEmail
	b.vars["FIRST_ADMIN_PASSWORD"] = apitest.AdminPassword
	require.NoError(t, b.run(t, "seed"), "seed: %s", b.stderr)

	// The first model request hangs (that run cannot finish within the grace period and
	// must be handed back); the second takes 3 s (that run should finish during it).
	llm := llmtest.New(t)
	llm.Script(
		llmtest.Reply{Hang: true},
		llmtest.Reply{Delay: 3 * time.Second, Content: []string{"finished ", "during the grace period"}, Prompt: 2, Completion: 3},
	)
	common := map[string]string{
		"DATABASE_URL":                dbURL,
		"OPENAI_API_KEY":              llmtest.APIKey,
		"OPENAI_BASE_URL":             llm.BaseURL(),
		"RATE_LIMIT_PER_MINUTE":       "0",
		"LOGIN_RATE_LIMIT_PER_MINUTE": "0",
	}
	vars := map[string]string{
		"SECRET_KEY":         secretKey,
		"API_HOST":           "127.0.0.1",
		"API_PORT":           "0",
		"WORKER_CONCURRENCY": "4",
		"LOG_LEVEL":          "INFO",
		"DEBUG":              "false",
	}
	for k, v := range common {
		vars[k] = v
	}
	child := startServerChild(t, vars)
	base := "http://" + child.addr

	setupHTTP := &http.Client{Transport: &apitest.Validating{T: t, Next: http.DefaultTransport}, Timeout: 30 * time.Second}
	anon, err := client.NewClientWithResponses(base, client.WithHTTPClient(setupHTTP))
	require.NoError(t, err)
	tok, err := anon.CreateTokenWithFormdataBodyWithResponse(ctx, client.TokenRequest{Username: apitest.AdminEmail, Password: apitest.AdminPassword})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tok.StatusCode(), "%s", tok.Body)
	token := tok.JSON200.AccessToken
	admin, err := client.NewClientWithResponses(base, client.WithHTTPClient(setupHTTP), client.WithRequestEditorFn(apitest.Bearer(token)))
	require.NoError(t, err)
	task, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "sigterm probe"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, task.StatusCode(), "%s", task.Body)
	ag, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "sigterm-" + randomHexFault(4)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, ag.StatusCode(), "%s", ag.Body)
	startRun := func(input string) client.AgentRun {
		res, err := admin.CreateAgentRunWithResponse(ctx, ag.JSON201.Id, nil, client.AgentRunCreate{Input: input})
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		return *res.JSON202
	}
	waitHits := func(n int) {
		deadline := time.Now().Add(15 * time.Second)
		for llm.Hits() < n {
			require.True(t, time.Now().Before(deadline), "the model got %d requests, want %d", llm.Hits(), n)
			time.Sleep(10 * time.Millisecond)
		}
	}

	prefix := "sigterm-" + randomHexFault(4)
	load := newFaultLoad(t, base, token, task.JSON201.Id, prefix, 15*time.Second)
	load.start(16)
	time.Sleep(time.Second)

	hung := startRun("wait for the model that never answers")
	waitHits(1)
	// A client watches the hung run's events, as the frontends do.
	type streamEnd struct {
		at     time.Time
		err    error
		events int
	}
	streamOpen, streamDone := make(chan error, 1), make(chan streamEnd, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/agent-runs/%d/events", base, hung.Id), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		streamOpen <- err
		if err != nil {
			streamDone <- streamEnd{at: time.Now(), err: err}
			return
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		events := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events++
			}
		}
		streamDone <- streamEnd{at: time.Now(), err: sc.Err(), events: events}
	}()
	require.NoError(t, <-streamOpen, "open the event stream")
	graceful := startRun("answer within the grace period")
	waitHits(2)
	time.Sleep(300 * time.Millisecond)

	// SIGTERM mid-load, with one run waiting on the model and one 3 s from finishing.
	termAt := time.Now()
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGTERM))

	// The listener closes: new connections are refused (not left hanging).
	type dialOutcome struct {
		at  time.Time // when a dial was first refused; zero if never
		err error
	}
	refusedAt := make(chan dialOutcome, 1)
	go func() {
		for time.Since(termAt) < 60*time.Second {
			c, err := net.DialTimeout("tcp", child.addr, time.Second)
			if err == nil {
				_ = c.Close()
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				// A connection caught in the backlog as the listener closes is reset;
				// the next one must be refused.
				time.Sleep(5 * time.Millisecond)
				continue
			}
			refusedAt <- dialOutcome{at: time.Now(), err: err}
			return
		}
		refusedAt <- dialOutcome{err: errors.New("still accepting connections 60s after SIGTERM")}
	}()

	var exitAt time.Time
	select {
	case <-child.exited:
		exitAt = time.Now()
	case <-time.After(60 * time.Second):
		_ = child.cmd.Process.Kill()
		<-child.exited
		exitAt = time.Now()
		t.Errorf("the server did not exit within 60s of SIGTERM (killed)")
	}
	exitCode := child.cmd.ProcessState.ExitCode()
	time.Sleep(500 * time.Millisecond) // requests after the exit
	results := load.halt()
	dialed := <-refusedAt
	listenerClosed := dialed.at
	var stream streamEnd
	select {
	case stream = <-streamDone:
	case <-time.After(5 * time.Second):
		t.Errorf("the event stream did not end within 5s of the server's exit")
	}

	// ---- the process ----
	exitTook := exitAt.Sub(termAt)
	assert.Equal(t, 0, exitCode, "exit status after SIGTERM (%v)", child.err)
	assert.Less(t, exitTook, sigtermExitBound, "time from SIGTERM to exit")
	assert.False(t, listenerClosed.IsZero(), "new connections are refused once the server stops listening: %v", dialed.err)
	// A stream following a run that cannot finish must not hold the shutdown up: it ends
	// cleanly (the client resumes elsewhere with Last-Event-ID) rather than being cut
	// when the process finally exits.
	assert.NoError(t, stream.err, "the event stream of a run in progress ends cleanly at shutdown, not cut off")
	assert.Less(t, stream.at.Sub(termAt), sigtermExitBound, "the event stream ends within the shutdown bound")
	logs := child.out.String()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"shutting down`) || strings.Contains(line, `"msg":"stopped"`) ||
			strings.Contains(line, "handing them back") || strings.Contains(line, `"level":"ERROR"`) ||
			strings.HasPrefix(line, "error:") {
			t.Logf("server: %s", truncateFault([]byte(line)))
		}
	}

	// ---- the requests ----
	var accepted, completed, refused, dropped, timedOut, otherErr int
	kinds := map[string]int{}
	var failedAccepted, droppedList, beforeTermErr, afterExitServed []faultResult
	for _, r := range results {
		if r.err != nil {
			k := connErrKind(r.err)
			kinds[k]++
			switch k {
			case "refused":
				refused++
			case "timeout":
				timedOut++
			case "other":
				otherErr++
			default:
				dropped++
				droppedList = append(droppedList, r)
			}
			if r.start.Before(termAt) && !r.end.After(termAt) {
				beforeTermErr = append(beforeTermErr, r)
			}
			continue
		}
		accepted++
		if r.status >= 500 || r.bodyErr != nil {
			failedAccepted = append(failedAccepted, r)
		} else {
			completed++
		}
		if r.start.After(exitAt) {
			afterExitServed = append(afterExitServed, r)
		}
	}
	assert.Empty(t, failedAccepted, "no accepted request may fail (5xx or a truncated body):%s", firstFew(failedAccepted, 10))
	assert.Zero(t, timedOut, "no request may hang:%s", firstFew(filterResults(results, func(r faultResult) bool {
		return r.err != nil && connErrKind(r.err) == "timeout"
	}), 10))
	assert.Zero(t, otherErr, "transport errors are connection errors:%s", firstFew(filterResults(results, func(r faultResult) bool {
		return r.err != nil && connErrKind(r.err) == "other"
	}), 10))
	assert.Empty(t, beforeTermErr, "no errors before SIGTERM:%s", firstFew(beforeTermErr, 10))
	assert.Empty(t, afterExitServed, "nothing is served after the exit")
	assert.Positive(t, refused, "requests after the listener closed are refused")
	broken := filterResults(results, func(r faultResult) bool { return r.contract != nil })
	if len(broken) > 0 {
		t.Errorf("%d responses break the contract, e.g. %s: %v", len(broken), broken[0], broken[0].contract)
	}

	// Every task the server created was answered 201, and every 201 is in the database:
	// a connection dropped under a POST that the server had already carried out would be a
	// lost accepted request.
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT title FROM tasks WHERE title LIKE $1`, prefix+"-%")
	require.NoError(t, err)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	storedSet := map[string]bool{}
	for _, s := range stored {
		storedSet[s] = true
	}
	answered := map[string]bool{}
	for _, r := range results {
		if r.op == opCreateTask && r.status == http.StatusCreated {
			answered[r.title] = true
			assert.True(t, storedSet[r.title], "task %q was answered 201 but is not stored", r.title)
		}
	}
	var lost []string
	for _, s := range stored {
		if !answered[s] {
			lost = append(lost, s)
		}
	}
	assert.Empty(t, lost, "tasks created by requests whose response never arrived (accepted, then dropped)")

	// ---- the runs ----
	runState := func(id int64) (status string, attempt int, job string) {
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT r.status::text, r.attempt, coalesce(j.state::text, '')
			FROM agent_runs r LEFT JOIN river_job j ON j.id = r.job_id WHERE r.id = $1`, id).Scan(&status, &attempt, &job))
		return status, attempt, job
	}
	hs, ha, hj := runState(hung.Id)
	gs, ga, gj := runState(graceful.Id)
	t.Logf("after the exit: hung run %s (attempt %d, job %s); grace-period run %s (attempt %d, job %s)", hs, ha, hj, gs, ga, gj)
	assert.Contains(t, []string{"available", "retryable", "scheduled"}, hj,
		"the run that could not finish is handed back to the queue, not left running")
	assert.Equal(t, "completed", gs, "a run that ends within the grace period is finished by the stopping server")
	assert.Equal(t, 1, ga)

	// A fresh server (with workers) finishes the handed-back run.
	fresh := apitest.StartOn(t, dbURL,
		apitest.WithEnv("WORKER_CONCURRENCY", "2"),
		apitest.WithEnv("LOG_LEVEL", "WARNING"),
		apitest.WithEnv("OPENAI_API_KEY", common["OPENAI_API_KEY"]),
		apitest.WithEnv("OPENAI_BASE_URL", common["OPENAI_BASE_URL"]),
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
	)
	restartedAt := time.Now()
	freshAdmin := fresh.AsAdmin(t)
	var run client.AgentRun
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := freshAdmin.GetAgentRunWithResponse(ctx, hung.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		run = *res.JSON200
		if run.Status == client.AgentRunStatusCompleted || run.Status == client.AgentRunStatusFailed ||
			run.Status == client.AgentRunStatusCancelled || run.Status == client.AgentRunStatusIncomplete {
			break
		}
		if time.Now().After(deadline) {
			_, _, job := runState(hung.Id)
			t.Fatalf("the handed-back run is %s (attempt %d, job %s) 30s after a fresh server started", run.Status, run.Attempt, job)
		}
	}
	assert.Equal(t, client.AgentRunStatusCompleted, run.Status, "%+v", run)
	// River does not count an attempt that its own shutdown interrupted, so the attempt
	// number may stay 1; the model was asked again by the fresh server.
	assert.GreaterOrEqual(t, llm.Hits(), 3, "model requests: the hung one, the grace-period one, and the fresh server's")
	if out, err := run.Output.Get(); assert.NoError(t, err) {
		assert.Equal(t, "done", out)
	}

	t.Logf("requests: %d sent; %d accepted (got a response), %d completed (non-5xx, whole body), "+
		"%d refused, %d dropped on a closing keep-alive connection before being accepted; errors by kind %v",
		len(results), accepted, completed, refused, dropped, kinds)
	if len(droppedList) > 0 {
		t.Logf("dropped before acceptance (an idle keep-alive connection closed as the request was sent; the database shows no dropped POST was carried out):%s", firstFew(droppedList, 5))
	}
	var lastServed time.Time
	inFlight := 0 // requests under way when SIGTERM arrived that got their response
	for _, r := range results {
		if r.err == nil && r.end.After(lastServed) {
			lastServed = r.end
		}
		if r.err == nil && r.start.Before(termAt) && r.end.After(termAt) {
			inFlight++
		}
	}
	t.Logf("SIGTERM → listener closed %v, last response %v (%d requests in flight at SIGTERM answered), exit %v (status %d, bound %v)",
		durSince(listenerClosed, termAt), durSince(lastServed, termAt), inFlight, exitTook.Round(time.Millisecond), exitCode, sigtermExitBound)
	t.Logf("event stream of the hung run: ended %v after SIGTERM (%d events, error %v)",
		durSince(stream.at, termAt), stream.events, stream.err)
	t.Logf("handed-back run completed %v after a fresh server started (attempt %d, model requests %d)",
		time.Since(restartedAt).Round(time.Millisecond), run.Attempt, llm.Hits())
}

func durSince(at, from time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return at.Sub(from).Round(time.Millisecond).String()
}
