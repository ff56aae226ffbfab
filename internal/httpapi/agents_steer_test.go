package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// steerAgent creates an agent with get_task and update_task_status, whose
// update_task_status calls need approval.
func steerAgent(t *testing.T, f *agtFixture) client.Agent {
	t.Helper()
	ts := client.AgentTools{client.GetTask, client.UpdateTaskStatus}
	return agtCreateAgent(t, f.admin, client.AgentCreate{Name: fmt.Sprintf("steer-%d", agtSeq.Add(1)), Tools: &ts,
		ApprovalRequiredTools: &[]client.AgentTool{client.UpdateTaskStatus}})
}

func steerUpdateCall(id string, taskID int64, status string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: id, Name: "update_task_status",
		Arguments: fmt.Sprintf(`{"task_id":%d,"status":%q}`, taskID, status)}}, Prompt: 10, Completion: 5}
}

// steerWaiting waits until the run requires action and returns it.
func steerWaiting(t *testing.T, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	return agtWaitFor(t, c, id, agtTimeout, "requires_action", func(r client.AgentRun) bool {
		return r.Status == client.AgentRunStatusRequiresAction
	})
}

func steerEnded(s client.AgentRunStatus) bool {
	return agtTerminal(s) || s == client.AgentRunStatusExpired
}

func steerWaitEnded(t *testing.T, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	return agtWaitFor(t, c, id, agtTimeout, "ended", func(r client.AgentRun) bool { return steerEnded(r.Status) })
}

func steerSubmit(t *testing.T, c *client.ClientWithResponses, runID int64, ds ...client.AgentRunDecision) *client.SubmitAgentRunApprovalsResponse {
	t.Helper()
	res, err := c.SubmitAgentRunApprovalsWithResponse(context.Background(), runID, client.AgentRunApprovals{Decisions: ds})
	require.NoError(t, err)
	return res
}

func steerApprove(id string) client.AgentRunDecision {
	return client.AgentRunDecision{ToolCallId: id, Decision: client.AgentRunDecisionDecisionApprove}
}

// steerEvents reads a finished run's whole event stream and returns the event types.
func steerEvents(t *testing.T, c *client.ClientWithResponses, runID int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.StreamAgentRunEvents(ctx, runID, nil)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var types []string
	for _, line := range strings.Split(string(b), "\n") {
		if typ, ok := strings.CutPrefix(line, "event: "); ok {
			types = append(types, typ)
		}
	}
	return types
}

