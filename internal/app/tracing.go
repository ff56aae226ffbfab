package app

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"enterprise-automation/internal/tracing"
)

// startTracing sets up tracing from the OTEL_* variables (off when they ask for none),
// unless Tracing was given, and returns the function that flushes the spans not yet
// exported: call it on exit, after everything that makes spans has stopped.
func (p *Program) startTracing(ctx context.Context, log *slog.Logger) (flush func(), err error) {
	if p.Tracing != nil {
		p.tracing = p.Tracing
		return func() {}, nil
	}
	t, err := tracing.Setup(ctx, p.Getenv, Version, p.Stdout)
	if err != nil {
		return nil, err
	}
	p.tracing = t
	if !t.Enabled() {
		return func() {}, nil
	}
	// Every instrumented piece is handed the provider; the global one is for libraries
	// that take no provider. Off, it stays OpenTelemetry's no-op.
	otel.SetTracerProvider(t.Provider())
	otel.SetTextMapPropagator(tracing.Propagator)
	log.Info("tracing on: spans are exported as the OTEL_* variables say")
	return func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(flushCtx); err != nil {
			log.Warn("flushing traces", "error", err)
		}
	}, nil
}
