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

	"github.com/oapi-codegen/nullable"
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
func agtReplay(t *testing.T, c *client.ClientWithResponses, runID int64, lastEventID *string) []agtEvent {
	t.Helper()
	res, err := c.StreamAgentRunEventsWithResponse(context.Background(), runID, &client.StreamAgentRunEventsParams{LastEventID: lastEventID})
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

// ---------------------------------------------------------------------------------------
// 1. End to end
// ---------------------------------------------------------------------------------------

func TestAgentRunEndToEnd(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	ctx := context.Background()
	user := f.env.CreateUser(t, "Erin", false)
	instructions := "You are the triage agent. Codeword PELICAN-7."
	tools := client.AgentTools{client.GetTask, client.UpdateTaskStatus}
	ag := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "triager", Instructions: &instructions, Tools: &tools})
	require.Equal(t, "gpt-4o", ag.Model, "the default model is LLM_MODEL's default")
	require.InDelta(t, 0.2, ag.Temperature, 1e-9)

	task := agtCreateTask(t, user.Client, "Reconcile invoices 4711")
	require.Equal(t, client.TaskStatusPending, task.Status)
	id := strconv.FormatInt(task.Id, 10)
	f.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_get", Name: "get_task", Arguments: `{"task_id":` + id + `}`}}, Prompt: 100, Completion: 10},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_update", Name: "update_task_status", Arguments: `{"task_id":` + id + `,"status":"in_progress"}`}}, Prompt: 200, Completion: 20},
		llmtest.Reply{Content: []string{"I started ", "work on ", "the task."}, Prompt: 300, Completion: 30},
	)
	input := "Please start working on this task."
	queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: input, TaskId: nullable.NewNullableWithValue(task.Id)})
	require.Equal(t, ag.Id, queued.AgentId)
	require.Equal(t, task.Id, queued.TaskId.MustGet())
	require.Equal(t, user.Id, queued.CreatedBy.MustGet())
	require.Equal(t, input, queued.Input)
	require.Equal(t, ag.Model, queued.Model)
	require.Equal(t, int32(0), queued.Attempt)
	require.Empty(t, queued.Steps)
	require.True(t, queued.Output.IsNull())
	require.True(t, queued.Error.IsNull())
	require.True(t, queued.StartedAt.IsNull())
	require.True(t, queued.CompletedAt.IsNull())
	require.Equal(t, client.AgentRunUsage{}, queued.Usage)

	run := agtWaitRun(t, user.Client, queued.Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
	require.True(t, run.Error.IsNull())
	require.Equal(t, "I started work on the task.", run.Output.MustGet(), "the output is the streamed pieces joined")
	require.Equal(t, client.AgentRunUsage{PromptTokens: 600, CompletionTokens: 60, TotalTokens: 660}, run.Usage, "usage is summed over the three completions")
	require.Equal(t, int32(1), run.Attempt)
	started, err := run.StartedAt.Get()
	require.NoError(t, err, "started_at is set")
	completed, err := run.CompletedAt.Get()
	require.NoError(t, err, "completed_at is set")
	require.False(t, started.Before(run.CreatedAt.Truncate(time.Millisecond)), "started %s before created %s", started, run.CreatedAt)
	require.False(t, completed.Before(started))

	require.Len(t, run.Steps, 2, "%s", agtJSON(run.Steps))
	get, upd := run.Steps[0], run.Steps[1]
	require.Equal(t, client.ToolCall, get.Type)
	require.Equal(t, "get_task", get.Name)
	require.Equal(t, map[string]any{"task_id": float64(task.Id)}, get.Arguments)
	gr := agtResultMap(t, get)
	require.Equal(t, float64(task.Id), gr["id"])
	require.Equal(t, task.Title, gr["title"])
	require.Equal(t, "pending", gr["status"], "get_task ran before the update")
	require.Equal(t, client.ToolCall, upd.Type)
	require.Equal(t, "update_task_status", upd.Name)
	require.Equal(t, map[string]any{"task_id": float64(task.Id), "status": "in_progress"}, upd.Arguments)
	ur := agtResultMap(t, upd)
	require.Equal(t, "in_progress", ur["status"])
	require.NotContains(t, ur, "error")

	// The tool really changed the task, through the same rules as the API.
	after := agtGetTask(t, user.Client, task.Id)
	require.Equal(t, client.TaskStatusInProgress, after.Status)
	require.Equal(t, task.Version+1, after.Version)

	// What the model was sent.
	reqs := f.llm.Requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		require.Equal(t, ag.Model, r["model"], "request %d", i)
		require.Equal(t, true, r["stream"], "request %d", i)
		require.InDelta(t, 0.2, r["temperature"], 1e-9, "request %d", i)
		require.Equal(t, []string{"get_task", "update_task_status"}, agtToolNames(r), "request %d offers exactly the agent's tools", i)
	}
	first := agtMessages(t, reqs[0])
	require.Len(t, first, 3, "%+v", first)
	require.Equal(t, "system", first[0].Role)
	require.Contains(t, first[0].Content, instructions, "the agent's instructions are the system message")
	require.Equal(t, "user", first[1].Role, "the task is data, given on the user's side")
	require.Contains(t, first[1].Content, task.Title, "the task is given as context")
	require.Contains(t, first[1].Content, fmt.Sprintf(`"id":%d`, task.Id))
	require.Equal(t, "user", first[2].Role)
	require.Equal(t, input, first[2].Content)

	second := agtMessages(t, reqs[1])
	require.Len(t, second, 5, "%+v", second)
	require.Equal(t, first, second[:3], "later turns keep the conversation")
	require.Equal(t, "assistant", second[3].Role)
	require.Equal(t, []string{"call_get"}, second[3].ToolCalls)
	got := agtToolResult(t, second, "call_get")
	require.Contains(t, got, task.Title, "the model reads get_task's result")
	require.Contains(t, got, `"pending"`)

	third := agtMessages(t, reqs[2])
	require.Len(t, third, 7, "%+v", third)
	require.Equal(t, second, third[:5])
	require.Equal(t, []string{"call_update"}, third[5].ToolCalls)
	require.Contains(t, agtToolResult(t, third, "call_update"), `"in_progress"`)

	// The run is listed with its task and among the user's runs.
	tr, err := user.Client.ListTaskRunsWithResponse(ctx, task.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tr.StatusCode(), "%s", tr.Body)
	require.Equal(t, int64(1), tr.JSON200.Total)
	require.Equal(t, run.Id, tr.JSON200.Items[0].Id)
	require.Equal(t, client.AgentRunStatusCompleted, tr.JSON200.Items[0].Status)
	lr, err := user.Client.ListAgentRunsWithResponse(ctx, &client.ListAgentRunsParams{TaskId: &task.Id})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, lr.StatusCode(), "%s", lr.Body)
	require.Equal(t, []int64{run.Id}, agtRunIDs(lr.JSON200.Items))
}

