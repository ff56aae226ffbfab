package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestLoadGeneratorSpeaksHTTP drives a real net/http server through every framing the
// engine parses (Content-Length, chunked, no body, Connection: close, a request body)
// and checks what it counts.
func TestLoadGeneratorSpeaksHTTP(t *testing.T) {
	t.Parallel()
	var bodies atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			if r.URL.RawQuery != "a=1&b=2" || r.Header.Get("X-Test") != "yes" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, "hello")
		case "/chunked":
			for range 3 {
				_, _ = io.WriteString(w, strings.Repeat("x", 3000))
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case "/post":
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"n":1}` || r.Method != http.MethodPost {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			bodies.Add(1)
			w.WriteHeader(http.StatusCreated)
		default:
			http.Error(w, "no such thing "+strings.Repeat("y", 2000), http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)

	paths := []string{"/length?a=1&b=2", "/chunked", "/empty", "/close", "/post", "/missing"}
	header := http.Header{"X-Test": {"yes"}}
	const total = 600
	var sent atomic.Int64
	targeter := func(tg *vegeta.Target) error {
		n := sent.Add(1)
		if n > total {
			return errExhausted
		}
		p := paths[int(n)%len(paths)]
		tg.Method, tg.Header, tg.URL = http.MethodGet, header, srv.URL+p
		if p == "/post" {
			tg.Method, tg.Body = http.MethodPost, []byte(`{"n":1}`)
		}
		return nil
	}
	p := attack(context.Background(), newTransport(4), 4, 30*time.Second, "test", targeter)

	require.True(t, p.exhausted)
	require.Equal(t, map[string]int{"200": 300, "204": 100, "201": 100, "404": 100}, p.statusCodes)
	require.Equal(t, uint64(500), p.success)
	require.Equal(t, uint64(100), p.errors)
	require.Equal(t, int64(100), bodies.Load())
	require.Equal(t, uint64(total), p.latency.n)
	require.Len(t, p.samples, 1, "one distinct error")
	require.Contains(t, p.samples[0], "GET "+srv.URL+"/missing → 404: no such thing yyy")
	require.Less(t, len(p.samples[0]), 700, "the body sample is bounded")
	require.Positive(t, p.seconds)
	m := p.measured("what")
	require.InDelta(t, float64(500)/p.seconds, m.PerSecond, 1e-6)
	require.Positive(t, m.Latency.P50)
}

// TestLoadGeneratorKeepsConnections checks that each worker sends its requests over
// one keep-alive connection.
func TestLoadGeneratorKeepsConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	targeter := func(tg *vegeta.Target) error {
		tg.Method, tg.URL = http.MethodGet, srv.URL+"/"
		return nil
	}
	p := attack(context.Background(), newTransport(3), 3, 300*time.Millisecond, "test", targeter)
	require.Zero(t, p.errors)
	require.Greater(t, p.success, uint64(30))
	require.Equal(t, int64(3), conns.Load())
}

// TestLoadGeneratorStopsOnCancel checks that cancelling ends an attack at once, even
// with requests in flight that would never be answered.
func TestLoadGeneratorStopsOnCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	targeter := func(tg *vegeta.Target) error {
		tg.Method, tg.URL = http.MethodGet, srv.URL+"/"
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	p := attack(ctx, newTransport(2), 2, time.Minute, "test", targeter)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Zero(t, p.success)
	require.Zero(t, p.errors, "cancelled requests are not results")
}

func TestSplitHTTPURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, host, path string }{
		{"http://127.0.0.1:80/api/v1/tasks/1", "127.0.0.1:80", "/api/v1/tasks/1"},
		{"http://h:1/x?a=b#frag", "h:1", "/x?a=b"},
		{"http://h:1", "h:1", "/"},
	} {
		host, path, ok := splitHTTPURL(tc.url)
		require.True(t, ok, tc.url)
		require.Equal(t, tc.host, host, tc.url)
		require.Equal(t, tc.path, path, tc.url)
	}
	for _, u := range []string{"https://h/x", "http:///x", "http://h?x"} {
		_, _, ok := splitHTTPURL(u)
		require.False(t, ok, u)
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	tg := vegeta.Target{Method: http.MethodGet, URL: "http://127.0.0.1:8000/api/v1/tasks/123456",
		Header: http.Header{"Authorization": {"Bearer " + strings.Repeat("t", 200)}}}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		host, path, _ := splitHTTPURL(tg.URL)
		buf = appendRequest(buf[:0], &tg, host, path)
	}
}
