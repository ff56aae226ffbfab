package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/pgembed"
)

// FuzzAPI drives the real server (apitest.Start: the program's own Run, over real HTTP,
// on its own PostgreSQL database) with generated requests for every operation of the
// contract. The operations are read from the embedded openapi.yaml, so a new operation is
// fuzzed without touching this file.
//
// Invariants checked on every input:
//   - no 5xx, no 429 (the limits are switched off), and an answer within fuzzTimeout;
//   - every response validates against the contract (apitest.Validating: declared status,
//     headers and body schemas; errors are application/problem+json with type, title,
//     status and request_id matching X-Request-ID); event streams are checked by headers
//     and by each complete event's data against AgentRunEvent;
//   - a fixture's valid access token is never refused with 401 on a secured operation.
//
// Inputs: op picks an operation (by index in the sorted list of the contract's
// operations; a few indexes past the end send a fuzzed raw path with a fixed method),
// auth picks the caller (anonymous, a user, an administrator, or one of several broken
// credentials), variant picks the request Content-Type (low 3 bits), a trailing slash
// (bit 3) and a body of unknown length (bit 4). param fills the path template's
// parameter, query is the raw query string, headers are extra "Name: value" lines, body
// is sent as is. Placeholders such as {{task}}, {{user}} or {{uniq}} in param, query,
// headers and body are replaced by the ids of this process's fixtures, so the seeds (and
// the corpus the fuzzer grows from them) mean the same thing in every worker process.
//
// Side effects are contained: the fuzzer never holds the seeded administrator's token
// (it acts through a separate fuzz administrator), mutations of that account are
// redirected to a throwaway user, and fixtures broken by an iteration (deleted,
// deactivated, demoted, password changed) are recreated before the next one.
//
// Plain `go test` runs the seeds below as ordinary subtests. With -fuzz, every worker
// process starts its own server; they share one PostgreSQL cluster started by the
// coordinator process (which itself runs no input), so that a worker killed at the end
// of fuzzing leaves nothing running behind.
func FuzzAPI(f *testing.F) {
	doc, err := httpapi.LoadContract()
	if err != nil {
		f.Fatal(err)
	}
	ops := fuzzOperations(doc)
	if len(ops)+len(fuzzRawMethods) > 256 {
		f.Fatalf("%d operations no longer fit the uint8 op input; widen it", len(ops))
	}
	for _, s := range fuzzSeeds(ops) {
		f.Add(s.op, s.auth, s.variant, s.param, s.query, s.headers, s.body)
	}

	var fx *fuzzFixtures
	if fuzzIsCoordinator() {
		fuzzShareDatabase(f)
	} else {
		fx = newFuzzFixtures(f, doc, ops)
	}
	f.Fuzz(func(t *testing.T, op, auth, variant uint8, param, query, headers string, body []byte) {
		if fx == nil {
			// Only in a -fuzz coordinator that also runs the seeds as tests (-run matching
			// FuzzAPI): its workers run every seed first, against their own server.
			t.Skip("the fuzzing coordinator starts no server; its workers run the seeds")
		}
		fx.run(t, fuzzInput{op: op, auth: auth, variant: variant, param: param, query: query, headers: headers, body: body})
	})
}

const (
	// fuzzTimeout bounds each request: no answer in time is a hang.
	fuzzTimeout = 10 * time.Second
	// fuzzStreamRead is how long an event stream that answered 200 is read.
	fuzzStreamRead = 1500 * time.Millisecond
	// fuzzMaxHeaderBytes keeps fuzzed headers below the server's MaxHeaderBytes, which
	// net/http (not the API) enforces.
	fuzzMaxHeaderBytes = 16 << 10
)

// fuzzIsCoordinator reports whether this process coordinates -fuzz workers (and so never
// executes an input itself).
func fuzzIsCoordinator() bool {
	fz, worker := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return fz != nil && fz.Value.String() != "" && (worker == nil || worker.Value.String() != "true")
}

// fuzzShareDatabase makes the coordinator start a private PostgreSQL cluster for its
// workers, which inherit the coordinator's environment (TEST_DATABASE_URL, read by
// dbtest). A worker that the coordinator kills at the end of fuzzing (it waits only a
// second or two) thus leaves at most a database behind, which goes with the cluster
// when the coordinator stops it.
func fuzzShareDatabase(f *testing.F) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return
	}
	dir, err := os.MkdirTemp("", "fuzzapi-pg-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	c, err := pgembed.Start(context.Background(), pgembed.Options{Dir: dir, TCP: true, Fast: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatalf("start PostgreSQL for the fuzzing workers: %v", err)
	}
	f.Cleanup(func() {
		if err := c.Stop(); err != nil {
			f.Errorf("stop PostgreSQL: %v", err)
		}
	})
	f.Setenv("TEST_DATABASE_URL", c.TCPURL("postgres"))
}

// fuzzOp is one operation of the contract.
type fuzzOp struct {
	id       string
	method   string
	path     string // OpenAPI template
	param    string // the path parameter's name, "" when none
	role     string // x-required-role
	secured  bool
	json     bool // accepts an application/json body
	form     bool // accepts an application/x-www-form-urlencoded body
	body     *openapi3.Schema
	stream   bool // answers text/event-stream
	query    []*openapi3.Parameter
	inHeader []*openapi3.Parameter
}

func fuzzOperations(doc *openapi3.T) []fuzzOp {
	var ops []fuzzOp
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	for _, path := range paths {
		item := doc.Paths.Value(path)
		methods := make([]string, 0, 8)
		for m := range item.Operations() {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			op := item.Operations()[m]
			o := fuzzOp{id: op.OperationID, method: m, path: path}
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			o.secured = len(sec) > 0
			o.role, _ = op.Extensions["x-required-role"].(string)
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value == nil {
					continue
				}
				switch p.Value.In {
				case "path":
					o.param = p.Value.Name
				case "query":
					o.query = append(o.query, p.Value)
				case "header":
					o.inHeader = append(o.inHeader, p.Value)
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for ct, mt := range op.RequestBody.Value.Content {
					switch ct {
					case "application/json":
						o.json = true
					case "application/x-www-form-urlencoded":
						o.form = true
					}
					if mt.Schema != nil && mt.Schema.Value != nil {
						o.body = mt.Schema.Value
					}
				}
			}
			for _, r := range op.Responses.Map() {
				if r.Value != nil && r.Value.Content["text/event-stream"] != nil {
					o.stream = true
				}
			}
			ops = append(ops, o)
		}
	}
	return ops
}

// fuzzRawMethods are the methods sent to fuzzed raw paths (op indexes past the contract's
// operations): they exercise routing, 404 and 405 for paths the contract does not have.
var fuzzRawMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodGet}

