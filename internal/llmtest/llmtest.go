// Package llmtest is an OpenAI-compatible chat-completions server for tests: real HTTP,
// the real wire format (streamed chunks, tool calls, usage, error bodies), with replies
// scripted per test. It is the only stand-in the test suites use: the LLM is the one
// paid external dependency.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIKey is the key the server accepts; any other gets 401.
const APIKey = "sk-test-key"

// ToolCall is a function call the scripted model makes.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // JSON
}

// Reply is one scripted answer to a chat-completions request.
type Reply struct {
	Status     int           `json:"status,omitempty"`      // an HTTP error status instead of a completion (429, 500, 400, …)
	Error      string        `json:"error,omitempty"`       // the error message with Status
	Content    []string      `json:"content,omitempty"`     // streamed text pieces
	ToolCalls  []ToolCall    `json:"tool_calls,omitempty"`  // function calls, streamed after the text
	Prompt     int64         `json:"prompt,omitempty"`      // usage: prompt tokens
	Completion int64         `json:"completion,omitempty"`  // usage: completion tokens
	Delay      time.Duration `json:"delay,omitempty"`       // wait before answering (nanoseconds in JSON)
	ChunkDelay time.Duration `json:"chunk_delay,omitempty"` // wait between streamed chunks (nanoseconds in JSON)
	Hang       bool          `json:"hang,omitempty"`        // never answer; the request ends only when the client gives up
}

// Server serves scripted replies in order; when the script runs out it answers "done".
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	script   []Reply
	requests []map[string]any
	hits     int
	conns    int
	record   bool // keep every request body for Requests
	// Auto, when set, answers the requests that find the script empty: it gets the
	// request body and returns a reply, or false for the default "done" (set it before
	// the first request).
	Auto func(body []byte) (Reply, bool)
}

// New starts a server that is closed when the test ends.
func New(t testing.TB) *Server {
	s := start(true)
	t.Cleanup(s.Close)
	return s
}

func start(record bool) *Server {
	s := &Server{record: record}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.Start()
	return s
}

// Conns counts the connections clients have opened so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// BaseURL is the value for OPENAI_BASE_URL.
func (s *Server) BaseURL() string { return s.URL + "/v1/" }

// Script appends replies.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, replies...)
}

// Requests returns the decoded bodies of every request received so far (servers from New).
func (s *Server) Requests() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.requests...)
}

// Hits counts requests received.
func (s *Server) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func (s *Server) next(body []byte) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	if len(s.script) == 0 {
		if s.Auto != nil {
			if r, ok := s.Auto(body); ok {
				return r
			}
		}
		return Reply{Content: []string{"done"}, Prompt: 1, Completion: 1}
	}
	r := s.script[0]
	s.script = s.script[1:]
	return r
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nil, "param": nil}})
}

// ScriptPath takes replies from outside the process (tests in other languages): a POST of
// a JSON array of Reply appends them to the script, as Script does.
const ScriptPath = "/_script"

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == ScriptPath {
		var replies []Reply
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&replies); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "a JSON array of replies: "+err.Error())
			return
		}
		s.Script(replies...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown endpoint "+r.URL.Path)
		return
	}
	raw, err := io.ReadAll(r.Body)
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body")
		return
	}
	if s.record {
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		s.mu.Lock()
		s.requests = append(s.requests, body)
		s.mu.Unlock()
	}
	if r.Header.Get("Authorization") != "Bearer "+APIKey {
		s.mu.Lock()
		s.hits++
		s.mu.Unlock()
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided")
		return
	}
	reply := s.next(raw)
	if reply.Hang {
		<-r.Context().Done()
		return
	}
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Status != 0 {
		typ := "server_error"
		if reply.Status < 500 {
			typ = "invalid_request_error"
		}
		if reply.Status == http.StatusTooManyRequests {
			typ = "rate_limit_error"
		}
		writeError(w, reply.Status, typ, reply.Error)
		return
	}
	model := req.Model
	if !req.Stream {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "this test server only streams")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(v any) bool {
		if reply.ChunkDelay > 0 {
			select {
			case <-time.After(reply.ChunkDelay):
			case <-r.Context().Done():
				return false
			}
		}
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
	}
	if !send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
		return
	}
	for _, piece := range reply.Content {
		if !send(chunk(map[string]any{"content": piece}, nil)) {
			return
		}
	}
	for i, tc := range reply.ToolCalls {
		id := tc.ID
		if id == "" {
			id = fmt.Sprintf("call_%d_%d", time.Now().UnixNano(), i)
		}
		head := map[string]any{"index": i, "id": id, "type": "function", "function": map[string]any{"name": tc.Name, "arguments": ""}}
		if !send(chunk(map[string]any{"tool_calls": []any{head}}, nil)) {
			return
		}
		// Arguments arrive in two pieces, as real models stream them.
		half := len(tc.Arguments) / 2
		for _, part := range []string{tc.Arguments[:half], tc.Arguments[half:]} {
			if !send(chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "function": map[string]any{"arguments": part}}}}, nil)) {
				return
			}
		}
	}
	finish := "stop"
	if len(reply.ToolCalls) > 0 {
		finish = "tool_calls"
	}
	if !send(chunk(map[string]any{}, finish)) {
		return
	}
	usage := map[string]any{"prompt_tokens": reply.Prompt, "completion_tokens": reply.Completion, "total_tokens": reply.Prompt + reply.Completion}
	if !send(map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model, "choices": []any{}, "usage": usage}) {
		return
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// Start runs a server outside a test (the benchmark harness's zero-latency model); Close
// stops it. It keeps no request bodies: Requests stays empty.
func Start() *Server { return start(false) }
