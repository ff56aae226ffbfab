package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
	"enterprise-automation/internal/llmtest"
)

// exampleRequest is one operation's request as Swagger UI's "Try it out" pre-fills it
// from the contract's examples; a replay hook may adjust it before it is sent.
type exampleRequest struct {
	OperationID string
	Method      string
	Template    string         // the path template, such as /api/v1/tasks/{task_id}
	Path        map[string]any // path parameters
	Query       url.Values
	Header      http.Header
	ContentType string
	Body        any // the JSON value, or url.Values for a form
}

// replayHook is what one operation needs beyond its examples.
type replayHook struct {
	// Phase orders the operations (lower first; the default is by method: POST 0, GET 1,
	// PUT and PATCH 2, DELETE 4). Operations in one phase run in path order.
	Phase int
	// Why says in words what the hook does and why the example alone cannot.
	Why string
	// Prepare runs just before the request is sent and may change it.
	Prepare func(t *testing.T, r *replayRun, req *exampleRequest)
}

// replayRun is the state the replay shares across operations.
type replayRun struct {
	env   *apitest.Env
	token string // the administrator's access token
}

// dropCursorHook replays a list without its example cursor: a list cursor is issued by
// the server for one sort and filter set, so the example's shape-only one answers 422.
var dropCursorHook = replayHook{
	Why:     "a list cursor is issued by the server for one sort and set of filters: the example's shape-only cursor is left out",
	Prepare: func(_ *testing.T, _ *replayRun, req *exampleRequest) { req.Query.Del("cursor") },
}

// replayHooks are the per-operation setup needs. An operation added to the contract is
// replayed without one; add an entry here only when its examples cannot succeed on a
// freshly seeded server by themselves, and say in the example's description what it needs.
var replayHooks = map[string]replayHook{
	"cancelAgentRun": {Phase: 3, Why: "cancels the run createAgentRun's example queued, after every read of it"},
	"listAuditEvents": {
		Why:     "a cursor is issued by the server: the example's shape-only cursor is left out",
		Prepare: func(_ *testing.T, _ *replayRun, req *exampleRequest) { req.Query.Del("cursor") },
	},
	"listUsers":     dropCursorHook,
	"listTasks":     dropCursorHook,
	"listAgentRuns": dropCursorHook,
	"listTaskRuns":  dropCursorHook,
	"replaceUser":   {Phase: 3, Why: "updateUser's example changes the same user first (If-Match is then refreshed, see replayPhaseChanged)"},
	"refreshToken": {
		Why: "a refresh token exists only after a login: the example's is replaced by a fresh one",
		Prepare: func(t *testing.T, r *replayRun, req *exampleRequest) {
			req.Body = map[string]any{"refresh_token": r.env.Login(t, apitest.AdminEmail, examplesAdminPassword).RefreshToken}
		},
	},
	"submitAgentRunApprovals": {
		Phase: 3,
		Why:   "approvals need a run waiting in requires_action for the example's tool call ids: an agent whose tool needs approval starts one, and the scripted model calls the tool with those ids",
		Prepare: func(t *testing.T, r *replayRun, req *exampleRequest) {
			res := r.env.Do(t, http.MethodPost, "/api/v1/agents", r.token,
				`{"name":"approvals example","tools":["get_task"],"approval_required_tools":["get_task"]}`)
			require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
			var agent struct {
				ID int64 `json:"id"`
			}
			require.NoError(t, json.Unmarshal(res.Body, &agent))
			res = r.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agents/%d/runs", agent.ID), r.token,
				`{"input":"`+approvalExampleInput+`"}`)
			require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
			var run struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			}
			require.NoError(t, json.Unmarshal(res.Body, &run))
			require.Eventually(t, func() bool {
				res := r.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d", run.ID), r.token, "")
				return res.Status == http.StatusOK && json.Unmarshal(res.Body, &run) == nil && run.Status == "requires_action"
			}, 30*time.Second, 20*time.Millisecond, "the run never waited for approval")
			req.Path["run_id"] = run.ID
		},
	},
	"updateWebhook": {Phase: 3, Why: "rotateWebhookSecret's example changes the same endpoint first (If-Match is then refreshed, see replayPhaseChanged)"},
	"redeliverWebhookDelivery": {
		Why: "redelivery needs a delivery that has ended: the example's endpoint is not reachable from here, so a test event to a local receiver makes one that has succeeded",
		Prepare: func(t *testing.T, r *replayRun, req *exampleRequest) {
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			t.Cleanup(recv.Close)
			res := r.env.Do(t, http.MethodPost, "/api/v1/webhooks", r.token, `{"url":"`+recv.URL+`/hook","events":["webhook.test"]}`)
			require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
			var hook struct {
				ID int64 `json:"id"`
			}
			require.NoError(t, json.Unmarshal(res.Body, &hook))
			res = r.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/webhooks/%d/test", hook.ID), r.token, "")
			require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
			var delivery int64
			require.Eventually(t, func() bool {
				res := r.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/webhooks/%d/deliveries", hook.ID), r.token, "")
				var page struct {
					Items []struct {
						ID     int64  `json:"id"`
						Status string `json:"status"`
					} `json:"items"`
				}
				if res.Status != http.StatusOK || json.Unmarshal(res.Body, &page) != nil || len(page.Items) == 0 {
					return false
				}
				delivery = page.Items[0].ID
				return page.Items[0].Status == "succeeded"
			}, 30*time.Second, 20*time.Millisecond, "the test event was never delivered")
			req.Path["webhook_id"], req.Path["delivery_id"] = hook.ID, delivery
		},
	},
	"logout": {
		Phase: 9,
		Why:   "a refresh token exists only after a login: the example's is replaced by a fresh one",
		Prepare: func(t *testing.T, r *replayRun, req *exampleRequest) {
			req.Body = map[string]any{"refresh_token": r.env.Login(t, apitest.AdminEmail, examplesAdminPassword).RefreshToken}
		},
	},
}