// TestAgentRunApprovalApproveRunsTheToolOnce: queued → in_progress → requires_action
// (the call is shown, nothing changed yet, the stream says so) → approve → queued →
// in_progress → completed; the task changed once, by the run, and the step records the
// decision.
func TestAgentRunApprovalApproveRunsTheToolOnce(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	ctx := context.Background()
	user := f.env.CreateUser(t, "approver", false)
	uc := f.env.As(user.Token)
	ag := steerAgent(t, f)
	require.Equal(t, []client.AgentTool{client.UpdateTaskStatus}, ag.ApprovalRequiredTools)
	task := agtCreateTask(t, uc, "approve me")
	f.llm.Script(steerUpdateCall("call_upd", task.Id, "in_progress"), llmtest.Reply{Content: []string{"Started it."}, Prompt: 20, Completion: 3})

	run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "start the task", TaskId: nullable.NewNullableWithValue(task.Id)})
	w := steerWaiting(t, uc, run.Id)
	ra := w.RequiredAction.MustGet()
	require.Equal(t, client.ToolApproval, ra.Type)
	require.Len(t, ra.ToolCalls, 1)
	require.Equal(t, "call_upd", ra.ToolCalls[0].Id)
	require.Equal(t, client.UpdateTaskStatus, ra.ToolCalls[0].Name)
	require.Equal(t, "in_progress", ra.ToolCalls[0].Arguments["status"])
	require.WithinDuration(t, time.Now().Add(24*time.Hour), ra.ExpiresAt, time.Minute, "APPROVAL_TIMEOUT defaults to 24h")
	require.Empty(t, w.Steps)
	require.EqualValues(t, 1, w.Usage.ModelTurns)
	require.Equal(t, client.TaskStatusPending, agtGetTask(t, uc, task.Id).Status, "nothing runs before the approval")
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, 1, f.llm.Hits(), "a waiting run holds no worker and asks the model nothing")

	res := steerSubmit(t, uc, run.Id, steerApprove("call_upd"))
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	require.Contains(t, []client.AgentRunStatus{client.AgentRunStatusQueued, client.AgentRunStatusInProgress, client.AgentRunStatusCompleted},
		res.JSON202.Status)
	require.False(t, res.JSON202.RequiredAction.IsSpecified() && !res.JSON202.RequiredAction.IsNull())

	done := steerWaitEnded(t, uc, run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, done.Status, "%s", agtJSON(done))
	require.Equal(t, "Started it.", done.Output.MustGet())
	require.Len(t, done.Steps, 1)
	ap := done.Steps[0].Approval
	require.NotNil(t, ap)
	require.Equal(t, client.AgentRunApprovalDecisionApprove, ap.Decision)
	require.Equal(t, user.Id, ap.DecidedBy)
	require.True(t, ap.Reason.IsNull())
	require.EqualValues(t, 2, done.Usage.ModelTurns)
	require.EqualValues(t, 1, done.Usage.ToolCalls)
	require.EqualValues(t, 10+5+20+3, done.Usage.TotalTokens, "tokens are the sum of every turn")
	require.Equal(t, client.TaskStatusInProgress, agtGetTask(t, uc, task.Id).Status)

	// After the approval the model reads the tool's result.
	reqs := f.llm.Requests()
	require.Len(t, reqs, 2)
	msgs, _ := json.Marshal(reqs[1]["messages"])
	require.Contains(t, string(msgs), `"call_upd"`)
	require.Contains(t, string(msgs), `in_progress`)

	// One audit event for the change, by the run.
	audits, err := f.admin.ListAuditEventsWithResponse(ctx, &client.ListAuditEventsParams{Action: apitest.Ptr("update_task_status")})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, audits.StatusCode(), "%s", audits.Body)
	require.Len(t, audits.JSON200.Items, 1, "the tool ran exactly once")

	types := steerEvents(t, uc, run.Id)
	require.Contains(t, types, "run.requires_action")
	require.Equal(t, "run.completed", types[len(types)-1])
	iWait, iStep := indexOf(types, "run.requires_action"), indexOf(types, "run.step")
	require.Less(t, iWait, iStep, "the step comes after the wait: %v", types)

	// Decided once: a second submission is refused.
	res = steerSubmit(t, uc, run.Id, steerApprove("call_upd"))
	apitest.RequireProblem(t, res, http.StatusConflict)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestAgentRunApprovalRejectAndEdit: a rejected call gives the model the reason and
// changes nothing; an approval with edited arguments runs them, and edited arguments that
// do not match the tool's parameters are refused with the run still waiting.
func TestAgentRunApprovalRejectAndEdit(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	user := f.env.CreateUser(t, "rejecter", false)
	uc := f.env.As(user.Token)
	ag := steerAgent(t, f)

	t.Run("reject", func(t *testing.T) {
		task := agtCreateTask(t, uc, "reject me")
		f.llm.Script(steerUpdateCall("call_r", task.Id, "cancelled"), llmtest.Reply{Content: []string{"Understood."}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "cancel it"})
		steerWaiting(t, uc, run.Id)
		res := steerSubmit(t, uc, run.Id, client.AgentRunDecision{ToolCallId: "call_r",
			Decision: client.AgentRunDecisionDecisionReject, Reason: apitest.Ptr("not this one")})
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		done := steerWaitEnded(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, done.Status)
		require.Len(t, done.Steps, 1)
		require.Equal(t, client.AgentRunApprovalDecisionReject, done.Steps[0].Approval.Decision)
		require.Equal(t, "not this one", done.Steps[0].Approval.Reason.MustGet())
		require.Equal(t, map[string]any{"error": "rejected", "reason": "not this one"}, done.Steps[0].Result)
		require.Equal(t, client.TaskStatusPending, agtGetTask(t, uc, task.Id).Status)
		reqs := f.llm.Requests()
		msgs, _ := json.Marshal(reqs[len(reqs)-1]["messages"])
		require.Contains(t, string(msgs), `not this one`, "the model reads the reason")
	})

	t.Run("edited_arguments", func(t *testing.T) {
		task := agtCreateTask(t, uc, "edit me")
		f.llm.Script(steerUpdateCall("call_e", task.Id, "cancelled"), llmtest.Reply{Content: []string{"Done."}})
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "do it"})
		steerWaiting(t, uc, run.Id)

		bad := steerApprove("call_e")
		bad.Arguments = &map[string]any{"task_id": task.Id, "status": "sideways"}
		res := steerSubmit(t, uc, run.Id, bad)
		p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "decisions.0.arguments")
		require.Equal(t, client.AgentRunStatusRequiresAction, agtGetRun(t, uc, run.Id).Status, "still waiting")

		good := steerApprove("call_e")
		good.Arguments = &map[string]any{"task_id": task.Id, "status": "in_progress"}
		res = steerSubmit(t, uc, run.Id, good)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		done := steerWaitEnded(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, done.Status)
		require.Equal(t, "in_progress", done.Steps[0].Arguments["status"], "the step shows the arguments that ran")
		require.Equal(t, client.TaskStatusInProgress, agtGetTask(t, uc, task.Id).Status, "the edited arguments ran")
	})
}