// fuzzContentTypes are chosen by the low 3 bits of variant; "" sends none.
var fuzzContentTypes = []string{
	"application/json",
	"application/x-www-form-urlencoded",
	"text/plain",
	"",
	"application/json; charset=utf-8",
	"multipart/form-data; boundary=fuzz",
	"application/merge-patch+json",
	"application/json; charset",
}

const (
	fuzzVariantJSON       = 0
	fuzzVariantForm       = 1
	fuzzVariantSlash      = 1 << 3
	fuzzVariantChunked    = 1 << 4
	fuzzAuthAnonymous     = 0
	fuzzAuthUser          = 1
	fuzzAuthAdmin         = 2
	fuzzAuthBroken        = 3
	fuzzAuthModes         = 4
	fuzzBrokenCredentials = 9 // see fuzzFixtures.authorization
)

type fuzzInput struct {
	op, auth, variant     uint8
	param, query, headers string
	body                  []byte
}

// fuzzAccount is a user the fuzzer acts as (or on).
type fuzzAccount struct {
	id      int64
	email   string
	pw      string
	token   string
	refresh string
	admin   bool
}

// fuzzFixtures is one running server with the accounts and resources the placeholders
// name. The fuzz function runs one input at a time per process; mu guards against a
// future parallel use all the same.
type fuzzFixtures struct {
	base   string
	logs   *apitest.SyncBuffer
	ops    []fuzzOp
	tr     *http.Transport
	events *openapi3.Schema
	seq    atomic.Int64

	mu        sync.Mutex
	rootToken string
	rootID    int64
	user      fuzzAccount // a regular user
	admin     fuzzAccount // the administrator the fuzzer acts as
	victim    fuzzAccount // a regular user the fuzzer may change or delete
	task      int64       // created by user
	adminTask int64       // created by the seeded administrator, invisible to user
	agent     int64
	runID     int64 // user's run of agent on task
	deleted   string
}

func newFuzzFixtures(f *testing.F, doc *openapi3.T, ops []fuzzOp) *fuzzFixtures {
	env := apitest.Start(f,
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("ACCESS_TOKEN_EXPIRE_MINUTES", "1440"),
		// Only errors: the log is kept in memory for the whole run.
		apitest.WithEnv("LOG_LEVEL", "ERROR"),
	)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	f.Cleanup(tr.CloseIdleConnections)
	fx := &fuzzFixtures{base: env.BaseURL, logs: env.Logs, ops: ops, tr: tr}
	if s := doc.Components.Schemas["AgentRunEvent"]; s != nil {
		fx.events = s.Value
	}
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.loginRoot(f)
	st, b := fx.call(f, http.MethodGet, "/api/v1/users/me", fx.rootToken, nil)
	if st != http.StatusOK {
		f.Fatalf("GET /api/v1/users/me as the seeded administrator: %d %s", st, b)
	}
	fx.rootID = fuzzID(f, b)
	gone := fx.newAccount(f, "gone", false)
	if st, b := fx.rootCall(f, http.MethodDelete, fmt.Sprintf("/api/v1/users/%d", gone.id), nil); st != http.StatusNoContent {
		f.Fatalf("delete user: %d %s", st, b)
	}
	fx.deleted = gone.token
	fx.heal(f)
	return fx
}

