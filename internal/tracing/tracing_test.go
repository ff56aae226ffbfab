package tracing_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"enterprise-automation/internal/tracing"
)

// collector is an OTLP/HTTP receiver: it keeps every export request it is sent.
type collector struct {
	*httptest.Server
	mu       sync.Mutex
	paths    []string
	auth     []string // the Authorization header of each request
	requests []*coltrace.ExportTraceServiceRequest
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			in = zr
		}
		body, err := io.ReadAll(in)
		req := &coltrace.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(body, req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.paths = append(c.paths, r.URL.Path)
		c.auth = append(c.auth, r.Header.Get("Authorization"))
		c.requests = append(c.requests, req)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(c.Close)
	return c
}

// spanNames lists the names of the spans received, and the service.name of each batch.
func (c *collector) received() (spans, services []string, paths []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.requests {
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				switch a.Key {
				case "service.name", "service.version", "deployment.environment":
					services = append(services, a.Key+"="+a.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, s.Name)
				}
			}
		}
	}
	return spans, services, c.paths
}

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// makeSpans records a root span with a tool call under it.
func makeSpans(tr *tracing.Tracing) {
	ctx, span := tr.Provider().Tracer("test").Start(context.Background(), "root")
	_, end := tracing.StartToolCall(ctx, "get_task")
	end(nil)
	span.End()
}

func TestSetup_OffWithoutVariables(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"nothing set":               {},
		"only a service name":       {"OTEL_SERVICE_NAME": "x", "OTEL_RESOURCE_ATTRIBUTES": "a=b"},
		"sdk disabled":              {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
		"exporter none":             {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
		"exporter none among names": {"OTEL_TRACES_EXPORTER": "otlp,none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr, err := tracing.Setup(context.Background(), env(vars), "1.0.0", io.Discard)
			require.NoError(t, err)
			require.False(t, tr.Enabled())
			_, span := tr.Provider().Tracer("test").Start(context.Background(), "x")
			require.False(t, span.IsRecording(), "the provider is a no-op")
			require.False(t, span.SpanContext().IsValid())
			require.NoError(t, tr.Shutdown(context.Background()))
		})
	}
}

// TestSetup_OffExportsNothing: with a collector listening but tracing turned off, spans
// made through the provider reach nothing; turned on, the same spans arrive (the
// collector is a working receiver).
func TestSetup_OffExportsNothing(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	off, err := tracing.Setup(context.Background(), env(map[string]string{
		"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": col.URL,
	}), "1.0.0", io.Discard)
	require.NoError(t, err)
	makeSpans(off)
	require.NoError(t, off.Shutdown(context.Background()))
	spans, _, _ := col.received()
	require.Empty(t, spans)

	on, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL}), "1.0.0", io.Discard)
	require.NoError(t, err)
	makeSpans(on)
	require.NoError(t, on.Shutdown(context.Background()))
	spans, _, _ = col.received()
	require.ElementsMatch(t, []string{"root", "execute_tool get_task"}, spans)
}

// TestSetup_OTLPEndpointAndResource: OTEL_EXPORTER_OTLP_ENDPOINT alone turns tracing on;
// spans go to its /v1/traces over OTLP/HTTP when Shutdown flushes them, described by
// service.name (default or OTEL_SERVICE_NAME), service.version and
// OTEL_RESOURCE_ATTRIBUTES. The signal's own endpoint is used as it is.
func TestSetup_OTLPEndpointAndResource(t *testing.T) {
	t.Parallel()
	t.Run("default service name", func(t *testing.T) {
		t.Parallel()
		col := newCollector(t)
		tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL + "/"}), "2.0.0", io.Discard)
		require.NoError(t, err)
		require.True(t, tr.Enabled())
		makeSpans(tr)
		require.NoError(t, tr.Shutdown(context.Background()), "shutdown flushes")
		spans, services, paths := col.received()
		require.ElementsMatch(t, []string{"root", "execute_tool get_task"}, spans)
		require.Contains(t, services, "service.name=enterprise-automation")
		require.Contains(t, services, "service.version=2.0.0")
		require.Equal(t, []string{"/v1/traces"}, paths)
	})
	t.Run("named by the environment", func(t *testing.T) {
		t.Parallel()
		col := newCollector(t)
		tr, err := tracing.Setup(context.Background(), env(map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": col.URL + "/custom/path",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
			"OTEL_SERVICE_NAME":                  "automation-eu",
			"OTEL_RESOURCE_ATTRIBUTES":           "deployment.environment=staging%20eu,service.name=ignored",
			"OTEL_EXPORTER_OTLP_HEADERS":         "Authorization=Bearer%20s3cret",
			"OTEL_EXPORTER_OTLP_COMPRESSION":     "gzip",
		}), "2.0.0", io.Discard)
		require.NoError(t, err)
		makeSpans(tr)
		require.NoError(t, tr.Shutdown(context.Background()))
		_, services, paths := col.received()
		require.Contains(t, services, "service.name=automation-eu", "OTEL_SERVICE_NAME wins")
		require.Contains(t, services, "deployment.environment=staging eu")
		require.Equal(t, []string{"/custom/path"}, paths)
		require.Equal(t, []string{"Bearer s3cret"}, col.auth, "OTEL_EXPORTER_OTLP_HEADERS are sent")
	})
	t.Run("spans keep their parents and attributes", func(t *testing.T) {
		t.Parallel()
		col := newCollector(t)
		tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL}), "2.0.0", io.Discard)
		require.NoError(t, err)
		makeSpans(tr)
		require.NoError(t, tr.Shutdown(context.Background()))
		col.mu.Lock()
		defer col.mu.Unlock()
		byName := map[string]*tracepb.Span{}
		for _, req := range col.requests {
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						byName[s.Name] = s
					}
				}
			}
		}
		root, tool := byName["root"], byName["execute_tool get_task"]
		require.NotNil(t, root)
		require.NotNil(t, tool)
		require.Equal(t, root.TraceId, tool.TraceId)
		require.Equal(t, root.SpanId, tool.ParentSpanId)
		require.Empty(t, root.ParentSpanId)
		require.Len(t, tool.TraceId, 16)
		require.Equal(t, tracepb.Span_SPAN_KIND_INTERNAL, tool.Kind)
		require.Positive(t, tool.EndTimeUnixNano-tool.StartTimeUnixNano+1)
		attrs := map[string]string{}
		for _, a := range tool.Attributes {
			attrs[a.Key] = a.Value.GetStringValue()
		}
		require.Equal(t, "get_task", attrs["gen_ai.tool.name"])
	})
}

