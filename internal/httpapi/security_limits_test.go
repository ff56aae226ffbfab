package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Slow clients (slowloris)
// ---------------------------------------------------------------------------------------

func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	addr := strings.TrimPrefix(env.BaseURL, "http://")
	token := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken

	const (
		readHeaderTimeout = 5 * time.Second // HTTPServer's ReadHeaderTimeout
		margin            = 2 * time.Second
		trickled          = 50 // connections that trickle a header forever
		silent            = 3  // connections that send nothing at all
		tick              = 250 * time.Millisecond
	)
	type cut struct {
		kind    string
		elapsed time.Duration
		err     error
		got     []byte
	}
	results := make(chan cut, trickled+silent)
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	open := func(kind string, trickle bool) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			results <- cut{kind: kind, err: fmt.Errorf("dial: %w", err)}
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		start := time.Now()
		stop := make(chan struct{})
		if trickle {
			go func() {
				msg := []byte("GET /api/health HTTP/1.1\r\nHost: slowloris\r\nX-Trickle: ")
				// The request line arrives at the same pace as the rest: one byte a tick.
				for i := 0; ; i++ {
					b := byte('a' + i%26)
					if i < len(msg) {
						b = msg[i]
					}
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(tick):
					}
				}
			}()
		}
		// Our own deadline only bounds the test; the server must hang up well before it.
		_ = c.SetReadDeadline(start.Add(readHeaderTimeout + margin + 2*time.Second))
		var got []byte
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				close(stop)
				results <- cut{kind: kind, elapsed: time.Since(start), err: err, got: got}
				return
			}
		}
	}
	for range trickled {
		go open("trickling", true)
	}
	for range silent {
		go open("silent", false)
	}

	// While they hang on, ordinary requests (on fresh connections) are answered promptly.
	fresh := &http.Client{
		Transport: &apitest.Validating{T: t, Next: &http.Transport{DisableKeepAlives: true}},
		Timeout:   5 * time.Second,
	}
	time.Sleep(500 * time.Millisecond) // let the slow connections settle in
	// Served while the slow clients hang on: well before ReadHeaderTimeout would have freed
	// anything (the bound is generous because the machine may be busy with other tests).
	const served = 3 * time.Second
	for i := range 4 {
		began := time.Now()
		h := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/health"})
		require.Equal(t, http.StatusOK, h.Status, "health #%d: %s", i, h.Body)
		require.Less(t, time.Since(began), served, "health #%d took %s while slow clients hang on", i, time.Since(began))

		began = time.Now()
		me := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/v1/users/me", Token: token})
		require.Equal(t, http.StatusOK, me.Status, "users/me #%d: %s", i, me.Body)
		require.Less(t, time.Since(began), served, "users/me #%d took %s while slow clients hang on", i, time.Since(began))
		time.Sleep(700 * time.Millisecond)
	}

	var fastest, slowest time.Duration
	for i := range trickled + silent {
		c := <-results
		if i == 0 || c.elapsed < fastest {
			fastest = c.elapsed
		}
		slowest = max(slowest, c.elapsed)
		var ne net.Error
		if errors.As(c.err, &ne) && ne.Timeout() {
			t.Errorf("%s connection still open after %s: the server never cut it off", c.kind, c.elapsed.Round(time.Millisecond))
			continue
		}
		require.NotContains(t, c.err.Error(), "dial", "%s connection", c.kind)
		require.LessOrEqual(t, c.elapsed, readHeaderTimeout+margin,
			"%s connection cut off after %s (%v), want within ReadHeaderTimeout %s + %s", c.kind, c.elapsed, c.err, readHeaderTimeout, margin)
		require.GreaterOrEqual(t, c.elapsed, readHeaderTimeout-time.Second,
			"%s connection cut off after only %s (%v): something other than ReadHeaderTimeout ended it; got %q", c.kind, c.elapsed, c.err, c.got)
		require.NotContains(t, string(c.got), "200 OK", "a request that never finished its headers was served")
	}

	t.Logf("%d slow connections cut off after %s to %s", trickled+silent, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond))

	// The server is still healthy afterwards.
	h := env.Send(t, apitest.Request{Client: fresh, Method: http.MethodGet, Path: "/api/health"})
	require.Equal(t, http.StatusOK, h.Status)
}

// ---------------------------------------------------------------------------------------
// Header and body size limits
// ---------------------------------------------------------------------------------------

