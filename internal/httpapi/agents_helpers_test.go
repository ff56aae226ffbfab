package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// ---------------------------------------------------------------------------------------
// Helpers (prefixed with "agt" so they cannot clash with other test files of the package)
// ---------------------------------------------------------------------------------------

const (
	agtPoll    = 50 * time.Millisecond
	agtTimeout = 30 * time.Second
)

var agtSeq atomic.Int64

func agtJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// agtOptions are the settings every agent test uses: no rate limits (the tests poll),
// short retry backoffs, and, with llm, the scripted model.
func agtOptions(llm *llmtest.Server, extra ...apitest.Option) []apitest.Option {
	opts := []apitest.Option{
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("LLM_RETRY_BACKOFF", "50ms"),
	}
	if llm != nil {
		opts = append(opts,
			apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
			apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()))
	}
	return append(opts, extra...)
}

// agtFixture is one running server wired to its own scripted model.
type agtFixture struct {
	env        *apitest.Env
	llm        *llmtest.Server
	admin      *client.ClientWithResponses
	adminToken string
}

func agtSetup(t *testing.T, extra ...apitest.Option) *agtFixture {
	t.Helper()
	llm := llmtest.New(t)
	env := apitest.Start(t, agtOptions(llm, extra...)...)
	tok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	return &agtFixture{env: env, llm: llm, admin: env.As(tok), adminToken: tok}
}

// agtCreateAgent creates an agent as c and requires 201 with Location and ETag.
func agtCreateAgent(t *testing.T, c *client.ClientWithResponses, body client.AgentCreate) client.Agent {
	t.Helper()
	res, err := c.CreateAgentWithResponse(context.Background(), body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create agent: %s", res.Body)
	a := *res.JSON201
	require.Equal(t, "/api/v1/agents/"+strconv.FormatInt(a.Id, 10), res.HTTPResponse.Header.Get("Location"))
	require.NotEmpty(t, res.HTTPResponse.Header.Get("ETag"))
	return a
}

// agtNewAgent creates an agent with a fresh name and the given tools as the admin.
func agtNewAgent(t *testing.T, f *agtFixture, tools ...client.AgentTool) client.Agent {
	t.Helper()
	ts := client.AgentTools{}
	ts = append(ts, tools...)
	return agtCreateAgent(t, f.admin, client.AgentCreate{
		Name:         fmt.Sprintf("agent-%d", agtSeq.Add(1)),
		Instructions: apitest.Ptr("You help with tasks."),
		Tools:        &ts,
	})
}

// agtCreateTask creates a task as c and requires 201.
func agtCreateTask(t *testing.T, c *client.ClientWithResponses, title string) client.Task {
	t.Helper()
	res, err := c.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: title, Description: apitest.Ptr("Details of " + title)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create task: %s", res.Body)
	return *res.JSON201
}

func agtGetTask(t *testing.T, c *client.ClientWithResponses, id int64) client.Task {
	t.Helper()
	res, err := c.GetTaskWithResponse(context.Background(), id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "get task %d: %s", id, res.Body)
	return *res.JSON200
}

// agtStartRun starts a run as c and requires 202, Location and the run queued.
func agtStartRun(t *testing.T, c *client.ClientWithResponses, agentID int64, body client.AgentRunCreate) client.AgentRun {
	t.Helper()
	res, err := c.CreateAgentRunWithResponse(context.Background(), agentID, nil, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "create run: %s", res.Body)
	r := *res.JSON202
	require.Equal(t, "/api/v1/agent-runs/"+strconv.FormatInt(r.Id, 10), res.HTTPResponse.Header.Get("Location"))
	require.Equal(t, client.AgentRunStatusQueued, r.Status)
	return r
}

func agtGetRun(t *testing.T, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	res, err := c.GetAgentRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "get run %d: %s", id, res.Body)
	return *res.JSON200
}

func agtCancel(t *testing.T, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	res, err := c.CancelAgentRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "cancel run %d: %s", id, res.Body)
	return *res.JSON200
}

func agtTerminal(s client.AgentRunStatus) bool {
	switch s {
	case client.AgentRunStatusCompleted, client.AgentRunStatusFailed, client.AgentRunStatusCancelled, client.AgentRunStatusIncomplete:
		return true
	}
	return false
}

