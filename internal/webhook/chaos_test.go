package webhook_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/password"
)

// A worker child is this test binary re-executed with only TestWebhookWorkerChild
// selected: it runs the real `worker` command in its own process, so that the parent can
// SIGKILL it in the middle of a burst of deliveries.
const (
	childEnv    = "WEBHOOK_TEST_WORKER_CHILD"
	readyMarker = "WEBHOOK_TEST_WORKER_READY"
)

// TestWebhookWorkerChild is the body of a worker subprocess; it is skipped in normal runs.
func TestWebhookWorkerChild(t *testing.T) {
	apitest.RunChild(t, childEnv, readyMarker, password.Params{}, "worker")
}

// syncBuffer collects a child's output and closes ready when the marker appears.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	seen  bool
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if !b.seen && bytes.Contains(b.buf.Bytes(), []byte(readyMarker)) {
		b.seen = true
		close(b.ready)
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startWorker starts a worker child with vars; it is stopped (or found dead) at the end.
func startWorker(t *testing.T, name string, vars map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWebhookWorkerChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	select {
	case <-out.ready:
	case <-exited:
		t.Fatalf("%s exited before it was ready:\n%s", name, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s:\n%s", name, out.String())
	}
	return cmd
}

// TestChaosWorkerKilledDuringABurst: a worker process dies by SIGKILL while it delivers
// a burst of 1,000 events; another worker takes over. Every event reaches the receiver
// at least once, and every repeat carries the same webhook-id and body as the first.
func TestChaosWorkerKilledDuringABurst(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("chaos test: starts worker processes")
	}
	const events = 1000
	var mu sync.Mutex
	seen := map[string][]byte{} // webhook-id → first body
	received, duplicates := 0, 0
	halfway := make(chan struct{})
	var once sync.Once
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		time.Sleep(2 * time.Millisecond) // keep deliveries in flight when the worker dies
		mu.Lock()
		received++
		if first, ok := seen[id]; ok {
			duplicates++
			if !bytes.Equal(first, body) {
				t.Errorf("webhook-id %s came twice with different bodies", id)
			}
		} else {
			seen[id] = body
		}
		if len(seen) >= events/4 {
			once.Do(func() { close(halfway) })
		}
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)

	// The API process makes no deliveries (no workers): the worker processes do.
	env := apitest.Start(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"), apitest.WithEnv("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"))
	admin := env.AsAdmin(t)
	ctx := context.Background()
	hook, err := admin.CreateWebhookWithResponse(ctx, client.WebhookCreate{Url: rcv.URL, Events: []client.WebhookSubscription{"task.created"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, hook.StatusCode())

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	vars := map[string]string{
		"DATABASE_URL": env.DBURL, "SECRET_KEY": hex.EncodeToString(secret), "WORKER_CONCURRENCY": "2",
		"WEBHOOK_WORKERS": "20", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOK_TIMEOUT": "2s",
		// River rescues the jobs of a vanished worker AGENT_RUN_TIMEOUT + min(it, 1m) after
		// they started, on its rescuer's next pass.
		"AGENT_RUN_TIMEOUT": "3s", "LOG_LEVEL": "WARNING",
	}
	first := startWorker(t, "worker-1", vars)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range events {
		g.Go(func() error {
			res, err := admin.CreateTaskWithResponse(gctx, nil, client.TaskCreate{Title: "burst " + hex.EncodeToString([]byte{byte(i >> 8), byte(i)})})
			if err == nil && res.StatusCode() != http.StatusCreated {
				t.Errorf("create task: %d %s", res.StatusCode(), res.Body)
			}
			return err
		})
	}
	select {
	case <-halfway:
	case <-time.After(60 * time.Second):
		t.Fatal("a quarter of the events did not arrive within 60s")
	}
	require.NoError(t, first.Process.Kill())
	require.NoError(t, g.Wait())
	startWorker(t, "worker-2", vars)

	conn, err := pgx.Connect(ctx, env.DBURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var stored int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&stored))
	require.Equal(t, events, stored, "one event per committed task")

	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events arrived within 3 minutes of the kill", n, events)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows, err := conn.Query(ctx, "SELECT msg_id FROM webhook_events")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	mu.Lock()
	for _, id := range ids {
		_, ok := seen[id]
		require.True(t, ok, "event %s was delivered", id)
	}
	t.Logf("%d events, %d requests received, %d duplicates (each with the webhook-id and body of its first delivery)", events, received, duplicates)
	mu.Unlock()
	require.Eventually(t, func() bool {
		var open int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'").Scan(&open))
		return open == 0
	}, time.Minute, 100*time.Millisecond, "every delivery ends succeeded")
}