// ---------------------------------------------------------------------------------------
// 2. Server-Sent Events across instances
// ---------------------------------------------------------------------------------------

func TestAgentRunEventsStreamAcrossInstances(t *testing.T) {
	t.Parallel()
	llm := llmtest.New(t)
	// A executes runs; B only serves the API (no workers, and no LLM key: had B executed
	// the run, it would have failed with llm_not_configured).
	a := apitest.Start(t, agtOptions(llm)...)
	b := apitest.StartOn(t, a.DBURL, agtOptions(nil, apitest.WithEnv("WORKER_CONCURRENCY", "0"))...)
	ctx := context.Background()
	adminB := b.AsAdmin(t)
	user := b.CreateUser(t, "Sam", false)
	task := agtCreateTask(t, user.Client, "Stream me")
	tools := client.AgentTools{client.GetTask}
	ag := agtCreateAgent(t, adminB, client.AgentCreate{Name: "streamer", Tools: &tools})

	pieces := []string{"Alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta."}
	llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 5, Completion: 5, ChunkDelay: 30 * time.Millisecond},
		llmtest.Reply{Content: pieces, Prompt: 7, Completion: 8, ChunkDelay: 30 * time.Millisecond},
	)
	run := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "Describe the task", TaskId: nullable.NewNullableWithValue(task.Id)})

	s := agtOpenStream(t, b.BaseURL, user.Token, run.Id, "")
	evs := s.rest(t, agtTimeout)
	agtCheckEvents(t, run.Id, evs)
	require.GreaterOrEqual(t, len(evs), 5, "%s", agtEventList(evs))
	firstLatency := evs[0].At
	t.Logf("SSE across instances: first event after %s, terminal event after %s, stream closed after %s; %d events: %s",
		firstLatency, evs[len(evs)-1].At, s.closedAt, len(evs), agtEventList(evs))
	require.Less(t, firstLatency, time.Second, "the stream replays what exists at once")
	require.Greater(t, evs[len(evs)-1].At-firstLatency, 200*time.Millisecond, "events were delivered live, not all at the end")
	require.Less(t, s.closedAt-evs[len(evs)-1].At, 2*time.Second, "the stream closes after the terminal event")

	for i, ev := range evs {
		require.Equal(t, int64(i+1), ev.ID, "a run's event ids count from 1: %s", agtEventList(evs))
	}
	require.Equal(t, "run.status", evs[0].Type)
	require.Equal(t, client.AgentRunStatusQueued, *evs[0].Data.Status)
	require.Equal(t, "run.status", evs[1].Type)
	require.Equal(t, client.AgentRunStatusInProgress, *evs[1].Data.Status)
	require.NotNil(t, evs[1].Data.Attempt)
	require.Equal(t, int32(1), *evs[1].Data.Attempt)

	middle := evs[2 : len(evs)-1]
	require.Equal(t, "run.step", middle[0].Type, "the tool call comes before any text: %s", agtEventList(evs))
	require.NotNil(t, middle[0].Data.Step)
	require.Equal(t, "get_task", middle[0].Data.Step.Name)
	require.Equal(t, task.Title, agtResultMap(t, *middle[0].Data.Step)["title"])
	var text strings.Builder
	for _, ev := range middle[1:] {
		require.Equal(t, "run.output.delta", ev.Type, "%s", agtEventList(evs))
		require.NotNil(t, ev.Data.Delta)
		text.WriteString(*ev.Data.Delta)
	}
	require.Equal(t, strings.Join(pieces, ""), text.String(), "the deltas add up to the output")

	last := evs[len(evs)-1]
	require.Equal(t, "run.completed", last.Type)
	require.Equal(t, client.AgentRunStatusCompleted, *last.Data.Status)
	require.NotNil(t, last.Data.Run, "the terminal event carries the run")
	require.Equal(t, run.Id, last.Data.Run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, last.Data.Run.Status)
	require.Equal(t, strings.Join(pieces, ""), last.Data.Run.Output.MustGet())
	require.Len(t, last.Data.Run.Steps, 1)

	// A executed the run (its model was called); both instances see the same result.
	require.Equal(t, 2, llm.Hits())
	viaA := agtGetRun(t, a.AsAdmin(t), run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, viaA.Status)
	require.Equal(t, client.AgentRunUsage{PromptTokens: 12, CompletionTokens: 13, TotalTokens: 25}, viaA.Usage)

	t.Run("Last-Event-ID resumes after that event", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, strconv.FormatInt(evs[1].ID, 10))
		replay := r.rest(t, agtTimeout)
		agtCheckEvents(t, run.Id, replay)
		require.NotEmpty(t, replay)
		require.Equal(t, int64(3), replay[0].ID)
		require.Equal(t, agtEventList(evs[2:]), agtEventList(replay), "the same events as before, from id 3")
		require.Equal(t, "run.completed", replay[len(replay)-1].Type)
	})
	t.Run("a new connection replays from the start", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, "")
		require.Equal(t, agtEventList(evs), agtEventList(r.rest(t, agtTimeout)))
	})
	t.Run("resuming after the terminal event ends at once", func(t *testing.T) {
		t.Parallel()
		r := agtOpenStream(t, b.BaseURL, user.Token, run.Id, strconv.FormatInt(last.ID, 10))
		require.Empty(t, r.rest(t, 5*time.Second))
		require.Less(t, r.closedAt, 2*time.Second)
	})
	t.Run("a Last-Event-ID that is not an id is rejected", func(t *testing.T) {
		t.Parallel()
		res, err := user.Client.StreamAgentRunEventsWithResponse(ctx, run.Id, &client.StreamAgentRunEventsParams{LastEventID: apitest.Ptr("abc")})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode(), "%s", res.Body)
	})
}

// ---------------------------------------------------------------------------------------
// 3. Retries and failures of the model
// ---------------------------------------------------------------------------------------