// approvalExampleInput marks the run submitAgentRunApprovals's hook starts: for it, the
// scripted model calls get_task twice with the ids of the example's decisions.
const approvalExampleInput = "the approvals example"

// replayModel answers the replay's runs: the approvals example's run asks for its two
// tool calls and then finishes; any other run (createAgentRun's example) never gets an
// answer, so that it stays in progress for the reads and for cancelAgentRun's example.
func replayModel(body []byte) (llmtest.Reply, bool) {
	if !bytes.Contains(body, []byte(approvalExampleInput)) {
		return llmtest.Reply{Hang: true}, true
	}
	if bytes.Contains(body, []byte(`"role":"tool"`)) {
		return llmtest.Reply{Content: []string{"done"}, Prompt: 1, Completion: 1}, true
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{
		{ID: "call_7Qm2", Name: "get_task", Arguments: `{"task_id":1}`},
		{ID: "call_8Rn3", Name: "get_task", Arguments: `{"task_id":1}`},
	}, Prompt: 1, Completion: 1}, true
}

// replayPhaseChanged is the first phase whose resources earlier examples have already
// changed: there, an If-Match example (the ETag of a resource never changed since its
// creation) is replaced by the resource's current ETag, read with a GET of the same path.
const replayPhaseChanged = 3

// examplesAdminPassword is the first administrator's password in the replay: the
// createToken example's, as FIRST_ADMIN_PASSWORD sets it.
const examplesAdminPassword = "correct-horse-battery-staple"

// TestRequestExamplesSucceed replays every operation's request examples (path, query
// and header parameters, and the body Swagger UI builds from the examples) against a
// freshly seeded debug server, as the administrator, and expects one of the operation's
// documented 2xx answers: what "Try it out" does on a fresh `make run`.
func TestRequestExamplesSucceed(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	llm := llmtest.New(t)
	llm.Auto = replayModel
	env := apitest.Start(t,
		apitest.WithEnv("DEBUG", "true"),
		apitest.WithEnv("FIRST_ADMIN_PASSWORD", examplesAdminPassword),
		apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
		apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()),
		apitest.WithEnv("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"))
	run := &replayRun{env: env, token: env.Login(t, apitest.AdminEmail, examplesAdminPassword).AccessToken}

	type operation struct {
		phase  int
		path   string
		method string
		op     *openapi3.Operation
		item   *openapi3.PathItem
	}
	var ops []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			phase := map[string]int{http.MethodPost: 0, http.MethodGet: 1, http.MethodPut: 2, http.MethodPatch: 2, http.MethodDelete: 4}[method]
			if h, ok := replayHooks[op.OperationID]; ok && h.Phase != 0 {
				phase = h.Phase
			}
			ops = append(ops, operation{phase: phase, path: path, method: method, op: op, item: item})
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		a, b := ops[i], ops[j]
		if a.phase != b.phase {
			return a.phase < b.phase
		}
		// Within a phase: parents before children (an agent before its runs) when creating,
		// children before parents when deleting.
		da, db := strings.Count(a.path, "{"), strings.Count(b.path, "{")
		if da != db {
			if a.phase == 4 {
				return da > db
			}
			return da < db
		}
		return a.path+a.method < b.path+b.method
	})
	require.NotEmpty(t, ops)

	for _, o := range ops {
		// Sequential subtests: the order matters, and one failure does not hide the others.
		t.Run(o.op.OperationID, func(t *testing.T) {
			replayExample(t, run, o.phase, o.method, o.path, o.item, o.op)
		})
	}
}

