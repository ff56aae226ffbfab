package scale_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/fleet"
	"enterprise-automation/internal/llmtest"
)

// TestScaleMixedRequestsThroughBalancer: 2,000 requests of every common kind through
// haproxy in front of two API instances (two workers executing the runs); none fails and
// every response is what the contract describes. Both instances served.
func TestScaleMixedRequestsThroughBalancer(t *testing.T) {
	t.Parallel()
	gate(t)
	llm := llmtest.New(t)
	// Every login comes from 127.0.0.1: the per-IP login limit (shared through Redis) is raised.
	f := fleet.Start(t, fleet.Options{APIs: 2, Workers: 2, Redis: true, Balancer: true, Env: map[string]string{
		"OPENAI_API_KEY": llmtest.APIKey, "OPENAI_BASE_URL": llm.BaseURL(), "LOGIN_RATE_LIMIT_PER_MINUTE": "100",
	}})
	lb := newNode(t, f.LB.URL())
	admin := lb.client(lb.login(t, f.AdminEmail, f.AdminPassword))
	agent := createAgent(t, admin)

	const users, perUser = 10, 200
	before := servedBy(t, f)
	var failures atomic.Int64
	var failed sync.Map
	var runs sync.Map
	var wg sync.WaitGroup
	for u := range users {
		acc := createUser(t, admin, fmt.Sprintf("load%d", u))
		c := lb.client(lb.login(t, acc.Email, acc.Password))
		wg.Go(func() {
			ctx := context.Background()
			var taskID int64
			var version int64
			for i := range perUser {
				op, status, want, err := mixedRequest(ctx, c, admin, agent.Id, u, i, &taskID, &version, &runs)
				if err != nil || !want(status) {
					failures.Add(1)
					failed.Store(fmt.Sprintf("user %d request %d %s", u, i, op), fmt.Sprintf("status %d, err %v", status, err))
				}
			}
		})
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("%s: %s", k, v); return true })
	require.Zero(t, failures.Load(), "failed requests out of %d", users*perUser)

	after := servedBy(t, f)
	for i := range f.APIs {
		require.Greater(t, after[i]-before[i], float64(users*perUser)/4, "instance %d served too few of the requests: %v → %v", i, before, after)
	}
	// The runs created under load were executed by the workers.
	runs.Range(func(k, _ any) bool {
		id := k.(int64)
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := getRun(t, admin, id)
			if r.Status == client.AgentRunStatusCompleted {
				return true
			}
			require.False(t, terminal(r.Status), "run %d ended %s: %+v", id, r.Status, r.Error)
			require.True(t, time.Now().Before(deadline), "run %d still %s after 60s", id, r.Status)
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// mixedRequest sends the i-th request of a load user: creates, reads, lists, updates
// (with If-Match), idempotent replays, agent runs, and a refused admin-only read.
func mixedRequest(ctx context.Context, c, admin *client.ClientWithResponses, agentID int64, u, i int,
	taskID *int64, version *int64, runs *sync.Map,
) (op string, status int, want func(int) bool, err error) {
	is := func(codes ...int) func(int) bool {
		return func(s int) bool {
			for _, c := range codes {
				if s == c {
					return true
				}
			}
			return false
		}
	}
	switch {
	case *taskID == 0 || i%10 == 0:
		key := uuid.NewString()
		body := client.TaskCreate{Title: fmt.Sprintf("task %d of user %d", i, u), Tags: &client.TaskTags{"load"}}
		res, e := c.CreateTaskWithResponse(ctx, &client.CreateTaskParams{IdempotencyKey: &key}, body)
		if e != nil {
			return "createTask", 0, is(201), e
		}
		if res.JSON201 != nil {
			*taskID, *version = res.JSON201.Id, res.JSON201.Version
			// A retry with the same key replays the same task.
			again, e := c.CreateTaskWithResponse(ctx, &client.CreateTaskParams{IdempotencyKey: &key}, body)
			if e != nil {
				return "createTask replay", 0, is(201), e
			}
			if again.JSON201 == nil || again.JSON201.Id != *taskID {
				return "createTask replay: " + string(again.Body), again.StatusCode(), is(-1), nil
			}
		}
		return "createTask", res.StatusCode(), is(201), nil
	case i%10 == 1:
		st := client.TaskStatusInProgress
		if *version%2 == 1 {
			st = client.TaskStatusPending
		}
		etag := fmt.Sprintf(`"%d"`, *version)
		res, e := c.UpdateTaskWithResponse(ctx, *taskID, &client.UpdateTaskParams{IfMatch: &etag}, client.TaskUpdate{Status: &st})
		if e == nil && res.JSON200 != nil {
			*version = res.JSON200.Version
		}
		return "updateTask", statusOf(res), is(200), e
	case i%10 == 2:
		res, e := c.ListTasksWithResponse(ctx, &client.ListTasksParams{Limit: ptr(int32(20))})
		return "listTasks", statusOf(res), is(200), e
	case i%10 == 3:
		res, e := c.GetCurrentUserWithResponse(ctx, nil)
		return "getCurrentUser", statusOf(res), is(200), e
	case i%10 == 4:
		res, e := c.ListUsersWithResponse(ctx, nil)
		return "listUsers (not an admin)", statusOf(res), is(403), e
	case agentID != 0 && i%50 == 5:
		res, e := admin.CreateAgentRunWithResponse(ctx, agentID, nil, client.AgentRunCreate{Input: fmt.Sprintf("load %d/%d", u, i)})
		if e == nil && res.JSON202 != nil {
			runs.Store(res.JSON202.Id, true)
		}
		return "createAgentRun", statusOf(res), is(202), e
	case i%10 == 6:
		res, e := c.GetTaskWithResponse(ctx, 1<<40, nil)
		return "getTask (missing)", statusOf(res), is(404), e
	default:
		res, e := c.GetTaskWithResponse(ctx, *taskID, nil)
		return "getTask", statusOf(res), is(200), e
	}
}

type statusCoder interface{ StatusCode() int }

func statusOf(r statusCoder) int {
	if r == nil || reflect.ValueOf(r).IsNil() {
		return 0
	}
	return r.StatusCode()
}

func ptr[T any](v T) *T { return &v }

// servedBy sums http_requests_total on each API instance.
func servedBy(t *testing.T, f *fleet.Fleet) []float64 {
	t.Helper()
	out := make([]float64, len(f.APIs))
	for i, p := range f.APIs {
		res, err := http.Get(p.URL() + "/metrics")
		require.NoError(t, err)
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(t, res))
		for _, line := range strings.Split(b.String(), "\n") {
			if !strings.HasPrefix(line, "http_requests_total{") {
				continue
			}
			var v float64
			_, _ = fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			out[i] += v
		}
	}
	return out
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32*1024)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestScaleSessionEndsOnEveryInstance: a deactivation, a key revocation and a password
// change made through instance A are refused by instance B on the very next request,
// although B had just cached the principal: with Redis, and without it (PostgreSQL
// LISTEN/NOTIFY carries the invalidation).
func TestScaleSessionEndsOnEveryInstance(t *testing.T) {
	t.Parallel()
	gate(t)
	for _, withRedis := range []bool{true, false} {
		name := "listen_notify"
		if withRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := fleet.Start(t, fleet.Options{APIs: 2, Redis: withRedis})
			a, b := newNode(t, f.APIs[0].URL()), newNode(t, f.APIs[1].URL())
			admin := a.client(a.login(t, f.AdminEmail, f.AdminPassword))

			t.Run("deactivated_user", func(t *testing.T) {
				u := createUser(t, admin, "deactivated")
				tok := b.login(t, u.Email, u.Password)
				require.Equal(t, http.StatusOK, b.me(t, tok))
				require.Equal(t, http.StatusOK, b.me(t, tok), "cached on B")
				res, err := admin.UpdateUserWithResponse(context.Background(), u.ID, nil, client.UserUpdate{IsActive: ptr(false)})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
				require.Equal(t, http.StatusUnauthorized, b.me(t, tok), "B still accepts a deactivated user's token")
			})

			t.Run("revoked_key", func(t *testing.T) {
				u := createUser(t, admin, "keyholder")
				tok := a.login(t, u.Email, u.Password)
				created, err := a.client(tok).CreateApiKeyWithResponse(context.Background(),
					client.ApiKeyCreate{Name: "scale", Scopes: []client.Scope{client.UsersRead}})
				require.NoError(t, err)
				require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
				key := created.JSON201.Key
				onB := func() int {
					res, err := b.hc.Do(keyRequest(t, b.base, key))
					require.NoError(t, err)
					_ = res.Body.Close()
					return res.StatusCode
				}
				require.Equal(t, http.StatusOK, onB())
				require.Equal(t, http.StatusOK, onB(), "cached on B")
				res, err := a.client(tok).RevokeApiKeyWithResponse(context.Background(), created.JSON201.Id)
				require.NoError(t, err)
				require.Equal(t, http.StatusNoContent, res.StatusCode(), string(res.Body))
				require.Equal(t, http.StatusUnauthorized, onB(), "B still accepts a revoked key")
			})

			t.Run("changed_password", func(t *testing.T) {
				u := createUser(t, admin, "rotator")
				onB := b.login(t, u.Email, u.Password)
				require.Equal(t, http.StatusOK, b.me(t, onB))
				require.Equal(t, http.StatusOK, b.me(t, onB), "cached on B")
				onA := a.login(t, u.Email, u.Password)
				newPW := "new-password-" + randomHex(6)
				res, err := a.client(onA).UpdateCurrentUserWithResponse(context.Background(), nil,
					client.UserUpdate{CurrentPassword: &u.Password, Password: &newPW})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), string(res.Body))
				require.Equal(t, http.StatusUnauthorized, b.me(t, onB), "B still accepts a token issued before the password change")
				bad, err := b.client("").CreateTokenWithFormdataBodyWithResponse(context.Background(), client.TokenRequest{Username: u.Email, Password: u.Password})
				require.NoError(t, err)
				require.Equal(t, http.StatusUnauthorized, bad.StatusCode(), "B accepts the old password")
				require.Equal(t, http.StatusOK, b.me(t, b.login(t, u.Email, newPW)))
			})
		})
	}
}

