package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; Linux fixes it
// at 100 on every architecture Go supports.
const clockTicks = 100

// procTimes is a process's CPU time from /proc/<pid>/stat: its own (user+system) and
// that of its children it has waited for.
type procTimes struct {
	self, children time.Duration
	ppid           int
}

func readProcTimes(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// The command name (field 2) is in parentheses and may contain anything; the
	// fields after the last ')' are numeric: state ppid … utime(14) stime(15) cutime(16) cstime(17).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	num := func(k int) int64 { // k is the 1-based field number of proc(5)
		v, _ := strconv.ParseInt(f[k-3], 10, 64)
		return v
	}
	tick := time.Second / clockTicks
	return procTimes{
		self:     time.Duration(num(14)+num(15)) * tick,
		children: time.Duration(num(16)+num(17)) * tick,
		ppid:     int(num(4)),
	}, nil
}

// cpuTime is a process's own CPU time (user+system).
func cpuTime(pid int) time.Duration {
	t, err := readProcTimes(pid)
	if err != nil {
		return 0
	}
	return t.self
}

// treeCPUTime is the CPU time of a process, of its live children, and of its children
// that have exited: PostgreSQL's postmaster and its backends. Live children are found by
// scanning /proc for their parent pid.
func treeCPUTime(pid int) time.Duration {
	root, err := readProcTimes(pid)
	if err != nil {
		return 0
	}
	total := root.self + root.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		t, err := readProcTimes(child)
		if err != nil || t.ppid != pid {
			continue
		}
		total += t.self
	}
	return total
}

// memKB returns VmRSS and VmHWM (peak RSS) of a process, in KiB.
func memKB(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch key {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// resetPeakRSS resets a process's VmHWM to its current RSS (proc(5): writing 5 to
// clear_refs), so that each scenario reports its own peak. It reports whether that
// worked; when not, peaks come from sampling VmRSS.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// rssSampler follows a process's RSS while a phase runs: the peak is VmHWM (reset at
// the start when the kernel allows) or the highest sampled VmRSS, whichever is larger.
type rssSampler struct {
	pid     int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	maxKB   int64
	resetOK bool
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.resetOK = resetPeakRSS(pid)
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			rss, _ := memKB(pid)
			s.mu.Lock()
			s.maxKB = max(s.maxKB, rss)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the current and the peak RSS in MiB.
func (s *rssSampler) finish() (endMB, peakMB float64) {
	close(s.stop)
	<-s.done
	rss, hwm := memKB(s.pid)
	peak := max(s.maxKB, rss)
	if s.resetOK {
		peak = max(peak, hwm)
	}
	return float64(rss) / 1024, float64(peak) / 1024
}

// serverProc is the server binary running `serve`.
type serverProc struct {
	cmd     *exec.Cmd
	baseURL string
	logPath string
	pprof   string // host:port of its profiling endpoints ("" without -profile)
	exited  chan struct{}
	waitErr error
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// commandEnv is the environment of the server's subcommands: nothing inherited but
// PATH, so that no stray setting (DEBUG, REDIS_URL, …) changes what is measured.
func commandEnv(vars map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// runCommand runs one subcommand of the server binary to completion.
func runCommand(ctx context.Context, bin, dir string, vars map[string]string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir // no .env is read from there
	cmd.Env = commandEnv(vars)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts `serve` and waits until /api/health/ready answers 200.
func startServer(ctx context.Context, bin, dir, logName string, vars map[string]string) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars["API_HOST"] = "127.0.0.1"
	vars["API_PORT"] = strconv.Itoa(port)
	if _, ok := vars["PPROF_ADDR"]; ok {
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		vars["PPROF_ADDR"] = "127.0.0.1:" + strconv.Itoa(pport)
	}
	logPath := filepath.Join(dir, logName)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = commandEnv(vars)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// The server gets SIGTERM if this process dies without stopping it. The signal follows
	// the death of the thread that started the child, so that thread stays locked to the
	// goroutine waiting for the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s := &serverProc{cmd: cmd, baseURL: fmt.Sprintf("http://127.0.0.1:%d", port), logPath: logPath, pprof: vars["PPROF_ADDR"], exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer close(s.exited)
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			s.waitErr = err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Get(s.baseURL + "/api/health/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("the server exited during start-up (%w); last lines of %s:\n%s", s.exitReason(), logPath, tail(logPath))
		case <-ctx.Done():
			_ = s.stop(10 * time.Second) // start-up is abandoned; its error says nothing more
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop(10 * time.Second) // the error below says why
			return nil, fmt.Errorf("the server was not ready within 60s; last lines of %s:\n%s", logPath, tail(logPath))
		}
	}
}

// stop sends SIGTERM and waits for a graceful exit, then kills it after grace.
func (s *serverProc) stop(grace time.Duration) error {
	select {
	case <-s.exited:
		return s.exitError()
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.exitError()
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("the server did not stop within %s of SIGTERM and was killed", grace)
	}
}

func (s *serverProc) exitError() error {
	if s.waitErr != nil {
		return fmt.Errorf("server exited: %w; last lines of %s:\n%s", s.waitErr, s.logPath, tail(s.logPath))
	}
	return nil
}

// exitReason is how the exited server ended (a clean exit is still an error here).
func (s *serverProc) exitReason() error {
	if s.waitErr != nil {
		return s.waitErr
	}
	return errors.New("exit status 0")
}

// alive reports whether the server is still running.
func (s *serverProc) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("the server exited unexpectedly (%w); last lines of %s:\n%s", s.exitReason(), s.logPath, tail(s.logPath))
	default:
		return nil
	}
}

// tailLines is how much of the server's log an error quotes.
const tailLines = 20

// tail returns the last lines of a file.
func tail(path string) string {
	const n = tailLines
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// postmasterPID reads the pid of the PostgreSQL server running on dataDir.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, errors.New("malformed postmaster.pid")
	}
	return pid, nil
}

// systemBusy is the CPU time all CPUs spent on anything but idling since boot (from the
// first line of /proc/stat: user nice system idle iowait irq softirq steal …).
func systemBusy() time.Duration {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch i {
		case 3, 4: // idle, iowait
		case 8, 9: // guest, guest_nice: already counted in user and nice
		default:
			busy += n
		}
	}
	return time.Duration(busy) * (time.Second / clockTicks)
}

// selfCPUTime is this process's CPU time (the load generator, the scripted model and the
// baselines' client side).
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile starts a CPU profile of the server for d (when it serves profiles) and returns
// a function that waits for it and writes it to dir/name.cpu.pprof.
func (s *serverProc) profile(dir, name string, d time.Duration) func() error {
	if s.pprof == "" || dir == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds()))
		res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, secs))
		if err != nil {
			done <- fmt.Errorf("profile %s: %w", name, err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile %s: status %d", name, res.StatusCode)
			return
		}
		f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
		if err == nil {
			_, err = io.Copy(f, res.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	return func() error { return <-done }
}
