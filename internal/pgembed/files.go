package pgembed

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// maxSocketPath is the usable length of sockaddr_un.sun_path on Linux
// (108 bytes including the terminating NUL).
const maxSocketPath = 107

// socketDirFor returns <dir>/socket, or a short per-folder directory in the
// temp folder when the socket file path would not fit in sun_path.
func socketDirFor(dir string) string {
	const socketFile = "/.s.PGSQL.65535" // longest possible name
	preferred := filepath.Join(dir, "socket")
	if len(preferred)+len(socketFile) <= maxSocketPath {
		return preferred
	}
	sum := sha256.Sum256([]byte(dir))
	name := "pgembed-" + hex.EncodeToString(sum[:4])
	short := filepath.Join(os.TempDir(), name)
	if len(short)+len(socketFile) > maxSocketPath {
		short = filepath.Join("/tmp", name)
	}
	return short
}

// lockDir takes the folder's lock, which the caller holds for as long as it runs a
// server there (a Cluster releases it in Stop), across processes too: the kernel drops
// it when the holder exits, however it exits. So a busy lock means a live program owns
// the folder (ErrAlreadyRunning), and a server found running on a folder whose lock we
// hold was orphaned by a program that died without stopping it. The holder writes its
// pid into the lock file for that message.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "pgembed.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgembed: opening %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		msg := fmt.Sprintf("%s is in use by process %s", dir, strings.TrimSpace(string(holder)))
		if pid, alive, _ := postmasterPID(filepath.Join(dir, "data")); alive {
			msg += fmt.Sprintf(", whose server has pid %d", pid)
		}
		return nil, fmt.Errorf("%w: %s; stop that program first or use another folder", ErrAlreadyRunning, msg)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("pgembed: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			_ = f.Close()
		})
	}, nil
}

// postmasterPID reads data/postmaster.pid. pid is 0 when there is no such
// file; alive tells whether that pid is still a running postgres process.
func postmasterPID(dataDir string) (pid int, alive bool, err error) {
	path := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("pgembed: reading %s: %w", path, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		// Garbage in the pid file means no live server can own it.
		return -1, false, nil
	}
	return pid, processAlive(pid), nil
}

// processAlive also rejects zombies and pids recycled by unrelated programs,
// which both happen after a server is killed (containers often have a PID 1
// that never reaps).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc to ask; assume the worst
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return true
	}
	comm := s[open+1 : closing]
	fields := strings.Fields(s[closing+1:])
	if len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X") {
		return false
	}
	return strings.HasPrefix(comm, "postgres") || strings.HasPrefix(comm, "postmaster")
}

// servesDir tells whether the process pid works in dataDir, as a postmaster does; it
// says yes when /proc cannot tell. It keeps a recycled pid of another cluster's
// server from being taken for this folder's.
func servesDir(pid int, dataDir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return true
	}
	return filepath.Clean(cwd) == filepath.Clean(dataDir)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns the last lines the server wrote to the log after offset,
// so errors show this attempt and not an earlier run's output.
func logSince(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > logTailLines {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(nothing logged)"
	}
	return strings.Join(lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
