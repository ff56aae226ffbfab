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
// latency is from the approval's answer (202) to the run's completion.
func runApprovalPipeline(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error) {
	s := Scenario{Name: def.name, Description: def.desc, Separate: def.separate}
	e.log.printf("%s: %d clients create, wait for requires_action and approve, %s, then drain", def.name, e.cfg.Concurrency, e.cfg.Duration)
	client := &http.Client{Transport: e.tr, Timeout: 60 * time.Second}
	var (
		mu       sync.Mutex
		approved = map[int64]time.Time{}
		errs     atomic.Uint64
		samples  []string
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
		if err := e.call(ctx, http.MethodPost, "/api/v1/agents/"+strconv.FormatInt(e.agentApproval, 10)+"/runs", e.admin,
			map[string]any{"input": approvalInput}, http.StatusAccepted, &run); err != nil {
			return err
		}
		path := "/api/v1/agent-runs/" + strconv.FormatInt(run.ID, 10)
		deadline := time.Now().Add(30 * time.Second)
		for run.Status != "requires_action" {
			if time.Now().After(deadline) {
				return fmt.Errorf("run %d: %s after 30s, not requires_action", run.ID, run.Status)
			}
			time.Sleep(5 * time.Millisecond)
			if err := e.call(ctx, http.MethodGet, path, e.admin, nil, http.StatusOK, &run); err != nil {
				return err
			}
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
		approved[run.ID] = at
		mu.Unlock()
		return nil
	}
	before := e.cpu()
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
	if err := e.drain(ctx, e.agentApproval); err != nil {
		return s, err
	}
	after := e.cpu()
	runs, err := e.runStats(ctx, e.agentApproval)
	if err != nil {
		return s, err
	}
	runs.DrainAfter = time.Since(createsDone).Seconds()
	rows, err := e.pool.Query(ctx, `SELECT id, completed_at FROM agent_runs WHERE agent_id = $1 AND status = 'completed'`, e.agentApproval)
	if err != nil {
		return s, err
	}
	var lat []time.Duration
	for rows.Next() {
		var id int64
		var done time.Time
		if err := rows.Scan(&id, &done); err != nil {
			rows.Close()
			return s, err
		}
		if at, ok := approved[id]; ok {
			lat = append(lat, max(done.Sub(at), 0))
		}
	}
	rows.Close()
	s.HTTP = Measured{
		What: def.httpWhat, Operations: uint64(runs.Completed), Errors: errs.Load() + uint64(runs.Other),
		Seconds: runs.Seconds, PerSecond: runs.PerSecond, Latency: latencyOf(lat), ErrorSamples: samples,
	}
	s.HTTP.perOp(before, after, s.HTTP.Operations)
	s.Baseline = Measured{What: def.baseWhat}
	s.Notes = append(s.Notes, fmt.Sprintf("create → completed p50 %.1f ms, p99 %.1f ms; drained %.1fs after the last approval",
		runs.EndToEnd.P50, runs.EndToEnd.P99, runs.DrainAfter))
	return s, nil
}
