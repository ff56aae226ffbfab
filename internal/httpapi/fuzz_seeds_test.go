package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

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
