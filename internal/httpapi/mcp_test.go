package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	genmcp "enterprise-automation/gen/mcp"
	"enterprise-automation/internal/apitest"
)

// headerTransport adds fixed headers (the credential) to every request.
type headerTransport struct {
	header map[string]string
	next   http.RoundTripper
}

func (h headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	return h.next.RoundTrip(req)
}

// mcpConnect connects the official Go MCP client to /mcp with the given headers.
func mcpConnect(t *testing.T, env *apitest.Env, header map[string]string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "httpapi-test", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{
		Endpoint:             env.BaseURL + "/mcp",
		HTTPClient:           &http.Client{Transport: headerTransport{header: header, next: http.DefaultTransport}, Timeout: 30 * time.Second},
		DisableStandaloneSSE: true,
	}
	cs, err := c.Connect(context.Background(), tr, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// mcpCall calls a tool and returns its result.
func mcpCall(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.Len(t, res.Content, 1)
	return res
}

// mcpText is the text of a result's one content item.
func mcpText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	tc, ok := res.Content[0].(*mcp.TextContent)
	require.True(t, ok, "content is %T", res.Content[0])
	return tc.Text
}

// mcpOK requires a successful result whose structuredContent equals its text, and
// decodes it.
func mcpOK(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	text := mcpText(t, res)
	require.False(t, res.IsError, "tool error: %s", text)
	structured, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.JSONEq(t, text, string(structured))
	require.NoError(t, json.Unmarshal([]byte(text), v))
}

// mcpProblem requires an error result and decodes its problem.
func mcpProblem(t *testing.T, res *mcp.CallToolResult, status int, typ string) client.Problem {
	t.Helper()
	text := mcpText(t, res)
	require.True(t, res.IsError, "want an error, got %s", text)
	require.Nil(t, res.StructuredContent)
	var p client.Problem
	require.NoError(t, json.Unmarshal([]byte(text), &p), "problem: %s", text)
	require.Equal(t, int32(status), p.Status, "problem: %s", text)
	require.Equal(t, typ, p.Type, "problem: %s", text)
	require.NotEmpty(t, p.RequestId)
	return p
}

// mcpPost sends a raw JSON-RPC body to /mcp (no contract check: /mcp is not an
// operation of the contract) and returns status, headers and body.
func mcpPost(t *testing.T, env *apitest.Env, header map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, env.BaseURL+"/mcp", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, res.Header, b
}

func TestMCPTools(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	u := env.CreateUser(t, "mcpuser", false)
	bearer := map[string]string{"Authorization": "Bearer " + u.Token}
	cs := mcpConnect(t, env, bearer)

	t.Run("lists_the_generated_tools", func(t *testing.T) {
		t.Parallel()
		want, err := genmcp.Tools()
		require.NoError(t, err)
		var got []*mcp.Tool
		for tool, err := range cs.Tools(context.Background(), nil) {
			require.NoError(t, err)
			got = append(got, tool)
		}
		require.Len(t, got, len(want))
		for i, tool := range got {
			require.Equal(t, want[i].Name, tool.Name)
			require.Equal(t, want[i].Description, tool.Description)
			in, err := json.Marshal(tool.InputSchema)
			require.NoError(t, err)
			require.JSONEq(t, string(want[i].InputSchema), string(in))
		}
		names := make([]string, len(got))
		for i, tool := range got {
			names[i] = tool.Name
		}
		for _, name := range []string{"list_tasks", "get_task", "create_task", "update_task", "list_agents",
			"create_agent_run", "get_agent_run", "cancel_agent_run"} {
			require.Contains(t, names, name)
		}
		for _, name := range []string{"create_token", "create_api_key", "get_docs", "list_api_keys"} {
			require.NotContains(t, names, name)
		}
		// The SDK's per-session INFO lines stay out of the log: the access log has the request.
		require.NotContains(t, env.Logs.String(), "server session connected")
	})

	t.Run("create_get_and_update_a_task", func(t *testing.T) {
		t.Parallel()
		var created client.Task
		mcpOK(t, mcpCall(t, cs, "create_task", map[string]any{"title": "From MCP", "priority": "high", "tags": []string{"mcp"}}), &created)
		require.Equal(t, "From MCP", created.Title)
		require.Equal(t, client.High, created.Priority)

		// The HTTP API sees the same task.
		res, err := u.Client.GetTaskWithResponse(context.Background(), created.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		require.Equal(t, "From MCP", res.JSON200.Title)

		var got client.Task
		mcpOK(t, mcpCall(t, cs, "get_task", map[string]any{"task_id": created.Id}), &got)
		require.Equal(t, created.Id, got.Id)

		var updated client.Task
		mcpOK(t, mcpCall(t, cs, "update_task", map[string]any{"task_id": created.Id, "status": "in_progress", "if_match": `"1"`}), &updated)
		require.Equal(t, client.TaskStatusInProgress, updated.Status)

		// If-Match is the operation's: a stale version is 412.
		mcpProblem(t, mcpCall(t, cs, "update_task", map[string]any{"task_id": created.Id, "title": "x", "if_match": `"1"`}),
			http.StatusPreconditionFailed, "/problems/precondition-failed")
		// The status transition table is the service's: completed → cancelled is 409.
		mcpOK(t, mcpCall(t, cs, "update_task", map[string]any{"task_id": created.Id, "status": "completed"}), &updated)
		mcpProblem(t, mcpCall(t, cs, "update_task", map[string]any{"task_id": created.Id, "status": "cancelled"}),
			http.StatusConflict, "/problems/conflict")

		var page client.TaskPage
		mcpOK(t, mcpCall(t, cs, "list_tasks", map[string]any{"tag": "mcp", "status": []string{"completed"}, "limit": 5}), &page)
		require.Len(t, page.Items, 1)
		require.Equal(t, created.Id, page.Items[0].Id)
	})

	t.Run("idempotency_key_replays", func(t *testing.T) {
		t.Parallel()
		args := map[string]any{"title": "Once", "idempotency_key": "mcp-idem-1"}
		var a, b client.Task
		mcpOK(t, mcpCall(t, cs, "create_task", args), &a)
		mcpOK(t, mcpCall(t, cs, "create_task", args), &b)
		require.Equal(t, a.Id, b.Id)
		args["title"] = "Twice"
		mcpProblem(t, mcpCall(t, cs, "create_task", args), http.StatusUnprocessableEntity, "/problems/validation")
	})

	t.Run("writes_are_audited_as_the_operation", func(t *testing.T) {
		t.Parallel()
		var created client.Task
		mcpOK(t, mcpCall(t, cs, "create_task", map[string]any{"title": "Audited"}), &created)
		res, err := env.AsAdmin(t).ListAuditEventsWithResponse(context.Background(), &client.ListAuditEventsParams{
			ActorUserId: apitest.Ptr(u.Id), Action: apitest.Ptr("createTask"), ResourceId: apitest.Ptr(created.Id)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Len(t, res.JSON200.Items, 1)
		require.Equal(t, "task", res.JSON200.Items[0].Resource.Type)
	})

	t.Run("other_users_tasks_are_not_found", func(t *testing.T) {
		t.Parallel()
		other := env.CreateUser(t, "mcpother", false)
		res, err := other.Client.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: "private"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode())
		mcpProblem(t, mcpCall(t, cs, "get_task", map[string]any{"task_id": res.JSON201.Id}), http.StatusNotFound, "/problems/not-found")
	})

	t.Run("schema_failures_return_the_field_errors", func(t *testing.T) {
		t.Parallel()
		p := mcpProblem(t, mcpCall(t, cs, "create_task", map[string]any{"title": "", "priority": "whenever", "color": "red"}),
			http.StatusUnprocessableEntity, "/problems/validation")
		apitest.RequireFieldError(t, p, "body", "title")
		p = mcpProblem(t, mcpCall(t, cs, "create_task", map[string]any{"priority": "whenever"}),
			http.StatusUnprocessableEntity, "/problems/validation")
		require.NotEmpty(t, apitest.FieldErrors(p))
		p = mcpProblem(t, mcpCall(t, cs, "get_task", map[string]any{"task_id": "seven"}), http.StatusUnprocessableEntity, "/problems/validation")
		apitest.RequireFieldError(t, p, "path", "task_id")
		p = mcpProblem(t, mcpCall(t, cs, "get_task", map[string]any{}), http.StatusUnprocessableEntity, "/problems/validation")
		apitest.RequireFieldError(t, p, "path", "task_id")
		p = mcpProblem(t, mcpCall(t, cs, "get_task", map[string]any{"task_id": 1, "verbose": true}), http.StatusUnprocessableEntity, "/problems/validation")
		apitest.RequireFieldError(t, p, "body", "verbose")
		p = mcpProblem(t, mcpCall(t, cs, "list_tasks", map[string]any{"limit": 100000}), http.StatusUnprocessableEntity, "/problems/validation")
		apitest.RequireFieldError(t, p, "query", "limit")
	})

	t.Run("unknown_tool_is_a_protocol_error", func(t *testing.T) {
		t.Parallel()
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "drop_database", Arguments: map[string]any{}})
		require.ErrorContains(t, err, "unknown tool")
		_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create_token", Arguments: map[string]any{}})
		require.ErrorContains(t, err, "unknown tool")
	})

	t.Run("the_body_limit_applies_to_arguments", func(t *testing.T) {
		t.Parallel()
		// Over the operation's 1 MiB: the operation answers 413 inside the call.
		big := strings.Repeat("a", 3<<19)
		mcpProblem(t, mcpCall(t, cs, "create_task", map[string]any{"title": "big", "metadata": map[string]any{"blob": big}}),
			http.StatusRequestEntityTooLarge, "/problems/payload-too-large")
		// Over the JSON-RPC message limit: the transport refuses it.
		huge, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
			"params": map[string]any{"name": "create_task", "arguments": map[string]any{"title": strings.Repeat("a", 3<<20)}}})
		require.NoError(t, err)
		status, _, _ := mcpPost(t, env, bearer, huge)
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
	})
}