// TestAgentRunApprovalBadInput: decisions must name each waiting call exactly once;
// only the creator or an admin may decide (others get 404); a run that is not waiting
// answers 409.
func TestAgentRunApprovalBadInput(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	owner := f.env.CreateUser(t, "owner", false)
	other := f.env.CreateUser(t, "other", false)
	oc, xc := f.env.As(owner.Token), f.env.As(other.Token)
	ag := steerAgent(t, f)
	task := agtCreateTask(t, oc, "two calls")
	f.llm.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{
		{ID: "call_a", Name: "update_task_status", Arguments: fmt.Sprintf(`{"task_id":%d,"status":"in_progress"}`, task.Id)},
		{ID: "call_g", Name: "get_task", Arguments: fmt.Sprintf(`{"task_id":%d}`, task.Id)},
		{ID: "call_b", Name: "update_task_status", Arguments: fmt.Sprintf(`{"task_id":%d,"status":"completed"}`, task.Id)},
	}}, llmtest.Reply{Content: []string{"ok"}})
	run := agtStartRun(t, oc, ag.Id, client.AgentRunCreate{Input: "go"})
	w := steerWaiting(t, oc, run.Id)
	require.Len(t, w.RequiredAction.MustGet().ToolCalls, 2, "only the calls that need approval wait for a decision")

	cases := map[string][]client.AgentRunDecision{
		"unknown_id":     {steerApprove("call_a"), steerApprove("call_b"), steerApprove("call_zzz")},
		"duplicate":      {steerApprove("call_a"), steerApprove("call_a"), steerApprove("call_b")},
		"missing":        {steerApprove("call_a")},
		"not_waiting_id": {steerApprove("call_a"), steerApprove("call_b"), steerApprove("call_g")},
	}
	for name, ds := range cases {
		res := steerSubmit(t, oc, run.Id, ds...)
		apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
		require.Equal(t, client.AgentRunStatusRequiresAction, agtGetRun(t, oc, run.Id).Status, name)
	}
	rejectWithArgs := client.AgentRunDecision{ToolCallId: "call_a", Decision: client.AgentRunDecisionDecisionReject,
		Arguments: &map[string]any{"task_id": task.Id, "status": "failed"}}
	apitest.RequireProblem(t, steerSubmit(t, oc, run.Id, rejectWithArgs, steerApprove("call_b")), http.StatusUnprocessableEntity)
	res := steerSubmit(t, oc, run.Id)
	apitest.RequireProblem(t, res, http.StatusUnprocessableEntity) // no decisions

	apitest.RequireProblem(t, steerSubmit(t, xc, run.Id, steerApprove("call_a"), steerApprove("call_b")), http.StatusNotFound)
	apitest.RequireProblem(t, steerSubmit(t, oc, 999999, steerApprove("call_a")), http.StatusNotFound)

	// The admin may decide.
	res = steerSubmit(t, f.admin, run.Id, steerApprove("call_a"), steerApprove("call_b"))
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	done := steerWaitEnded(t, oc, run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, done.Status, "%s", agtJSON(done))
	require.Len(t, done.Steps, 3, "the calls run in the model's order")
	require.Equal(t, "get_task", done.Steps[1].Name)
	require.Nil(t, done.Steps[1].Approval)
	require.Equal(t, client.TaskStatusCompleted, agtGetTask(t, oc, task.Id).Status)

	apitest.RequireProblem(t, steerSubmit(t, oc, run.Id, steerApprove("call_a"), steerApprove("call_b")), http.StatusConflict)
}

