package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestCreateRunsHandEachJobItsOwnOrigin: one batch creates the runs of several requests
// under one context, and each run's job is enqueued with the trace of its own request
// (none for a request outside a trace), in the order of the enqueued runs.
func TestCreateRunsHandEachJobItsOwnOrigin(t *testing.T) {
	t.Parallel()
	svc, _, q, actor, a := newTestService(t)
	origin := func(n byte) context.Context {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{n, 1}, SpanID: trace.SpanID{n, 2}, TraceFlags: trace.FlagsSampled})
		return trace.ContextWithSpanContext(context.Background(), sc)
	}
	rs := []newRun{
		{agentID: a.ID, input: "one", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID, origin: origin(1)},
		{agentID: a.ID, input: "two", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID},
		{agentID: a.ID, input: "three", model: "m", metadata: []byte(`{}`), createdBy: actor.UserID, origin: origin(3)},
	}
	// The batch's own context is a fourth trace: no job may take it.
	out, err := svc.createRuns(origin(9), rs)
	require.NoError(t, err)
	require.Len(t, q.enqueued(), 3)
	require.Equal(t, []int64{out[0].run.ID, out[1].run.ID, out[2].run.ID}, q.enqueued())
	require.Len(t, q.origins, 3)
	require.Equal(t, trace.TraceID{1, 1}, trace.SpanContextFromContext(q.origins[0]).TraceID())
	require.Nil(t, q.origins[1])
	require.Equal(t, trace.TraceID{3, 1}, trace.SpanContextFromContext(q.origins[2]).TraceID())
}
