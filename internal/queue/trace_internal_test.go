package queue

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestJobTraceContext: a job's metadata carries its origin's traceparent, and the work
// middleware makes it the remote parent of the job's context; without one the context
// is left as it is.
func TestJobTraceContext(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7, 7}, SpanID: trace.SpanID{8, 8}, TraceFlags: trace.FlagsSampled})
	meta := TraceMetadata(trace.ContextWithSpanContext(context.Background(), sc))
	var m map[string]string
	require.NoError(t, json.Unmarshal(meta, &m))
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", m["traceparent"])
	var none context.Context
	require.Nil(t, TraceMetadata(none), "no origin, no metadata")
	require.Nil(t, TraceMetadata(context.Background()), "an origin outside a trace, no metadata")

	work := func(metadata string) trace.SpanContext {
		var got trace.SpanContext
		err := (&traceParent{}).Work(context.Background(), &rivertype.JobRow{Metadata: []byte(metadata)}, func(ctx context.Context) error {
			got = trace.SpanContextFromContext(ctx)
			return nil
		})
		require.NoError(t, err)
		return got
	}
	got := work(`{"other":1,"traceparent":"` + m["traceparent"] + `"}`)
	require.Equal(t, sc.TraceID(), got.TraceID())
	require.Equal(t, sc.SpanID(), got.SpanID())
	require.True(t, got.IsRemote())
	require.False(t, work(`{}`).IsValid())
	require.False(t, work(`not json`).IsValid())
	require.False(t, work(`{"traceparent":"garbage"}`).IsValid())
}
