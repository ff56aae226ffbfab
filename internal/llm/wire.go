package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// The SDK's own request encoding and chunk decoding go through reflection-heavy
// encoders and decoders: with the zero-latency scripted model they took about a sixth of
// the server's CPU per agent run (internal/bench/FINDINGS.md, "Fourth round"). The
// requests this package builds (text messages, function tools, a JSON Schema response
// format) are written here with plain encoding/json, and the stream's chunks are read
// into a struct of the few fields a completion needs; the SDK still sends the request
// (base URL, authentication, error responses as *openai.Error). A request with parts the
// plain encoding does not know goes through the SDK's encoder.

// wireMessage is a chat message as the API takes it.
type wireMessage struct {
	Role       string         `json:"role"`
	Content    *string        `json:"content,omitempty"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type wireToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type wireTool struct {
	Type     string          `json:"type"`
	Function wireFunctionDef `json:"function"`
}

type wireFunctionDef struct {
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters,omitempty"`
}

type wireRequest struct {
	Messages            []wireMessage       `json:"messages"`
	Model               string              `json:"model"`
	MaxCompletionTokens *int64              `json:"max_completion_tokens,omitempty"`
	ResponseFormat      *wireResponseFormat `json:"response_format,omitempty"`
	Stream              bool                `json:"stream"`
	StreamOptions       wireStreamOptions   `json:"stream_options"`
	Temperature         float64             `json:"temperature"`
	Tools               []wireTool          `json:"tools,omitempty"`
}

type wireStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireResponseFormat struct {
	Type       string         `json:"type"`
	JSONSchema wireJSONSchema `json:"json_schema"`
}

type wireJSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// requestBody is the streaming request's JSON: the plain encoding when every message and
// tool is of a shape it knows, the SDK's otherwise.
func requestBody(req Request, params openai.ChatCompletionNewParams) ([]byte, error) {
	if w, ok := plainRequest(req); ok {
		return json.Marshal(w)
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	// The SDK adds "stream": true itself when it streams.
	return append(append(bytes.TrimSuffix(b, []byte("}")), []byte(`,"stream":true`)...), '}'), nil
}

// plainRequest converts req; false when some part has a shape only the SDK encodes.
func plainRequest(req Request) (wireRequest, bool) {
	w := wireRequest{Model: req.Model, Temperature: req.Temperature, MaxCompletionTokens: req.MaxTokens, Stream: true,
		StreamOptions: wireStreamOptions{IncludeUsage: true}, Messages: make([]wireMessage, 0, len(req.Messages))}
	for _, m := range req.Messages {
		wm, ok := plainMessage(m)
		if !ok {
			return wireRequest{}, false
		}
		w.Messages = append(w.Messages, wm)
	}
	for _, t := range req.Tools {
		f := t.OfFunction
		if f == nil || t.OfCustom != nil || !param.IsOmitted(f.Function.Strict) {
			return wireRequest{}, false
		}
		def := wireFunctionDef{Name: f.Function.Name, Parameters: f.Function.Parameters}
		if f.Function.Description.Valid() {
			d := f.Function.Description.Value
			def.Description = &d
		}
		w.Tools = append(w.Tools, wireTool{Type: "function", Function: def})
	}
	if len(req.OutputSchema) > 0 {
		w.ResponseFormat = &wireResponseFormat{Type: "json_schema", JSONSchema: wireJSONSchema{Name: "output", Schema: req.OutputSchema}}
	}
	return w, true
}

// plainMessage converts a system, user, assistant or tool message with text content and
// function tool calls, and no other field set.
func plainMessage(m openai.ChatCompletionMessageParamUnion) (wireMessage, bool) {
	text := func(s *string, set bool) *string {
		if !set {
			return nil
		}
		return s
	}
	switch {
	case m.OfSystem != nil:
		s := m.OfSystem
		if len(s.Content.OfArrayOfContentParts) > 0 || !s.Content.OfString.Valid() || !param.IsOmitted(s.Name) {
			return wireMessage{}, false
		}
		return wireMessage{Role: "system", Content: text(&s.Content.OfString.Value, true)}, true
	case m.OfUser != nil:
		u := m.OfUser
		if len(u.Content.OfArrayOfContentParts) > 0 || !u.Content.OfString.Valid() || !param.IsOmitted(u.Name) {
			return wireMessage{}, false
		}
		return wireMessage{Role: "user", Content: text(&u.Content.OfString.Value, true)}, true
	case m.OfTool != nil:
		t := m.OfTool
		if len(t.Content.OfArrayOfContentParts) > 0 || !t.Content.OfString.Valid() {
			return wireMessage{}, false
		}
		return wireMessage{Role: "tool", Content: text(&t.Content.OfString.Value, true), ToolCallID: t.ToolCallID}, true
	case m.OfAssistant != nil:
		a := m.OfAssistant
		// A deprecated function_call still reaches the provider: the SDK encodes it.
		if len(a.Content.OfArrayOfContentParts) > 0 || !param.IsOmitted(a.Name) || !param.IsOmitted(a.Refusal) || a.Audio.ID != "" ||
			a.FunctionCall.Name != "" { //nolint:staticcheck // checked only to leave such a message to the SDK
			return wireMessage{}, false
		}
		wm := wireMessage{Role: "assistant", Content: text(&a.Content.OfString.Value, a.Content.OfString.Valid())}
		for _, tc := range a.ToolCalls {
			f := tc.OfFunction
			if f == nil {
				return wireMessage{}, false
			}
			wm.ToolCalls = append(wm.ToolCalls, wireToolCall{ID: f.ID, Type: "function",
				Function: wireFunction{Name: f.Function.Name, Arguments: f.Function.Arguments}})
		}
		return wm, true
	}
	return wireMessage{}, false
}

// wireChunk is what a completion needs of one streamed chunk.
type wireChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   string `json:"content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// streamError is an error event in the stream.
type streamError struct{ data string }

func (e *streamError) Error() string { return "received error while streaming: " + e.data }

// completion accumulates the first choice of a streamed completion.
type completion struct {
	model, finish string
	content       strings.Builder
	calls         []ToolCall
	usage         Usage
	choices       bool
}

func (c *completion) add(ch *wireChunk) {
	if ch.Model != "" {
		c.model = ch.Model
	}
	if ch.Usage != nil {
		c.usage = Usage{PromptTokens: ch.Usage.PromptTokens, CompletionTokens: ch.Usage.CompletionTokens, TotalTokens: ch.Usage.TotalTokens}
	}
	for i := range ch.Choices {
		choice := &ch.Choices[i]
		if choice.Index != 0 {
			continue
		}
		c.choices = true
		c.content.WriteString(choice.Delta.Content)
		if choice.FinishReason != "" {
			c.finish = choice.FinishReason
		}
		for _, tc := range choice.Delta.ToolCalls {
			for len(c.calls) <= tc.Index {
				c.calls = append(c.calls, ToolCall{})
			}
			call := &c.calls[tc.Index]
			if tc.ID != "" {
				call.ID = tc.ID
			}
			if tc.Function.Name != "" {
				call.Name = tc.Function.Name
			}
			call.Arguments += tc.Function.Arguments
		}
	}
}

// send posts the streaming request and reads its chunks, calling onDelta with each piece
// of text; errors are the SDK's (*openai.Error for an error response), the transport's,
// or a *streamError.
func (c *Client) send(ctx context.Context, body []byte, onDelta func(string)) (*completion, error) {
	var raw *http.Response
	err := c.api.Post(ctx, "chat/completions", nil, &raw, option.WithRequestBody("application/json", body))
	if err != nil {
		if raw != nil && raw.Body != nil {
			_ = raw.Body.Close()
		}
		return nil, err
	}
	dec := ssestream.NewDecoder(raw)
	if dec == nil {
		return nil, fmt.Errorf("llm: empty response")
	}
	defer dec.Close()
	acc := &completion{}
	for dec.Next() {
		data := dec.Event().Data
		if bytes.HasPrefix(data, []byte("[DONE]")) {
			return acc, nil
		}
		var ch wireChunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return nil, err
		}
		if len(ch.Error) > 0 && !bytes.Equal(ch.Error, []byte("null")) {
			return nil, &streamError{data: string(ch.Error)}
		}
		acc.add(&ch)
		if onDelta != nil {
			for i := range ch.Choices {
				if ch.Choices[i].Index == 0 && ch.Choices[i].Delta.Content != "" {
					onDelta(ch.Choices[i].Delta.Content)
				}
			}
		}
	}
	if err := dec.Err(); err != nil {
		return nil, err
	}
	return acc, nil
}
