package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/tracing"
)

// trcSetup starts a server that traces into memory, with its scripted model.
func trcSetup(t *testing.T) (*agtFixture, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	llm := llmtest.New(t)
	env := apitest.StartTraced(t, tracing.With(tp), agtOptions(llm)...)
	tok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	return &agtFixture{env: env, llm: llm, admin: env.As(tok), adminToken: tok}, exp
}

// trcParent is a caller's span context: the server continues its trace.
func trcParent(t *testing.T, n byte) trace.SpanContext {
	t.Helper()
	tid := trace.TraceID{0xa1, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(time.Now().UnixNano())}
	sid := trace.SpanID{0xb2, n, 0, 0, 0, 0, 0, 1}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// trcHeader sends sc as the request's traceparent.
func trcHeader(sc trace.SpanContext) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()))
		return nil
	}
}

// trcSpans are the finished spans of one trace.
type trcSpans []tracetest.SpanStub

func trcTrace(exp *tracetest.InMemoryExporter, id trace.TraceID) trcSpans {
	var out trcSpans
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// named returns the spans whose name is name.
func (ss trcSpans) named(name string) trcSpans {
	var out trcSpans
	for _, s := range ss {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf returns the spans whose parent is p.
func (ss trcSpans) childrenOf(p tracetest.SpanStub) trcSpans {
	var out trcSpans
	for _, s := range ss {
		if s.Parent.SpanID() == p.SpanContext.SpanID() {
			out = append(out, s)
		}
	}
	return out
}

// sql returns the spans of SQL statements (otelpgx's, with db.query.text).
func (ss trcSpans) sql() trcSpans {
	var out trcSpans
	for _, s := range ss {
		if _, ok := trcAttr(s, "db.query.text"); ok {
			out = append(out, s)
		}
	}
	return out
}

func (ss trcSpans) names() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func trcAttr(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

// trcWaitSpan waits until a span named name has ended in trace id.
func trcWaitSpan(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, name string) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(agtTimeout)
	for {
		if ss := trcTrace(exp, id).named(name); len(ss) > 0 {
			return ss[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q in trace %s; spans: %v", name, id, trcTrace(exp, id).names())
		}
		time.Sleep(agtPoll)
	}
}

// TestTracing_OneTraceFromRequestToToolSQL: the request that creates a run, the run's
// job, each model call (with its model and tokens), each tool call and the SQL they run
// are one trace, continuing the caller's traceparent.
func TestTracing_OneTraceFromRequestToToolSQL(t *testing.T) {
	t.Parallel()
	f, exp := trcSetup(t)
	user := f.env.CreateUser(t, "Tracy", false)
	tools := client.AgentTools{client.GetTask, client.UpdateTaskStatus}
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "traced", Tools: &tools})
	task := agtCreateTask(t, user.Client, "Trace me")
	id := strconv.FormatInt(task.Id, 10)
	f.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "get_task", Arguments: `{"task_id":` + id + `}`}}, Prompt: 100, Completion: 10},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c2", Name: "update_task_status", Arguments: `{"task_id":` + id + `,"status":"in_progress"}`}}, Prompt: 200, Completion: 20},
		llmtest.Reply{Content: []string{"Done."}, Prompt: 300, Completion: 30},
	)
	caller := trcParent(t, 1)
	res, err := user.Client.CreateAgentRunWithResponse(context.Background(), ag.Id, nil,
		client.AgentRunCreate{Input: "go", TaskId: nullable.NewNullableWithValue(task.Id)}, trcHeader(caller))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	run := agtWaitRun(t, user.Client, res.JSON202.Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))

	tid := caller.TraceID()
	work := trcWaitSpan(t, exp, tid, "river.work/agent_run")
	spans := trcTrace(exp, tid)

	// The request: a server span named by its route template, child of the caller's span.
	server := spans.named("POST /api/v1/agents/:agent_id/runs")
	require.Len(t, server, 1, "spans: %v", spans.names())
	require.Equal(t, caller.SpanID(), server[0].Parent.SpanID())
	require.Equal(t, trace.SpanKindServer, server[0].SpanKind)
	require.NotEmpty(t, spans.childrenOf(server[0]).sql(), "the run's insert is SQL of the request")

	// The job: worked later, in the request's trace, as a child of the request's span.
	require.Equal(t, server[0].SpanContext.SpanID(), work.Parent.SpanID(), "the job's span is a child of the request that created it")
	v, ok := trcAttr(work, "id")
	require.True(t, ok)
	require.Positive(t, v.AsInt64())

	// Each model call: a client span under the job, with gen_ai attributes, and the HTTP
	// request to the provider under it.
	var descendants func(p tracetest.SpanStub) trcSpans
	descendants = func(p tracetest.SpanStub) trcSpans {
		var out trcSpans
		for _, c := range spans.childrenOf(p) {
			out = append(append(out, c), descendants(c)...)
		}
		return out
	}
	inJob := descendants(work)
	chats := inJob.named("chat " + ag.Model)
	require.Len(t, chats, 3, "one span per model call; spans in the job: %v", inJob.names())
	for i, c := range chats {
		want := map[attribute.Key]attribute.Value{
			"gen_ai.operation.name":      attribute.StringValue("chat"),
			"gen_ai.provider.name":       attribute.StringValue("openai"),
			"gen_ai.request.model":       attribute.StringValue(ag.Model),
			"gen_ai.response.model":      attribute.StringValue(ag.Model),
			"gen_ai.usage.input_tokens":  attribute.Int64Value(int64(100 * (i + 1))),
			"gen_ai.usage.output_tokens": attribute.Int64Value(int64(10 * (i + 1))),
		}
		for k, w := range want {
			got, ok := trcAttr(c, k)
			require.True(t, ok, "call %d has %s", i, k)
			require.Equal(t, w, got, "call %d: %s", i, k)
		}
		require.Equal(t, trace.SpanKindClient, c.SpanKind)
		httpSpans := spans.childrenOf(c).named("HTTP POST")
		require.Len(t, httpSpans, 1, "the provider request is a span of the model call")
	}
	require.Len(t, f.llm.Requests(), 3)

	// Each tool call: a span under the job, with the SQL it ran under it.
	for _, name := range []string{"get_task", "update_task_status"} {
		calls := inJob.named("execute_tool " + name)
		require.Len(t, calls, 1, "spans in the job: %v", inJob.names())
		tn, _ := trcAttr(calls[0], "gen_ai.tool.name")
		require.Equal(t, name, tn.AsString())
		if name == "update_task_status" {
			sql := spans.childrenOf(calls[0]).sql()
			require.NotEmpty(t, sql, "the tool's SQL is in its span")
			var texts []string
			for _, s := range sql {
				q, _ := trcAttr(s, "db.query.text")
				texts = append(texts, q.AsString())
			}
			require.Contains(t, strings.ToUpper(strings.Join(texts, "\n")), "UPDATE TASKS", "the update itself is traced")
		}
	}
	require.NotEmpty(t, inJob.sql(), "the job's own SQL is in the trace")

	// The request's log line carries its trace: the caller's trace id and the server span's id.
	var logged bool
	for line := range strings.SplitSeq(f.env.Logs.String(), "\n") {
		if strings.Contains(line, `"route":"/api/v1/agents/:agent_id/runs"`) {
			require.Contains(t, line, `"trace_id":"`+tid.String()+`"`)
			require.Contains(t, line, `"span_id":"`+server[0].SpanContext.SpanID().String()+`"`)
			logged = true
		}
	}
	require.True(t, logged, "the access log has the request")

	// Probes are not traced.
	got := f.env.Do(t, http.MethodGet, "/api/health", "", nil)
	require.Equal(t, http.StatusOK, got.Status)
	for _, s := range exp.GetSpans() {
		require.NotContains(t, s.Name, "/api/health")
	}
}

