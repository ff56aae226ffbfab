package httpapi_test

import (
	"bytes"
	"context"
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