func keyRequest(t *testing.T, base, key string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/users/me", nil)
	require.NoError(t, err)
	req.Header.Set("X-API-Key", key)
	return req
}

// TestScaleRateLimitIsShared: with Redis the per-user limit is one budget for every
// instance: requests alternate between A and B, and the limit+1-th is refused whichever
// instance it reaches.
func TestScaleRateLimitIsShared(t *testing.T) {
	t.Parallel()
	gate(t)
	const limit = 12 // per minute: one request back every 5 s, far slower than the test
	f := fleet.Start(t, fleet.Options{APIs: 2, Redis: true, Env: map[string]string{"RATE_LIMIT_PER_MINUTE": fmt.Sprint(limit)}})
	a, b := newNode(t, f.APIs[0].URL()), newNode(t, f.APIs[1].URL())
	admin := a.client(a.login(t, f.AdminEmail, f.AdminPassword))
	for _, first := range []*node{a, b} {
		u := createUser(t, admin, "limited")
		tok := first.login(t, u.Email, u.Password)
		nodes := []*node{first, a, b}[1:]
		if first == b {
			nodes = []*node{b, a}
		}
		for i := range limit {
			require.Equal(t, http.StatusOK, nodes[i%2].me(t, tok), "request %d of %d", i+1, limit)
		}
		over := nodes[limit%2]
		res, err := over.client(tok).GetCurrentUserWithResponse(context.Background(), nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusTooManyRequests)
		require.NotEmpty(t, res.HTTPResponse.Header.Get("Retry-After"))
		require.Equal(t, http.StatusTooManyRequests, nodes[(limit+1)%2].me(t, tok), "the other instance too")
	}
}

