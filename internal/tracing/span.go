package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of the spans this module makes itself.
const scope = "enterprise-automation"

// tracer returns the tracer of the provider behind ctx's span, or nil when ctx holds no
// recording span: spans are made only inside a trace (an HTTP request, a job), by the
// provider that started it, so nothing here needs a global.
func tracer(ctx context.Context) trace.Tracer {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return nil
	}
	return span.TracerProvider().Tracer(scope)
}

// StartToolCall starts the span of one agent tool call (execute_tool NAME, with the
// gen_ai tool attributes), and returns the context to run the tool in and the function
// that ends the span with the tool's error (nil for success). Outside a trace it returns
// ctx and a no-op.
func StartToolCall(ctx context.Context, name string) (context.Context, func(error)) {
	t := tracer(ctx)
	if t == nil {
		return ctx, func(error) {}
	}
	ctx, span := t.Start(ctx, "execute_tool "+name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", name)))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// ModelCall is the span of one model call; its methods do nothing outside a trace.
type ModelCall struct{ span trace.Span }

// StartModelCall starts the span of one chat completion (chat MODEL, kind client, with
// the gen_ai request attributes; provider names the API, such as openai).
func StartModelCall(ctx context.Context, provider, model string) (context.Context, ModelCall) {
	t := tracer(ctx)
	if t == nil {
		return ctx, ModelCall{}
	}
	ctx, span := t.Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", provider),
		attribute.String("gen_ai.system", provider),
		attribute.String("gen_ai.request.model", model),
	))
	return ctx, ModelCall{span: span}
}

// ModelResult is what a finished model call reports on its span.
type ModelResult struct {
	ResponseModel             string
	InputTokens, OutputTokens int64
	FinishReason              string
	Cached                    bool
	ErrorType                 string // a stable code for a failure (error.type)
}

// End ends the span with the call's result, and err (nil for success).
func (m ModelCall) End(res ModelResult, err error) {
	if m.span == nil {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.Int64("gen_ai.usage.input_tokens", res.InputTokens),
		attribute.Int64("gen_ai.usage.output_tokens", res.OutputTokens),
	}
	if res.ResponseModel != "" {
		attrs = append(attrs, attribute.String("gen_ai.response.model", res.ResponseModel))
	}
	if res.FinishReason != "" {
		attrs = append(attrs, attribute.StringSlice("gen_ai.response.finish_reasons", []string{res.FinishReason}))
	}
	if res.Cached {
		attrs = append(attrs, attribute.Bool("app.llm.cached", true))
	}
	if err != nil {
		if res.ErrorType != "" {
			attrs = append(attrs, attribute.String("error.type", res.ErrorType))
		}
		m.span.RecordError(err)
		m.span.SetStatus(codes.Error, err.Error())
	}
	m.span.SetAttributes(attrs...)
	m.span.End()
}

// Origin is the trace context of ctx alone, detached from ctx's values and cancellation,
// to be carried to work done later for it (a job inserted by a batch that runs under
// another request's context); nil outside a trace.
func Origin(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// Carrier is trace context as W3C headers (traceparent, tracestate), empty outside a trace.
func Carrier(ctx context.Context) map[string]string {
	if ctx == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c
}

// Extract returns ctx with the remote parent that carrier (W3C headers) names, or ctx
// as it is when it names none.
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	if len(carrier) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(carrier))
}