// replayExample sends one operation's example request and expects a documented 2xx.
func replayExample(t *testing.T, run *replayRun, phase int, method, path string, item *openapi3.PathItem, op *openapi3.Operation) {
	req := exampleRequestOf(t, method, path, item, op)
	if why := replayHooks[op.OperationID].Why; why != "" {
		t.Log(why)
	}
	if phase >= replayPhaseChanged && req.Header.Get("If-Match") != "" && item.Get != nil {
		get := *req
		get.Method, get.Header, get.ContentType, get.Body = http.MethodGet, http.Header{}, "", nil
		etag := run.etag(t, &get)
		require.NotEmpty(t, etag, "%s: GET %s answered no ETag", op.OperationID, path)
		req.Header.Set("If-Match", etag)
	}
	if hook := replayHooks[op.OperationID]; hook.Prepare != nil {
		hook.Prepare(t, run, req)
	}
	status, body := run.send(t, req, op.Security == nil || len(*op.Security) > 0)
	var want []int
	for code := range op.Responses.Map() {
		var n int
		if _, err := fmt.Sscanf(code, "%d", &n); err == nil && n >= 200 && n < 300 {
			want = append(want, n)
		}
	}
	require.NotEmpty(t, want, "%s documents no 2xx answer", op.OperationID)
	require.Contains(t, want, status, "%s %s (%s) with its examples answered %d, want one of %v: %s\nrequest: %+v",
		method, path, op.OperationID, status, want, body, *req)
}

// etag sends a GET and returns the ETag of its 200 answer.
func (r *replayRun) etag(t *testing.T, req *exampleRequest) string {
	t.Helper()
	res := r.do(t, req, true)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "GET %s for its ETag", req.Template)
	return res.Header.Get("ETag")
}

// send sends the request and returns the status and, for failures, the start of the body.
func (r *replayRun) send(t *testing.T, req *exampleRequest, secured bool) (int, string) {
	t.Helper()
	res := r.do(t, req, secured)
	defer res.Body.Close()
	if res.StatusCode < 300 {
		return res.StatusCode, ""
	}
	head, _ := io.ReadAll(io.LimitReader(res.Body, 2000))
	return res.StatusCode, string(head)
}

// do sends the request (with the administrator's token when secured); the caller closes
// the body. An event stream is answered before its body is read.
func (r *replayRun) do(t *testing.T, req *exampleRequest, secured bool) *http.Response {
	t.Helper()
	p := ""
	for _, part := range strings.Split(req.Template, "/") {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			name := part[1 : len(part)-1]
			v, ok := req.Path[name]
			require.True(t, ok, "%s: no example for path parameter %s", req.OperationID, name)
			part = url.PathEscape(fmt.Sprint(v))
		}
		p += "/" + part
	}
	p = strings.TrimPrefix(p, "/")
	if len(req.Query) > 0 {
		p += "?" + req.Query.Encode()
	}
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case url.Values:
		body = strings.NewReader(b.Encode())
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		body = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel) // ends an event stream the caller did not read to its end
	hr, err := http.NewRequestWithContext(ctx, req.Method, r.env.BaseURL+p, body)
	require.NoError(t, err)
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	if secured {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	client := r.env.HTTP
	if strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
		client = http.DefaultClient // the stream may outlive the read; only its start is checked
	}
	res, err := client.Do(hr)
	require.NoError(t, err, "%s", req.OperationID)
	return res
}

