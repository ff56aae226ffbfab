// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* variables and
// holds the small pieces the instrumented packages share: the propagator, a span per
// agent tool call and per model call, an instrumented HTTP transport, trace ids in log
// lines.
//
// Tracing is off unless the environment asks for it (OTEL_TRACES_EXPORTER, or an OTLP
// endpoint): then nothing is exported, no instrumentation is installed on the HTTP
// server, the database pool, the job queue or the model client, and the helpers here
// cost one context lookup each (they find no recording span and return).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is service.name when OTEL_SERVICE_NAME does not say otherwise.
const ServiceName = "enterprise-automation"

// Propagator carries trace context across processes: W3C traceparent/tracestate and
// baggage, in HTTP headers and in job metadata.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Tracing is the process's tracer provider. The zero value (and Off) traces nothing.
type Tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Off is tracing turned off: a no-op provider, nothing installed.
func Off() *Tracing { return &Tracing{} }

// With traces into provider (tests pass an SDK provider with an in-memory exporter);
// Shutdown does not stop it: its owner does.
func With(provider trace.TracerProvider) *Tracing {
	return &Tracing{provider: provider}
}

// Enabled reports whether spans are recorded; instrumentation is installed only then.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Provider returns the tracer provider: a no-op one when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Shutdown flushes the spans not yet exported and stops the exporter; a no-op when
// tracing is off or the provider is not its own. It returns the exporter's error.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Setup builds the tracer provider the environment asks for, reading the standard
// variables with getenv:
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off.
//   - OTEL_TRACES_EXPORTER: a comma-separated list of otlp and console (spans as JSON on
//     stdout). Unset, tracing is on with otlp when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and off otherwise.
//   - OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT: where OTLP goes, over HTTP with protobuf (the
//     only protocol built in: OTEL_EXPORTER_OTLP_PROTOCOL may say http/protobuf or
//     nothing), with OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT and _COMPRESSION.
//   - OTEL_SERVICE_NAME (default enterprise-automation) and OTEL_RESOURCE_ATTRIBUTES
//     describe the service; service.version is version.
//   - OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* are read by the SDK itself (default:
//     every trace, parent-based).
//
// It returns an error naming the variable for a value it cannot honour.
func Setup(ctx context.Context, getenv func(string) string, version string, stdout io.Writer) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Off(), nil
	}
	endpoint, signalEndpoint := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	exporters := getenv("OTEL_TRACES_EXPORTER")
	if strings.TrimSpace(exporters) == "" {
		if endpoint == "" && signalEndpoint == "" {
			return Off(), nil
		}
		exporters = "otlp"
	}
	var opts []sdktrace.TracerProviderOption
	for name := range strings.SplitSeq(exporters, ",") {
		switch strings.TrimSpace(strings.ToLower(name)) {
		case "none":
			return Off(), nil
		case "otlp":
			exp, err := otlpExporter(getenv, endpoint, signalEndpoint)
			if err != nil {
				return nil, err
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		case "console":
			exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
			if err != nil {
				return nil, fmt.Errorf("tracing: console exporter: %w", err)
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		case "":
		default:
			return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER: %q is not supported (want otlp, console or none)", name)
		}
	}
	res, err := serviceResource(getenv, version)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	return &Tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

// otlpExporter is the OTLP exporter over HTTP with protobuf.
func otlpExporter(getenv func(string) string, endpoint, signalEndpoint string) (sdktrace.SpanExporter, error) {
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, name = getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	if protocol != "" && protocol != "http/protobuf" {
		return nil, fmt.Errorf("tracing: %s: %q is not built in (use http/protobuf: a collector serves it on port 4318)", name, protocol)
	}
	target := "http://localhost:4318/v1/traces" // the specification's default
	switch {
	case signalEndpoint != "":
		target, name = signalEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	case endpoint != "":
		target, name = strings.TrimSuffix(endpoint, "/")+"/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT"
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: %s: want an http(s) URL, got %q", name, target)
	}
	return newOTLPHTTP(getenv, target)
}

// serviceResource describes this service: service.name, service.version and the
// attributes of OTEL_RESOURCE_ATTRIBUTES (key=value pairs, comma-separated,
// percent-encoded values).
func serviceResource(getenv func(string) string, version string) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	if raw := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); raw != "" {
		for pair := range strings.SplitSeq(raw, ",") {
			k, v, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", pair)
			}
			val, err := url.PathUnescape(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %q: %w", pair, err)
			}
			attrs = append(attrs, attribute.String(k, val))
		}
	}
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if name == "" {
		name = ServiceName
		for _, a := range attrs {
			if a.Key == "service.name" {
				name = a.Value.AsString()
			}
		}
	}
	attrs = append(attrs, attribute.String("service.name", name), attribute.String("service.version", version))
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}
