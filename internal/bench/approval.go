package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"enterprise-automation/internal/llmtest"
)

// approvalInput marks the runs of the agent-runs-approval scenario: the scripted model
// answers their first turn with a call of the tool that needs approval.
const approvalInput = "[approval] Read task 1 and summarise it."

// approvalReplies is the scripted model's rule for the approval scenario: the first
// turn of a marked run calls get_task; every other request gets the default answer.
func approvalReplies(body []byte) (llmtest.Reply, bool) {
	var req struct {
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
		return llmtest.Reply{}, false
	}
	last := req.Messages[len(req.Messages)-1]
	text, _ := last.Content.(string)
	if last.Role != "user" || !strings.Contains(text, "[approval]") {
		return llmtest.Reply{}, false
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_bench", Name: "get_task", Arguments: `{"task_id":1}`}},
		Prompt: 1, Completion: 1}, true
}

// runApprovalPipeline measures runs that wait for a person: each of Concurrency
// clients creates a run, polls it until requires_action, approves its call and goes on
// with the next run, for the duration; then the clock runs until every run has ended.
// Runs/s counts completed runs from the first creation to the last completion; the
// latency is from the approval's answer (202) to the run's completion. The baseline is
// the same clients and polling with runs that need no approval (an agent of its own, so
// that its runs are counted apart): the ratio is what the person's round trip costs.
func runApprovalPipeline(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc, Separate: def.separate}
	var plain struct {
		ID int64 `json:"id"`
	}
	if err := e.call(ctx, http.MethodPost, "/api/v1/agents", e.admin,
		map[string]any{"name": "bench approval baseline", "tools": []string{"get_task"}}, http.StatusCreated, &plain); err != nil {
		return s, err
	}
	e.log.printf("%s: baseline: %d clients create runs that need no approval and poll them to the end, %s", def.name, e.cfg.Concurrency, e.cfg.Duration)
	base, err := approvalPhase(ctx, e, plain.ID, runInput, false, nil)
	if err != nil {
		return s, err
	}
	s.Baseline = base.measured(def.baseWhat)
	e.log.printf("%s: %d clients create, wait for requires_action and approve, %s, then drain", def.name, e.cfg.Concurrency, e.cfg.Duration)
	rss := sampleRSS(e.server.pid())
	profiled := e.server.profile(e.cfg.ProfileDir, def.name, e.cfg.Duration)
	with, err := approvalPhase(ctx, e, e.agentApproval, approvalInput, true, profiled)
	endMB, peakMB := rss.finish()
	if err != nil {
		return s, err
	}
	s.HTTP = with.measured(def.httpWhat)
	s.HTTP.ServerRSSMB, s.HTTP.ServerPeakRSSMB = endMB, peakMB
	e.peakRSSMB = max(e.peakRSSMB, peakMB)
	if s.Baseline.PerSecond > 0 {
		s.Ratio = s.HTTP.PerSecond / s.Baseline.PerSecond
	}
	s.Notes = append(s.Notes, fmt.Sprintf("create → completed p50 %.1f ms, p99 %.1f ms; drained %.1fs after the last approval",
		with.runs.EndToEnd.P50, with.runs.EndToEnd.P99, with.runs.DrainAfter))
	return s, nil
}

// approvalOutcome is one phase of the approval scenario.
type approvalOutcome struct {
	runs          PipelineRuns
	latency       []time.Duration // approval answered → completed, or created → completed without approval
	errs          uint64
	samples       []string
	before, after cpuSnap
}

func (o approvalOutcome) measured(what string) Measured {
	m := Measured{
		What: what, Operations: uint64(o.runs.Completed), Errors: o.errs + uint64(o.runs.Other),
		Seconds: o.runs.Seconds, PerSecond: o.runs.PerSecond, Latency: latencyOf(o.latency), ErrorSamples: o.samples,
	}
	m.perOp(o.before, o.after, m.Operations)
	return m
}

// approvalPhase runs Concurrency clients for the duration, each creating runs of agent
// with input and polling each until it waits for approval (approve: then approving its
// call) or ends; then it waits until every run of agent has ended. profiled, when set,
// ends the server's CPU profile once the clients stop.
func approvalPhase(ctx context.Context, e *runEnv, agentID int64, input string, approve bool, profiled func() error) (approvalOutcome, error) {
	client := &http.Client{Transport: e.tr, Timeout: 60 * time.Second}
	var (
		mu      sync.Mutex
		started = map[int64]time.Time{} // approval answered, or run created
		errs    atomic.Uint64
		samples []string
	)
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if len(samples) < 5 {
			samples = append(samples, err.Error())
		}
		mu.Unlock()
	}
	one := func(ctx context.Context) error {
		var run struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		}
		created := time.Now()
		if err := e.call(ctx, http.MethodPost, "/api/v1/agents/"+strconv.FormatInt(agentID, 10)+"/runs", e.admin,
			map[string]any{"input": input}, http.StatusAccepted, &run); err != nil {
			return err
		}
		path := "/api/v1/agent-runs/" + strconv.FormatInt(run.ID, 10)
		waiting := func() bool {
			if approve {
				return run.Status == "requires_action"
			}
			return run.Status != "queued" && run.Status != "in_progress"
		}
		deadline := time.Now().Add(30 * time.Second)
		for !waiting() {
			if time.Now().After(deadline) {
				return fmt.Errorf("run %d: %s after 30s", run.ID, run.Status)
			}
			time.Sleep(5 * time.Millisecond)
			if err := e.call(ctx, http.MethodGet, path, e.admin, nil, http.StatusOK, &run); err != nil {
				return err
			}
		}
		if !approve {
			mu.Lock()
			started[run.ID] = created
			mu.Unlock()
			return nil
		}
		body, _ := json.Marshal(map[string]any{"decisions": []map[string]any{{"tool_call_id": "call_bench", "decision": "approve"}}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+path+"/approvals", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = e.admin.jsonHeader.Clone()
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		at := time.Now()
		if res.StatusCode != http.StatusAccepted {
			return fmt.Errorf("approve run %d: %d", run.ID, res.StatusCode)
		}
		mu.Lock()
		started[run.ID] = at
		mu.Unlock()
		return nil
	}
	var o approvalOutcome
	o.before = e.cpu()
	var wg sync.WaitGroup
	stop := time.Now().Add(e.cfg.Duration)
	for range e.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				if err := one(ctx); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
	createsDone := time.Now()
	if profiled != nil {
		if err := profiled(); err != nil {
			return o, err
		}
	}
	if err := e.drain(ctx, agentID); err != nil {
		return o, err
	}
	o.after = e.cpu()
	runs, err := e.runStats(ctx, agentID)
	if err != nil {
		return o, err
	}
	runs.DrainAfter = time.Since(createsDone).Seconds()
	o.runs = runs
	rows, err := e.pool.Query(ctx, `SELECT id, completed_at FROM agent_runs WHERE agent_id = $1 AND status = 'completed'`, agentID)
	if err != nil {
		return o, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var done time.Time
		if err := rows.Scan(&id, &done); err != nil {
			return o, err
		}
		if at, ok := started[id]; ok {
			o.latency = append(o.latency, max(done.Sub(at), 0))
		}
	}
	o.errs, o.samples = errs.Load(), samples
	return o, rows.Err()
}
