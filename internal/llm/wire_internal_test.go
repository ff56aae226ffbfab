package llm

import (
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
	"github.com/stretchr/testify/require"
)

// sdkBody is the streaming request as the SDK writes it.
func sdkBody(t *testing.T, req Request) string {
	t.Helper()
	b, err := json.Marshal(sdkParams(req))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["stream"] = true
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return string(out)
}

// TestPlainRequestBodyIsTheSDKs writes the requests the agent runner makes (instructions,
// task data, input, assistant tool calls and their results, function tools with and
// without descriptions, an output schema, a token limit, temperatures 0 and 0.7) with the
// plain encoding and checks that each is the same JSON as the SDK's own.
func TestPlainRequestBodyIsTheSDKs(t *testing.T) {
	t.Parallel()
	max := int64(256)
	tools := []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_task", Description: openai.String("Read a task <by id> & more"),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"task_id": map[string]any{"type": "integer"}},
				"required": []string{"task_id"}}}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "noop"}),
	}
	calls := openai.ChatCompletionMessageParamUnion{OfAssistant: &openai.ChatCompletionAssistantMessageParam{
		ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{
			{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "call_1",
				Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "get_task", Arguments: `{"task_id":1}`}}},
			{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "call_2",
				Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "noop", Arguments: `{}`}}},
		}}}
	answered := openai.ChatCompletionMessage{Role: "assistant", Content: `{"a": 1}`}
	conversation := []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("You are a helpful automation agent.\n\nUse tools \"wisely\" <now>."),
		openai.UserMessage("<task_data>\n{\"id\":1,\"title\":\"caf\u00e9 \\u003c\"}\n</task_data>"),
		openai.UserMessage("Summarise this task."),
		calls,
		openai.ToolMessage(`{"id":1}`, "call_1"),
		openai.ToolMessage(`{"error":"rejected"}`, "call_2"),
		answered.ToParam(),
		openai.UserMessage(""),
	}
	for name, req := range map[string]Request{
		"minimal":      {Model: "gpt-4o", Messages: conversation[:3]},
		"tools":        {Model: "gpt-4o", Temperature: 0.7, Messages: conversation, Tools: tools, MaxTokens: &max},
		"outputSchema": {Model: "m", Messages: conversation[:2], OutputSchema: json.RawMessage(`{"type":"object","required":["a"]}`)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w, ok := plainRequest(req)
			require.True(t, ok, "every part of the runner's requests has a plain encoding")
			b, err := json.Marshal(w)
			require.NoError(t, err)
			require.JSONEq(t, sdkBody(t, req), string(b))
			body, err := requestBody(req, sdkParams(req))
			require.NoError(t, err)
			require.JSONEq(t, sdkBody(t, req), string(body))
		})
	}
}

// TestRequestBodyFallsBackToTheSDK gives a message with content parts, which the plain
// encoding does not write: the body is the SDK's, with stream set.
func TestRequestBodyFallsBackToTheSDK(t *testing.T) {
	t.Parallel()
	req := Request{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("hello")}),
	}}
	_, ok := plainRequest(req)
	require.False(t, ok)
	body, err := requestBody(req, sdkParams(req))
	require.NoError(t, err)
	require.JSONEq(t, sdkBody(t, req), string(body))
}

// TestCompletionAccumulatesChunks feeds chunks the way providers split them: text in
// pieces, tool calls whose id and name come first and whose arguments follow in parts,
// usage in a last chunk without choices.
func TestCompletionAccumulatesChunks(t *testing.T) {
	t.Parallel()
	var c completion
	for _, s := range []string{
		`{"model":"gpt-4o-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`,
		`{"model":"gpt-4o-1","choices":[{"index":0,"delta":{"content":"lo"}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_task","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"task_id\""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"noop","arguments":"{}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":7}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}`,
	} {
		var ch wireChunk
		require.NoError(t, json.Unmarshal([]byte(s), &ch))
		c.add(&ch)
	}
	require.True(t, c.choices)
	require.Equal(t, "gpt-4o-1", c.model)
	require.Equal(t, "Hello", c.content.String())
	require.Equal(t, "tool_calls", c.finish)
	require.Equal(t, []ToolCall{{ID: "call_a", Name: "get_task", Arguments: `{"task_id":7}`}, {ID: "call_b", Name: "noop", Arguments: "{}"}}, c.calls)
	require.Equal(t, Usage{PromptTokens: 11, CompletionTokens: 5, TotalTokens: 16}, c.usage)
}
