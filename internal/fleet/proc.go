package fleet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Proc is one process of the binary (`serve`, `worker`, `migrate`, …) with its log.
type Proc struct {
	Name string
	// Addr is host:port of a serve process once it listens; empty for workers.
	Addr string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error

	ready chan string // receives the listen address (serve) or "" (worker) once
}

// URL is the base URL of a serve process.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log returns what the process wrote so far (stdout and stderr).
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and with what.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to d for the process to exit and returns its exit error.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.Pid(), d)
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	if p.Wait(grace) != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StartProc starts bin with args and exactly the environment env (nothing inherited),
// in dir (where a .env file would be read from), logging to dir/<name>.log. It does not
// wait for readiness: see WaitReady.
func StartProc(bin, dir, name string, env map[string]string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = envList(env)
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = cmd.Stdout
	// Its own process group, so a signal to the test does not reach it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("fleet: start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), ready: make(chan string, 1)}
	go p.watch(pr)
	go func() {
		p.waitErr = cmd.Wait()
		_ = pw.Close()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// watch reads the JSON log for the line that says the process is up.
func (p *Proc) watch(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	sent := false
	for sc.Scan() {
		if sent {
			continue
		}
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "serving":
			p.ready <- line.Addr
			sent = true
		case "working":
			p.ready <- ""
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// WaitReady waits until a worker says it is working, or a server listens and answers
// 200 on /api/health/ready.
func (p *Proc) WaitReady(within time.Duration) error {
	deadline := time.After(within)
	select {
	case addr := <-p.ready:
		p.Addr = addr
	case <-p.done:
		return fmt.Errorf("%s exited before it was ready (%s)\n%s", p.Name, describe(p.waitErr), tail(p.Log(), 30))
	case <-deadline:
		return fmt.Errorf("%s not ready within %v\n%s", p.Name, within, tail(p.Log(), 30))
	}
	if p.Addr == "" {
		return nil
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := hc.Get(p.URL() + "/api/health/ready")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%s)\n%s", p.Name, describe(p.waitErr), tail(p.Log(), 30))
		case <-deadline:
			return fmt.Errorf("%s: /api/health/ready not 200 within %v (%s)\n%s", p.Name, within, describe(err), tail(p.Log(), 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RunOnce runs a one-shot command (migrate up, seed) to completion.
func RunOnce(bin, dir, name string, env map[string]string, args ...string) error {
	p, err := StartProc(bin, dir, name, env, args...)
	if err != nil {
		return err
	}
	if err := p.Wait(2 * time.Minute); err != nil {
		p.Stop(time.Second)
		return fmt.Errorf("fleet: %s %s: %w\n%s", name, strings.Join(args, " "), err, tail(p.Log(), 30))
	}
	return nil
}

// describe is an error's message, or what a nil one means here.
func describe(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
