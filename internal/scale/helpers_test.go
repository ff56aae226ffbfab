package scale_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/fleet"
)

// The multi-instance suite starts a dozen processes per test; `make test-scale` runs it
// (CI does), apart from `make test`'s race-detector run of every package.
const gateVar = "SCALE_TESTS"

func TestMain(m *testing.M) { fleet.Main(m) }

func gate(t *testing.T) {
	t.Helper()
	if os.Getenv(gateVar) != "1" {
		t.Skipf("multi-instance test: run with %s=1 (make test-scale)", gateVar)
	}
}

// node talks to one base URL (an API instance or the balancer), every response checked
// against the contract.
type node struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newNode(t testing.TB, base string) *node {
	return &node{t: t, base: base, hc: &http.Client{
		Transport: &apitest.Validating{T: t, Next: &http.Transport{MaxIdleConnsPerHost: 64}},
		Timeout:   30 * time.Second,
	}}
}

func (n *node) client(token string) *client.ClientWithResponses {
	opts := []client.ClientOption{client.WithHTTPClient(n.hc)}
	if token != "" {
		opts = append(opts, client.WithRequestEditorFn(apitest.Bearer(token)))
	}
	c, err := client.NewClientWithResponses(n.base, opts...)
	require.NoError(n.t, err)
	return c
}

func (n *node) login(t testing.TB, email, pw string) string {
	t.Helper()
	res, err := n.client("").CreateTokenWithFormdataBodyWithResponse(context.Background(), client.TokenRequest{Username: email, Password: pw})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "login %s on %s: %s", email, n.base, res.Body)
	return res.JSON200.AccessToken
}

// me is GET /users/me: the cheapest request that authenticates.
func (n *node) me(t testing.TB, token string) int {
	t.Helper()
	res, err := n.client(token).GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	return res.StatusCode()
}

type account struct {
	ID       int64
	Email    string
	Password string
}

// createUser creates an active user as the administrator.
func createUser(t testing.TB, admin *client.ClientWithResponses, name string) account {
	t.Helper()
	email := strings.ToLower(name) + "-" + randomHex(4) + "@example.com"
	pw := "password-" + randomHex(6)
	res, err := admin.CreateUserWithResponse(context.Background(), nil, client.UserCreate{
		Name: name, Email: openapi_types.Email(email), Password: pw,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create user: %s", res.Body)
	return account{ID: res.JSON201.Id, Email: email, Password: pw}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	ID   int64
	Type string
	Data string
}

// stream opens GET /agent-runs/{id}/events on base and sends each event to the returned
// channel, which is closed when the stream ends; cancel closes the connection.
func stream(t testing.TB, base, token string, runID int64, lastEventID int64) (<-chan sseEvent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/agent-runs/%d/events", base, runID), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastEventID, 10))
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream"), res.Header.Get("Content-Type"))
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Type != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID, _ = strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out, cancel
}

// collect reads events until the stream ends or within passes.
func collect(t testing.TB, ch <-chan sseEvent, within time.Duration) []sseEvent {
	t.Helper()
	var evs []sseEvent
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("stream did not end within %v; got %d events", within, len(evs))
		}
	}
}

func ids(evs []sseEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func getRun(t testing.TB, c *client.ClientWithResponses, id int64) client.AgentRun {
	t.Helper()
	res, err := c.GetAgentRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

func createAgent(t testing.TB, c *client.ClientWithResponses) client.Agent {
	t.Helper()
	res, err := c.CreateAgentWithResponse(context.Background(), client.AgentCreate{Name: "scale-" + randomHex(4)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), string(res.Body))
	return *res.JSON201
}

func createRun(t testing.TB, c *client.ClientWithResponses, agentID int64, input string) client.AgentRun {
	t.Helper()
	res, err := c.CreateAgentRunWithResponse(context.Background(), agentID, nil, client.AgentRunCreate{Input: input})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), string(res.Body))
	return *res.JSON202
}

func terminal(s client.AgentRunStatus) bool {
	switch s {
	case client.AgentRunStatusQueued, client.AgentRunStatusInProgress:
		return false
	}
	return true
}
