package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// closedPort returns a port of 127.0.0.1 that refuses connections until the test ends:
// a socket holds it bound without listening, so no other test's server can take it in
// the meantime (a port merely closed again could be handed to the next listener).
func closedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	return sa.(*syscall.SockaddrInet4).Port
}

func TestFinding07_ReadinessSaysWhatFailedWithoutAddresses(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(closedPort(t))
	env := apitest.Start(t, apitest.WithEnv("REDIS_URL", "redis://127.0.0.1:"+port+"/0"))

	r := env.Send(t, apitest.Request{Method: http.MethodGet, Path: "/api/health/ready"})
	require.Equal(t, http.StatusOK, r.Status, "Redis is optional: the service stays ready: %s", r.Body)
	body := decodeJSON(t, r.Body)
	cache := body["checks"].(map[string]any)["cache"].(map[string]any)
	require.Equal(t, "degraded", cache["status"], "%s", r.Body)
	detail, _ := cache["detail"].(string)
	require.Contains(t, detail, "redis is unreachable")
	for _, leak := range []string{"127.0.0.1", port, "dial", "connection refused"} {
		require.NotContains(t, string(r.Body), leak, "the public readiness body must not carry the cause")
	}
	// The cause is in the log, for operators.
	require.Eventually(t, func() bool {
		logs := env.Logs.String()
		return strings.Contains(logs, "readiness check failed") && strings.Contains(logs, "127.0.0.1:"+port)
	}, 5*time.Second, 50*time.Millisecond, "the log names the cause")
}

func TestFinding07_ReadinessHidesAFailingCheckCause(t *testing.T) {
	t.Parallel()
	srv, err := httpapi.New(httpapi.Options{Checks: []httpapi.Check{
		{Name: "database", Required: true, Run: func(context.Context) (string, error) {
			return "", errors.New("dial tcp 10.1.2.3:5432: connect: connection refused")
		}},
	}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	r := apitest.Send(t, hs.URL, apitest.Request{Client: plain, Method: http.MethodGet, Path: "/api/health/ready"})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	check := decodeJSON(t, r.Body)["checks"].(map[string]any)["database"].(map[string]any)
	require.Equal(t, "database unavailable", check["detail"])
	require.NotContains(t, string(r.Body), "10.1.2.3")
}

func TestFinding08_ReadinessProbesAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	var probes atomic.Int64
	srv, err := httpapi.New(httpapi.Options{Checks: []httpapi.Check{
		{Name: "database", Required: true, Run: func(context.Context) (string, error) {
			probes.Add(1)
			time.Sleep(20 * time.Millisecond) // callers arrive while the probe runs
			return "", nil
		}},
	}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	// 50 concurrent callers, again and again for 2.5 s.
	start := time.Now()
	var wg sync.WaitGroup
	var answered atomic.Int64
	for range 50 {
		wg.Go(func() {
			for time.Since(start) < 2500*time.Millisecond {
				res, err := http.Get(hs.URL + "/api/health/ready")
				if err != nil {
					t.Error(err)
					return
				}
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("readiness answered %d", res.StatusCode)
					return
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.Greater(t, answered.Load(), int64(200), "the callers were answered")
	// One probe per started second at most (the first at 0 s).
	maxProbes := int64(elapsed/time.Second) + 1
	require.LessOrEqual(t, probes.Load(), maxProbes, "%d probes for %d answers in %v", probes.Load(), answered.Load(), elapsed)
	require.GreaterOrEqual(t, probes.Load(), int64(2), "the result is refreshed after a second")
}