// exampleRequestOf builds the request Swagger UI pre-fills: every parameter with an
// example (the parameter's own, else its schema's) and the body from the media type's
// example, else from the schema's examples.
func exampleRequestOf(t *testing.T, method, path string, item *openapi3.PathItem, op *openapi3.Operation) *exampleRequest {
	t.Helper()
	req := &exampleRequest{OperationID: op.OperationID, Method: method, Template: path, Path: map[string]any{}, Query: url.Values{}, Header: http.Header{}}
	params := append(openapi3.Parameters{}, item.Parameters...)
	params = append(params, op.Parameters...)
	for _, ref := range params {
		p := ref.Value
		ex := p.Example
		if ex == nil && p.Schema != nil && p.Schema.Value != nil {
			ex = p.Schema.Value.Example
		}
		if ex == nil {
			require.False(t, p.Required, "%s: required parameter %s has no example", op.OperationID, p.Name)
			continue
		}
		switch p.In {
		case openapi3.ParameterInPath:
			req.Path[p.Name] = ex
		case openapi3.ParameterInQuery:
			if list, ok := ex.([]any); ok {
				for _, v := range list {
					req.Query.Add(p.Name, fmt.Sprint(v))
				}
			} else {
				req.Query.Set(p.Name, fmt.Sprint(ex))
			}
		case openapi3.ParameterInHeader:
			req.Header.Set(p.Name, fmt.Sprint(ex))
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		for _, ct := range []string{"application/json", "application/merge-patch+json", "application/x-www-form-urlencoded"} {
			mt := op.RequestBody.Value.Content.Get(ct)
			if mt == nil {
				continue
			}
			var body any
			switch {
			case mt.Example != nil:
				body = mt.Example
			case len(mt.Examples) > 0:
				names := make([]string, 0, len(mt.Examples))
				for n := range mt.Examples {
					names = append(names, n)
				}
				sort.Strings(names)
				body = mt.Examples[names[0]].Value.Value
			default:
				body = sampleOf(mt.Schema)
			}
			req.ContentType = ct
			if ct == "application/x-www-form-urlencoded" {
				form := url.Values{}
				if m, ok := body.(map[string]any); ok {
					for k, v := range m {
						form.Set(k, fmt.Sprint(v))
					}
				}
				req.Body = form
			} else {
				req.Body = body
			}
			break
		}
	}
	// Swagger UI asks for the first documented 2xx media type.
	for code, res := range op.Responses.Map() {
		if strings.HasPrefix(code, "2") && res.Value != nil && res.Value.Content.Get("text/event-stream") != nil {
			req.Header.Set("Accept", "text/event-stream")
		}
	}
	return req
}

// sampleOf builds a value from a schema's examples the way Swagger UI's sample generator
// does for a request: the schema's example when it has one; else an object of every
// writable property, an array of one item, the default or first enum value, or a
// placeholder by type.
func sampleOf(ref *openapi3.SchemaRef) any {
	if ref == nil || ref.Value == nil {
		return nil
	}
	s := ref.Value
	if s.Example != nil {
		return s.Example
	}
	if len(s.AllOf) > 0 {
		merged := map[string]any{}
		for _, sub := range s.AllOf {
			if m, ok := sampleOf(sub).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		return merged
	}
	if len(s.OneOf) > 0 {
		return sampleOf(s.OneOf[0])
	}
	if len(s.AnyOf) > 0 {
		return sampleOf(s.AnyOf[0])
	}
	if s.Default != nil {
		return s.Default
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0:
		obj := map[string]any{}
		for name, p := range s.Properties {
			if p.Value != nil && p.Value.ReadOnly {
				continue
			}
			obj[name] = sampleOf(p)
		}
		return obj
	case s.Type.Is("array"):
		return []any{sampleOf(s.Items)}
	case s.Type.Is("integer"):
		return 0
	case s.Type.Is("number"):
		return 0
	case s.Type.Is("boolean"):
		return true
	case s.Format == "date-time":
		return "2026-01-01T00:00:00Z"
	case s.Format == "email":
		return "user@example.com"
	default:
		return "string"
	}
}