func TestSetup_ConsoleExporterWritesSpans(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), "2.0.0", &out)
	require.NoError(t, err)
	makeSpans(tr)
	require.NoError(t, tr.Shutdown(context.Background()))
	require.Contains(t, out.String(), `"Name":"execute_tool get_task"`)
}

func TestSetup_RefusesWhatItCannotHonour(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"grpc":             {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		"grpc for traces":  {map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		"unknown exporter": {map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		"not a URL":        {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		"bad timeout":      {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		"bad compression":  {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"},
		"bad attributes":   {map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := tracing.Setup(context.Background(), env(tc.vars), "2.0.0", io.Discard)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestSetup_LeavesTheGlobalProviderAlone(t *testing.T) {
	t.Parallel()
	tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), "2.0.0", io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, tr.Shutdown(context.Background())) }()
	_, span := otel.Tracer("test").Start(context.Background(), "x")
	require.False(t, span.IsRecording(), "the global provider stays a no-op: the program sets it, not Setup")
}

// recorder is an SDK provider with an in-memory exporter.
func recorder(t *testing.T) (*tracing.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.With(tp), exp
}

func TestLogHandler_TraceAndSpanIDsInsideATrace(t *testing.T) {
	t.Parallel()
	tr, _ := recorder(t)
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	ctx, span := tr.Provider().Tracer("test").Start(context.Background(), "root")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	sc := span.SpanContext()
	require.Contains(t, lines[0], `"trace_id":"`+sc.TraceID().String()+`"`)
	require.Contains(t, lines[0], `"span_id":"`+sc.SpanID().String()+`"`)
	require.Contains(t, lines[0], `"component":"test"`)
	for _, l := range lines[1:] {
		require.NotContains(t, l, "trace_id")
		require.NotContains(t, l, "span_id")
	}
}

func TestStartToolCall(t *testing.T) {
	t.Parallel()
	t.Run("outside a trace it does nothing", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		got, end := tracing.StartToolCall(ctx, "get_task")
		require.Equal(t, ctx, got)
		end(errors.New("ignored"))
	})
	t.Run("inside a trace it is a child span with the error", func(t *testing.T) {
		t.Parallel()
		tr, exp := recorder(t)
		ctx, root := tr.Provider().Tracer("test").Start(context.Background(), "root")
		toolCtx, end := tracing.StartToolCall(ctx, "update_task_status")
		require.True(t, trace.SpanFromContext(toolCtx).IsRecording())
		end(errors.New("task 7 does not exist"))
		root.End()
		spans := exp.GetSpans()
		require.Len(t, spans, 2)
		tool := spans[0]
		require.Equal(t, "execute_tool update_task_status", tool.Name)
		require.Equal(t, root.SpanContext().SpanID(), tool.Parent.SpanID())
		require.Equal(t, "task 7 does not exist", tool.Status.Description)
	})
}

func TestTransport(t *testing.T) {
	t.Parallel()
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	base := http.DefaultTransport
	require.Equal(t, base, tracing.Off().Transport(base), "off: the transport is the one given")

	tr, exp := recorder(t)
	ctx, root := tr.Provider().Tracer("test").Start(context.Background(), "delivery")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/hooks/42", nil)
	require.NoError(t, err)
	res, err := (&http.Client{Transport: tr.Transport(nil)}).Do(req)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	root.End()
	require.Contains(t, got.Get("traceparent"), root.SpanContext().TraceID().String(), "the receiver gets the trace")
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	require.Equal(t, "HTTP POST", spans[0].Name, "named by the method, not the URL")
	require.Equal(t, root.SpanContext().SpanID(), spans[0].Parent.SpanID())
}