func TestAgentRunRetries(t *testing.T) {
	t.Parallel()
	ok := llmtest.Reply{Content: []string{"recovered"}, Prompt: 3, Completion: 2}
	cases := []struct {
		name    string
		env     []apitest.Option
		script  []llmtest.Reply
		status  client.AgentRunStatus
		code    string
		message string // a substring of the error message
		attempt int32
		hits    int
	}{
		{
			name:   "a rate limit is retried and the second attempt completes",
			script: []llmtest.Reply{{Status: http.StatusTooManyRequests, Error: "Rate limit reached"}, ok},
			status: client.AgentRunStatusCompleted, attempt: 2, hits: 2,
		},
		{
			name:   "a bad request fails at once",
			script: []llmtest.Reply{{Status: http.StatusBadRequest, Error: "Invalid value for 'messages'"}, ok},
			status: client.AgentRunStatusFailed, code: "llm_bad_request", message: "Invalid value for 'messages'", attempt: 1, hits: 1,
		},
		{
			name:   "a wrong API key fails at once",
			env:    []apitest.Option{apitest.WithEnv("OPENAI_API_KEY", "wrong")},
			script: []llmtest.Reply{ok},
			status: client.AgentRunStatusFailed, code: "llm_auth_failed", message: "401", attempt: 1, hits: 1,
		},
		{
			name:   "server errors fail the run once the attempts are used up",
			env:    []apitest.Option{apitest.WithEnv("LLM_MAX_ATTEMPTS", "2")},
			script: []llmtest.Reply{{Status: http.StatusInternalServerError, Error: "boom"}, {Status: http.StatusInternalServerError, Error: "boom"}, ok},
			status: client.AgentRunStatusFailed, code: "llm_server_error", message: "after 2 attempts", attempt: 2, hits: 2,
		},
		{
			name:   "a model that never answers times out",
			env:    []apitest.Option{apitest.WithEnv("LLM_TIMEOUT", "300ms"), apitest.WithEnv("LLM_MAX_ATTEMPTS", "2")},
			script: []llmtest.Reply{{Hang: true}, {Hang: true}, ok},
			status: client.AgentRunStatusFailed, code: "llm_timeout", attempt: 2, hits: 2,
		},
		{
			name:   "no API key fails at once and says what to set",
			env:    []apitest.Option{apitest.WithEnv("OPENAI_API_KEY", "")},
			script: []llmtest.Reply{ok},
			status: client.AgentRunStatusFailed, code: "llm_not_configured", message: "OPENAI_API_KEY", attempt: 1, hits: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := agtSetup(t, c.env...)
			f.llm.Script(c.script...)
			user := f.env.CreateUser(t, "Riley", false)
			ag := agtNewAgent(t, f)
			queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "hello"})
			run := agtWaitRun(t, user.Client, queued.Id)
			code, msg := agtRunError(run)
			require.Equal(t, c.status, run.Status, "%s", agtJSON(run))
			require.Equal(t, c.code, code, "error: %s", msg)
			require.Contains(t, msg, c.message)
			require.Equal(t, c.attempt, run.Attempt)
			require.Equal(t, c.hits, f.llm.Hits(), "calls to the model")
			require.True(t, run.CompletedAt.IsSpecified() && !run.CompletedAt.IsNull(), "completed_at is set")
			evs := agtReplay(t, user.Client, run.Id, nil)
			if c.status == client.AgentRunStatusCompleted {
				require.Equal(t, "recovered", run.Output.MustGet())
				require.Equal(t, client.AgentRunUsage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}, run.Usage)
				require.Equal(t, "run.completed", evs[len(evs)-1].Type)
			} else {
				require.True(t, run.Output.IsNull(), "a failed run has no output")
				require.Equal(t, "run.failed", evs[len(evs)-1].Type, "%s", agtEventList(evs))
			}
			if c.attempt > 1 {
				var attempts []int32
				for _, ev := range evs {
					if ev.Type == "run.status" && *ev.Data.Status == client.AgentRunStatusInProgress {
						attempts = append(attempts, *ev.Data.Attempt)
					}
				}
				require.Equal(t, []int32{1, 2}, attempts, "each attempt is announced: %s", agtEventList(evs))
			}
		})
	}

	t.Run("a retry resumes after the steps already taken", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Robin", false)
		task := agtCreateTask(t, user.Client, "Resumable")
		ag := agtNewAgent(t, f, client.GetTask)
		f.llm.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_first", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 7, Completion: 3},
			llmtest.Reply{Status: http.StatusServiceUnavailable, Error: "overloaded"},
			llmtest.Reply{Content: []string{"finished"}, Prompt: 11, Completion: 2},
		)
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "read it"})
		run := agtWaitRun(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
		require.Equal(t, int32(2), run.Attempt)
		require.Len(t, run.Steps, 1, "the step of the first attempt is neither lost nor repeated")
		require.Equal(t, client.AgentRunUsage{PromptTokens: 18, CompletionTokens: 5, TotalTokens: 23}, run.Usage, "usage of both attempts")
		reqs := f.llm.Requests()
		require.Len(t, reqs, 3)
		resumed := agtMessages(t, reqs[2])
		require.Contains(t, agtToolResult(t, resumed, "call_first"), task.Title, "the second attempt rebuilds the conversation")
	})
}

// ---------------------------------------------------------------------------------------
// 4. Cancellation
// ---------------------------------------------------------------------------------------

