package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/llmtest"
)

// TestEventStreamEndsWithTerminalEvent: every stream opened on a run that workers execute
// must end with the run's terminal event (DESIGN §3: the stream is followed live until
// the terminal event). Runs stream output, so the terminal event is committed just after
// an output delta woke the stream up: exactly when the stream re-reads the log.
func TestEventStreamEndsWithTerminalEvent(t *testing.T) {
	t.Parallel()
	llm := llmtest.New(t)
	env := apitest.Start(t,
		apitest.WithEnv("WORKER_CONCURRENCY", "8"),
		apitest.WithEnv("OPENAI_API_KEY", llmtest.APIKey),
		apitest.WithEnv("OPENAI_BASE_URL", llm.BaseURL()),
		apitest.WithEnv("LOG_LEVEL", "WARNING"),
	)
	tok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(hc.CloseIdleConnections)
	api, err := client.NewClientWithResponses(env.BaseURL, client.WithHTTPClient(hc), client.WithRequestEditorFn(apitest.Bearer(tok)))
	require.NoError(t, err)
	e := &benchEnv{env: env, token: tok, api: api, http: hc}
	ag, err := api.CreateAgentWithResponse(context.Background(), client.AgentCreate{Name: "sse-" + randomHex(4)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, ag.StatusCode(), string(ag.Body))

	const runs, parallel = 200, 8
	var (
		mu     sync.Mutex
		broken []string
		wg     sync.WaitGroup
	)
	next := make(chan int, runs)
	for i := range runs {
		next <- i
	}
	close(next)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if msg := streamOneRun(t, e, ag.JSON201.Id); msg != "" {
					mu.Lock()
					broken = append(broken, msg)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(broken) > 0 {
		t.Fatalf("%d of %d streams ended without the run's terminal event, e.g.:\n%s",
			len(broken), runs, strings.Join(broken[:min(len(broken), 5)], "\n"))
	}
}

// streamOneRun creates a run, follows its stream to the end and returns what went wrong ("" if nothing).
func streamOneRun(t *testing.T, e *benchEnv, agentID int64) string {
	res, err := e.api.CreateAgentRunWithResponse(context.Background(), agentID, nil, client.AgentRunCreate{Input: "stream me"})
	if err != nil || res.StatusCode() != http.StatusAccepted {
		t.Errorf("create run: %v %v", err, res)
		return ""
	}
	id := res.JSON202.Id
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, r, err := e.openEvents(ctx, id)
	if err != nil {
		t.Errorf("open events: %v", err)
		return ""
	}
	defer body.Body.Close()
	var types []string
	for {
		typ, err := nextEvent(r)
		if err != nil {
			break // the server ended the stream
		}
		types = append(types, typ)
	}
	if n := len(types); n > 0 && types[n-1] == "run.completed" {
		return ""
	}
	// The stream ended early: is the terminal event in the log? (A fresh connection replays it.)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	body2, r2, err := e.openEvents(ctx2, id)
	var replay []string
	if err == nil {
		for {
			typ, err := nextEvent(r2)
			if err != nil {
				break
			}
			replay = append(replay, typ)
		}
		body2.Body.Close()
	}
	return fmt.Sprintf("run %d: stream delivered [%s] and ended; a new connection replays [%s]",
		id, strings.Join(types, " "), strings.Join(replay, " "))
}
