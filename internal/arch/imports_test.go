package arch_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "enterprise-automation/"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// listPackages runs `go list -json` over the module's non-test packages.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "enterprise-automation/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	require.NoError(t, cmd.Wait())
	require.NotEmpty(t, pkgs)
	return pkgs
}

func local(paths []string) []string {
	var out []string
	for _, p := range paths {
		if rest, ok := strings.CutPrefix(p, module); ok {
			out = append(out, rest)
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)
	services := []string{"internal/user", "internal/auth", "internal/task", "internal/agent", "internal/apikey", "internal/audit", "internal/webhook"}
	harnesses := []string{"internal/apitest", "internal/dbtest", "internal/llmtest", "internal/redistest", "internal/fleet"}

	for _, name := range services {
		t.Run(name+" knows nothing of HTTP", func(t *testing.T) {
			t.Parallel()
			p, ok := pkgs[name]
			require.True(t, ok, "package %s exists", name)
			for _, dep := range p.Deps {
				require.NotEqual(t, "github.com/labstack/echo/v4", dep)
				require.NotEqual(t, module+"internal/httpapi", dep)
				require.NotEqual(t, module+"gen/api", dep)
				require.NotEqual(t, module+"gen/client", dep)
			}
		})
	}

	t.Run("httpapi sees services, never the queries", func(t *testing.T) {
		t.Parallel()
		p := pkgs["internal/httpapi"]
		require.NotContains(t, local(p.Imports), "gen/db", "internal/httpapi maps gen/api to the services' domain types")
	})

	t.Run("test harnesses serve only tests and the bench", func(t *testing.T) {
		t.Parallel()
		for name, p := range pkgs {
			if isHarness(harnesses, name) || name == "internal/bench" || name == "cmd/bench" {
				continue
			}
			for _, h := range harnesses {
				require.NotContains(t, local(p.Deps), h, "%s must not link the test harness %s", name, h)
			}
		}
	})

	t.Run("the binary links no test harness", func(t *testing.T) {
		t.Parallel()
		for _, h := range harnesses {
			require.NotContains(t, local(pkgs["cmd/automation"].Deps), h)
		}
	})
}

// isHarness says whether the package is a test harness or a program of one (such as
// internal/llmtest/llmfake, which serves the scripted model to tests in other languages).
func isHarness(harnesses []string, name string) bool {
	for _, h := range harnesses {
		if name == h || strings.HasPrefix(name, h+"/") {
			return true
		}
	}
	return false
}