// secRawRequest writes a raw HTTP/1.1 request on a fresh connection and reads the
// response.
func secRawRequest(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, werr := io.WriteString(c, request)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "reading the response (write error: %v)", werr)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func TestHeaderAndBodySizeLimits(t *testing.T) {
	t.Parallel()
	env := secStart(t)
	addr := strings.TrimPrefix(env.BaseURL, "http://")
	owner := env.CreateUser(t, "Sizer", false)
	const limit = 1 << 20 // the body limit

	// taskBody returns a createTask body of exactly size bytes whose description has
	// size-overhead characters (valid JSON, far over the description's maxLength).
	taskBody := func(size int) string {
		head, tail := `{"title":"big body","description":"`, `"}`
		b := head + strings.Repeat("d", size-len(head)-len(tail)) + tail
		require.Len(t, b, size)
		return b
	}
	requireNoTasks := func(t *testing.T, u apitest.User) {
		t.Helper()
		res, err := u.Client.ListTasksWithResponse(context.Background(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.Zero(t, res.JSON200.Total, "a refused request created a task")
	}

	// Headers: Go's net/http refuses them itself (plain text, no problem body).
	huge := strings.Repeat("h", 100<<10)
	manyHeaders := strings.Builder{}
	for i := range 2000 {
		fmt.Fprintf(&manyHeaders, "X-Many-%04d: %s\r\n", i, strings.Repeat("m", 40))
	}
	for name, headers := range map[string]string{
		"a_100KiB_cookie":           "Cookie: session=" + huge + "\r\n",
		"a_100KiB_custom_header":    "X-Padding: " + huge + "\r\n",
		"2000_headers_of_55_bytes":  manyHeaders.String(),
		"a_100KiB_bearer_token":     "Authorization: Bearer " + huge + "\r\n",
		"a_100KiB_header_on_a_post": "Content-Type: application/json\r\nContent-Length: 13\r\nX-Padding: " + huge + "\r\n",
	} {
		t.Run("headers_over_MaxHeaderBytes_are_431/"+name, func(t *testing.T) {
			t.Parallel()
			method, path, body := "GET", "/api/health", ""
			if strings.Contains(name, "post") || strings.Contains(name, "bearer") {
				method, path = "POST", "/api/v1/tasks"
			}
			if strings.Contains(name, "post") {
				body = `{"title":"x"}`
			}
			res, b := secRawRequest(t, addr, method+" "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+headers+"\r\n"+body)
			require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "body: %s", b)
		})
	}
	t.Run("headers_just_under_MaxHeaderBytes_are_served", func(t *testing.T) {
		t.Parallel()
		pad := strings.Repeat("p", 60<<10)
		r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health", Header: map[string]string{"X-Padding": pad}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		r = env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users/me", Token: owner.Token, Header: map[string]string{"Cookie": "session=" + pad}})

		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	})

	// Bodies: 413 problems, through the contract-validating client.
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"content_length_1MiB_plus_one", limit + 1, false},
		{"content_length_2MiB", 2 * limit, false},
		{"chunked_1MiB_plus_one", limit + 1, true},
		{"chunked_3MiB", 3 * limit, true},
	} {
		t.Run("create_task_body_over_1MiB_is_413/"+c.name, func(t *testing.T) {
			t.Parallel()
			u := env.CreateUser(t, "Big", false)
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(c.size)), Chunked: c.chunked, Token: u.Token})

			p := apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
			require.Equal(t, "/problems/payload-too-large", p.Type)
			requireNoTasks(t, u)
		})
	}
	t.Run("create_task_body_over_1MiB_with_an_idempotency_key_is_413_and_does_not_claim_it", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "BigKey", false)
		key := "sec-big-" + secRandom(6)
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(limit + 1)), Chunked: true, Token: u.Token, Header: map[string]string{"Idempotency-Key": key}})

		apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
		requireNoTasks(t, u)
		r = env.Do(t, http.MethodPost, "/api/v1/tasks", u.Token, `{"title":"small"}`, "Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, r.Status, "the key is still free: %s", r.Body)
	})
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"under_a_decimal_megabyte", 999_999, false},
		{"a_decimal_megabyte_plus_one", 1_000_001, false},
		{"a_decimal_megabyte_plus_one_chunked", 1_000_001, true},
		{"exactly_1MiB", limit, false},
		{"exactly_1MiB_chunked", limit, true},
		{"1MiB_minus_one", limit - 1, false},
		{"1MiB_minus_one_chunked", limit - 1, true},
	} {
		t.Run("create_task_body_at_the_limit_is_validated_not_413/"+c.name, func(t *testing.T) {
			t.Parallel()
			u := env.CreateUser(t, "Edge", false)
			r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(taskBody(c.size)), Chunked: c.chunked, Token: u.Token})

			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
			require.True(t, apitest.HasFieldError(p, "body", "description"), "errors %+v", p.Errors)
			requireNoTasks(t, u)
		})
	}
	t.Run("malformed_json_just_under_the_limit_is_400_not_413", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Broken", false)
		b := taskBody(limit - 1)
		b = b[:len(b)-1] // drop the closing brace
		r := env.Send(t, apitest.Request{Method: http.MethodPost, Path: "/api/v1/tasks", ContentType: apitest.JSON, Body: strings.NewReader(b), Token: u.Token})

		apitest.RequireProblem(t, r, http.StatusBadRequest)
		requireNoTasks(t, u)
	})
	t.Run("update_task_body_over_1MiB_is_413_and_changes_nothing", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Patcher", false)
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "untouched"})
		path := "/api/v1/tasks/" + strconv.FormatInt(task.Id, 10)
		for _, chunked := range []bool{false, true} {
			body := `{"title":"changed","description":"` + strings.Repeat("u", limit) + `"}`
			r := env.Send(t, apitest.Request{Method: http.MethodPatch, Path: path, ContentType: apitest.JSON, Body: strings.NewReader(body), Chunked: chunked, Token: u.Token})

			apitest.RequireProblem(t, r, http.StatusRequestEntityTooLarge)
		}
		after := taskGet(t, u.Client, task.Id)
		require.Equal(t, task, after)
	})
}