func TestMCPScopes(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	u := env.CreateUser(t, "mcpkeyholder", false)
	key := akCreate(t, u.Client, "read only", client.Scope("tasks:read"))
	res, err := u.Client.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: "readable"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode())

	for name, header := range map[string]map[string]string{
		"x_api_key":     {"X-API-Key": key.Key},
		"bearer_apikey": {"Authorization": "Bearer " + key.Key},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cs := mcpConnect(t, env, header)
			var got client.Task
			mcpOK(t, mcpCall(t, cs, "get_task", map[string]any{"task_id": res.JSON201.Id}), &got)
			require.Equal(t, "readable", got.Title)
			mcpProblem(t, mcpCall(t, cs, "create_task", map[string]any{"title": "no"}), http.StatusForbidden, "/problems/insufficient-scope")
			mcpProblem(t, mcpCall(t, cs, "update_task", map[string]any{"task_id": res.JSON201.Id, "title": "no"}),
				http.StatusForbidden, "/problems/insufficient-scope")
			mcpProblem(t, mcpCall(t, cs, "list_agents", nil), http.StatusForbidden, "/problems/insufficient-scope")
		})
	}
}

func TestMCPTransport(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	u := env.CreateUser(t, "mcptransport", false)
	bearer := map[string]string{"Authorization": "Bearer " + u.Token}
	list := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)

	t.Run("no_credentials_is_401_with_resource_metadata", func(t *testing.T) {
		t.Parallel()
		for _, header := range []map[string]string{nil, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "eak_nope"}} {
			status, h, body := mcpPost(t, env, header, list)
			require.Equal(t, http.StatusUnauthorized, status, "%s", body)
			require.Equal(t, `Bearer resource_metadata="`+env.BaseURL+`/.well-known/oauth-protected-resource/mcp"`, h.Get("WWW-Authenticate"))
			require.Equal(t, "application/problem+json", h.Get("Content-Type"))
		}
		for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
			res, err := http.Get(env.BaseURL + path)
			require.NoError(t, err)
			var meta map[string]any
			require.NoError(t, json.NewDecoder(res.Body).Decode(&meta))
			_ = res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, env.BaseURL+"/mcp", meta["resource"])
			require.Equal(t, []any{"header"}, meta["bearer_methods_supported"])
			require.Contains(t, meta["scopes_supported"], "tasks:read")
		}
	})

	t.Run("get_is_405_with_allow", func(t *testing.T) {
		t.Parallel()
		for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPut} {
			req, err := http.NewRequestWithContext(context.Background(), method, env.BaseURL+"/mcp", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+u.Token)
			req.Header.Set("Accept", "text/event-stream")
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = res.Body.Close()
			require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, method)
			require.Contains(t, res.Header.Get("Allow"), http.MethodPost, method)
		}
	})

	t.Run("older_protocol_versions_are_negotiated", func(t *testing.T) {
		t.Parallel()
		for asked, want := range map[string]string{"2024-11-05": "2024-11-05", "2025-03-26": "2025-03-26", "1999-01-01": ""} {
			body := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + asked +
				`","capabilities":{},"clientInfo":{"name":"old","version":"0"}}}`)
			status, _, got := mcpPost(t, env, bearer, body)
			require.Equal(t, http.StatusOK, status, "%s", got)
			var res struct {
				Result struct {
					ProtocolVersion string `json:"protocolVersion"`
				} `json:"result"`
			}
			require.NoError(t, json.Unmarshal(got, &res), "%s", got)
			if want == "" {
				require.NotEqual(t, asked, res.Result.ProtocolVersion, "an unknown version gets the server's own")
				require.True(t, slices.Contains(mcp.SupportedProtocolVersions(), res.Result.ProtocolVersion), res.Result.ProtocolVersion)
			} else {
				require.Equal(t, want, res.Result.ProtocolVersion)
			}
		}
		// A tools/call under the old version works, without any initialize first.
		hdr := map[string]string{"Authorization": "Bearer " + u.Token, "Mcp-Protocol-Version": "2024-11-05"}
		status, _, got := mcpPost(t, env, hdr, []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_tasks","arguments":{}}}`))
		require.Equal(t, http.StatusOK, status, "%s", got)
		require.Contains(t, string(got), `"total"`)
		// A version the server does not speak is refused.
		hdr["Mcp-Protocol-Version"] = "1999-01-01"
		status, _, got = mcpPost(t, env, hdr, list)
		require.Equal(t, http.StatusBadRequest, status, "%s", got)
	})

	t.Run("batches", func(t *testing.T) {
		t.Parallel()
		batch := []byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_task","arguments":{"title":"batched"}}},` +
			`{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`)
		// Batches ended with protocol 2025-06-18: refused, and nothing ran.
		hdr := map[string]string{"Authorization": "Bearer " + u.Token, "Mcp-Protocol-Version": "2025-06-18"}
		status, _, got := mcpPost(t, env, hdr, batch)
		require.Equal(t, http.StatusBadRequest, status, "%s", got)
		require.Contains(t, string(got), "batch")
		tasks, err := u.Client.ListTasksWithResponse(context.Background(), &client.ListTasksParams{Q: apitest.Ptr("batched")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, tasks.StatusCode())
		require.Empty(t, tasks.JSON200.Items)
		// 2025-03-26 still had them: each call is answered, each through the pipeline.
		hdr["Mcp-Protocol-Version"] = "2025-03-26"
		status, _, got = mcpPost(t, env, hdr, batch)
		require.Equal(t, http.StatusOK, status, "%s", got)
		var answers []struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(got, &answers), "%s", got)
		require.Len(t, answers, 2)
		require.Contains(t, string(got), `batched`)
		// Without credentials the batch never reaches a tool.
		status, _, _ = mcpPost(t, env, map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, batch)
		require.Equal(t, http.StatusUnauthorized, status)
	})

	t.Run("malformed_json_rpc_is_400", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{`, `{"jsonrpc":"2.0","id":1,"method":"no/such/method"}`, `[]`} {
			status, _, got := mcpPost(t, env, bearer, []byte(body))
			require.GreaterOrEqual(t, status, 400, "%s → %s", body, got)
			require.Less(t, status, 500, "%s → %s", body, got)
		}
	})
}

func TestMCPRateLimit(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "5"))
	u := env.CreateUser(t, "mcplimited", false)
	cs := mcpConnect(t, env, map[string]string{"Authorization": "Bearer " + u.Token})
	// The user's own limit applies to tool calls as to requests: the sixth is 429.
	var last *mcp.CallToolResult
	for range 8 {
		last = mcpCall(t, cs, "list_tasks", nil)
		if last.IsError {
			break
		}
	}
	mcpProblem(t, last, http.StatusTooManyRequests, "/problems/rate-limited")
}
