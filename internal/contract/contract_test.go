// Package contract holds the checks of the API contract (openapi.yaml) that
// `make contract-check` runs: the spec validates with kin-openapi, the Spectral ruleset
// in .ci/contract catches what it claims to, and .ci/contract/breaking.sh gives the right
// verdict on deliberately breaking and non-breaking changes.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// repoRoot is the directory holding go.mod, found by walking up from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

func loadSpec(t *testing.T, path string) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", path, err)
	}
	return doc
}

// TestSpecValid loads openapi.yaml with kin-openapi and validates it (schemas, $refs,
// examples against their schemas, defaults, ...).
func TestSpecValid(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t, filepath.Join(repoRoot(t), "openapi.yaml"))
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi: %q; the generators are set up for OpenAPI 3.0.x", doc.OpenAPI)
	}
	if doc.Info == nil || doc.Info.Version == "" {
		t.Fatal("info.version is missing")
	}
	if major := strings.SplitN(strings.TrimPrefix(doc.Info.Version, "v"), ".", 2)[0]; major == "" || strings.Trim(major, "0123456789") != "" {
		t.Errorf("info.version %q is not MAJOR.MINOR.PATCH; breaking.sh compares majors", doc.Info.Version)
	}
}

// TestFixturesValid makes sure the breaking-change fixtures are valid specs, so the
// verdicts below are about the changes and not about documents oasdiff cannot read.
func TestFixturesValid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "breaking", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			loadSpec(t, f)
		})
	}
}

var warmOnce sync.Once

// warmOasdiff builds the oasdiff tool once before the parallel tests call it, instead of
// letting each of them compile it at the same time on a cold cache.
func warmOasdiff(t *testing.T, root string) {
	t.Helper()
	warmOnce.Do(func() {
		cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "oasdiff", "--version")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("go tool -modfile=tools/go.mod oasdiff --version: %v\n%s", err, out)
		}
	})
}

// cleanEnv is the environment without CONTRACT_BASE and git's repository overrides, so
// the caller's settings cannot change a test's verdict.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONTRACT_BASE=") || strings.HasPrefix(kv, "GIT_DIR=") ||
			strings.HasPrefix(kv, "GIT_WORK_TREE=") || strings.HasPrefix(kv, "GIT_INDEX_FILE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runBreaking runs .ci/contract/breaking.sh from the repository root and returns its
// exit code and combined output.
func runBreaking(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	root := repoRoot(t)
	warmOasdiff(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(".ci", "contract", "breaking.sh")}, args...)...)
	cmd.Dir = root
	cmd.Env = cleanEnv(env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out.String()
	default:
		t.Fatalf("run breaking.sh: %v\n%s", err, out.String())
		return -1, ""
	}
}