// agtWaitFor polls a run until ok holds, for at most within.
func agtWaitFor(t *testing.T, c *client.ClientWithResponses, id int64, within time.Duration, what string, ok func(client.AgentRun) bool) client.AgentRun {
	t.Helper()
	var (
		mu   sync.Mutex
		last *client.AgentRun
	)
	cond := func() bool {
		res, err := c.GetAgentRunWithResponse(context.Background(), id)
		if err != nil || res.JSON200 == nil {
			return false
		}
		mu.Lock()
		last = res.JSON200
		mu.Unlock()
		return ok(*res.JSON200)
	}
	if !assert.Eventually(t, cond, within, agtPoll) {
		mu.Lock()
		defer mu.Unlock()
		require.FailNowf(t, "run did not get there", "run %d did not become %s within %s; last seen: %s", id, what, within, agtJSON(last))
	}
	mu.Lock()
	defer mu.Unlock()
	return *last
}

// agtWaitRun polls a run until it has ended.
func agtWaitRun(t *testing.T, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	return agtWaitFor(t, c, id, agtTimeout, "terminal", func(r client.AgentRun) bool { return agtTerminal(r.Status) })
}

// agtRunError returns a run's error code and message ("" when it has none).
func agtRunError(r client.AgentRun) (string, string) {
	e, err := r.Error.Get()
	if err != nil {
		return "", ""
	}
	return e.Code, e.Message
}

func agtRunIDs(items []client.AgentRun) []int64 {
	ids := make([]int64, len(items))
	for i, r := range items {
		ids[i] = r.Id
	}
	return ids
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events
// ---------------------------------------------------------------------------------------

// agtEventData is the JSON data of one event (the contract's AgentRunEvent).
type agtEventData struct {
	Type    string                 `json:"type"`
	RunID   int64                  `json:"run_id"`
	Status  *client.AgentRunStatus `json:"status"`
	Attempt *int32                 `json:"attempt"`
	Delta   *string                `json:"delta"`
	Step    *client.AgentRunStep   `json:"step"`
	Run     *client.AgentRun       `json:"run"`
}

// agtEvent is one parsed event, with the time it arrived since the stream was opened.
type agtEvent struct {
	ID        int64
	Type      string
	Data      agtEventData
	Raw       string
	At        time.Duration
	decodeErr error
}

var agtEventKinds = []string{"run.status", "run.output.delta", "run.step", "run.completed", "run.failed", "run.cancelled", "run.incomplete"}

// agtParseEvents reads a text/event-stream, calling emit for each event, until EOF.
func agtParseEvents(r io.Reader, opened time.Time, emit func(agtEvent)) error {
	br := bufio.NewReader(r)
	var (
		ev   agtEvent
		data []string
	)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.Type != "" || len(data) > 0 {
				ev.Raw = strings.Join(data, "\n")
				ev.At = time.Since(opened)
				ev.decodeErr = json.Unmarshal([]byte(ev.Raw), &ev.Data)
				emit(ev)
			}
			ev, data = agtEvent{}, nil
		case strings.HasPrefix(line, ":"): // a comment (keep-alive)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id, perr := strconv.ParseInt(value, 10, 64)
				if perr != nil {
					ev.decodeErr = fmt.Errorf("id %q: %w", value, perr)
				}
				ev.ID = id
			case "event":
				ev.Type = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

var agtPlain = &http.Client{}

// agtStream is a live event stream read by a plain client (no buffering), so that the
// test sees each event when it arrives.
type agtStream struct {
	req      *http.Request
	res      *http.Response
	opened   time.Time
	events   chan agtEvent
	done     chan struct{}
	raw      bytes.Buffer
	readErr  error
	closedAt time.Duration
}

func agtOpenStream(t *testing.T, baseURL, token string, runID int64, lastEventID string) *agtStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/agent-runs/%d/events", baseURL, runID), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	s := &agtStream{req: req, events: make(chan agtEvent, 10000), done: make(chan struct{})}
	s.opened = time.Now()
	res, err := agtPlain.Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	s.res = res
	// Runs before the server's own cleanup, which waits for open connections.
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer func() { _ = res.Body.Close() }()
		err := agtParseEvents(io.TeeReader(res.Body, &s.raw), s.opened, func(ev agtEvent) { s.events <- ev })
		if err != nil && ctx.Err() == nil {
			s.readErr = err
		}
		s.closedAt = time.Since(s.opened)
	}()
	return s
}

// next returns the next event, or false when the server has ended the stream.
func (s *agtStream) next(t *testing.T, within time.Duration) (agtEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(within):
		require.FailNowf(t, "no event", "no event within %s", within)
		return agtEvent{}, false
	}
}