func TestAgentRunCancellation(t *testing.T) {
	t.Parallel()

	t.Run("cancelling a streaming run stops it", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Casey", false)
		ag := agtNewAgent(t, f)
		pieces := make([]string, 100)
		for i := range pieces {
			pieces[i] = fmt.Sprintf("w%d ", i)
		}
		// 100 pieces 200ms apart: 20 s unless cancelled.
		f.llm.Script(llmtest.Reply{Content: pieces, ChunkDelay: 200 * time.Millisecond, Prompt: 5, Completion: 100})
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "write a long essay"})
		s := agtOpenStream(t, f.env.BaseURL, user.Token, queued.Id, "")
		var evs []agtEvent
		for len(evs) == 0 || evs[len(evs)-1].Type != "run.output.delta" {
			ev, ok := s.next(t, agtTimeout)
			require.True(t, ok, "the stream ended before any output: %s", agtEventList(evs))
			evs = append(evs, ev)
		}

		asked := time.Now()
		res := agtCancel(t, user.Client, queued.Id)
		require.Contains(t, []client.AgentRunStatus{client.AgentRunStatusInProgress, client.AgentRunStatusCancelled}, res.Status)
		run := agtWaitRun(t, user.Client, queued.Id)
		took := time.Since(asked)
		t.Logf("the run was cancelled %s after the request", took)
		require.Equal(t, client.AgentRunStatusCancelled, run.Status, "%s", agtJSON(run))
		require.Less(t, took, 10*time.Second, "cancellation interrupts the model's stream")
		require.True(t, run.Error.IsNull())
		require.False(t, run.CompletedAt.IsNull())

		evs = append(evs, s.rest(t, agtTimeout)...)
		agtCheckEvents(t, run.Id, evs)
		last := evs[len(evs)-1]
		require.Equal(t, "run.cancelled", last.Type, "%s", agtEventList(evs))
		require.NotNil(t, last.Data.Run)
		require.Equal(t, client.AgentRunStatusCancelled, last.Data.Run.Status)
		require.NotContains(t, agtTypes(evs), "run.completed")

		again := agtCancel(t, user.Client, run.Id)
		require.Equal(t, client.AgentRunStatusCancelled, again.Status, "cancelling is idempotent")
		require.Equal(t, run.CompletedAt.MustGet(), again.CompletedAt.MustGet())
		require.Equal(t, 1, f.llm.Hits())
	})

	t.Run("cancelling a completed run is a conflict", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Dana", false)
		ag := agtNewAgent(t, f)
		f.llm.Script(llmtest.Reply{Content: []string{"done"}})
		run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "quick"}).Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status)
		r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agent-runs/%d/cancel", run.Id), user.Token, "")
		apitest.RequireProblem(t, r, http.StatusConflict)
		require.Equal(t, run, agtGetRun(t, user.Client, run.Id), "the run is unchanged")
	})

	t.Run("cancelling a queued run cancels it at once", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
		user := f.env.CreateUser(t, "Eli", false)
		ag := agtNewAgent(t, f)
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "never runs"})
		require.Equal(t, client.AgentRunStatusQueued, agtGetRun(t, user.Client, queued.Id).Status, "nothing executes without workers")
		res := agtCancel(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusCancelled, res.Status)
		require.False(t, res.CompletedAt.IsNull())
		require.True(t, res.StartedAt.IsNull())
		require.Equal(t, client.AgentRunStatusCancelled, agtGetRun(t, user.Client, queued.Id).Status)
		evs := agtReplay(t, user.Client, queued.Id, nil)
		require.Equal(t, []string{"run.status", "run.cancelled"}, agtTypes(evs))
		require.Equal(t, client.AgentRunStatusCancelled, evs[1].Data.Run.Status)
		require.Equal(t, client.AgentRunStatusCancelled, agtCancel(t, user.Client, queued.Id).Status)
		require.Len(t, agtReplay(t, user.Client, queued.Id, nil), 2, "cancelling again adds no event")
		require.Zero(t, f.llm.Hits())
	})

	t.Run("cancelling a run that waits for a retry ends it", func(t *testing.T) {
		t.Parallel()
		// The first attempt fails with a transient error; the retry is a minute away.
		f := agtSetup(t, apitest.WithEnv("LLM_RETRY_BACKOFF", "1m"), apitest.WithEnv("LLM_MAX_ATTEMPTS", "3"))
		user := f.env.CreateUser(t, "Fran", false)
		ag := agtNewAgent(t, f)
		f.llm.Script(llmtest.Reply{Status: http.StatusInternalServerError, Error: "boom"}, llmtest.Reply{Content: []string{"late"}})
		queued := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "try"})
		require.Eventually(t, func() bool { return f.llm.Hits() == 1 }, agtTimeout, agtPoll)
		time.Sleep(500 * time.Millisecond) // let the attempt record its failure
		waiting := agtGetRun(t, user.Client, queued.Id)
		require.Equal(t, client.AgentRunStatusInProgress, waiting.Status, "%s", agtJSON(waiting))
		require.Equal(t, int32(1), waiting.Attempt)

		agtCancel(t, user.Client, queued.Id)
		run := agtWaitFor(t, user.Client, queued.Id, 10*time.Second, "cancelled", func(r client.AgentRun) bool { return agtTerminal(r.Status) })
		require.Equal(t, client.AgentRunStatusCancelled, run.Status)
		require.Equal(t, 1, f.llm.Hits())
	})
}

// ---------------------------------------------------------------------------------------
// 5. Step bound
// ---------------------------------------------------------------------------------------

func TestAgentRunStepBound(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("AGENT_MAX_STEPS", "2"))
	user := f.env.CreateUser(t, "Gale", false)
	task := agtCreateTask(t, user.Client, "Loop forever")
	ag := agtNewAgent(t, f, client.GetTask)
	call := llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}, Prompt: 1, Completion: 1}
	f.llm.Script(call, call, call, call, call)
	run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "loop"}).Id)
	require.Equal(t, client.AgentRunStatusIncomplete, run.Status, "%s", agtJSON(run))
	code, msg := agtRunError(run)
	require.Equal(t, "max_steps_exceeded", code)
	require.NotEmpty(t, msg)
	require.Len(t, run.Steps, 2)
	for _, s := range run.Steps {
		require.Equal(t, "get_task", s.Name)
	}
	require.True(t, run.Output.IsNull())
	require.Equal(t, 2, f.llm.Hits(), "no third turn")
	require.Equal(t, client.AgentRunUsage{PromptTokens: 2, CompletionTokens: 2, TotalTokens: 4}, run.Usage)
	evs := agtReplay(t, user.Client, run.Id, nil)
	require.Equal(t, "run.incomplete", evs[len(evs)-1].Type, "%s", agtEventList(evs))
}

// ---------------------------------------------------------------------------------------
// 6. Tools act with the run creator's permissions
// ---------------------------------------------------------------------------------------