// run sends one input and checks the invariants.
func (fx *fuzzFixtures) run(t *testing.T, in fuzzInput) {
	fx.mu.Lock()
	defer fx.mu.Unlock()

	uniq := fmt.Sprintf("%d-%d", os.Getpid(), fx.seq.Add(1))
	actor := fx.user
	if in.auth%fuzzAuthModes == fuzzAuthAdmin {
		actor = fx.admin
	}
	vars := []string{
		"{{uniq}}", uniq,
		"{{self}}", strconv.FormatInt(actor.id, 10),
		"{{pw}}", actor.pw,
		"{{email}}", actor.email,
		"{{user}}", strconv.FormatInt(fx.user.id, 10),
		"{{admin}}", strconv.FormatInt(fx.admin.id, 10),
		"{{victim}}", strconv.FormatInt(fx.victim.id, 10),
		"{{victim_email}}", fx.victim.email,
		"{{victim_pw}}", fx.victim.pw,
		"{{root}}", strconv.FormatInt(fx.rootID, 10),
		"{{task}}", strconv.FormatInt(fx.task, 10),
		"{{admintask}}", strconv.FormatInt(fx.adminTask, 10),
		"{{agent}}", strconv.FormatInt(fx.agent, 10),
		"{{run}}", strconv.FormatInt(fx.runID, 10),
	}
	if fuzzMentions(in, "{{refresh}}") {
		vars = append(vars, "{{refresh}}", fx.freshRefreshToken(t))
	}
	subst := strings.NewReplacer(vars...)
	param, query, headers := in.param, in.query, in.headers
	body := in.body
	if fuzzMentions(in, "{{") {
		param, query, headers = subst.Replace(param), subst.Replace(query), subst.Replace(headers)
		body = []byte(subst.Replace(string(body)))
	}

	var op *fuzzOp
	method, path := "", ""
	if i := int(in.op) % (len(fx.ops) + len(fuzzRawMethods)); i < len(fx.ops) {
		op = &fx.ops[i]
		method = op.method
		if op.param != "" {
			if op.method != http.MethodGet && op.param == "user_id" && fuzzNamesID(param, fx.rootID) {
				// The seeded administrator is the anchor that repairs the fixtures.
				param = strconv.FormatInt(fx.victim.id, 10)
			}
			path = strings.ReplaceAll(op.path, "{"+op.param+"}", url.PathEscape(param))
		} else {
			path = op.path
		}
	} else {
		method = fuzzRawMethods[i-len(fx.ops)]
		path = "/" + fuzzEscapePath(param)
		if method != http.MethodGet && strings.Contains(strings.ToLower(fuzzUnescapeAll(path)), "user") {
			method = http.MethodGet // never mutate accounts behind the fixtures' back
		}
	}
	if in.variant&fuzzVariantSlash != 0 {
		path += "/"
	}
	target := fx.base + path
	if q := fuzzEscapeQuery(query); q != "" {
		target += "?" + q
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rd io.Reader
	if len(body) > 0 || in.variant&fuzzVariantChunked != 0 {
		rd = bytes.NewReader(body)
		if in.variant&fuzzVariantChunked != 0 {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return // not a request an HTTP client can send
	}
	if ct := fuzzContentTypes[int(in.variant&7)%len(fuzzContentTypes)]; ct != "" && rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	authOverridden := fuzzSetHeaders(req, headers)
	if !authOverridden {
		if a := fx.authorization(in.auth); a != "" {
			req.Header.Set("Authorization", a)
		}
	}
	repro := fuzzRepro(req, body)

	var status int
	var resHeader http.Header
	var resBody []byte
	if op != nil && op.stream {
		status, resHeader, resBody = fx.doStream(t, req, cancel, repro)
	} else {
		status, resHeader, resBody = fx.do(t, req, repro)
	}
	if status == 0 {
		return
	}
	switch {
	case status >= 500:
		t.Errorf("server error %d for %s\nresponse: %s\nserver log:\n%s", status, repro, fuzzTruncate(resBody), fx.logFor(resHeader.Get("X-Request-ID")))
	case status == http.StatusTooManyRequests:
		t.Errorf("429 although the rate limits are off, for %s", repro)
	}

	mode := in.auth % fuzzAuthModes
	if status == http.StatusUnauthorized && op != nil && op.secured && !authOverridden && (mode == fuzzAuthUser || mode == fuzzAuthAdmin) {
		// A fixture token was refused: fine only if an earlier input broke the account.
		acct := &fx.user
		if mode == fuzzAuthAdmin {
			acct = &fx.admin
		}
		if fx.accountOK(t, acct) {
			t.Errorf("a valid access token was refused with 401 for %s\nresponse: %s", repro, fuzzTruncate(resBody))
		}
		fx.heal(t)
	} else if status < 300 && (method == http.MethodDelete ||
		((method == http.MethodPatch || method == http.MethodPut) && (strings.Contains(path, "/users") || strings.Contains(path, "/agents")))) {
		fx.heal(t)
	}
	if t.Failed() {
		t.Logf("reproducer: %s", repro)
	}
}

// do sends a request through the contract-validating transport.
func (fx *fuzzFixtures) do(t *testing.T, req *http.Request, repro string) (int, http.Header, []byte) {
	hc := &http.Client{
		Transport:     &apitest.Validating{T: t, Next: fx.tr},
		Timeout:       fuzzTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Errorf("no response (hang or broken connection) for %s: %v\nserver log:\n%s", repro, err, fuzzTail(fx.logs.String()))
		return 0, nil, nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("reading the response to %s: %v", repro, err)
	}
	return res.StatusCode, res.Header, b
}

// doStream sends a request to an event-stream operation: a 200 stream is read for a
// moment only (a live run's stream lasts as long as the run), its headers are checked
// against the contract and every complete event against AgentRunEvent.
func (fx *fuzzFixtures) doStream(t *testing.T, req *http.Request, cancel context.CancelFunc, repro string) (int, http.Header, []byte) {
	timer := time.AfterFunc(fuzzTimeout, cancel)
	defer timer.Stop()
	res, err := fx.tr.RoundTrip(req)
	if err != nil {
		t.Errorf("no response (hang or broken connection) for %s: %v", repro, err)
		return 0, nil, nil
	}
	defer res.Body.Close()
	streaming := res.StatusCode == http.StatusOK && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
	if streaming && timer.Stop() {
		timer = time.AfterFunc(fuzzStreamRead, cancel)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil && !(streaming && errors.Is(err, context.Canceled)) {
		t.Errorf("reading the response to %s: %v", repro, err)
	}
	if err := apitest.CheckResponse(req, res.StatusCode, res.Header, b); err != nil {
		t.Errorf("response breaks the contract: %s → %d: %v\nbody: %s", repro, res.StatusCode, err, fuzzTruncate(b))
	}
	if streaming {
		fx.checkEvents(t, b, repro)
	}
	return res.StatusCode, res.Header, b
}

// checkEvents validates the complete events of a stream: increasing ids, data that is an
// AgentRunEvent whose type is the event's name.
func (fx *fuzzFixtures) checkEvents(t *testing.T, stream []byte, repro string) {
	blocks := strings.Split(strings.ReplaceAll(string(stream), "\r\n", "\n"), "\n\n")
	last := int64(-1)
	for _, block := range blocks[:len(blocks)-1] { // the last one may be cut short
		var id, event, data string
		for _, line := range strings.Split(block, "\n") {
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data += value
			}
		}
		if data == "" {
			continue // a comment (keep-alive)
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= last {
			t.Errorf("event id %q after %d is not an increasing integer in the stream of %s", id, last, repro)
		}
		last = n
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Errorf("event data is not JSON in the stream of %s: %v\n%s", repro, err, data)
			continue
		}
		if fx.events != nil {
			if err := fx.events.VisitJSON(v, httpapi.SchemaOptions...); err != nil {
				t.Errorf("event data breaks AgentRunEvent in the stream of %s: %v\n%s", repro, err, data)
			}
		}
		if m, ok := v.(map[string]any); ok && m["type"] != event {
			t.Errorf("event %q carries data of type %v in the stream of %s", event, m["type"], repro)
		}
	}
}

// authorization returns the Authorization header for an auth input.
func (fx *fuzzFixtures) authorization(auth uint8) string {
	switch auth % fuzzAuthModes {
	case fuzzAuthUser:
		return "Bearer " + fx.user.token
	case fuzzAuthAdmin:
		return "Bearer " + fx.admin.token
	case fuzzAuthBroken:
		tok := fx.user.token
		switch (auth / fuzzAuthModes) % fuzzBrokenCredentials {
		case 0:
			return "Bearer not-a-jwt"
		case 1: // a bad signature
			return "Bearer " + tok[:len(tok)-4] + "AAAA"
		case 2: // the account is gone
			return "Bearer " + fx.deleted
		case 3: // alg none, subject 1
			return "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwidHlwIjoiYWNjZXNzIn0."
		case 4:
			return "Basic YWRtaW5AZXhhbXBsZS5jb206YWRtaW4tcGFzc3dvcmQtMTIz"
		case 5:
			return "Bearer"
		case 6: // a refresh token is not an access token
			return "Bearer " + fx.victim.refresh
		case 7: // the scheme is case-insensitive: a valid user
			return "bearer " + tok
		default: // a token with its payload swapped for the administrator's
			parts := strings.Split(tok, ".")
			if adm := strings.Split(fx.admin.token, "."); len(parts) == 3 && len(adm) == 3 {
				return "Bearer " + parts[0] + "." + adm[1] + "." + parts[2]
			}
			return "Bearer " + tok
		}
	}
	return ""
}

// call sends a fixture request (JSON or form body) through the validating transport.
func (fx *fuzzFixtures) call(tb testing.TB, method, path, token string, body any) (int, []byte) {
	tb.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(context.Background(), method, fx.base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: &apitest.Validating{T: tb, Next: fx.tr}, Timeout: fuzzTimeout}
	res, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("fixture request %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("fixture request %s %s: %v", method, path, err)
	}
	return res.StatusCode, b
}

// rootCall calls as the seeded administrator, logging in again once on 401.
func (fx *fuzzFixtures) rootCall(tb testing.TB, method, path string, body any) (int, []byte) {
	tb.Helper()
	st, b := fx.call(tb, method, path, fx.rootToken, body)
	if st == http.StatusUnauthorized {
		fx.loginRoot(tb)
		st, b = fx.call(tb, method, path, fx.rootToken, body)
	}
	return st, b
}

func (fx *fuzzFixtures) loginRoot(tb testing.TB) {
	tb.Helper()
	st, b := fx.call(tb, http.MethodPost, "/api/v1/auth/token", "", url.Values{"username": {apitest.AdminEmail}, "password": {apitest.AdminPassword}})
	if st != http.StatusOK {
		tb.Fatalf("the seeded administrator cannot log in any more: %d %s", st, b)
	}
	fx.rootToken, _ = fuzzTokens(tb, b)
}

// login logs an account in; false when its credentials no longer work.
func (fx *fuzzFixtures) login(tb testing.TB, a *fuzzAccount) bool {
	tb.Helper()
	st, b := fx.call(tb, http.MethodPost, "/api/v1/auth/token", "", url.Values{"username": {a.email}, "password": {a.pw}})
	if st != http.StatusOK {
		return false
	}
	a.token, a.refresh = fuzzTokens(tb, b)
	return true
}

func (fx *fuzzFixtures) newAccount(tb testing.TB, role string, admin bool) fuzzAccount {
	tb.Helper()
	n := fx.seq.Add(1)
	a := fuzzAccount{
		email: fmt.Sprintf("fuzz-%s-%d-%d@example.com", role, os.Getpid(), n),
		pw:    fmt.Sprintf("fuzz-password-%d-%d", os.Getpid(), n),
		admin: admin,
	}
	st, b := fx.rootCall(tb, http.MethodPost, "/api/v1/users", map[string]any{
		"name": "Fuzz " + role, "email": a.email, "password": a.pw, "is_admin": admin,
	})
	if st != http.StatusCreated {
		tb.Fatalf("create fixture user %s: %d %s", a.email, st, b)
	}
	a.id = fuzzID(tb, b)
	if !fx.login(tb, &a) {
		tb.Fatalf("fixture user %s cannot log in", a.email)
	}
	return a
}

// accountOK logs the account in again (refreshing its tokens) and checks it still has
// its role.
func (fx *fuzzFixtures) accountOK(tb testing.TB, a *fuzzAccount) bool {
	tb.Helper()
	if a.id == 0 || !fx.login(tb, a) {
		return false
	}
	st, b := fx.call(tb, http.MethodGet, "/api/v1/users/me", a.token, nil)
	if st != http.StatusOK {
		return false
	}
	var u struct {
		ID      int64 `json:"id"`
		IsAdmin bool  `json:"is_admin"`
	}
	return json.Unmarshal(b, &u) == nil && u.ID == a.id && u.IsAdmin == a.admin
}

// heal recreates whatever fixture an input broke.
func (fx *fuzzFixtures) heal(tb testing.TB) {
	tb.Helper()
	for _, a := range []struct {
		acct  *fuzzAccount
		role  string
		admin bool
	}{{&fx.user, "user", false}, {&fx.admin, "admin", true}, {&fx.victim, "victim", false}} {
		if !fx.accountOK(tb, a.acct) {
			*a.acct = fx.newAccount(tb, a.role, a.admin)
		}
	}
	if st, _ := fx.call(tb, http.MethodGet, fmt.Sprintf("/api/v1/tasks/%d", fx.task), fx.user.token, nil); st != http.StatusOK {
		fx.task = fx.create(tb, "/api/v1/tasks", fx.user.token, map[string]any{
			"title": "fuzz fixture", "priority": "high", "assignee_id": fx.user.id, "tags": []string{"fuzz"},
		})
	}
	if st, _ := fx.rootCall(tb, http.MethodGet, fmt.Sprintf("/api/v1/tasks/%d", fx.adminTask), nil); st != http.StatusOK {
		fx.adminTask = fx.create(tb, "/api/v1/tasks", "", map[string]any{"title": "fuzz fixture of the administrator"})
	}
	st, b := fx.rootCall(tb, http.MethodGet, fmt.Sprintf("/api/v1/agents/%d", fx.agent), nil)
	var ag struct {
		IsActive bool `json:"is_active"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &ag) != nil || !ag.IsActive {
		fx.agent = fx.create(tb, "/api/v1/agents", "", map[string]any{
			"name": fmt.Sprintf("fuzz-agent-%d-%d", os.Getpid(), fx.seq.Add(1)), "tools": []string{"get_task", "search_tasks"},
		})
	}
	if st, _ := fx.call(tb, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d", fx.runID), fx.user.token, nil); st != http.StatusOK {
		fx.runID = fx.create(tb, fmt.Sprintf("/api/v1/agents/%d/runs", fx.agent), fx.user.token, map[string]any{
			"input": "Summarise the task.", "task_id": fx.task,
		})
	}
}

// create POSTs a fixture resource (as the seeded administrator when token is "") and
// returns its id.
func (fx *fuzzFixtures) create(tb testing.TB, path, token string, body any) int64 {
	tb.Helper()
	var st int
	var b []byte
	if token == "" {
		st, b = fx.rootCall(tb, http.MethodPost, path, body)
	} else {
		st, b = fx.call(tb, http.MethodPost, path, token, body)
	}
	if st != http.StatusCreated && st != http.StatusAccepted {
		tb.Fatalf("create fixture %s: %d %s", path, st, b)
	}
	return fuzzID(tb, b)
}

// freshRefreshToken logs the victim in and returns an unused refresh token.
func (fx *fuzzFixtures) freshRefreshToken(tb testing.TB) string {
	tb.Helper()
	if !fx.login(tb, &fx.victim) {
		fx.heal(tb)
	}
	return fx.victim.refresh
}

func fuzzID(tb testing.TB, b []byte) int64 {
	tb.Helper()
	var v struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.ID == 0 {
		tb.Fatalf("no id in %s", b)
	}
	return v.ID
}

func fuzzTokens(tb testing.TB, b []byte) (access, refresh string) {
	tb.Helper()
	var p struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Access == "" {
		tb.Fatalf("no token pair in %s", b)
	}
	return p.Access, p.Refresh
}

func fuzzMentions(in fuzzInput, s string) bool {
	return strings.Contains(in.param, s) || strings.Contains(in.query, s) ||
		strings.Contains(in.headers, s) || bytes.Contains(in.body, []byte(s))
}

// fuzzUnescapeAll undoes percent-encoding until nothing changes (the router and the
// parameter binding may each unescape once).
func fuzzUnescapeAll(s string) string {
	for range 5 {
		u, err := url.PathUnescape(s)
		if err != nil || u == s {
			break
		}
		s = u
	}
	return s
}

// fuzzNamesID reports whether a path parameter could be read as id.
func fuzzNamesID(param string, id int64) bool {
	for _, s := range []string{param, fuzzUnescapeAll(param)} {
		s = strings.TrimSpace(s)
		if n, err := strconv.ParseInt(s, 0, 64); err == nil && n == id {
			return true
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n == id {
			return true
		}
		if x, err := strconv.ParseFloat(s, 64); err == nil && x == float64(id) {
			return true
		}
	}
	return false
}

// fuzzEscapePath escapes each segment of a raw path, keeping its slashes.
func fuzzEscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// fuzzEscapeQuery makes a raw query sendable on a request line: bytes that may not
// appear there are percent-encoded; everything else, including stray '%' and ';', is
// sent as is for the server to judge.
func fuzzEscapeQuery(q string) string {
	const ok = "-._~!$&'()*+,;=:@/?%"
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(ok, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// fuzzSkippedHeaders are headers the HTTP client manages or that change the transport
// rather than the request the API sees.
var fuzzSkippedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Upgrade": true, "Te": true, "Trailer": true, "Expect": true,
	"Accept-Encoding": true, "Proxy-Authorization": true, "Proxy-Connection": true,
}

// fuzzSetHeaders adds the "Name: value" lines a client could send; Content-Type and
// Authorization replace the ones chosen by variant and auth. It reports whether
// Authorization was given.
func fuzzSetHeaders(req *http.Request, lines string) (auth bool) {
	size := 0
	for _, line := range strings.Split(lines, "\n") {
		name, value, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(strings.TrimSuffix(value, "\r"))
		canon := http.CanonicalHeaderKey(name)
		if !fuzzHeaderName(name) || !fuzzHeaderValue(value) || fuzzSkippedHeaders[canon] {
			continue
		}
		if size += len(name) + len(value) + 4; size > fuzzMaxHeaderBytes {
			break
		}
		switch canon {
		case "Content-Type":
			req.Header.Set(canon, value)
		case "Authorization":
			if !auth {
				req.Header.Del(canon)
			}
			auth = true
			req.Header.Add(canon, value)
		default:
			req.Header.Add(name, value)
		}
	}
	return auth
}

func fuzzHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func fuzzHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// fuzzRepro renders a request as a curl command line.
func fuzzRepro(req *http.Request, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "curl -X %s %q", req.Method, req.URL.String())
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range req.Header[k] {
			fmt.Fprintf(&b, " -H %q", k+": "+v)
		}
	}
	if req.Body != nil && req.ContentLength <= 0 {
		b.WriteString(" -H 'Transfer-Encoding: chunked'")
	}
	if req.Body != nil {
		fmt.Fprintf(&b, " --data-binary %s", fuzzTruncate(body))
	}
	return b.String()
}

func fuzzTruncate(b []byte) string {
	if len(b) > 1000 {
		return strconv.Quote(string(b[:1000])) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// logFor returns the server's log lines about one request (waiting a moment for the
// access log, written after the response).
func (fx *fuzzFixtures) logFor(requestID string) string {
	if requestID == "" {
		return fuzzTail(fx.logs.String())
	}
	var lines []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines = lines[:0]
		for _, l := range strings.Split(fx.logs.String(), "\n") {
			if strings.Contains(l, requestID) {
				lines = append(lines, l)
			}
		}
		if len(lines) >= 2 || time.Now().After(deadline) {
			return strings.Join(lines, "\n")
		}
	}
}

func fuzzTail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// fuzzSeed is one entry of the seed corpus.
type fuzzSeed struct {
	op, auth, variant     uint8
	param, query, headers string
	body                  []byte
}

// fuzzParamPlaceholders name a fixture for each path parameter (and id field).
var fuzzParamPlaceholders = map[string]string{
	"user_id":     "{{victim}}",
	"task_id":     "{{task}}",
	"agent_id":    "{{agent}}",
	"run_id":      "{{run}}",
	"assignee_id": "{{user}}",
	"created_by":  "{{user}}",
}

// fuzzNumericPlaceholders stand for numbers: unquoted in JSON bodies.
var fuzzNumericPlaceholders = []string{"{{victim}}", "{{task}}", "{{agent}}", "{{run}}", "{{user}}", "{{self}}", "{{admin}}", "{{root}}", "{{admintask}}"}

// fuzzSeeds builds the seed corpus from the contract: for every operation a valid-looking
// request (examples from the spec, fixtures for ids) as its role's caller, as another
// caller and with a trailing slash, and requests with each property of its body alone.
// The malformed parameters, queries, headers and bodies below are spread round-robin
// over the operations they apply to (each value is used, not every combination): the
// fuzzer combines them further, and a smaller corpus keeps the baseline-coverage phase
// of -fuzz short.
func fuzzSeeds(ops []fuzzOp) []fuzzSeed {
	var seeds []fuzzSeed
	base := make([]fuzzSeed, len(ops))
	var withParam, withQuery, withBody, withForm []int
	headerOps := map[string][]int{}
	var headerNames []string
	for i, op := range ops {
		base[i] = fuzzValidSeed(uint8(i), op)
		b := base[i]
		seeds = append(seeds, b)
		other := b
		other.auth = []uint8{fuzzAuthUser, fuzzAuthAdmin, fuzzAuthAnonymous}[b.auth%3]
		seeds = append(seeds, other)
		if i%3 == 0 {
			other.auth = fuzzAuthBroken + uint8(i/3%fuzzBrokenCredentials)*fuzzAuthModes
			seeds = append(seeds, other)
		}
		slash := b
		slash.variant |= fuzzVariantSlash
		seeds = append(seeds, slash)
		if op.param != "" {
			withParam = append(withParam, i)
		}
		if len(op.query) > 0 {
			withQuery = append(withQuery, i)
		}
		if op.json {
			withBody = append(withBody, i)
			seeds = append(seeds, fuzzPropertySeeds(b, op)...)
		}
		if op.form {
			withForm = append(withForm, i)
		}
		for _, h := range op.inHeader {
			if headerOps[h.Name] == nil {
				headerNames = append(headerNames, h.Name)
			}
			headerOps[h.Name] = append(headerOps[h.Name], i)
		}
	}
	pick := func(list []int, k int) (fuzzSeed, bool) {
		if len(list) == 0 {
			return fuzzSeed{}, false
		}
		return base[list[k%len(list)]], true
	}

	for k, p := range fuzzNastyParams {
		for j := range 2 {
			if s, ok := pick(withParam, 2*k+j); ok {
				s.param = p
				seeds = append(seeds, s)
			}
		}
	}
	for k, p := range []string{"{{self}}", "{{user}}", "{{admin}}", "{{root}}", "{{admintask}}", "{{task}}", "{{run}}", "{{agent}}"} {
		for j := range 3 {
			if s, ok := pick(withParam, 3*k+j+1); ok {
				s.param = p
				seeds = append(seeds, s)
			}
		}
	}
	for k, q := range fuzzNastyQueries {
		// A query naming a declared parameter goes to an operation declaring it.
		name, _, _ := strings.Cut(q, "=")
		var declaring []int
		for _, i := range withQuery {
			for _, p := range ops[i].query {
				if p.Name == name {
					declaring = append(declaring, i)
				}
			}
		}
		if len(declaring) == 0 {
			declaring = withQuery
		}
		if s, ok := pick(declaring, k); ok {
			s.query = q
			seeds = append(seeds, s)
		}
	}
	sort.Strings(headerNames)
	for _, name := range headerNames {
		var example any
		for _, i := range headerOps[name] {
			for _, h := range ops[i].inHeader {
				if h.Name == name && h.Example != nil {
					example = h.Example
				}
			}
		}
		for k, v := range fuzzHeaderValues(example) {
			s, _ := pick(headerOps[name], k)
			s.headers = name + ": " + v
			seeds = append(seeds, s)
		}
	}
	if me, ok := fuzzFind(ops, "getCurrentUser"); ok {
		for _, h := range fuzzNastyHeaders {
			s := base[me]
			s.headers = h
			seeds = append(seeds, s)
		}
		for k := range fuzzBrokenCredentials {
			s := base[me]
			s.auth = fuzzAuthBroken + uint8(k)*fuzzAuthModes
			seeds = append(seeds, s)
		}
	}
	if h, ok := fuzzFind(ops, "getHealth"); ok {
		s := base[h]
		s.query = "unknown=1&%zz"
		seeds = append(seeds, s)
	}

	// Bodies: other content types, unknown length, none; awkward values; broken JSON.
	bodyOps := append(append([]int{}, withBody...), withForm...)
	for k := range 2 * len(bodyOps) {
		s, _ := pick(bodyOps, k)
		s.variant = uint8(k/len(bodyOps)*3+1+k) % uint8(len(fuzzContentTypes))
		seeds = append(seeds, s)
	}
	for k := range bodyOps {
		s, _ := pick(bodyOps, k)
		if k%2 == 0 {
			s.variant |= fuzzVariantChunked
		} else {
			s.body = nil
		}
		seeds = append(seeds, s)
	}
	for k, v := range fuzzNastyValues {
		for j := range 2 {
			if s, ok := pick(withBody, 2*k+j); ok {
				s.body = fuzzAllProperties(ops[s.op].body, v)
				seeds = append(seeds, s)
			}
		}
	}
	for k, b := range fuzzNastyBodies {
		if s, ok := pick(withBody, k); ok {
			s.body = []byte(b)
			seeds = append(seeds, s)
		}
	}
	for _, f := range fuzzBodiesFor {
		if i, ok := fuzzFind(ops, f.op); ok {
			for _, b := range f.bodies {
				s := base[i]
				s.body = []byte(b)
				seeds = append(seeds, s)
			}
		}
	}
	for k, b := range fuzzNastyForms {
		if s, ok := pick(withForm, k); ok {
			s.body = []byte(b)
			seeds = append(seeds, s)
		}
	}
	if s, ok := pick(withForm, 0); ok {
		s.body = bytes.Repeat([]byte("a"), 1<<20+1)
		seeds = append(seeds, s)
	}

	// Raw paths: routing, 404 and 405 for what the contract does not have.
	for k, p := range fuzzRawPaths {
		seeds = append(seeds, fuzzSeed{op: uint8(len(ops) + k%len(fuzzRawMethods)), auth: fuzzAuthUser, param: p})
	}
	for k, m := range fuzzRawMethods {
		if m == http.MethodOptions {
			seeds = append(seeds, fuzzSeed{op: uint8(len(ops) + k), auth: fuzzAuthUser, param: "api/v1/tasks"})
		}
	}
	// A body on an operation that takes none, beyond the 1 MiB limit.
	if me, ok := fuzzFind(ops, "getCurrentUser"); ok {
		s := base[me]
		s.body = bytes.Repeat([]byte("a"), 1<<20+1)
		seeds = append(seeds, s)
	}

	// Last, so that in plain `go test` what they leave behind cannot fail unrelated
	// seeds: requests that change shared state in ways later requests see.
	for _, f := range fuzzStatefulSeeds {
		if i, ok := fuzzFind(ops, f.op); ok {
			s := base[i]
			s.variant |= f.variant
			s.headers, s.body = f.headers, []byte(f.body)
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// fuzzStatefulSeeds are requests whose effect shows in later requests: the same
// Idempotency-Key twice (a replayed error), timestamps at the edges of the representable
// range (stored, then read back by every list).
var fuzzStatefulSeeds = []struct {
	op      string
	variant uint8
	headers string
	body    string
}{
	{"createTask", 0, "Idempotency-Key: fuzz-replayed-error", `{"title":"t","assignee_id":999999999}`},
	{"createTask", fuzzVariantSlash, "Idempotency-Key: fuzz-replayed-error", `{"title":"t","assignee_id":999999999}`},
	{"createTask", 0, "", `{"title":"t","due_at":"0000-01-01T00:00:00Z"}`},
	{"createTask", 0, "", `{"title":"t","due_at":"9999-12-31T23:59:59Z"}`},
	{"createTask", 0, "", `{"title":"t","due_at":"9999-12-31T23:59:59-23:59"}`},
	{"updateTask", 0, "", `{"due_at":"0000-01-01T00:00:00+00:01"}`},
}

func fuzzFind(ops []fuzzOp, id string) (uint8, bool) {
	for i, op := range ops {
		if op.id == id {
			return uint8(i), true
		}
	}
	return 0, false
}

// fuzzValidSeed is a request the operation should accept.
func fuzzValidSeed(i uint8, op fuzzOp) fuzzSeed {
	s := fuzzSeed{op: i, auth: fuzzAuthUser}
	switch op.role {
	case "public":
		s.auth = fuzzAuthAnonymous
	case "admin":
		s.auth = fuzzAuthAdmin
	}
	if op.param != "" {
		s.param = fuzzParamPlaceholders[op.param]
		if op.param == "user_id" && op.role != "admin" {
			s.param = "{{self}}"
		}
		if s.param == "" {
			s.param = "1"
		}
	}
	var q []string
	for _, p := range op.query {
		if ph, ok := fuzzParamPlaceholders[p.Name]; ok {
			q = append(q, p.Name+"="+ph)
			continue
		}
		ex := p.Example
		if ex == nil && p.Schema != nil && p.Schema.Value != nil {
			ex = fuzzExample(p.Name, p.Schema.Value, 0)
		}
		switch v := ex.(type) {
		case nil:
		case []any:
			for _, e := range v {
				q = append(q, p.Name+"="+url.QueryEscape(fmt.Sprint(e)))
			}
		default:
			q = append(q, p.Name+"="+url.QueryEscape(fmt.Sprint(v)))
		}
	}
	s.query = strings.Join(q, "&")
	for _, h := range op.inHeader {
		if h.Name == "Idempotency-Key" {
			s.headers = "Idempotency-Key: fuzz-{{uniq}}"
		}
	}
	switch {
	case op.json:
		s.body = fuzzJSONBody(op.body, nil)
	case op.form:
		s.variant = fuzzVariantForm
		s.body = []byte(fuzzFormBody(op.body))
	}
	return s
}

// fuzzPropertySeeds send each property of the body alone (with the required ones) and
// the required ones only.
func fuzzPropertySeeds(base fuzzSeed, op fuzzOp) []fuzzSeed {
	if op.body == nil {
		return nil
	}
	var out []fuzzSeed
	names := make([]string, 0, len(op.body.Properties))
	for name := range op.body.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, only := range append([][]string{{}}, fuzzSingletons(names)...) {
		s := base
		s.body = fuzzJSONBody(op.body, only)
		out = append(out, s)
	}
	return out
}

func fuzzSingletons(names []string) [][]string {
	out := make([][]string, len(names))
	for i, n := range names {
		out[i] = []string{n}
	}
	return out
}

// fuzzAllProperties is an object with every property of the schema set to v (raw JSON).
func fuzzAllProperties(s *openapi3.Schema, v string) []byte {
	var names []string
	if s != nil {
		for name := range s.Properties {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	obj := make([]string, 0, len(names))
	for _, name := range names {
		obj = append(obj, strconv.Quote(name)+":"+v)
	}
	return []byte("{" + strings.Join(obj, ",") + "}")
}

// fuzzJSONBody renders an example body; only lists the properties to include besides
// the required ones (nil: every property).
func fuzzJSONBody(s *openapi3.Schema, only []string) []byte {
	if s == nil {
		return []byte("{}")
	}
	v := fuzzExample("", s, 0)
	if m, ok := v.(map[string]any); ok && only != nil {
		keep := map[string]bool{}
		for _, r := range s.Required {
			keep[r] = true
		}
		for _, o := range only {
			keep[o] = true
		}
		for k := range m {
			if !keep[k] {
				delete(m, k)
			}
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("{}")
	}
	for _, ph := range fuzzNumericPlaceholders {
		b = bytes.ReplaceAll(b, []byte(`"`+ph+`"`), []byte(ph))
	}
	return b
}

func fuzzFormBody(s *openapi3.Schema) string {
	if s == nil {
		return ""
	}
	var parts []string
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch name {
		case "username":
			parts = append(parts, "username={{victim_email}}")
		case "password":
			parts = append(parts, "password={{victim_pw}}")
		default:
			parts = append(parts, name+"="+url.QueryEscape(fmt.Sprint(fuzzExample(name, s.Properties[name].Value, 0))))
		}
	}
	return strings.Join(parts, "&")
}

// fuzzExample builds an example value from a schema, filling ids with fixtures and
// unique fields with {{uniq}}.
func fuzzExample(name string, s *openapi3.Schema, depth int) any {
	if s == nil || depth > 8 {
		return nil
	}
	isType := func(t string) bool { return s.Type != nil && s.Type.Is(t) }
	if ph, ok := fuzzParamPlaceholders[name]; ok && isType("integer") {
		return ph
	}
	switch {
	case name == "current_password":
		return "{{pw}}"
	case name == "refresh_token":
		return "{{refresh}}"
	case s.Format == "email":
		return "fuzz-{{uniq}}@example.com"
	case name == "name" && isType("string"):
		return "fuzz-{{uniq}}"
	}
	if s.Example != nil {
		return s.Example
	}
	if len(s.AllOf) > 0 && s.AllOf[0].Value != nil {
		return fuzzExample(name, s.AllOf[0].Value, depth+1)
	}
	if s.Default != nil {
		return s.Default
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch {
	case isType("object"):
		m := map[string]any{}
		for k, p := range s.Properties {
			if p.Value != nil {
				m[k] = fuzzExample(k, p.Value, depth+1)
			}
		}
		return m
	case isType("array"):
		if s.Items != nil && s.Items.Value != nil {
			return []any{fuzzExample(name, s.Items.Value, depth+1)}
		}
		return []any{}
	case isType("integer"), isType("number"):
		if s.Min != nil {
			return *s.Min
		}
		return 1
	case isType("boolean"):
		return true
	case isType("string"):
		if s.Format == "date-time" {
			return "2026-06-01T12:00:00Z"
		}
		return "fuzz"
	}
	return nil
}

// fuzzHeaderValues are values for a header parameter: its example and awkward ones.
func fuzzHeaderValues(example any) []string {
	vals := []string{"", "*", `W/"1"`, `"1", "2"`, `"0"`, `"-1"`, `"99999999999999999999"`, "garbage",
		strings.Repeat("9", 256), "ünïcødé", "0", "-1", "99999999999999999999", "18446744073709551616", "00000000000000000001"}
	if example != nil {
		vals = append([]string{fmt.Sprint(example)}, vals...)
	}
	return vals
}

var fuzzNastyParams = []string{
	"0", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
	"99999999999999999999999999", "1e3", "0x10", "01", "+1", " 1", "1.0", "abc", "",
	"%", "%00", "\x00", "\xff\xfe", "a/b", "..", "1;drop table users", "' OR '1'='1",
	"𝟙", "١", strings.Repeat("9", 5000), "{{uniq}}",
}

var fuzzNastyQueries = []string{
	"limit=0", "limit=1001", "limit=-1", "limit=99999999999999999999", "limit=abc", "limit=1.5", "limit=",
	"skip=1000000000&limit=1000", "skip=1000000001", "skip=-1", "skip=1e3", "skip=2147483648",
	"q=", "q=%", "q=%zz", "q=%00", "q=%ff%fe", "q=%27%20OR%201%3D1--", "q=%25_%5C", "q=" + strings.Repeat("a", 201),
	"q=%F0%9D%94%98%E2%80%AE", "q=a&q=b", "a;b=c", "&&&==", "%", "=",
	"status=pending&status=pending&status=pending&status=pending&status=pending&status=pending",
	"status=bogus", "status=", "sort=bogus", "sort=-priority", "sort=due_at", "sort=-due_at",
	"priority=urgent", "priority=URGENT",
	"due_before=2026-02-30T00:00:00Z", "due_before=9999-12-31T23:59:59Z&due_after=0001-01-01T00:00:00Z",
	"due_after=2026-01-01T00:00:00%2B14:00", "due_after=2026-01-01", "due_after=1e10",
	"is_active=maybe", "is_active=false&is_admin=true", "is_active=1",
	"agent_id=0", "task_id=9223372036854775808", "assignee_id=-1", "created_by={{root}}", "tag=" + strings.Repeat("t", 51), "tag=",
	"unknown=1",
}

var fuzzNastyHeaders = []string{
	"If-None-Match: *", `If-None-Match: W/"0"`, "If-None-Match: " + strings.Repeat("x", 201),
	"X-Request-ID: fuzz-request-id", "X-Request-ID: " + strings.Repeat("a", 129), "X-Request-ID: <script>",
	"Authorization: Bearer", "Authorization: Basic x", "Authorization: Bearer a.b.c",
	"Authorization: Bearer " + strings.Repeat("A", 8000), "Authorization: Token abc",
	"Content-Type: application/json; charset=utf-16",
	"Accept: application/xml", "Origin: https://evil.example",
	"Last-Event-ID: 99999999999999999999",
}

var fuzzNastyForms = []string{
	"username=%&password=x", "username=a%00&password=b", "username=" + strings.Repeat("a", 300) + "&password=b",
	"grant_type=client_credentials&username=a&password=b", "username=a&username=b&password=c",
	";=", "\xff\xfe=\x00", "username={{victim_email}}&password=wrong-password", "username={{victim_email}}",
	"username=%27%20OR%201%3D1--&password=%27%20OR%201%3D1--", "{\"username\":\"a\",\"password\":\"b\"}",
	"username=ADMIN%40EXAMPLE.COM&password=wrong", "scope=" + strings.Repeat("s", 1001) + "&username=a&password=b",
}

var fuzzNastyValues = []string{
	"9223372036854775808", "-9223372036854775809", "1e400", "1e-400", "1.5", "-0", "0", "-1",
	`"a\u0000b"`, "\"\xff\xfe\"", `"\ud800"`, `"' OR 1=1 --"`, `"%_\\"`, `"` + strings.Repeat("x", 20001) + `"`,
	`"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🏳️‍🌈 \u202e ́"`, "[]", "{}", "null", "true", `"2026-02-30T25:61:61Z"`, `"0000-01-01T00:00:00Z"`,
	`[` + strings.Repeat(`"t",`, 25) + `"t"]`, `["a","a"]`, `{"a":{"a":{"a":{"a":{"a":[1,2,{"b":null}]}}}}}`,
}

var fuzzNastyBodies = []string{
	"{", "}", "[]", "null", `""`, "0", "{}{}", "{} x", `{"a":1}`, "\x00", "\xff{}", "\xef\xbb\xbf{}",
	`{"title":"a","title":"b"}`, `{"__proto__":{"admin":true}}`, `{"title":"\u0000"}`, "\"\\u0000\"",
	strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
}

// fuzzBodiesFor are bodies aimed at one operation's rules.
var fuzzBodiesFor = []struct {
	op     string
	bodies []string
}{
	{"createTask", []string{
		`{"title":"t","metadata":{"k":"` + strings.Repeat("m", 70000) + `"}}`,
		`{"title":"t","metadata":` + strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000) + `}`,
		`{"title":"t","metadata":{"a":` + strings.Repeat(`[`, 9990) + strings.Repeat("]", 9990) + `}}`,
		`{"title":"t","metadata":` + strings.Repeat(`{"a":`, 9990) + "1" + strings.Repeat("}", 9990) + `}`,
		`{"title":"t","due_at":"2026-12-31T23:59:60Z"}`, `{"title":"t","due_at":"2026-01-01T00:00:00+14:00"}`,
		`{"title":"t","tags":[` + strings.Repeat(`"t",`, 20) + `"u"]}`, `{"assignee_id":{{root}},"title":"t"}`,
		`{"title":"big","description":"` + strings.Repeat("x", 1<<20) + `"}`,
	}},
	{"updateTask", []string{`{"status":"completed"}`, `{"status":"in_progress"}`, `{"status":"cancelled"}`, `{"status":"pending"}`, `{"assignee_id":null,"due_at":null}`}},
	{"createAgentRun", []string{`{"input":"x","task_id":{{admintask}}}`, `{"input":"x","task_id":null,"metadata":{}}`}},
	{"updateUser", []string{`{"is_admin":true}`, `{"is_active":false}`, `{"email":"{{email}}"}`, `{"email":"ADMIN@EXAMPLE.COM"}`}},
	{"updateCurrentUser", []string{`{"password":"new-password-123","current_password":"{{pw}}"}`, `{"email":"fuzz-{{uniq}}@example.com","current_password":"wrong"}`, `{"is_admin":false}`}},
	{"createUser", []string{
		`{"name":"n","email":"{{victim_email}}","password":"password-123"}`, `{"name":"n","email":"ADMIN@EXAMPLE.COM","password":"password-123"}`,
		`{"name":"n","email":"\"quoted local\"@example.com","password":"password-123"}`, `{"name":" ","email":"İ-{{uniq}}@example.com","password":"pässwörd-ünïcødé"}`,
		`{"name":"n","email":"` + strings.Repeat("a", 64) + `-{{uniq}}@` + strings.Repeat("b", 150) + `.example.com","password":"` + strings.Repeat("p", 128) + `"}`,
		`{"name":"n","email":"a@b.c","password":"password-123","is_admin":null}`, `{"name":"n","email":"Name <n-{{uniq}}@example.com>","password":"password-123"}`,
	}},
	{"createAgent", []string{`{"name":"a-{{uniq}}","temperature":2.0000000001,"max_output_tokens":128001}`, `{"name":"a-{{uniq}}","tools":["get_task","get_task"]}`}},
	{"refreshToken", []string{`{"refresh_token":"{{refresh}}"}`, `{"refresh_token":"rt_garbage"}`, `{"refresh_token":"{{refresh}}","extra":1}`}},
	{"logout", []string{`{"refresh_token":"{{refresh}}"}`, `{"refresh_token":""}`}},
}

var fuzzRawPaths = []string{
	"", "api", "api/v1", "api/v1/nope", "api/v1/tasks/1/extra", "api/v1/tasks/%2e%2e", "..",
	"API/V1/TASKS", "api//v1//tasks", "api/v1/tasks/{{task}}/runs/1", "api/v1/agent-runs/{{run}}/events/x",
	"metrics/x", "api/docs/x", "api/openapi.yml", "%00", "\xff",
}
