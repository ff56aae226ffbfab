package queue_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/llmtest"
	"enterprise-automation/internal/password"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// A worker child is this test binary re-executed with only TestWorkerChild selected and
// childEnv set: it runs the real `worker` subcommand in its own process, so that the
// parent can SIGKILL it mid-run. dbtest starts its private PostgreSQL lazily, so the
// child (which never asks for a database) does not start one.
const (
	childEnv    = "QUEUE_TEST_WORKER_CHILD"
	readyMarker = "QUEUE_TEST_WORKER_READY"
)

// TestWorkerChild is the body of a worker subprocess; it is skipped in normal runs.
func TestWorkerChild(t *testing.T) {
	apitest.RunChild(t, childEnv, readyMarker, password.Params{}, "worker")
}

// workerProc is a running worker child.
type workerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *watchBuffer
	exited  chan struct{}
	waitErr error
	started time.Time
}

// watchBuffer collects a child's output and closes ready when the marker appears.
type watchBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	seen  bool
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.seen && bytes.Contains(w.buf.Bytes(), []byte(readyMarker)) {
		w.seen = true
		close(w.ready)
	}
	return n, err
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startWorker starts a worker child with vars on top of this process's environment and
// waits until it is executing jobs. It is stopped (SIGTERM, then SIGKILL) when the test ends.
func startWorker(t testing.TB, name string, vars map[string]string) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerChild$", "-test.count=1", "-test.v")
	env := append(os.Environ(), childEnv+"=1")
	for k, v := range vars {
		env = append(env, k+"="+v) // later duplicates win
	}
	cmd.Env = env
	out := &watchBuffer{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: stdin: %v", name, err)
	}
	w := &workerProc{cmd: cmd, stdin: stdin, out: out, exited: make(chan struct{})}
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.stop(t, name)
		if t.Failed() || os.Getenv("QUEUE_TEST_WORKER_LOGS") != "" {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	select {
	case <-out.ready:
		t.Logf("%s: pid %d ready after %v", name, cmd.Process.Pid, time.Since(w.started).Round(time.Millisecond))
	case <-w.exited:
		t.Fatalf("%s exited before it was ready: %v\n%s", name, w.waitErr, out.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s not ready within 30s\n%s", name, out.String())
	}
	return w
}

// kill SIGKILLs the child and waits until it is gone.
func (w *workerProc) kill(t testing.TB) {
	t.Helper()
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill worker: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("killed worker did not exit within 10s")
	}
	var ee *exec.ExitError
	if !errors.As(w.waitErr, &ee) {
		t.Fatalf("killed worker: want an exit by signal, got %v", w.waitErr)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("killed worker: want death by SIGKILL, got %v", w.waitErr)
	}
}

// stop asks the child to shut down gracefully and kills it if it does not.
func (w *workerProc) stop(t testing.TB, name string) {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	_ = w.stdin.Close()
	select {
	case <-w.exited:
		if w.waitErr != nil {
			t.Errorf("%s stopped with error: %v", name, w.waitErr)
		}
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
		t.Errorf("%s did not stop within 30s of SIGTERM", name)
	}
}

// workerVars is what a worker child needs to work on env's database against the LLM.
func workerVars(dbURL, llmBaseURL string, extra map[string]string) map[string]string {
	vars := map[string]string{
		"DATABASE_URL":       dbURL,
		"SECRET_KEY":         randomHex(32),
		"OPENAI_API_KEY":     llmtest.APIKey,
		"OPENAI_BASE_URL":    llmBaseURL,
		"WORKER_CONCURRENCY": "4",
		"LOG_LEVEL":          "DEBUG",
		"DEBUG":              "false",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID   string
	Type string
	Data string
}

// parseSSE reads the events of a complete stream body.
func parseSSE(body string) []sseEvent {
	var out []sseEvent
	for _, block := range strings.Split(body, "\n\n") {
		var ev sseEvent
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
		if ev.Type != "" {
			out = append(out, ev)
		}
	}
	return out
}