// TestAgentRunApprovalCancelAndExpire: a waiting run can be cancelled (and then not
// approved); one nobody decides on ends expired with approval_expired.
func TestAgentRunApprovalCancelAndExpire(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("APPROVAL_TIMEOUT", "2s"))
	user := f.env.CreateUser(t, "waiter", false)
	uc := f.env.As(user.Token)
	ag := steerAgent(t, f)
	task := agtCreateTask(t, uc, "wait")

	f.llm.Script(steerUpdateCall("call_c", task.Id, "in_progress"))
	run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "cancel me"})
	steerWaiting(t, uc, run.Id)
	c := agtCancel(t, uc, run.Id)
	require.Equal(t, client.AgentRunStatusCancelled, c.Status)
	apitest.RequireProblem(t, steerSubmit(t, uc, run.Id, steerApprove("call_c")), http.StatusConflict)
	require.Equal(t, "run.cancelled", last(steerEvents(t, uc, run.Id)))

	f.llm.Script(steerUpdateCall("call_x", task.Id, "in_progress"))
	run = agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "nobody answers"})
	steerWaiting(t, uc, run.Id)
	done := agtWaitFor(t, uc, run.Id, 30*time.Second, "expired", func(r client.AgentRun) bool { return steerEnded(r.Status) })
	require.Equal(t, client.AgentRunStatusExpired, done.Status)
	code, _ := agtRunError(done)
	require.Equal(t, "approval_expired", code)
	require.True(t, done.RequiredAction.IsNull())
	require.Equal(t, "run.expired", last(steerEvents(t, uc, run.Id)))
	apitest.RequireProblem(t, steerSubmit(t, uc, run.Id, steerApprove("call_x")), http.StatusConflict)
	res, err := uc.CancelAgentRunWithResponse(context.Background(), run.Id)
	require.NoError(t, err)
	apitest.RequireProblem(t, res, http.StatusConflict)
	require.Equal(t, client.TaskStatusPending, agtGetTask(t, uc, task.Id).Status)
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestAgentRunApprovalRaces: of concurrent submissions exactly one wins and the tool
// runs once; an approval racing a cancel, or the expiry, leaves the run in one outcome.
func TestAgentRunApprovalRaces(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("APPROVAL_TIMEOUT", "1s"))
	user := f.env.CreateUser(t, "racer", false)
	uc := f.env.As(user.Token)
	ag := steerAgent(t, f)

	t.Run("concurrent_approvals", func(t *testing.T) {
		task := agtCreateTask(t, uc, "race approvals")
		f.llm.Script(steerUpdateCall("call_race", task.Id, "in_progress"))
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "race"})
		steerWaiting(t, uc, run.Id)
		const n = 8
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := uc.SubmitAgentRunApprovalsWithResponse(context.Background(), run.Id,
					client.AgentRunApprovals{Decisions: []client.AgentRunDecision{steerApprove("call_race")}})
				if err == nil {
					codes[i] = res.StatusCode()
				}
			}()
		}
		wg.Wait()
		won := 0
		for _, c := range codes {
			require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, c)
			if c == http.StatusAccepted {
				won++
			}
		}
		require.Equal(t, 1, won, "exactly one submission wins: %v", codes)
		done := steerWaitEnded(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCompleted, done.Status)
		require.Len(t, done.Steps, 1)
		require.Equal(t, client.TaskStatusInProgress, agtGetTask(t, uc, task.Id).Status)
	})

	t.Run("approval_against_cancel", func(t *testing.T) {
		task := agtCreateTask(t, uc, "race cancel")
		f.llm.Script(steerUpdateCall("call_rc", task.Id, "in_progress"))
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "race"})
		steerWaiting(t, uc, run.Id)
		var approve, cancel int
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			res, err := uc.SubmitAgentRunApprovalsWithResponse(context.Background(), run.Id,
				client.AgentRunApprovals{Decisions: []client.AgentRunDecision{steerApprove("call_rc")}})
			if err == nil {
				approve = res.StatusCode()
			}
		}()
		go func() {
			defer wg.Done()
			res, err := uc.CancelAgentRunWithResponse(context.Background(), run.Id)
			if err == nil {
				cancel = res.StatusCode()
			}
		}()
		wg.Wait()
		require.Equal(t, http.StatusOK, cancel, "a cancel always wins over a run that has not ended")
		require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, approve)
		done := steerWaitEnded(t, uc, run.Id)
		require.Equal(t, client.AgentRunStatusCancelled, done.Status)
		if approve == http.StatusConflict {
			require.Empty(t, done.Steps, "cancelled first: the approval came too late and nothing ran")
			require.Equal(t, client.TaskStatusPending, agtGetTask(t, uc, task.Id).Status)
		}
		for _, s := range done.Steps {
			require.Equal(t, client.AgentRunApprovalDecisionApprove, s.Approval.Decision)
		}
	})

	t.Run("approval_against_expiry", func(t *testing.T) {
		task := agtCreateTask(t, uc, "race expiry")
		f.llm.Script(steerUpdateCall("call_rx", task.Id, "in_progress"))
		run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "race"})
		w := steerWaiting(t, uc, run.Id)
		time.Sleep(time.Until(w.RequiredAction.MustGet().ExpiresAt))
		res := steerSubmit(t, uc, run.Id, steerApprove("call_rx"))
		require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, res.StatusCode())
		done := agtWaitFor(t, uc, run.Id, 30*time.Second, "ended", func(r client.AgentRun) bool { return steerEnded(r.Status) })
		if res.StatusCode() == http.StatusAccepted {
			require.Equal(t, client.AgentRunStatusCompleted, done.Status, "approved in time: never expired")
			require.Equal(t, client.TaskStatusInProgress, agtGetTask(t, uc, task.Id).Status)
		} else {
			require.Equal(t, client.AgentRunStatusExpired, done.Status, "too late: expired, and nothing ran")
			require.Empty(t, done.Steps)
			require.Equal(t, client.TaskStatusPending, agtGetTask(t, uc, task.Id).Status)
		}
	})
}

