package store

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
)

// sqlTracer spans statements with otelpgx, but only those run inside a trace (an HTTP
// request, a job): the queue's polling, notifications and clean-ups would otherwise make
// a root trace of every statement. Spans are named by the SQL operation and carry the
// statement, never its arguments.
type sqlTracer struct{ t *otelpgx.Tracer }

func newSQLTracer(tp trace.TracerProvider) sqlTracer {
	return sqlTracer{otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithDisableConnectionDetailsInAttributes())}
}

// traced reports whether ctx is inside a recording trace. At the end of a statement the
// context holds the statement's own span when its start was traced, and the caller's
// (not recording) otherwise.
func traced(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// TraceQueryStart implements pgx.QueryTracer.
func (s sqlTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !traced(ctx) {
		return ctx
	}
	return s.t.TraceQueryStart(ctx, conn, data)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (s sqlTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if traced(ctx) {
		s.t.TraceQueryEnd(ctx, conn, data)
	}
}

// TraceBatchStart implements pgx.BatchTracer.
func (s sqlTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if !traced(ctx) {
		return ctx
	}
	return s.t.TraceBatchStart(ctx, conn, data)
}

// TraceBatchQuery implements pgx.BatchTracer.
func (s sqlTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if traced(ctx) {
		s.t.TraceBatchQuery(ctx, conn, data)
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (s sqlTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if traced(ctx) {
		s.t.TraceBatchEnd(ctx, conn, data)
	}
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (s sqlTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	if !traced(ctx) {
		return ctx
	}
	return s.t.TraceCopyFromStart(ctx, conn, data)
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (s sqlTracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if traced(ctx) {
		s.t.TraceCopyFromEnd(ctx, conn, data)
	}
}
