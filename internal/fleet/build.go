package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BuildEnv and BuildArgs are how the Dockerfile builds the binary: static (no cgo),
// without local paths, with the commit stamped. The deploy tests check that the
// Dockerfile says the same, so what the tests run is what the image ships.
var BuildEnv = []string{"CGO_ENABLED=0"}

// BuildArgs are the arguments of `go build` that produce the binary at out.
func BuildArgs(out, commit string) []string {
	return []string{"build", "-trimpath", "-ldflags", "-s -w -X enterprise-automation/internal/app.Commit=" + commit, "-o", out, "./cmd/automation"}
}

// ModuleRoot returns the folder holding go.mod, found from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("fleet: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build compiles the binary into out as the Dockerfile does.
func Build(out, commit string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", BuildArgs(out, commit)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), BuildEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fleet: go %s: %w\n%s", strings.Join(BuildArgs(out, commit), " "), err, b)
	}
	return nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestCommit is the commit stamped into the binary the tests build.
const TestCommit = "fleettest"

// Binary builds the binary once per test process and returns its path; the file lives
// in a folder removed when the process ends (see Main) or in the OS temp folder.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fleet-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "automation")
		binErr = Build(binPath, TestCommit)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Main runs the tests and removes the binary Binary built.
func Main(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
