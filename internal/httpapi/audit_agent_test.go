package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/llmtest"
)

// TestAuditAgentToolWritesNameTheRun: every write an agent's tool makes leaves one event
// whose actor is the run (with its creator), whose action is the tool's name, and whose
// changes say what changed; a tool call the run may not make leaves none.
func TestAuditAgentToolWritesNameTheRun(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	adminID := agtGetMe(t, f.admin)
	tools := client.AgentTools{client.GetTask, client.UpdateTaskStatus, client.CreateTask}
	agent := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "auditable", Tools: &tools})
	own := agtCreateTask(t, f.admin, "the run's own task")
	other := agtCreateTask(t, f.admin, "another task")

	updatesBefore := len(audEvents(t, f.admin, "update_task_status"))
	createsBefore := len(audEvents(t, f.admin, "create_task"))
	f.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{
			{ID: "call_own", Name: "update_task_status", Arguments: fmt.Sprintf(`{"task_id":%d,"status":"in_progress"}`, own.Id)},
			// Refused: a task-scoped run may change only its own task.
			{ID: "call_other", Name: "update_task_status", Arguments: fmt.Sprintf(`{"task_id":%d,"status":"in_progress"}`, other.Id)},
			{ID: "call_create", Name: "create_task", Arguments: `{"title":"made by the model"}`},
		}},
		llmtest.Reply{Content: []string{"done"}},
	)
	run := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, agent.Id, client.AgentRunCreate{
		Input: "start it", TaskId: nullable.NewNullableWithValue(own.Id),
	}).Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))

	updates := audEvents(t, f.admin, "update_task_status")
	require.Len(t, updates, updatesBefore+1, "one event for the allowed update, none for the refused one")
	ev := updates[0]
	require.Equal(t, client.AuditActorType("agent_run"), ev.Actor.Type)
	require.Equal(t, run.Id, ev.Actor.AgentRunId.MustGet())
	require.Equal(t, adminID, ev.Actor.UserId.MustGet(), "the run's creator")
	require.Equal(t, "task", ev.Resource.Type)
	require.Equal(t, own.Id, ev.Resource.Id.MustGet())
	changes := ev.Changes.MustGet()
	require.Equal(t, map[string]any{"from": "pending", "to": "in_progress"}, changes["status"], "%v", changes)

	require.Len(t, audEvents(t, f.admin, "create_task"), createsBefore, "a task-scoped run may not create tasks")

	// A run of a creator-scoped agent creates the task, and the event names it.
	creator := client.AgentToolScopeCreator
	broad := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "auditable-broad", Tools: &tools, ToolScope: &creator})
	f.llm.Script(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_create", Name: "create_task", Arguments: `{"title":"made by the model"}`}}},
		llmtest.Reply{Content: []string{"done"}},
	)
	run = agtWaitRun(t, f.admin, agtStartRun(t, f.admin, broad.Id, client.AgentRunCreate{Input: "make one"}).Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status, "%s", agtJSON(run))
	created := int64(agtResultMap(t, run.Steps[0])["id"].(float64))
	creates := audEvents(t, f.admin, "create_task")
	require.Len(t, creates, createsBefore+1)
	require.Equal(t, client.AuditActorType("agent_run"), creates[0].Actor.Type)
	require.Equal(t, run.Id, creates[0].Actor.AgentRunId.MustGet())
	require.Equal(t, "task", creates[0].Resource.Type)
	require.Equal(t, created, creates[0].Resource.Id.MustGet())
}
