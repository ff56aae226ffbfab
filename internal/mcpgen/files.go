package mcpgen

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/getkin/kin-openapi/openapi3"
)

// glue is the Go source written next to tools.json: the Tool type and the mapping of a
// call's arguments onto the HTTP request. It does not depend on the contract.
//
//go:embed glue.go.txt
var glue []byte

// Files returns gen/mcp's files for the contract: file name → content.
func Files(doc *openapi3.T) (map[string][]byte, error) {
	tools, err := Tools(doc)
	if err != nil {
		return nil, err
	}
	js, err := JSON(tools)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{"tools.json": js, "mcp.gen.go": glue}, nil
}

// Load reads and validates an OpenAPI contract from a file.
func Load(spec string) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(spec)
	if err != nil {
		return nil, fmt.Errorf("mcpgen: load %s: %w", spec, err)
	}
	return doc, nil
}

// WriteDir generates the tools of the contract in spec into dir.
func WriteDir(spec, dir string) error {
	doc, err := Load(spec)
	if err != nil {
		return err
	}
	files, err := Files(doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mcpgen: %w", err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return fmt.Errorf("mcpgen: %w", err)
		}
	}
	return nil
}