// TestTracing_EachBatchedJobJoinsItsOwnRequest: runs created at the same time share one
// transaction (the group commit), yet each run's job is worked in the trace of the
// request that created it.
func TestTracing_EachBatchedJobJoinsItsOwnRequest(t *testing.T) {
	t.Parallel()
	f, exp := trcSetup(t)
	user := f.env.CreateUser(t, "Batchy", false)
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "batched"})
	const n = 8
	replies := make([]llmtest.Reply, n)
	for i := range replies {
		replies[i] = llmtest.Reply{Content: []string{"ok"}, Prompt: 1, Completion: 1}
	}
	f.llm.Script(replies...)
	callers := make([]trace.SpanContext, n)
	runIDs := make([]int64, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		callers[i] = trcParent(t, byte(10+i))
		wg.Go(func() {
			<-start
			res, err := user.Client.CreateAgentRunWithResponse(context.Background(), ag.Id, nil,
				client.AgentRunCreate{Input: fmt.Sprintf("run %d", i)}, trcHeader(callers[i]))
			if err == nil && res.JSON202 != nil {
				runIDs[i] = res.JSON202.Id
			}
		})
	}
	close(start)
	wg.Wait()
	for i, c := range callers {
		require.NotZero(t, runIDs[i], "run %d created", i)
		work := trcWaitSpan(t, exp, c.TraceID(), "river.work/agent_run")
		server := trcTrace(exp, c.TraceID()).named("POST /api/v1/agents/:agent_id/runs")
		require.Len(t, server, 1)
		require.Equal(t, server[0].SpanContext.SpanID(), work.Parent.SpanID(), "run %d's job is a child of its own request", i)
		jobID, _ := trcAttr(work, "id")
		run := agtWaitRun(t, user.Client, runIDs[i])
		require.Equal(t, client.AgentRunStatusCompleted, run.Status)
		require.NotZero(t, jobID.AsInt64())
	}
}

// TestTracing_OffWithoutOTELVariables: a server started without OTEL_* variables installs
// no tracing: a caller's traceparent is not continued (no trace id in the log line) and
// the global provider stays a no-op.
func TestTracing_OffWithoutOTELVariables(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	caller := trcParent(t, 99)
	res := env.Do(t, http.MethodGet, "/api/v1/users/me", "", nil, "traceparent", fmt.Sprintf("00-%s-%s-01", caller.TraceID(), caller.SpanID()))
	require.Equal(t, http.StatusUnauthorized, res.Status)
	logs := env.Logs.String()
	require.Contains(t, logs, `"route":"/api/v1/users/me"`)
	require.NotContains(t, logs, "trace_id")
	require.NotContains(t, logs, caller.TraceID().String())
	_, span := otel.Tracer("test").Start(context.Background(), "x")
	require.False(t, span.IsRecording(), "the global provider is a no-op")
}