func TestAgentRunToolAuthorization(t *testing.T) {
	t.Parallel()

	t.Run("another user's task is out of reach", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		alice := f.env.CreateUser(t, "Alice", false)
		bob := f.env.CreateUser(t, "Bob", false)
		bobs := agtCreateTask(t, bob.Client, "Bob's secret plan")
		ag := agtNewAgent(t, f, client.GetTask, client.UpdateTaskStatus)
		f.llm.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "update_task_status", Arguments: fmt.Sprintf(`{"task_id":%d,"status":"in_progress"}`, bobs.Id)}}},
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, bobs.Id)}}},
			llmtest.Reply{Content: []string{"I could not find it."}},
		)
		run := agtWaitRun(t, alice.Client, agtStartRun(t, alice.Client, ag.Id, client.AgentRunCreate{Input: "start Bob's task"}).Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status, "a failing tool does not fail the run: %s", agtJSON(run))
		require.Len(t, run.Steps, 2)
		for _, s := range run.Steps {
			res := agtResultMap(t, s)
			require.Contains(t, res, "error", "%s", agtJSON(s))
			require.Contains(t, res["error"], "not found")
			require.NotContains(t, agtJSON(res), bobs.Title, "nothing about the task leaks")
		}
		after := agtGetTask(t, bob.Client, bobs.Id)
		require.Equal(t, client.TaskStatusPending, after.Status)
		require.Equal(t, bobs.Version, after.Version, "Bob's task is unchanged")
	})

	t.Run("a tool the agent does not have is refused", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Hana", false)
		ag := agtNewAgent(t, f, client.GetTask)
		f.llm.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "create_task", Arguments: `{"title":"Injected task"}`}}},
			llmtest.Reply{Content: []string{"ok"}},
		)
		run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "make a task"}).Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
		require.Len(t, run.Steps, 1)
		require.Equal(t, "create_task", run.Steps[0].Name)
		require.Contains(t, agtResultMap(t, run.Steps[0])["error"], "unknown tool")
		require.Equal(t, []string{"get_task"}, agtToolNames(f.llm.Requests()[0]), "only the agent's tools are offered")
		all, err := f.admin.ListTasksWithResponse(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, all.StatusCode())
		require.Zero(t, all.JSON200.Total, "no task was created")
	})

	t.Run("malformed arguments become an error result and the run goes on", func(t *testing.T) {
		t.Parallel()
		f := agtSetup(t)
		user := f.env.CreateUser(t, "Ivan", false)
		task := agtCreateTask(t, user.Client, "Parse me")
		ag := agtNewAgent(t, f, client.GetTask)
		f.llm.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_bad", Name: "get_task", Arguments: `{"task_id":`}}},
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_type", Name: "get_task", Arguments: `{"task_id":"seven"}`}}},
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_good", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)}}},
			llmtest.Reply{Content: []string{"done"}},
		)
		run := agtWaitRun(t, user.Client, agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "read it"}).Id)
		require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
		require.Equal(t, "done", run.Output.MustGet())
		require.Len(t, run.Steps, 3)
		require.Contains(t, agtResultMap(t, run.Steps[0])["error"], "not valid JSON")
		require.Equal(t, map[string]any{}, run.Steps[0].Arguments, "unparseable arguments are shown as an empty object")
		require.Contains(t, agtResultMap(t, run.Steps[1]), "error")
		require.Equal(t, task.Title, agtResultMap(t, run.Steps[2])["title"])
		reqs := f.llm.Requests()
		require.Len(t, reqs, 4)
		require.Contains(t, agtToolResult(t, agtMessages(t, reqs[1]), "call_bad"), "error", "the model is told what went wrong")
	})
}

// ---------------------------------------------------------------------------------------
// 7. Authorization
// ---------------------------------------------------------------------------------------

func TestAgentAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	owner := f.env.CreateUser(t, "Owner", false)
	other := f.env.CreateUser(t, "Other", false)
	actors := []string{"anonymous", "user", "other user", "admin"}
	clients := map[string]*client.ClientWithResponses{
		"anonymous": f.env.Client, "user": owner.Client, "other user": other.Client, "admin": f.admin,
	}
	ag := agtNewAgent(t, f, client.GetTask)
	task := agtCreateTask(t, owner.Client, "Owner's task")
	onTask := agtStartRun(t, owner.Client, ag.Id, client.AgentRunCreate{Input: "look", TaskId: nullable.NewNullableWithValue(task.Id)})
	ended := agtStartRun(t, owner.Client, ag.Id, client.AgentRunCreate{Input: "stop"})
	agtCancel(t, owner.Client, ended.Id)

	type op struct {
		name string
		want [4]int // anonymous, user, other user, admin
		do   func(t *testing.T, actor string, c *client.ClientWithResponses) int
	}
	ops := []op{
		{"create agent", [4]int{401, 403, 403, 201}, func(t *testing.T, actor string, c *client.ClientWithResponses) int {
			res, err := c.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "made by " + actor})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		{"list agents", [4]int{401, 200, 200, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.ListAgentsWithResponse(ctx, nil)
			require.NoError(t, err)
			if res.JSON200 != nil {
				require.NotZero(t, res.JSON200.Total)
			}
			return res.StatusCode()
		}},
		{"get agent", [4]int{401, 200, 200, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.GetAgentWithResponse(ctx, ag.Id, nil)
			require.NoError(t, err)
			if res.JSON200 != nil {
				require.Equal(t, ag.Name, res.JSON200.Name)
			}
			return res.StatusCode()
		}},
		{"update agent", [4]int{401, 403, 403, 200}, func(t *testing.T, actor string, c *client.ClientWithResponses) int {
			target := agtNewAgent(t, f)
			res, err := c.UpdateAgentWithResponse(ctx, target.Id, nil, client.AgentUpdate{Description: apitest.Ptr("changed by " + actor)})
			require.NoError(t, err)
			res2, err := f.admin.GetAgentWithResponse(ctx, target.Id, nil)
			require.NoError(t, err)
			require.Equal(t, res.StatusCode() == http.StatusOK, res2.JSON200.Description == "changed by "+actor, "changed only when allowed")
			return res.StatusCode()
		}},
		{"delete agent", [4]int{401, 403, 403, 204}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			target := agtNewAgent(t, f)
			res, err := c.DeleteAgentWithResponse(ctx, target.Id, nil)
			require.NoError(t, err)
			res2, err := f.admin.GetAgentWithResponse(ctx, target.Id, nil)
			require.NoError(t, err)
			require.Equal(t, res.StatusCode() == http.StatusNoContent, res2.StatusCode() == http.StatusNotFound, "deleted only when allowed")
			return res.StatusCode()
		}},
		{"run agent", [4]int{401, 202, 202, 202}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.CreateAgentRunWithResponse(ctx, ag.Id, nil, client.AgentRunCreate{Input: "go"})
			require.NoError(t, err)
			return res.StatusCode()
		}},
		{"get run", [4]int{401, 200, 404, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.GetAgentRunWithResponse(ctx, onTask.Id)
			require.NoError(t, err)
			if res.JSON200 != nil {
				require.Equal(t, onTask.Id, res.JSON200.Id)
			}
			return res.StatusCode()
		}},
		{"cancel run", [4]int{401, 200, 404, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			target := agtStartRun(t, owner.Client, ag.Id, client.AgentRunCreate{Input: "to cancel"})
			res, err := c.CancelAgentRunWithResponse(ctx, target.Id)
			require.NoError(t, err)
			want := client.AgentRunStatusQueued
			if res.StatusCode() == http.StatusOK {
				want = client.AgentRunStatusCancelled
			}
			require.Equal(t, want, agtGetRun(t, owner.Client, target.Id).Status, "cancelled only when allowed")
			return res.StatusCode()
		}},
		{"stream run events", [4]int{401, 200, 404, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.StreamAgentRunEventsWithResponse(ctx, ended.Id, nil)
			require.NoError(t, err)
			if res.StatusCode() == http.StatusOK {
				require.Contains(t, string(res.Body), "event: run.cancelled")
			}
			return res.StatusCode()
		}},
		{"list task runs", [4]int{401, 200, 404, 200}, func(t *testing.T, _ string, c *client.ClientWithResponses) int {
			res, err := c.ListTaskRunsWithResponse(ctx, task.Id, nil)
			require.NoError(t, err)
			if res.JSON200 != nil {
				require.Equal(t, []int64{onTask.Id}, agtRunIDs(res.JSON200.Items))
			}
			return res.StatusCode()
		}},
		{"list runs", [4]int{401, 200, 200, 200}, func(t *testing.T, actor string, c *client.ClientWithResponses) int {
			res, err := c.ListAgentRunsWithResponse(ctx, &client.ListAgentRunsParams{Limit: apitest.Ptr[client.Limit](1000)})
			require.NoError(t, err)
			if res.JSON200 == nil {
				return res.StatusCode()
			}
			ids := agtRunIDs(res.JSON200.Items)
			switch actor {
			case "user":
				require.Contains(t, ids, onTask.Id)
				require.Contains(t, ids, ended.Id)
				for _, r := range res.JSON200.Items {
					require.Equal(t, owner.Id, r.CreatedBy.MustGet(), "only the caller's runs")
				}
			case "other user":
				require.NotContains(t, ids, onTask.Id)
				require.NotContains(t, ids, ended.Id)
				for _, r := range res.JSON200.Items {
					require.Equal(t, other.Id, r.CreatedBy.MustGet(), "only the caller's runs")
				}
			case "admin":
				require.Contains(t, ids, onTask.Id)
				require.Contains(t, ids, ended.Id)
			}
			return res.StatusCode()
		}},
	}
	for _, o := range ops {
		for i, a := range actors {
			t.Run(o.name+"/"+a, func(t *testing.T) {
				t.Parallel()
				require.Equal(t, o.want[i], o.do(t, a, clients[a]))
			})
		}
	}
}

