package store

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryLog is DATABASE_ECHO: a pgx tracer that logs every statement's SQL at DEBUG level
// once it finishes, with its duration, command tag and error. Arguments are never
// logged: they carry password hashes, token hashes and personal data.
type queryLog struct{ log *slog.Logger }

type queryStartKey struct{}

type queryStart struct {
	sql   string
	start time.Time
}

// TraceQueryStart implements pgx.QueryTracer.
func (q queryLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{sql: data.SQL, start: time.Now()})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (q queryLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	st, _ := ctx.Value(queryStartKey{}).(queryStart)
	attrs := []slog.Attr{
		slog.String("sql", compactSQL(st.sql)),
		slog.Float64("duration_ms", float64(time.Since(st.start).Microseconds())/1000),
		slog.String("command", data.CommandTag.String()),
	}
	if data.Err != nil {
		attrs = append(attrs, slog.String("error", data.Err.Error()))
	}
	q.log.LogAttrs(ctx, slog.LevelDebug, "sql", attrs...)
}

// compactSQL folds a statement's white space onto one line, so that each statement is
// one log line.
func compactSQL(sql string) string { return strings.Join(strings.Fields(sql), " ") }
