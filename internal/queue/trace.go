package queue

import (
	"context"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"

	"enterprise-automation/internal/tracing"
)

// traceMiddleware is the queue's tracing: traceParent makes each job's span a child of
// the trace that created the job, then River's OpenTelemetry middleware spans the work.
// Nil when tracing is off.
func traceMiddleware(t *tracing.Tracing) []rivertype.Middleware {
	if !t.Enabled() {
		return nil
	}
	return []rivertype.Middleware{
		&traceParent{},
		// River's own propagation would stamp every job of a batch insert with the
		// batch's one context and only link the work to it; TraceMetadata carries
		// each job's own request instead.
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{TracerProvider: t.Provider(), EnableWorkSpanJobKindSuffix: true}),
	}
}

// TraceMetadata is job metadata carrying the trace context of origin (the request that
// created the job), for river.InsertOpts.Metadata: any job inserted with it is worked as
// a child of origin's span, in its trace. Nil outside a trace (or with tracing off).
func TraceMetadata(origin context.Context) []byte {
	c := tracing.Carrier(origin)
	if len(c) == 0 {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil
	}
	return b
}

// traceParent is a work middleware that puts the trace context a job's metadata carries
// into the context it is worked in: the job's spans join the trace of the request that
// created it, however long after.
type traceParent struct{ river.MiddlewareDefaults }

func (*traceParent) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	var carrier map[string]string
	if len(job.Metadata) > 0 {
		var meta map[string]any
		if json.Unmarshal(job.Metadata, &meta) == nil {
			for _, k := range []string{"traceparent", "tracestate", "baggage"} {
				if v, ok := meta[k].(string); ok {
					if carrier == nil {
						carrier = map[string]string{}
					}
					carrier[k] = v
				}
			}
		}
	}
	return doInner(tracing.Extract(ctx, carrier))
}
