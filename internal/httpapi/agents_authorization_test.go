package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// ---------------------------------------------------------------------------------------
// Tools act with the run creator's permissions
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
// Authorization
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