// TestScaleRunEventsOnEveryInstance: a run executed by one of two workers; a stream held
// on instance B sees every event; a stream that drops mid-run and resumes on instance A
// with Last-Event-ID misses nothing and repeats nothing.
func TestScaleRunEventsOnEveryInstance(t *testing.T) {
	t.Parallel()
	gate(t)
	llm := llmtest.New(t)
	f := fleet.Start(t, fleet.Options{APIs: 2, Workers: 2, Env: map[string]string{
		"OPENAI_API_KEY": llmtest.APIKey, "OPENAI_BASE_URL": llm.BaseURL(),
	}})
	a, b := newNode(t, f.APIs[0].URL()), newNode(t, f.APIs[1].URL())
	tok := a.login(t, f.AdminEmail, f.AdminPassword)
	admin := a.client(tok)
	agent := createAgent(t, admin)
	pieces := make([]string, 16)
	for i := range pieces {
		pieces[i] = fmt.Sprintf("piece-%02d ", i)
	}
	llm.Script(llmtest.Reply{Content: pieces, ChunkDelay: 150 * time.Millisecond, Prompt: 5, Completion: 16})
	run := createRun(t, admin, agent.Id, "stream me")

	held, stopHeld := stream(t, b.base, tok, run.Id, 0)
	defer stopHeld()
	dropped, drop := stream(t, b.base, tok, run.Id, 0)
	var firstPart []sseEvent
	for len(firstPart) < 4 {
		select {
		case ev, ok := <-dropped:
			require.True(t, ok, "stream ended after %d events", len(firstPart))
			firstPart = append(firstPart, ev)
		case <-time.After(30 * time.Second):
			t.Fatalf("no event within 30s; got %d", len(firstPart))
		}
	}
	drop()
	resumed, stopResumed := stream(t, a.base, tok, run.Id, firstPart[len(firstPart)-1].ID)
	defer stopResumed()
	secondPart := collect(t, resumed, 60*time.Second)
	all := collect(t, held, 60*time.Second)

	r := getRun(t, admin, run.Id)
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r.Error)
	require.Equal(t, strings.Join(pieces, ""), r.Output.MustGet())
	require.NotEmpty(t, secondPart, "the run was still going when the stream dropped")
	require.Equal(t, "run.completed", all[len(all)-1].Type)
	var deltas strings.Builder
	for i, ev := range all {
		if i > 0 {
			require.Greater(t, ev.ID, all[i-1].ID, "ids increase")
		}
		if ev.Type == "run.output.delta" {
			deltas.WriteString(ev.Data)
		}
	}
	for _, p := range pieces {
		require.Contains(t, deltas.String(), p, "every output delta reached the stream on B")
	}
	require.Equal(t, ids(all), ids(append(firstPart, secondPart...)), "B then A after Last-Event-ID: nothing missed, nothing repeated")
	replay := collect(t, func() <-chan sseEvent { ch, _ := stream(t, a.base, tok, run.Id, 0); return ch }(), 30*time.Second)
	require.Equal(t, ids(replay), ids(all), "the held stream saw every stored event")
}

