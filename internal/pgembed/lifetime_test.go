package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// holderEnv makes the test binary a program that starts a cluster on the folder it
// names, prints its server's pid and waits to be killed.
const holderEnv = "PGEMBED_TEST_HOLD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		c, err := Start(context.Background(), Options{Dir: dir, Fast: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		pid, _, _ := postmasterPID(c.dataDir)
		fmt.Println("ready", pid)
		select {}
	}
	os.Exit(m.Run())
}

// TestOrphanOfAKilledProgramIsStoppedAndTheFolderReused: while a program runs a server
// on the folder, another Start is refused and names it; once that program is killed
// with SIGKILL (no Stop), its server is an orphan, and the next Start stops it and
// starts its own on the same data.
func TestOrphanOfAKilledProgramIsStoppedAndTheFolderReused(t *testing.T) {
	t.Parallel()
	dir := tempDir(t, "pgembed")
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holderEnv+"="+dir)
	out, err := holder.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "ready "), line)
	orphanPID, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
	require.NoError(t, err)

	// A live holder: refused, naming the holder and its server.
	c, err := Start(t.Context(), testOptions(t, dir))
	require.Nil(t, c)
	require.ErrorIs(t, err, ErrAlreadyRunning)
	require.ErrorContains(t, err, "process "+strconv.Itoa(holder.Process.Pid))
	require.ErrorContains(t, err, "pid "+strconv.Itoa(orphanPID))

	// Leave something in the orphan's database, then kill its program.
	orphanURL := (&Cluster{socketDir: socketDirFor(dir), port: socketOnlyPort, password: readPassword(t, dir)}).URL("postgres")
	conn := connect(t, orphanURL)
	_, err = conn.Exec(t.Context(), "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the kill')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	require.NoError(t, holder.Process.Signal(syscall.SIGKILL))
	_ = holder.Wait()
	require.True(t, processAlive(orphanPID), "the server outlives the killed program")

	logs := &syncBuffer{}
	opts := testOptions(t, dir)
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	second := startCluster(t, opts)
	require.False(t, processAlive(orphanPID), "the orphan was stopped")
	pid, alive, err := postmasterPID(second.dataDir)
	require.NoError(t, err)
	require.True(t, alive)
	require.NotEqual(t, orphanPID, pid)
	require.Contains(t, logs.String(), "orphaned PostgreSQL server")
	var note string
	require.NoError(t, connect(t, second.URL("postgres")).QueryRow(t.Context(), "SELECT note FROM kept").Scan(&note))
	require.Equal(t, "written before the kill", note)

	// The lock is held for the server's life and released by Stop.
	_, err = Start(t.Context(), testOptions(t, dir))
	require.ErrorIs(t, err, ErrAlreadyRunning)
	require.NoError(t, second.Stop())
	third := startCluster(t, testOptions(t, dir))
	connect(t, third.URL("postgres"))
}

// TestFoldersAboveBaseAreWidenedOnlyAfterAWarning: run as root, PostgreSQL runs as the
// postgres user and needs to search every folder on the way to its data; folders up
// to Base change quietly, each folder above it is named in a warning with its mode
// change before it is widened, and only o+x is added.
func TestFoldersAboveBaseAreWidenedOnlyAfterAWarning(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("folders are only widened when the server runs as another user (we are root)")
	}
	top := tempDir(t, "pgembed")
	home := filepath.Join(top, "home")
	base := filepath.Join(home, ".data")
	require.NoError(t, os.MkdirAll(base, 0o700))
	require.NoError(t, os.Chmod(home, 0o700))
	require.NoError(t, os.Chmod(base, 0o700))
	top, err := filepath.EvalSymlinks(top)
	require.NoError(t, err)
	home, base = filepath.Join(top, "home"), filepath.Join(top, "home", ".data")

	logs := &syncBuffer{}
	opts := testOptions(t, filepath.Join(base, "postgres"))
	opts.Base = base
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	c := startCluster(t, opts)
	connect(t, c.URL("postgres"))

	warned := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Level, Msg, Dir, From, To string
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec.Level == "WARN" && rec.From != "" {
			require.Contains(t, rec.Msg, rec.Dir, "the warning names the folder")
			require.Contains(t, rec.Msg, rec.From+" -> "+rec.To, "and the mode change")
			warned[rec.Dir] = [2]string{rec.From, rec.To}
		}
	}
	require.Equal(t, map[string][2]string{
		top:  {"-rwx------", "-rwx-----x"},
		home: {"-rwx------", "-rwx-----x"},
	}, warned, "each folder above the base is warned about, nothing else:\n%s", logs)
	for _, d := range []string{top, home, base} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o701), fi.Mode().Perm(), d)
	}
}

func readPassword(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "password"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
