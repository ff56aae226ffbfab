// Package llm talks to an OpenAI-compatible chat-completions API (OpenAI, Azure OpenAI,
// Ollama, vLLM) through the official SDK: it streams a completion, collects text and
// tool calls, measures usage and latency, and classifies failures as transient (worth a
// retry) or permanent.
package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/metrics"
	"enterprise-automation/internal/tracing"
)

// Config configures a Client.
type Config struct {
	APIKey  string
	BaseURL string        // empty means OpenAI's
	Timeout time.Duration // per completion, including the whole stream
	// Concurrency is how many completions may be in flight at once (the worker count):
	// as many connections are kept open for reuse. 0 means 16.
	Concurrency int
	// Cache keeps answers to identical requests at temperature 0 for CacheTTL (nil or
	// 0: no caching). The key hashes the whole request: model, messages, tools, params.
	Cache    cache.Cache
	CacheTTL time.Duration
	Metrics  *metrics.Metrics
	// Tracing, when enabled, makes each request to the provider a client span (nil: off).
	Tracing *tracing.Tracing
}

// Client streams chat completions. The zero value is unconfigured.
type Client struct {
	api      openai.Client
	timeout  time.Duration
	ok       bool
	cache    cache.Cache
	cacheTTL time.Duration
	metrics  *metrics.Metrics
}

// New builds a Client; without an API key it is unconfigured (see Configured).
func New(cfg Config) *Client {
	if cfg.APIKey == "" {
		return &Client{}
	}
	opts := []option.RequestOption{
		option.WithAPIKey(cfg.APIKey),
		// Retries are the job queue's business: it backs off and records each attempt.
		option.WithMaxRetries(0),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	// The default transport keeps two idle connections per host: with more concurrent
	// completions than that, every other request would open (and TLS-handshake) a new one.
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = cfg.Concurrency, cfg.Concurrency
	opts = append(opts, option.WithHTTPClient(&http.Client{Transport: cfg.Tracing.Transport(transport)}))
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	c := &Client{api: openai.NewClient(opts...), timeout: cfg.Timeout, ok: true, metrics: cfg.Metrics}
	if cfg.Cache != nil && cfg.CacheTTL > 0 {
		c.cache, c.cacheTTL = cfg.Cache, cfg.CacheTTL
	}
	return c
}

// Configured reports whether an API key was given.
func (c *Client) Configured() bool { return c != nil && c.ok }

// Request is one chat completion request.
type Request struct {
	Model       string
	Temperature float64
	MaxTokens   *int64
	Messages    []openai.ChatCompletionMessageParamUnion
	Tools       []openai.ChatCompletionToolUnionParam
	// OutputSchema, when set, asks for an answer in JSON matching this JSON Schema
	// (response_format json_schema).
	OutputSchema json.RawMessage
}

// ToolCall is a function call the model asked for.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string // JSON, as the model wrote it
}

// Usage counts tokens, and the completions answered from the cache (which cost none).
type Usage struct {
	PromptTokens, CompletionTokens, TotalTokens int64
	CachedCompletions                           int64
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.PromptTokens + o.PromptTokens, u.CompletionTokens + o.CompletionTokens, u.TotalTokens + o.TotalTokens,
		u.CachedCompletions + o.CachedCompletions}
}

// Result is a finished completion.
type Result struct {
	Content      string
	ToolCalls    []ToolCall
	Usage        Usage
	Model        string
	FinishReason string
	Latency      time.Duration
	// Message is the assistant message to append to the conversation.
	Message openai.ChatCompletionMessageParamUnion
	// Cached tells that the answer came from the cache; Usage is then zero but for
	// CachedCompletions.
	Cached bool
}

