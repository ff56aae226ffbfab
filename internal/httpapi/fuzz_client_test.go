package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

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
	defer func() { timer.Stop() }() // the stream's shorter timer, once it replaces this one
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
	if err != nil && (!streaming || !errors.Is(err, context.Canceled)) {
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
		isTokenChar := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !isTokenChar {
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
