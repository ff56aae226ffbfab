package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/redistest"
)

// obsMetric returns the value of the sample whose name and labels start with prefix
// (e.g. `http_requests_total{method="GET",route="/api/v1/users/me",status="200"}`).
func obsMetric(t *testing.T, text, sample string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	require.NotNil(t, m, "no sample %s in:\n%s", sample, text)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func TestMetricsExposeRequestsPoolQueueAndLLM(t *testing.T) {
	t.Parallel()
	f := agtSetup(t)
	ctx := context.Background()
	for range 3 {
		res, err := f.admin.GetCurrentUserWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
	}
	res, err := f.admin.GetTaskWithResponse(ctx, 987654, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode())
	f.env.Do(t, http.MethodGet, "/no/such/route", "", "")

	ag := agtNewAgent(t, f)
	f.llm.Script(llmtest.Reply{Content: []string{"done"}, Prompt: 11, Completion: 4})
	run := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "go"}).Id)
	require.Equal(t, client.AgentRunStatusCompleted, run.Status)

	// A request is counted once its response is written, and a run once its final
	// statement returns: the client may look a moment earlier.
	var text string
	require.Eventually(t, func() bool {
		text = rlMetrics(t, f.env)
		return strings.Contains(text, `agent_run_jobs_total{outcome="completed"} 1`) &&
			strings.Contains(text, `http_requests_total{method="GET",route="unmatched",status="404"} 1`)
	}, 5*time.Second, 20*time.Millisecond, "the last requests and the run are counted")
	assert.GreaterOrEqual(t, obsMetric(t, text, `http_requests_total{method="GET",route="/api/v1/users/me",status="200"}`), 3.0)
	assert.Equal(t, 1.0, obsMetric(t, text, `http_requests_total{method="GET",route="/api/v1/tasks/:task_id",status="404"}`),
		"labelled by route template, not by path")
	assert.Equal(t, 1.0, obsMetric(t, text, `http_requests_total{method="GET",route="unmatched",status="404"}`),
		"unknown paths share one label value")
	assert.GreaterOrEqual(t, obsMetric(t, text, `http_request_duration_seconds_count{method="GET",route="/api/v1/users/me"}`), 3.0)
	assert.Contains(t, text, `http_request_duration_seconds_bucket{method="GET",route="/api/v1/users/me",le="0.005"}`)
	assert.Greater(t, obsMetric(t, text, `db_pool_max_connections`), 0.0)
	assert.Greater(t, obsMetric(t, text, `db_pool_acquires_total`), 0.0)
	obsMetric(t, text, `agent_run_jobs{state="available"}`)
	assert.Equal(t, 1.0, obsMetric(t, text, `agent_run_jobs_total{outcome="completed"}`))
	assert.Equal(t, 11.0, obsMetric(t, text, `llm_tokens_total{kind="prompt",model="gpt-4o"}`))
	assert.Equal(t, 4.0, obsMetric(t, text, `llm_tokens_total{kind="completion",model="gpt-4o"}`))
	assert.Equal(t, 1.0, obsMetric(t, text, `llm_request_duration_seconds_count{model="gpt-4o",outcome="ok"}`))
	assert.Greater(t, obsMetric(t, text, `go_goroutines`), 0.0)
	assert.Contains(t, text, "process_resident_memory_bytes")
	assert.NotContains(t, text, apitest.AdminEmail, "metrics carry no user data")
}

// TestLLMResponseCache runs an agent at temperature 0 twice on the same input: the
// second run is answered from the cache (the model is called once), costs no tokens and
// records the hit. At a higher temperature nothing is cached.
func TestLLMResponseCache(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"in-process", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var extra []apitest.Option
			if backend == "redis" {
				extra = append(extra, apitest.WithEnv("REDIS_URL", redistest.Start(t).URL()))
			}
			f := agtSetup(t, extra...)
			ctx := context.Background()
			zero := 0.0
			tools := client.AgentTools{client.GetTask}
			ag := agtCreateAgent(t, f.admin, client.AgentCreate{
				Name: "deterministic-" + backend, Instructions: apitest.Ptr("Answer briefly."), Temperature: &zero, Tools: &tools,
			})
			f.llm.Script(llmtest.Reply{Content: []string{"The ", "answer."}, Prompt: 50, Completion: 5})
			first := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "What is the answer?"}).Id)
			require.Equal(t, client.AgentRunStatusCompleted, first.Status, "%s", agtJSON(first))
			require.Equal(t, client.AgentRunUsage{PromptTokens: 50, CompletionTokens: 5, TotalTokens: 55, ModelTurns: 1}, first.Usage)
			require.Equal(t, 1, f.llm.Hits())

			second := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "What is the answer?"}).Id)
			require.Equal(t, client.AgentRunStatusCompleted, second.Status, "%s", agtJSON(second))
			assert.Equal(t, "The answer.", second.Output.MustGet())
			assert.Equal(t, client.AgentRunUsage{CachedCompletions: 1, ModelTurns: 1}, second.Usage, "a cached answer costs no tokens and is recorded on the run")
			assert.Equal(t, 1, f.llm.Hits(), "the model was not called again")

			// The streamed events of the cached run carry the answer like any other.
			events := f.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d/events", second.Id), f.adminToken, "")
			require.Equal(t, http.StatusOK, events.Status)
			assert.Contains(t, string(events.Body), "The answer.")

			// A different input is a different request.
			f.llm.Script(llmtest.Reply{Content: []string{"Other."}, Prompt: 60, Completion: 2})
			third := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "Something else?"}).Id)
			assert.Equal(t, "Other.", third.Output.MustGet())
			assert.Zero(t, third.Usage.CachedCompletions)
			assert.Equal(t, 2, f.llm.Hits())

			// At temperature 0.7 the same request may rightly answer differently: no cache.
			warm := 0.7
			patch, err := f.admin.UpdateAgentWithResponse(ctx, ag.Id, nil, client.AgentUpdate{Temperature: &warm})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, patch.StatusCode(), "%s", patch.Body)
			for i := range 2 {
				f.llm.Script(llmtest.Reply{Content: []string{"Warm."}, Prompt: 1, Completion: 1})
				r := agtWaitRun(t, f.admin, agtStartRun(t, f.admin, ag.Id, client.AgentRunCreate{Input: "What is the answer?"}).Id)
				require.Equal(t, client.AgentRunStatusCompleted, r.Status)
				assert.Zero(t, r.Usage.CachedCompletions, "run %d", i+1)
			}
			assert.Equal(t, 4, f.llm.Hits())
		})
	}
}
