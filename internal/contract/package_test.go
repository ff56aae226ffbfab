package contract

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestTypeScriptPackageVersion keeps the published TypeScript client's version equal to
// the contract's info.version: a client release is the contract it was generated from.
func TestTypeScriptPackageVersion(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	doc := loadSpec(t, filepath.Join(root, "openapi.yaml"))
	data, err := os.ReadFile(filepath.Join(root, "gen", "ts", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Version string `json:"version"`
		Private bool   `json:"private"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		t.Fatalf("gen/ts/package.json: %v", err)
	}
	if pkg.Version != doc.Info.Version {
		t.Errorf("gen/ts/package.json version is %q, openapi.yaml's info.version is %q: keep them equal", pkg.Version, doc.Info.Version)
	}
	if pkg.Private {
		t.Error("gen/ts/package.json is private: the client is published")
	}
}