// TestAgentRunQuotaCountsWaitingRuns: a run waiting for approval holds its place in the
// creator's quota.
func TestAgentRunQuotaCountsWaitingRuns(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("AGENT_ACTIVE_RUNS_PER_USER", "1"))
	user := f.env.CreateUser(t, "quota", false)
	uc := f.env.As(user.Token)
	ag := steerAgent(t, f)
	task := agtCreateTask(t, uc, "quota")
	f.llm.Script(steerUpdateCall("call_q", task.Id, "in_progress"))
	run := agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "wait"})
	steerWaiting(t, uc, run.Id)
	res, err := uc.CreateAgentRunWithResponse(context.Background(), ag.Id, nil, client.AgentRunCreate{Input: "one more"})
	require.NoError(t, err)
	apitest.RequireProblem(t, res, http.StatusTooManyRequests, "quota-exceeded")
	agtCancel(t, uc, run.Id)
	agtStartRun(t, uc, ag.Id, client.AgentRunCreate{Input: "now it fits"})
}

// steerMakeWaiting puts a queued run (of a server without workers) into requires_action
// with one waiting update_task_status call, as a worker would.
func steerMakeWaiting(t *testing.T, dbURL string, runID int64, callID string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `UPDATE agent_runs SET status = 'requires_action', expires_at = now() + interval '1 hour',
		pending_tool_calls = jsonb_build_array(jsonb_build_object('id', $2::text, 'name', 'update_task_status',
			'arguments', '{}', 'turn', 1, 'needs_approval', true)),
		required_action = jsonb_build_object('type', 'tool_approval', 'expires_at', now() + interval '1 hour',
			'tool_calls', jsonb_build_array(jsonb_build_object('id', $2::text, 'name', 'update_task_status', 'arguments', '{}'::jsonb)))
		WHERE id = $1`, runID, callID)
	require.NoError(t, err)
}
