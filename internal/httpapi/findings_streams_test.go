package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// rawStream is one open event stream, read and discarded in the background.
type rawStream struct {
	status int
	cancel func()
	done   chan struct{} // closed when the server has ended the stream (or it was cancelled)
}

var streamTransport = &http.Transport{MaxIdleConnsPerHost: -1}

// openRawStream opens GET /api/v1/agent-runs/{run_id}/events and returns once the
// response headers are in; the stream is closed when the test ends.
func openRawStream(t *testing.T, baseURL, token string, runID int64) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/agent-runs/%d/events", baseURL, runID), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := (&http.Client{Transport: streamTransport}).Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	s := &rawStream{status: res.StatusCode, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// streamFixture is a server without workers (runs stay queued, so their streams stay
// open and idle), a user and one of the user's runs.
type streamFixture struct {
	env   *apitest.Env
	admin *client.ClientWithResponses
	user  apitest.User
	agent client.Agent
	run   client.AgentRun
}

func newStreamFixture(t *testing.T, opts ...apitest.Option) *streamFixture {
	t.Helper()
	env := apitest.Start(t, append([]apitest.Option{apitest.WithEnv("WORKER_CONCURRENCY", "0")}, opts...)...)
	admin := env.AsAdmin(t)
	user := env.CreateUser(t, "Streamer", false)
	ag := agtCreateAgent(t, admin, client.AgentCreate{Name: "idle-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	run := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "wait"})
	return &streamFixture{env: env, admin: admin, user: user, agent: ag, run: run}
}

func TestFinding05_StreamsPerUserAreBounded(t *testing.T) {
	t.Parallel()
	f := newStreamFixture(t)
	const limit = 20 // SSE_MAX_STREAMS_PER_USER's default
	streams := make([]*rawStream, limit)
	for i := range streams {
		streams[i] = openRawStream(t, f.env.BaseURL, f.user.Token, f.run.Id)
		require.Equal(t, http.StatusOK, streams[i].status, "stream %d", i+1)
	}

	// The 21st is refused with a contract-valid 429 problem and Retry-After.
	over := f.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d/events", f.run.Id), f.user.Token, "")
	p := apitest.RequireProblem(t, over, http.StatusTooManyRequests)
	require.Equal(t, "/problems/rate-limited", p.Type)
	require.NotEmpty(t, over.Header.Get("Retry-After"))

	// The bound is per user: another user (here the admin) still streams.
	adminToken := f.env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	other := openRawStream(t, f.env.BaseURL, adminToken, f.run.Id)
	require.Equal(t, http.StatusOK, other.status)

	// Closing one stream frees its slot.
	streams[0].cancel()
	<-streams[0].done
	require.Eventually(t, func() bool {
		s := openRawStream(t, f.env.BaseURL, f.user.Token, f.run.Id)
		return s.status == http.StatusOK
	}, 5*time.Second, 50*time.Millisecond, "a closed stream gives its slot back")
	again := f.env.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/agent-runs/%d/events", f.run.Id), f.user.Token, "")
	apitest.RequireProblem(t, again, http.StatusTooManyRequests)
}

// requireEnds waits for the server to end the stream.
func requireEnds(t *testing.T, s *rawStream, within time.Duration, why string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		require.FailNowf(t, "the stream stayed open", "%s: still open after %s", why, within)
	}
}

func TestFinding05_StreamEndsWhenItsUserIsDeactivated(t *testing.T) {
	t.Parallel()
	f := newStreamFixture(t)
	s := openRawStream(t, f.env.BaseURL, f.user.Token, f.run.Id)
	require.Equal(t, http.StatusOK, s.status)
	select {
	case <-s.done:
		require.FailNow(t, "the stream of a queued run ended by itself")
	case <-time.After(300 * time.Millisecond):
	}

	res, err := f.admin.UpdateUserWithResponse(context.Background(), f.user.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(false)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
	requireEnds(t, s, 5*time.Second, "after its user was deactivated")
}

func TestFinding05_StreamEndsWhenItsRunIsDeleted(t *testing.T) {
	t.Parallel()
	f := newStreamFixture(t)
	s := openRawStream(t, f.env.BaseURL, f.user.Token, f.run.Id)
	require.Equal(t, http.StatusOK, s.status)
	select {
	case <-s.done:
		require.FailNow(t, "the stream of a queued run ended by itself")
	case <-time.After(300 * time.Millisecond):
	}

	// Runs are deleted with their agent (ON DELETE CASCADE).
	res, err := f.admin.DeleteAgentWithResponse(context.Background(), f.agent.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, res.StatusCode(), "%s", res.Body)
	requireEnds(t, s, 5*time.Second, "after its run was deleted")
}

// idleStreamCount is how many idle streams the cost test opens; FINDING05_STREAMS
// overrides it (internal/bench/FINDINGS.md has the figure for 1,000).
func idleStreamCount(t *testing.T) int {
	if v := os.Getenv("FINDING05_STREAMS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		return n
	}
	return 200
}

func TestFinding05_IdleStreamsCostTheDatabaseNothing(t *testing.T) {
	t.Parallel()
	n := idleStreamCount(t)
	f := newStreamFixture(t, apitest.WithEnv("SSE_MAX_STREAMS_PER_USER", strconv.Itoa(n)))
	pool, err := pgxpool.New(context.Background(), f.env.DBURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	// Transactions committed in this test's database, per window. A backend that goes
	// idle less than a second after it last reported its counts reports the rest 10 s
	// later (PGSTAT_IDLE_INTERVAL), so each window starts after a settling pause longer
	// than that: the requests that opened the streams are not counted as the streams'.
	commits := func() int64 {
		var c int64
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&c))
		return c
	}
	// The window (11–17 s after the streams opened) holds their first keep-alive (15 s),
	// which must read nothing either.
	const settle, window = 11 * time.Second, 6 * time.Second
	measure := func() int64 {
		time.Sleep(settle)
		before := commits()
		time.Sleep(window)
		return commits() - before
	}

	baseline := measure()

	streams := make([]*rawStream, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range streams {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			streams[i] = openRawStream(t, f.env.BaseURL, f.user.Token, f.run.Id)
		})
	}
	wg.Wait()
	for i, s := range streams {
		require.Equal(t, http.StatusOK, s.status, "stream %d", i)
	}

	idle := measure()
	for i, s := range streams {
		select {
		case <-s.done:
			require.FailNowf(t, "a stream ended", "stream %d ended while idle", i)
		default:
		}
	}
	t.Logf("%d idle streams: %d transactions in %s (without streams: %d)", n, idle, window, baseline)
	// A poll of every stream every 2 s would commit about n transactions per second; the
	// allowance is a constant for background work, whatever n is.
	require.LessOrEqual(t, idle, baseline+20, "idle streams must not query the database (%d streams)", n)
}