// Error is a failed completion, with a stable code for the run's error field.
type Error struct {
	Code string // llm_rate_limited, llm_server_error, llm_timeout, llm_unavailable, llm_auth_failed, llm_bad_request
	// Message says in words what failed, for the run's public error: it never holds the
	// provider's host or URL, nor the transport's raw error text (those are in Err).
	Message   string
	Transient bool
	Err       error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Detail is the whole failure, cause included, for the log (never for clients: the
// cause may name internal hosts).
func (e *Error) Detail() string {
	if e.Err == nil {
		return e.Error()
	}
	return e.Error() + ": " + e.Err.Error()
}

// Stream runs one completion, calling onDelta with each piece of output text as it
// arrives. It returns *Error for provider failures, or ctx's error when ctx ends first.
func (c *Client) Stream(ctx context.Context, req Request, onDelta func(string)) (Result, error) {
	if !c.Configured() {
		return Result{}, &Error{Code: "llm_not_configured", Message: "no API key"}
	}
	ctx, span := tracing.StartModelCall(ctx, provider, req.Model)
	res, err := c.streamTraced(ctx, req, onDelta)
	traced := tracing.ModelResult{ResponseModel: res.Model, InputTokens: res.Usage.PromptTokens,
		OutputTokens: res.Usage.CompletionTokens, FinishReason: res.FinishReason, Cached: res.Cached}
	var le *Error
	if errors.As(err, &le) {
		traced.ErrorType = le.Code
	}
	span.End(traced, err)
	return res, err
}

// provider names the API for traces (gen_ai.provider.name): every provider this client
// talks to speaks OpenAI's.
const provider = "openai"

// streamTraced is Stream within its span.
func (c *Client) streamTraced(ctx context.Context, req Request, onDelta func(string)) (Result, error) {
	callCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	defer cancel()
	params := sdkParams(req)
	key := c.cacheKey(req, params)
	if key != "" {
		if res, ok := c.cached(ctx, key); ok {
			if onDelta != nil && res.Content != "" {
				onDelta(res.Content)
			}
			c.metrics.LLMCompletion(req.Model, "cached", res.Latency, 0, 0)
			return res, nil
		}
	}
	res, err := c.stream(ctx, callCtx, req, params, onDelta)
	if err != nil {
		c.metrics.LLMCompletion(req.Model, "error", res.Latency, 0, 0)
		return Result{}, err
	}
	c.metrics.LLMCompletion(req.Model, "ok", res.Latency, res.Usage.PromptTokens, res.Usage.CompletionTokens)
	if key != "" {
		c.store(ctx, key, res)
	}
	return res, nil
}

// sdkParams is req as the SDK's request parameters (the cache key hashes them).
func sdkParams(req Request) openai.ChatCompletionNewParams {
	params := openai.ChatCompletionNewParams{
		Model:         req.Model,
		Messages:      req.Messages,
		Temperature:   openai.Float(req.Temperature),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	if req.MaxTokens != nil {
		params.MaxCompletionTokens = openai.Int(*req.MaxTokens)
	}
	if len(req.Tools) > 0 {
		params.Tools = req.Tools
	}
	if len(req.OutputSchema) > 0 {
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "output", Schema: req.OutputSchema},
		}}
	}
	return params
}

// cachedAnswer is what the cache keeps of a completion.
type cachedAnswer struct {
	Content      string     `json:"content"`
	ToolCalls    []ToolCall `json:"tool_calls"`
	Model        string     `json:"model"`
	FinishReason string     `json:"finish_reason"`
}

// cacheKey hashes the complete request; empty when the answer must not be cached (no
// cache, or a temperature above 0, where the same request may rightly answer differently).
func (c *Client) cacheKey(req Request, params openai.ChatCompletionNewParams) string {
	if c.cache == nil || req.Temperature != 0 {
		return ""
	}
	b, err := json.Marshal(params)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "llm:" + hex.EncodeToString(sum[:])
}

func (c *Client) cached(ctx context.Context, key string) (Result, bool) {
	start := time.Now()
	b, err := c.cache.Get(ctx, key)
	if err != nil {
		c.metrics.CacheLookup("llm", false)
		return Result{}, false
	}
	var a cachedAnswer
	if json.Unmarshal(b, &a) != nil {
		c.metrics.CacheLookup("llm", false)
		return Result{}, false
	}
	c.metrics.CacheLookup("llm", true)
	msg := openai.ChatCompletionMessage{Content: a.Content, Role: "assistant"}
	for _, tc := range a.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, openai.ChatCompletionMessageToolCallUnion{
			ID: tc.ID, Type: "function",
			Function: openai.ChatCompletionMessageFunctionToolCallFunction{Name: tc.Name, Arguments: tc.Arguments},
		})
	}
	return Result{
		Content: a.Content, ToolCalls: a.ToolCalls, Model: a.Model, FinishReason: a.FinishReason,
		Latency: time.Since(start), Usage: Usage{CachedCompletions: 1}, Message: msg.ToParam(), Cached: true,
	}, true
}