// TestScaleSigtermDrainsInstance: under load through haproxy, instance A gets SIGTERM:
// the balancer drains it and not one request fails; A exits cleanly.
func TestScaleSigtermDrainsInstance(t *testing.T) {
	t.Parallel()
	gate(t)
	// The users send as fast as the machine lets them until the instance is stopped: the
	// general rate limit (tested on its own) is off, so that what fails is the drain's.
	f := fleet.Start(t, fleet.Options{APIs: 2, Redis: true, Balancer: true, Env: map[string]string{
		"LOGIN_RATE_LIMIT_PER_MINUTE": "100", "RATE_LIMIT_PER_MINUTE": "0"}})
	lb := newNode(t, f.LB.URL())
	users := make([]*client.ClientWithResponses, 6)
	admin := lb.client(lb.login(t, f.AdminEmail, f.AdminPassword))
	for i := range users {
		u := createUser(t, admin, fmt.Sprintf("drain%d", i))
		users[i] = lb.client(lb.login(t, u.Email, u.Password))
	}
	stop := make(chan struct{})
	var total atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	for i, c := range users {
		wg.Go(func() {
			ctx := context.Background()
			var taskID int64
			var version int64
			var runs sync.Map
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				op, status, want, err := mixedRequest(ctx, c, admin, 0, i, n, &taskID, &version, &runs)
				total.Add(1)
				if err != nil || !want(status) {
					failures.Store(fmt.Sprintf("user %d request %d %s", i, n, op), fmt.Sprintf("status %d, err %v", status, err))
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	atSignal := total.Load()
	require.NoError(t, f.APIs[0].Signal(syscall.SIGTERM))
	require.NoError(t, f.APIs[0].Wait(35*time.Second), "A exits cleanly")
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	failures.Range(func(k, v any) bool { t.Errorf("%s: %s", k, v); return true })
	t.Logf("%d requests, %d before the SIGTERM", total.Load(), atSignal)
	require.Greater(t, total.Load(), atSignal+50, "load went on through B")
	require.Equal(t, http.StatusOK, lb.me(t, lb.login(t, f.AdminEmail, f.AdminPassword)))
}

// TestScaleKilledWorkerRunResumes: with the default settings, the worker executing a run
// is killed (SIGKILL) while the model is thinking; the other worker finishes the run
// within two minutes, nothing of it is lost, and the rescue spends no LLM attempt.
func TestScaleKilledWorkerRunResumes(t *testing.T) {
	t.Parallel()
	gate(t)
	llm := llmtest.New(t)
	f := fleet.Start(t, fleet.Options{APIs: 1, Env: map[string]string{"OPENAI_API_KEY": llmtest.APIKey}})
	// Each worker reaches the model through its own proxy, which tells which one runs the run.
	var hits [2]atomic.Int64
	target, err := url.Parse(llm.URL)
	require.NoError(t, err)
	workers := make([]*fleet.Proc, 2)
	for i := range workers {
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.FlushInterval = -1
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			proxy.ServeHTTP(w, r)
		})}
		port, err := fleet.FreePort()
		require.NoError(t, err)
		ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err)
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		// Timings are the defaults. LLM_MAX_ATTEMPTS=1 makes the rescue's cost visible: had
		// the killed attempt spent the run's only model attempt, the run would fail.
		workers[i] = f.Worker(t, map[string]string{"OPENAI_BASE_URL": fmt.Sprintf("http://127.0.0.1:%d/v1/", port), "LLM_MAX_ATTEMPTS": "1"})
	}
	api := newNode(t, f.APIs[0].URL())
	tok := api.login(t, f.AdminEmail, f.AdminPassword)
	admin := api.client(tok)
	agent := createAgent(t, admin)
	llm.Script(llmtest.Reply{Hang: true}, llmtest.Reply{Content: []string{"finished ", "elsewhere"}, Prompt: 3, Completion: 2})
	run := createRun(t, admin, agent.Id, "survive a dead worker")
	events, stopEvents := stream(t, api.base, tok, run.Id, 0)
	defer stopEvents()

	deadline := time.Now().Add(30 * time.Second)
	victim := -1
	for victim < 0 {
		for i := range hits {
			if hits[i].Load() > 0 {
				victim = i
			}
		}
		require.True(t, time.Now().Before(deadline), "no worker called the model within 30s")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, workers[victim].Signal(syscall.SIGKILL))
	killedAt := time.Now()
	_ = workers[victim].Wait(10 * time.Second)

	var r client.AgentRun
	for {
		r = getRun(t, admin, run.Id)
		if terminal(r.Status) {
			break
		}
		if time.Since(killedAt) > 2*time.Minute {
			t.Fatalf("run %d still %s (attempt %d) 2 minutes after its worker was killed", run.Id, r.Status, r.Attempt)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("resumed and completed %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	require.Equal(t, client.AgentRunStatusCompleted, r.Status, "%+v", r.Error)
	require.Equal(t, "finished elsewhere", r.Output.MustGet())
	require.EqualValues(t, 5, r.Usage.TotalTokens)
	require.Positive(t, hits[1-victim].Load(), "the other worker finished it")
	require.EqualValues(t, 2, r.Attempt, "started once, rescued once")
	evs := collect(t, events, 30*time.Second)
	require.Equal(t, "run.completed", evs[len(evs)-1].Type)
}
