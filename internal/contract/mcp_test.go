package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	genmcp "enterprise-automation/gen/mcp"
	"enterprise-automation/internal/mcpgen"
)

// mcpForbiddenTags are the operations never offered as tools: logins and tokens, key
// management and the documentation.
var mcpForbiddenTags = []string{"auth", "api-keys", "meta"}

// toolDisagreements lists where the generated tools and the contract's operations
// marked x-mcp disagree.
func toolDisagreements(doc *openapi3.T, tools []genmcp.Tool) []string {
	var out []string
	ops := map[string]*openapi3.Operation{}
	where := map[string][2]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if on, _ := op.Extensions[mcpgen.Extension].(bool); on {
				ops[op.OperationID] = op
				where[op.OperationID] = [2]string{method, path}
				for _, tag := range op.Tags {
					if slices.Contains(mcpForbiddenTags, tag) {
						out = append(out, fmt.Sprintf("%s (tag %s) must not be a tool", op.OperationID, tag))
					}
				}
				if op.Security != nil && len(*op.Security) == 0 {
					out = append(out, fmt.Sprintf("%s is public; tools act for an authenticated caller", op.OperationID))
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, tool := range tools {
		id := tool.HTTP.OperationID
		op, ok := ops[id]
		if !ok {
			out = append(out, fmt.Sprintf("tool %s: no operation %s marked x-mcp", tool.Name, id))
			continue
		}
		seen[id] = true
		if want := mcpgen.SnakeCase(id); tool.Name != want {
			out = append(out, fmt.Sprintf("tool %s: named %s by its operation", tool.Name, want))
		}
		if w := where[id]; tool.HTTP.Method != w[0] || tool.HTTP.Path != w[1] {
			out = append(out, fmt.Sprintf("tool %s: calls %s %s, the operation is %s %s", tool.Name, tool.HTTP.Method, tool.HTTP.Path, w[0], w[1]))
		}
		var in struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		}
		if err := json.Unmarshal(tool.InputSchema, &in); err != nil {
			out = append(out, fmt.Sprintf("tool %s: inputSchema: %v", tool.Name, err))
			continue
		}
		params := slices.Concat(doc.Paths.Find(where[id][1]).Parameters, op.Parameters)
		for _, p := range params {
			name := p.Value.Name
			if p.Value.In == openapi3.ParameterInHeader {
				name = mcpgen.SnakeCase(name)
				if name == "if_none_match" {
					continue
				}
			}
			if _, ok := in.Properties[name]; !ok {
				out = append(out, fmt.Sprintf("tool %s: no argument for parameter %s", tool.Name, p.Value.Name))
			}
			if p.Value.Required && !slices.Contains(in.Required, name) {
				out = append(out, fmt.Sprintf("tool %s: parameter %s is required", tool.Name, p.Value.Name))
			}
		}
		if op.RequestBody != nil {
			body := op.RequestBody.Value.Content.Get("application/json").Schema.Value
			for name, prop := range body.Properties {
				if _, ok := in.Properties[name]; !ok && !prop.Value.ReadOnly {
					out = append(out, fmt.Sprintf("tool %s: no argument for body field %s", tool.Name, name))
				}
			}
		}
		if op.Summary == "" || !bytes.HasPrefix([]byte(tool.Description), []byte(op.Summary)) {
			out = append(out, fmt.Sprintf("tool %s: description does not start with the summary", tool.Name))
		}
	}
	for id := range ops {
		if !seen[id] {
			out = append(out, fmt.Sprintf("operation %s is marked x-mcp but has no tool", id))
		}
	}
	slices.Sort(out)
	return out
}

// TestMCPToolsMatchSpec fails when gen/mcp is not what the generator makes of
// openapi.yaml, or when a tool and its operation disagree.
func TestMCPToolsMatchSpec(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	doc := loadSpec(t, filepath.Join(root, "openapi.yaml"))
	files, err := mcpgen.Files(doc)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, "gen", "mcp", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("gen/mcp/%s differs from what openapi.yaml generates: run make generate", name)
		}
	}
	tools, err := genmcp.Tools()
	if err != nil {
		t.Fatal(err)
	}
	if d := toolDisagreements(doc, tools); len(d) > 0 {
		t.Errorf("tools and operations disagree:\n%s", d)
	}
	if len(tools) < 8 {
		t.Errorf("only %d tools; DESIGN §9 names at least 8", len(tools))
	}
}

// TestMCPDisagreementsFound proves the comparison sees each kind of drift.
func TestMCPDisagreementsFound(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(doc *openapi3.T, tools []genmcp.Tool) []genmcp.Tool{
		"renamed": func(_ *openapi3.T, tools []genmcp.Tool) []genmcp.Tool { tools[0].Name += "_x"; return tools },
		"moved":   func(_ *openapi3.T, tools []genmcp.Tool) []genmcp.Tool { tools[0].HTTP.Path += "/x"; return tools },
		"dropped": func(_ *openapi3.T, tools []genmcp.Tool) []genmcp.Tool { return tools[1:] },
		"new_required_parameter": func(doc *openapi3.T, tools []genmcp.Tool) []genmcp.Tool {
			op := doc.Paths.Value("/api/v1/tasks").Get
			op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: openapi3.NewQueryParameter("team").
				WithRequired(true).WithSchema(openapi3.NewStringSchema())})
			return tools
		},
		"new_body_field": func(doc *openapi3.T, tools []genmcp.Tool) []genmcp.Tool {
			body := doc.Paths.Value("/api/v1/tasks").Post.RequestBody.Value.Content.Get("application/json").Schema.Value
			props := openapi3.Schemas{}
			for k, v := range body.Properties {
				props[k] = v
			}
			props["team"] = openapi3.NewStringSchema().NewRef()
			body.Properties = props
			return tools
		},
		"key_management_marked": func(doc *openapi3.T, tools []genmcp.Tool) []genmcp.Tool {
			doc.Paths.Value("/api/v1/api-keys").Post.Extensions[mcpgen.Extension] = true
			return tools
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc := loadSpec(t, filepath.Join(repoRoot(t), "openapi.yaml"))
			tools, err := genmcp.Tools()
			if err != nil {
				t.Fatal(err)
			}
			if d := toolDisagreements(doc, edit(doc, tools)); len(d) == 0 {
				t.Error("the drift went unnoticed")
			}
		})
	}
}