// The contract (getAgentRun): "404 also for runs that exist but are not yours (unless you
// are an administrator)". Being able to see the run's task does not make its runs yours.
func TestAgentRunPrivacyOnSharedTask(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	owner := f.env.CreateUser(t, "Pat", false)
	assignee := f.env.CreateUser(t, "Quinn", false)
	res, err := owner.Client.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "Shared", AssigneeId: nullable.NewNullableWithValue(assignee.Id)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	shared := *res.JSON201
	agtGetTask(t, assignee.Client, shared.Id) // the assignee sees the task
	ag := agtNewAgent(t, f, client.GetTask)
	run := agtStartRun(t, owner.Client, ag.Id, client.AgentRunCreate{Input: "mine", TaskId: nullable.NewNullableWithValue(shared.Id)})

	t.Run("get", func(t *testing.T) {
		t.Parallel()
		r := f.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d", run.Id), assignee.Token, "")
		apitest.RequireProblem(t, r, http.StatusNotFound)
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agent-runs/%d/cancel", run.Id), assignee.Token, "")
		apitest.RequireProblem(t, r, http.StatusNotFound)
		require.Equal(t, client.AgentRunStatusQueued, agtGetRun(t, owner.Client, run.Id).Status, "someone else cannot stop the owner's run")
	})
	t.Run("events", func(t *testing.T) {
		t.Parallel()
		// An ended run, so that a wrongly opened stream ends too.
		ended := agtStartRun(t, owner.Client, ag.Id, client.AgentRunCreate{Input: "ended", TaskId: nullable.NewNullableWithValue(shared.Id)})
		agtCancel(t, owner.Client, ended.Id)
		r, err := assignee.Client.StreamAgentRunEventsWithResponse(ctx, ended.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, r.StatusCode(), "%s", r.Body)
	})
	t.Run("list", func(t *testing.T) {
		t.Parallel()
		r, err := assignee.Client.ListAgentRunsWithResponse(ctx, &client.ListAgentRunsParams{TaskId: &shared.Id})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode())
		require.Empty(t, r.JSON200.Items, "the run list shows only the caller's runs")
	})
}