func (c *Client) store(ctx context.Context, key string, res Result) {
	if res.FinishReason != "stop" && res.FinishReason != "tool_calls" {
		return // a truncated or filtered answer is not worth repeating
	}
	b, err := json.Marshal(cachedAnswer{Content: res.Content, ToolCalls: res.ToolCalls, Model: res.Model, FinishReason: res.FinishReason})
	if err == nil {
		_ = c.cache.Fill(context.WithoutCancel(ctx), key, b, c.cacheTTL)
	}
}

// stream runs the completion against the provider.
func (c *Client) stream(ctx, callCtx context.Context, req Request, params openai.ChatCompletionNewParams, onDelta func(string)) (Result, error) {
	start := time.Now()
	body, err := requestBody(req, params)
	if err != nil {
		return Result{Latency: time.Since(start)}, &Error{Code: "llm_bad_request", Message: "the request could not be encoded", Err: err}
	}
	acc, err := c.send(callCtx, body, onDelta)
	if err != nil {
		return Result{Latency: time.Since(start)}, c.classify(ctx, callCtx, err)
	}
	if !acc.choices {
		return Result{Latency: time.Since(start)}, &Error{Code: "llm_bad_response", Message: "the model returned no choices", Transient: true}
	}
	res := Result{
		Content:      acc.content.String(),
		ToolCalls:    acc.calls,
		Model:        acc.model,
		FinishReason: acc.finish,
		Latency:      time.Since(start),
		Usage:        acc.usage,
	}
	msg := openai.ChatCompletionMessage{Content: res.Content, Role: "assistant"}
	for _, tc := range res.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, openai.ChatCompletionMessageToolCallUnion{
			ID: tc.ID, Type: "function",
			Function: openai.ChatCompletionMessageFunctionToolCallFunction{Name: tc.Name, Arguments: tc.Arguments},
		})
	}
	res.Message = msg.ToParam()
	return res, nil
}

var errTimeout = errors.New("llm: completion timed out")

// classify turns an SDK or transport error into *Error, unless the caller's own context
// ended (then its error is returned as is).
func (c *Client) classify(parent, call context.Context, err error) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	if errors.Is(context.Cause(call), errTimeout) {
		return &Error{Code: "llm_timeout", Message: fmt.Sprintf("the model provider gave no complete answer within %s", c.timeout),
			Transient: true, Err: err}
	}
	// The messages below are public (the run's error): they say what failed in words.
	// The SDK's and the transport's own texts name the provider's URL and host, and stay
	// in Err for the log.
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		code := apiErr.StatusCode
		switch {
		case code == http.StatusTooManyRequests:
			return &Error{Code: "llm_rate_limited", Message: "the model provider answered 429: too many requests", Transient: true, Err: err}
		case code == http.StatusRequestTimeout || code >= 500:
			return &Error{Code: "llm_server_error", Message: fmt.Sprintf("the model provider answered %d: a server-side failure", code),
				Transient: true, Err: err}
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return &Error{Code: "llm_auth_failed", Message: fmt.Sprintf("the model provider answered %d: check OPENAI_API_KEY", code), Err: err}
		default:
			// The provider's explanation of a refused request is what the agent's owner
			// needs (an unknown model, a bad parameter); addresses in it are cut out.
			msg := fmt.Sprintf("the model provider answered %d: the request was refused", code)
			if reason := providerReason(apiErr.Message); reason != "" {
				msg += " (" + reason + ")"
			}
			return &Error{Code: "llm_bad_request", Message: msg, Err: err}
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: "llm_unavailable", Message: "the model provider could not be reached", Transient: true, Err: err}
	}
	// A stream cut off mid-way or an unreadable body: worth another try.
	return &Error{Code: "llm_unavailable", Message: "the model provider's answer broke off or could not be read", Transient: true, Err: err}
}

// addressLike matches URLs, host:port pairs, IP addresses and dotted host names.
var addressLike = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*://\S*|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|\[[0-9a-f:]+\](:\d+)?|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?\b|\b[a-z0-9-]+:\d{2,5}\b`)

// providerReason is a provider's error message fit for the public: addresses replaced,
// control characters dropped, at most 200 characters.
func providerReason(msg string) string {
	msg = addressLike.ReplaceAllString(msg, "[address]")
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(msg)
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	return msg
}