// rest collects the remaining events until the server ends the stream, then checks the
// response against the contract.
func (s *agtStream) rest(t *testing.T, within time.Duration) []agtEvent {
	t.Helper()
	var out []agtEvent
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				<-s.done
				require.NoError(t, s.readErr)
				require.Equal(t, http.StatusOK, s.res.StatusCode, "%s", s.raw.String())
				require.True(t, strings.HasPrefix(s.res.Header.Get("Content-Type"), "text/event-stream"), s.res.Header.Get("Content-Type"))
				require.NoError(t, apitest.CheckResponse(s.req, s.res.StatusCode, s.res.Header, s.raw.Bytes()))
				return out
			}
			out = append(out, ev)
		case <-deadline:
			require.FailNowf(t, "stream did not end", "the stream did not end within %s; events so far: %s", within, agtEventList(out))
		}
	}
}

// agtReplay reads a finished run's whole stream through the contract-validating client.
func agtReplay(t *testing.T, c *client.ClientWithResponses, runID int64) []agtEvent {
	t.Helper()
	res, err := c.StreamAgentRunEventsWithResponse(context.Background(), runID, &client.StreamAgentRunEventsParams{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	var evs []agtEvent
	require.NoError(t, agtParseEvents(bytes.NewReader(res.Body), time.Now(), func(ev agtEvent) { evs = append(evs, ev) }))
	agtCheckEvents(t, runID, evs)
	return evs
}

func agtEventList(evs []agtEvent) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = fmt.Sprintf("%d:%s", ev.ID, ev.Type)
		if ev.Data.Status != nil {
			parts[i] += "(" + string(*ev.Data.Status) + ")"
		}
	}
	return strings.Join(parts, " ")
}

// agtCheckEvents requires well-formed events of runID with increasing ids.
func agtCheckEvents(t *testing.T, runID int64, evs []agtEvent) {
	t.Helper()
	var prev int64
	for i, ev := range evs {
		require.NoError(t, ev.decodeErr, "event %d: %s", i, ev.Raw)
		require.Greater(t, ev.ID, prev, "event ids must increase: %s", agtEventList(evs))
		prev = ev.ID
		require.Contains(t, agtEventKinds, ev.Type)
		require.Equal(t, ev.Type, ev.Data.Type, "the data's type matches the event name: %s", ev.Raw)
		require.Equal(t, runID, ev.Data.RunID, ev.Raw)
	}
}

func agtTypes(evs []agtEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// ---------------------------------------------------------------------------------------
// The model's side: what the server sent to the chat-completions API
// ---------------------------------------------------------------------------------------

type agtMessage struct {
	Role       string
	Content    string
	ToolCallID string
	ToolCalls  []string // ids of the calls of an assistant message
}

func agtText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var b strings.Builder
		for _, p := range x {
			if m, ok := p.(map[string]any); ok {
				s, _ := m["text"].(string)
				b.WriteString(s)
			}
		}
		return b.String()
	}
	return ""
}

func agtMessages(t *testing.T, req map[string]any) []agtMessage {
	t.Helper()
	raw, ok := req["messages"].([]any)
	require.True(t, ok, "request without messages: %s", agtJSON(req))
	out := make([]agtMessage, len(raw))
	for i, r := range raw {
		m, ok := r.(map[string]any)
		require.True(t, ok)
		out[i].Role, _ = m["role"].(string)
		out[i].Content = agtText(m["content"])
		out[i].ToolCallID, _ = m["tool_call_id"].(string)
		if calls, ok := m["tool_calls"].([]any); ok {
			for _, c := range calls {
				cm, _ := c.(map[string]any)
				id, _ := cm["id"].(string)
				out[i].ToolCalls = append(out[i].ToolCalls, id)
			}
		}
	}
	return out
}

func agtToolNames(req map[string]any) []string {
	var names []string
	tools, _ := req["tools"].([]any)
	for _, tl := range tools {
		m, _ := tl.(map[string]any)
		fn, _ := m["function"].(map[string]any)
		n, _ := fn["name"].(string)
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// agtToolResult is the content of the tool message answering callID.
func agtToolResult(t *testing.T, msgs []agtMessage, callID string) string {
	t.Helper()
	for _, m := range msgs {
		if m.Role == "tool" && m.ToolCallID == callID {
			return m.Content
		}
	}
	require.Failf(t, "no tool result", "no tool message for call %s in %+v", callID, msgs)
	return ""
}

func agtResultMap(t *testing.T, s client.AgentRunStep) map[string]any {
	t.Helper()
	m, ok := s.Result.(map[string]any)
	require.True(t, ok, "step result is not an object: %s", agtJSON(s))
	return m
}