func TestAgentRunCreationRules(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	user := f.env.CreateUser(t, "Jo", false)
	stranger := f.env.CreateUser(t, "Kim", false)
	theirs := agtCreateTask(t, stranger.Client, "Theirs")
	active := agtNewAgent(t, f, client.GetTask)
	inactive := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "sleeper", IsActive: apitest.Ptr(false)})
	require.False(t, inactive.IsActive)

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		refused := f.env.CreateUser(t, "Lou", false)
		t.Cleanup(func() {
			res, err := refused.Client.ListAgentRunsWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode())
			require.Zero(t, res.JSON200.Total, "no run was created by the refused requests")
		})
		t.Run("an inactive agent cannot run", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agents/%d/runs", inactive.Id), refused.Token, `{"input":"wake up"}`)
			apitest.RequireProblem(t, r, http.StatusConflict)
		})
		t.Run("an unknown agent is not found", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodPost, "/api/v1/agents/999999/runs", refused.Token, `{"input":"hello"}`)
			apitest.RequireProblem(t, r, http.StatusNotFound)
		})
		t.Run("another user's task is an invalid task_id", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agents/%d/runs", active.Id), refused.Token, fmt.Sprintf(`{"input":"look","task_id":%d}`, theirs.Id))
			apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "body", "task_id")
		})
		t.Run("a missing task is an invalid task_id", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agents/%d/runs", active.Id), refused.Token, `{"input":"look","task_id":999999}`)
			apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "body", "task_id")
		})
	})

	t.Run("reactivating an agent lets it run", func(t *testing.T) {
		t.Parallel()
		dormant := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "dormant", IsActive: apitest.Ptr(false)})
		r := f.env.Do(t, http.MethodPost, fmt.Sprintf("/api/v1/agents/%d/runs", dormant.Id), user.Token, `{"input":"wake up"}`)
		apitest.RequireProblem(t, r, http.StatusConflict)
		res, err := f.admin.UpdateAgentWithResponse(ctx, dormant.Id, nil, client.AgentUpdate{IsActive: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		agtStartRun(t, stranger.Client, dormant.Id, client.AgentRunCreate{Input: "wake up"})
	})

	t.Run("metadata and list filters", func(t *testing.T) {
		t.Parallel()
		mine := agtCreateTask(t, user.Client, "Mine")
		meta := client.TaskMetadata{"ticket": float64(4711), "source": "crm"}
		withTask := agtStartRun(t, user.Client, active.Id, client.AgentRunCreate{Input: "look", TaskId: nullable.NewNullableWithValue(mine.Id), Metadata: &meta})
		require.Equal(t, meta, withTask.Metadata)
		require.Equal(t, meta, agtGetRun(t, user.Client, withTask.Id).Metadata)
		plain := agtStartRun(t, user.Client, active.Id, client.AgentRunCreate{Input: "no task"})
		require.True(t, plain.TaskId.IsNull())
		require.Equal(t, client.TaskMetadata{}, plain.Metadata)
		cancelled := agtStartRun(t, user.Client, active.Id, client.AgentRunCreate{Input: "cancel me"})
		agtCancel(t, user.Client, cancelled.Id)

		list := func(p client.ListAgentRunsParams) []int64 {
			res, err := user.Client.ListAgentRunsWithResponse(ctx, &p)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
			require.Equal(t, int64(len(res.JSON200.Items)), res.JSON200.Total)
			return agtRunIDs(res.JSON200.Items)
		}
		require.Equal(t, []int64{withTask.Id}, list(client.ListAgentRunsParams{TaskId: &mine.Id}))
		require.Equal(t, []int64{cancelled.Id, plain.Id, withTask.Id}, list(client.ListAgentRunsParams{AgentId: &active.Id}), "newest first")
		require.Equal(t, []int64{cancelled.Id}, list(client.ListAgentRunsParams{Status: apitest.Ptr(client.AgentRunStatusCancelled)}))
		require.Equal(t, []int64{plain.Id, withTask.Id}, list(client.ListAgentRunsParams{AgentId: &active.Id, Status: apitest.Ptr(client.AgentRunStatusQueued)}))
		require.Empty(t, list(client.ListAgentRunsParams{Status: apitest.Ptr(client.AgentRunStatusCompleted)}))
		require.Empty(t, list(client.ListAgentRunsParams{AgentId: &inactive.Id}))
	})
}

// ---------------------------------------------------------------------------------------
// 8. Bad input, ETags and idempotency
// ---------------------------------------------------------------------------------------

type agtBadCase struct {
	name   string
	body   string
	status int
	field  string // the field error expected with 422 ("" to check the status only)
}