func TestBreakingChanges(t *testing.T) {
	t.Parallel()
	fixture := func(name string) string {
		return filepath.Join(repoRoot(t), "internal", "contract", "testdata", "breaking", name)
	}
	cases := []struct {
		name      string
		newSpec   string
		changelog string
		wantCode  int
		want      []string // in the output
	}{
		{
			name: "removed response field", newSpec: "removed-field.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 1,
			want:     []string{"response-required-property-removed", "removed the required property `email`", "FAIL", "info.version to 2.0.0 in removed-field.yaml"},
		},
		{
			name: "new required query parameter", newSpec: "required-param.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 1,
			want:     []string{"new-required-request-parameter", "`org_id`", "FAIL"},
		},
		{
			name: "narrowed request enum", newSpec: "narrowed-enum.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 1,
			want: []string{"request-parameter-enum-value-removed", "request-property-enum-value-removed",
				"removed the enum value `guest`", "FAIL"},
		},
		{
			name: "widened response enum", newSpec: "widened-enum.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 1,
			want:     []string{"response-property-enum-value-added", "`owner`", "FAIL"},
		},
		{
			name: "removed optional request field is only a warning", newSpec: "removed-optional-request-field.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 0,
			want:     []string{"warning\t[request-property-removed]", "removed the request property `role`", "no breaking changes. Pass."},
		},
		{
			name: "new optional request field and new endpoint", newSpec: "additive.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 0,
			want:     []string{"No breaking changes", "Pass."},
		},
		{
			name: "breaking with major bump and changelog entry", newSpec: "removed-field-v2.yaml", changelog: "changelog-2.0.0.md",
			wantCode: 0,
			want:     []string{"response-required-property-removed", "1.4.2 -> 2.0.0", "breaking changes accepted"},
		},
		{
			name: "breaking with major bump but no changelog entry", newSpec: "removed-field-v2.yaml", changelog: "changelog-without-2.0.0.md",
			wantCode: 1,
			want:     []string{"response-required-property-removed", "has no '## 2.0.0' section"},
		},
		{
			name: "breaking with major bump, changelog entry without a Breaking note", newSpec: "removed-field-v2.yaml", changelog: "changelog-2.0.0-not-breaking.md",
			wantCode: 1,
			want:     []string{"has no '## 2.0.0' section that mentions 'Breaking'"},
		},
		{
			name: "breaking with minor bump and changelog entry", newSpec: "removed-field-v1.5.yaml", changelog: "changelog-1.5.0.md",
			wantCode: 1,
			want:     []string{"response-required-property-removed", "1.4.2 -> 1.5.0", "FAIL"},
		},
		{
			name: "changelog file missing", newSpec: "removed-field-v2.yaml", changelog: "no-such-changelog.md",
			wantCode: 1,
			want:     []string{"has no '## 2.0.0' section"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runBreaking(t, nil,
				"--base-file", fixture("base.yaml"), "--new-file", fixture(tc.newSpec), "--changelog", fixture(tc.changelog))
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestBreakingBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("openapi: 3.0.3\ninfo: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(repoRoot(t), "internal", "contract", "testdata", "breaking", "base.yaml")
	for name, args := range map[string][]string{
		"unparsable new spec":   {"--base-file", base, "--new-file", broken},
		"missing base file":     {"--base-file", filepath.Join(dir, "nope.yaml"), "--new-file", base},
		"unknown option":        {"--frobnicate"},
		"unknown CONTRACT_BASE": {"--base-ref", "no-such-ref-anywhere"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out := runBreaking(t, nil, args...)
			if code == 0 {
				t.Errorf("exit code 0 for bad input; output:\n%s", out)
			}
		})
	}
}

// TestBreakingGitBase checks how breaking.sh picks the base from git: HEAD~1 by default,
// the merge-base with origin/main when that differs from HEAD, CONTRACT_BASE when set,
// and a pass with a note when the base has no openapi.yaml.
func TestBreakingGitBase(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	fixtures := filepath.Join(repoRoot(t), "internal", "contract", "testdata", "breaking")
	repo := t.TempDir()
	gitEnv := []string{
		"GIT_AUTHOR_NAME=contract test", "GIT_AUTHOR_EMAIL=contract@example.com",
		"GIT_COMMITTER_NAME=contract test", "GIT_COMMITTER_EMAIL=contract@example.com",
		"GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = cleanEnv(gitEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	put := func(fixture, as string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(fixtures, fixture))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, as), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		t.Helper()
		git("add", "-A")
		git("commit", "-q", "-m", msg)
		return git("rev-parse", "HEAD")
	}
	check := func(step string, env []string, wantCode int, want ...string) {
		t.Helper()
		code, out := runBreaking(t, env, "--repo", repo)
		if code != wantCode {
			t.Errorf("%s: exit code %d, want %d", step, code, wantCode)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not mention %q", step, w)
			}
		}
		if t.Failed() {
			t.Fatalf("%s: output:\n%s", step, out)
		}
	}

	git("init", "-q", "-b", "main")
	put("changelog-without-2.0.0.md", "CHANGELOG.md")
	commit("no contract yet")
	put("base.yaml", "openapi.yaml")
	check("first commit", nil, 0, "no parent commit")

	c2 := commit("contract 1.4.2")
	check("base without openapi.yaml", nil, 0, "has no openapi.yaml", "previous commit")

	put("removed-field.yaml", "openapi.yaml") // uncommitted: the working tree is checked
	check("working tree vs HEAD~1 (no spec there)", nil, 0, "has no openapi.yaml")
	check("working tree vs CONTRACT_BASE=HEAD", []string{"CONTRACT_BASE=HEAD"}, 1,
		"response-required-property-removed", "openapi.yaml at HEAD (")

	commit("drop User.email")
	check("breaking commit vs HEAD~1", nil, 1, "response-required-property-removed", "previous commit")

	put("changelog-2.0.0.md", "CHANGELOG.md")
	commit("changelog")
	check("HEAD~1 has the break already", nil, 0, "No changes detected", "previous commit")

	git("update-ref", "refs/remotes/origin/main", c2)
	check("merge-base with origin/main", nil, 1, "response-required-property-removed", "merge-base with origin/main")

	put("removed-field-v2.yaml", "openapi.yaml")
	check("merge-base, major bump and changelog", nil, 0, "breaking changes accepted")
}

// TestLintRuleset runs Spectral with the committed ruleset on a spec that breaks each
// rule once and checks that every rule fires. It needs `npm ci --prefix .ci/contract`.
func TestLintRuleset(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	spectral := filepath.Join(root, ".ci", "contract", "node_modules", ".bin", "spectral")
	if _, err := os.Stat(spectral); err != nil {
		t.Skip("Spectral is not installed: run `npm ci --prefix .ci/contract`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, spectral, "lint", "--ruleset", filepath.Join(".ci", "contract", ".spectral.yaml"),
		"--format", "json", "--quiet", filepath.Join("internal", "contract", "testdata", "lint", "bad.yaml"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err == nil {
		t.Fatalf("spectral passed a spec full of errors:\n%s", stdout.String())
	} else if !errors.As(err, &exitErr) {
		t.Fatalf("spectral: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Code     string   `json:"code"`
		Severity int      `json:"severity"`
		Path     []string `json:"path"`
		Message  string   `json:"message"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("spectral output is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	errs := map[string][]string{}
	for _, r := range results {
		if r.Severity == 0 { // error
			errs[r.Code] = append(errs[r.Code], strings.Join(r.Path, ".")+": "+r.Message)
		}
	}
	for _, rule := range []string{
		"operation-operationId", "operation-tags", "operation-tag-defined", "operation-description",
		"oas3-parameter-description",
		"ea-operation-summary", "ea-operation-id-camel-case",
		"ea-operation-required-role", "ea-operation-required-role-defined",
		"ea-public-operation-no-security", "ea-secured-operation-security",
		"ea-secured-operation-401", "ea-secured-operation-403", "ea-admin-operation-403", "ea-required-scope", "ea-operation-input-4xx",
		"ea-request-body-4xx", "ea-path-param-404", "ea-parameter-responses", "ea-operation-500",
		"ea-error-response-problem-json", "ea-error-response-component",
		"ea-problem-response-example", "ea-unauthorized-www-authenticate", "ea-too-many-requests-retry-after",
		"ea-schema-example", "ea-property-example", "ea-parameter-example",
	} {
		if len(errs[rule]) == 0 {
			t.Errorf("rule %s did not report an error on testdata/lint/bad.yaml", rule)
		}
	}
	// Spot checks that the right places are blamed.
	for rule, want := range map[string]string{
		"ea-error-response-component": "413 must be \"$ref: '#/components/responses/PayloadTooLarge'\"",
		"ea-parameter-responses":      "PATCH takes If-Match and must declare a 412 response",
	} {
		if !slices.ContainsFunc(errs[rule], func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("%s: no error mentioning %q; got %q", rule, want, errs[rule])
		}
	}
	if t.Failed() {
		t.Logf("errors by rule: %v", errs)
	}
}
