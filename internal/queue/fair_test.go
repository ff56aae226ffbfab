package queue_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// TestFairQueueOneUsersBacklogDoesNotHoldUpAnother: user A queues 1,000 runs, then user
// B queues one; a worker with two slots starts. B's run starts after at most a few of
// A's (those queued first at the same priority), not after A's thousand.
func TestFairQueueOneUsersBacklogDoesNotHoldUpAnother(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	llm := llmtest.New(t)
	env := apitest.Start(t,
		apitest.WithEnv("WORKER_CONCURRENCY", "0"),
		apitest.WithEnv("RATE_LIMIT_PER_MINUTE", "0"),
		apitest.WithEnv("AGENT_ACTIVE_RUNS_PER_USER", "2000"),
		apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
		apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()),
	)
	admin := env.AsAdmin(t)
	ag, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "fair-" + randomHex(4)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, ag.StatusCode(), string(ag.Body))
	a := env.CreateUser(t, "heavy", false)
	b := env.CreateUser(t, "light", false)

	const backlog = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= backlog {
				res, err := a.Client.CreateAgentRunWithResponse(ctx, ag.JSON201.Id, nil, client.AgentRunCreate{Input: "bulk"})
				if err != nil || res.StatusCode() != http.StatusAccepted {
					t.Errorf("create run: %v %v", err, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	res, err := b.Client.CreateAgentRunWithResponse(ctx, ag.JSON201.Id, nil, client.AgentRunCreate{Input: "single"})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), string(res.Body))
	single := res.JSON202.Id

	startWorker(t, "worker", workerVars(env.DBURL, llm.BaseURL(), map[string]string{
		"WORKER_CONCURRENCY": "2", "LOG_LEVEL": "WARN",
	}))
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := b.Client.GetAgentRunWithResponse(ctx, single)
		require.NoError(t, err)
		if r.JSON200.Status == client.AgentRunStatusCompleted {
			break
		}
		require.True(t, time.Now().Before(deadline), "user B's run did not complete: %s", r.JSON200.Status)
		time.Sleep(20 * time.Millisecond)
	}
	pool, err := pgxpool.New(ctx, env.DBURL)
	require.NoError(t, err)
	defer pool.Close()
	var before, total int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE r.started_at < b.started_at), count(*)
		FROM agent_runs r, agent_runs b WHERE b.id = $1 AND r.created_by = $2`, single, a.Id).Scan(&before, &total))
	require.Equal(t, backlog, total)
	t.Logf("user A's runs started before user B's single run: %d of %d", before, backlog)
	require.LessOrEqual(t, before, 8, "B waits a few scheduling rounds at most, not for A's backlog")
}