func TestAgentBadInput(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	agtCreateAgent(t, f.admin, client.AgentCreate{Name: "Invoice-Bot"})
	victim := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "victim"})
	long := strings.Repeat("n", 101)

	t.Run("create", func(t *testing.T) {
		t.Parallel()
		t.Cleanup(func() {
			res, err := f.admin.ListAgentsWithResponse(ctx, nil)
			require.NoError(t, err)
			var names []string
			for _, a := range res.JSON200.Items {
				names = append(names, a.Name)
			}
			require.ElementsMatch(t, []string{"Invoice-Bot", "victim", strings.Repeat("n", 100)}, names, "no agent was created by the bad requests")
		})
		cases := []agtBadCase{
			{"empty name", `{"name":""}`, 422, "name"},
			{"blank name", `{"name":"   "}`, 422, "name"},
			{"name of 101 characters", `{"name":"` + long + `"}`, 422, "name"},
			{"a taken name in another letter case", `{"name":"invoice-bot"}`, 409, ""},
			{"a taken name with spaces around it", `{"name":"  Invoice-Bot "}`, 409, ""},
			{"temperature above 2", `{"name":"hot","temperature":2.5}`, 422, "temperature"},
			{"negative temperature", `{"name":"cold","temperature":-1}`, 422, "temperature"},
			{"unknown tool", `{"name":"danger","tools":["rm_rf"]}`, 422, "tools"},
			{"duplicate tools", `{"name":"twice","tools":["get_task","get_task"]}`, 422, "tools"},
			{"max_output_tokens 0", `{"name":"mute","max_output_tokens":0}`, 422, "max_output_tokens"},
			{"unknown field", `{"name":"extra","colour":"red"}`, 422, ""},
			{"missing name", `{"description":"nameless"}`, 422, "name"},
			{"malformed JSON", `{"name":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, "/api/v1/agents", f.adminToken, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
		t.Run("a name of 100 characters is fine", func(t *testing.T) {
			t.Parallel()
			agtCreateAgent(t, f.admin, client.AgentCreate{Name: strings.Repeat("n", 100)})
		})
	})

	t.Run("update", func(t *testing.T) {
		t.Parallel()
		path := fmt.Sprintf("/api/v1/agents/%d", victim.Id)
		t.Cleanup(func() {
			res, err := f.admin.GetAgentWithResponse(ctx, victim.Id, nil)
			require.NoError(t, err)
			require.Equal(t, victim, *res.JSON200, "the agent is unchanged")
			require.Equal(t, `"1"`, res.HTTPResponse.Header.Get("ETag"), "no refused change bumped its version")
		})
		cases := []agtBadCase{
			{"empty name", `{"name":""}`, 422, "name"},
			{"blank name", `{"name":"   "}`, 422, "name"},
			{"name of 101 characters", `{"name":"` + long + `"}`, 422, "name"},
			{"another agent's name in another letter case", `{"name":"INVOICE-BOT"}`, 409, ""},
			{"temperature above 2", `{"temperature":3}`, 422, "temperature"},
			{"unknown tool", `{"tools":["get_task","rm_rf"]}`, 422, "tools"},
			{"duplicate tools", `{"tools":["get_task","get_task"]}`, 422, "tools"},
			{"max_output_tokens 0", `{"max_output_tokens":0}`, 422, "max_output_tokens"},
			{"blank model", `{"model":"   "}`, 422, ""},
			{"unknown field", `{"colour":"red"}`, 422, ""},
			{"malformed JSON", `{"name":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPatch, path, f.adminToken, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
	})

	t.Run("run", func(t *testing.T) {
		t.Parallel()
		user := f.env.CreateUser(t, "Lee", false)
		path := fmt.Sprintf("/api/v1/agents/%d/runs", victim.Id)
		t.Cleanup(func() {
			res, err := user.Client.ListAgentRunsWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, int64(1), res.JSON200.Total, "only the valid request created a run")
		})
		cases := []agtBadCase{
			{"empty input", `{"input":""}`, 422, "input"},
			{"input of 100001 characters", `{"input":"` + strings.Repeat("x", 100001) + `"}`, 422, "input"},
			{"missing input", `{}`, 422, "input"},
			{"task_id 0", `{"input":"x","task_id":0}`, 422, "task_id"},
			{"metadata not an object", `{"input":"x","metadata":[1]}`, 422, "metadata"},
			{"unknown field", `{"input":"x","priority":"high"}`, 422, ""},
			{"malformed JSON", `{"input":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, path, user.Token, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
		t.Run("input of 100000 characters is fine", func(t *testing.T) {
			t.Parallel()
			agtStartRun(t, user.Client, victim.Id, client.AgentRunCreate{Input: strings.Repeat("x", 100000)})
		})
	})

	t.Run("list and get", func(t *testing.T) {
		t.Parallel()
		user := f.env.CreateUser(t, "Mo", false)
		for _, c := range []struct{ query, field string }{
			{"status=bogus", "status"},
			{"agent_id=abc", "agent_id"},
			{"task_id=0", "task_id"},
			{"limit=0", "limit"},
		} {
			t.Run(c.query, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodGet, "/api/v1/agent-runs?"+c.query, user.Token, "")
				apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "query", c.field)
			})
		}
		t.Run("run id abc", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodGet, "/api/v1/agent-runs/abc", user.Token, "")
			apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "path", "run_id")
		})
		t.Run("unknown run", func(t *testing.T) {
			t.Parallel()
			apitest.RequireProblem(t, f.env.Do(t, http.MethodGet, "/api/v1/agent-runs/999999", user.Token, ""), http.StatusNotFound)
		})
		t.Run("unknown agent", func(t *testing.T) {
			t.Parallel()
			apitest.RequireProblem(t, f.env.Do(t, http.MethodGet, "/api/v1/agents/999999", user.Token, ""), http.StatusNotFound)
		})
	})
}

func TestAgentETag(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	ag := agtNewAgent(t, f)
	get, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, get.StatusCode())
	tag := get.HTTPResponse.Header.Get("ETag")
	require.NotEmpty(t, tag)

	notModified, err := f.admin.GetAgentWithResponse(ctx, ag.Id, &client.GetAgentParams{IfNoneMatch: &tag})
	require.NoError(t, err)
	require.Equal(t, http.StatusNotModified, notModified.StatusCode())
	require.Equal(t, tag, notModified.HTTPResponse.Header.Get("ETag"))

	stale := `"999"`
	r := f.env.Do(t, http.MethodPatch, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, `{"description":"nope"}`, "If-Match", stale)
	apitest.RequireProblem(t, r, http.StatusPreconditionFailed)

	upd, err := f.admin.UpdateAgentWithResponse(ctx, ag.Id, &client.UpdateAgentParams{IfMatch: &tag}, client.AgentUpdate{Description: apitest.Ptr("v2"), MaxOutputTokens: nullable.NewNullableWithValue[int32](256)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, upd.StatusCode(), "%s", upd.Body)
	newTag := upd.HTTPResponse.Header.Get("ETag")
	require.NotEqual(t, tag, newTag)
	require.Equal(t, "v2", upd.JSON200.Description)
	require.Equal(t, int32(256), upd.JSON200.MaxOutputTokens.MustGet())
	require.Equal(t, ag.Name, upd.JSON200.Name, "fields left out keep their value")
	require.Equal(t, ag.Tools, upd.JSON200.Tools)

	cleared, err := f.admin.UpdateAgentWithResponse(ctx, ag.Id, nil, client.AgentUpdate{MaxOutputTokens: nullable.NewNullNullable[int32]()})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, cleared.StatusCode(), "%s", cleared.Body)
	require.True(t, cleared.JSON200.MaxOutputTokens.IsNull(), "null clears the limit")
	require.Equal(t, "v2", cleared.JSON200.Description)
	current := cleared.HTTPResponse.Header.Get("ETag")

	for _, old := range []string{tag, newTag} {
		r := f.env.Do(t, http.MethodPatch, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, `{"description":"lost update"}`, "If-Match", old)
		apitest.RequireProblem(t, r, http.StatusPreconditionFailed)
		r = f.env.Do(t, http.MethodDelete, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, "", "If-Match", old)
		apitest.RequireProblem(t, r, http.StatusPreconditionFailed)
	}
	still, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, "v2", still.JSON200.Description)

	user := f.env.CreateUser(t, "Max", false)
	run := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "soon gone"})
	del, err := f.admin.DeleteAgentWithResponse(ctx, ag.Id, &client.DeleteAgentParams{IfMatch: &current})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, del.StatusCode(), "%s", del.Body)
	gone, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, gone.StatusCode())
	runGone, err := user.Client.GetAgentRunWithResponse(ctx, run.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, runGone.StatusCode(), "the agent's runs are deleted with it")
}

func TestAgentRunIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	user := f.env.CreateUser(t, "Nia", false)
	other := f.env.CreateUser(t, "Oto", false)
	ag := agtNewAgent(t, f)
	key := "run-key-4711"
	params := &client.CreateAgentRunParams{IdempotencyKey: &key}
	body := client.AgentRunCreate{Input: "only once"}

	first, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, first.StatusCode(), "%s", first.Body)
	require.Empty(t, first.HTTPResponse.Header.Get("Idempotent-Replayed"))
	second, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, second.StatusCode(), "%s", second.Body)
	require.Equal(t, "true", second.HTTPResponse.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.JSON202.Id, second.JSON202.Id, "the replay is the same run")
	require.Equal(t, first.HTTPResponse.Header.Get("Location"), second.HTTPResponse.Header.Get("Location"))

	list, err := user.Client.ListAgentRunsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), list.JSON200.Total, "only one run exists")

	changed, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, client.AgentRunCreate{Input: "something else"})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, changed.StatusCode(), "the same key with another body: %s", changed.Body)

	theirs, err := other.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, theirs.StatusCode(), "%s", theirs.Body)
	require.NotEqual(t, first.JSON202.Id, theirs.JSON202.Id, "keys belong to one user")
	require.Empty(t, theirs.HTTPResponse.Header.Get("Idempotent-Replayed"))

	list, err = user.Client.ListAgentRunsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), list.JSON200.Total)
}
