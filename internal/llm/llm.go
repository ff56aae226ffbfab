// Package llm talks to an OpenAI-compatible chat-completions API (OpenAI, Azure OpenAI,
// Ollama, vLLM) through the official SDK: it streams a completion, collects text and
// tool calls, measures usage and latency, and classifies failures as transient (worth a
// retry) or permanent.
package llm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Config configures a Client.
type Config struct {
	APIKey  string
	BaseURL string        // empty means OpenAI's
	Timeout time.Duration // per completion, including the whole stream
}

// Client streams chat completions. The zero value is unconfigured.
type Client struct {
	api     openai.Client
	timeout time.Duration
	ok      bool
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
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	return &Client{api: openai.NewClient(opts...), timeout: cfg.Timeout, ok: true}
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
}

// ToolCall is a function call the model asked for.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string // JSON, as the model wrote it
}

// Usage counts tokens.
type Usage struct {
	PromptTokens, CompletionTokens, TotalTokens int64
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.PromptTokens + o.PromptTokens, u.CompletionTokens + o.CompletionTokens, u.TotalTokens + o.TotalTokens}
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
}

// Error is a failed completion, with a stable code for the run's error field.
type Error struct {
	Code      string // llm_rate_limited, llm_server_error, llm_timeout, llm_unavailable, llm_auth_failed, llm_bad_request
	Message   string
	Transient bool
	Err       error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Stream runs one completion, calling onDelta with each piece of output text as it
// arrives. It returns *Error for provider failures, or ctx's error when ctx ends first.
func (c *Client) Stream(ctx context.Context, req Request, onDelta func(string)) (Result, error) {
	if !c.Configured() {
		return Result{}, &Error{Code: "llm_not_configured", Message: "no API key"}
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	defer cancel()
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
	start := time.Now()
	stream := c.api.Chat.Completions.NewStreaming(callCtx, params)
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		for _, ch := range chunk.Choices {
			if ch.Delta.Content != "" && onDelta != nil {
				onDelta(ch.Delta.Content)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return Result{}, c.classify(ctx, callCtx, err)
	}
	if len(acc.Choices) == 0 {
		return Result{}, &Error{Code: "llm_bad_response", Message: "the model returned no choices", Transient: true}
	}
	msg := acc.Choices[0].Message
	res := Result{
		Content:      msg.Content,
		Model:        acc.Model,
		FinishReason: acc.Choices[0].FinishReason,
		Latency:      time.Since(start),
		Usage:        Usage{acc.Usage.PromptTokens, acc.Usage.CompletionTokens, acc.Usage.TotalTokens},
		Message:      msg.ToParam(),
	}
	for _, tc := range msg.ToolCalls {
		res.ToolCalls = append(res.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
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
		return &Error{Code: "llm_timeout", Message: fmt.Sprintf("no complete answer within %s", c.timeout), Transient: true, Err: err}
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		msg = fmt.Sprintf("HTTP %d: %s", apiErr.StatusCode, msg)
		switch {
		case apiErr.StatusCode == http.StatusTooManyRequests:
			return &Error{Code: "llm_rate_limited", Message: msg, Transient: true, Err: err}
		case apiErr.StatusCode == http.StatusRequestTimeout || apiErr.StatusCode >= 500:
			return &Error{Code: "llm_server_error", Message: msg, Transient: true, Err: err}
		case apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden:
			return &Error{Code: "llm_auth_failed", Message: msg, Err: err}
		default:
			return &Error{Code: "llm_bad_request", Message: msg, Err: err}
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: "llm_unavailable", Message: err.Error(), Transient: true, Err: err}
	}
	// A stream cut off mid-way or an unreadable body: worth another try.
	return &Error{Code: "llm_unavailable", Message: err.Error(), Transient: true, Err: err}
}
