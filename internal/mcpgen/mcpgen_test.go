package mcpgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	genmcp "enterprise-automation/gen/mcp"
	"enterprise-automation/internal/mcpgen"
)

func fixture(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := mcpgen.Load("testdata/fixture.yaml")
	require.NoError(t, err)
	return doc
}

func toolsByName(t *testing.T, doc *openapi3.T) map[string]mcpgen.Tool {
	t.Helper()
	tools, err := mcpgen.Tools(doc)
	require.NoError(t, err)
	out := map[string]mcpgen.Tool{}
	for _, tool := range tools {
		out[tool.Name] = tool
	}
	return out
}

// asJSON renders v as generic JSON for comparisons.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestSnakeCase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"createAgentRun": "create_agent_run", "getTask": "get_task", "listApiKeys": "list_api_keys",
		"getHTTPStatus": "get_http_status", "Idempotency-Key": "idempotency_key", "If-Match": "if_match",
		"submitAgentRunApprovals": "submit_agent_run_approvals", "get2FACode": "get2_fa_code",
	} {
		require.Equal(t, want, mcpgen.SnakeCase(in), in)
	}
}

func TestTools(t *testing.T) {
	t.Parallel()
	tools := toolsByName(t, fixture(t))

	t.Run("only_operations_marked_x_mcp", func(t *testing.T) {
		t.Parallel()
		require.Len(t, tools, 4)
		for _, name := range []string{"list_things", "create_thing", "get_thing", "archive_o_auth_thing"} {
			require.Contains(t, tools, name)
		}
		require.NotContains(t, tools, "delete_thing")
	})

	t.Run("parameters_and_body_merge_into_one_input_schema", func(t *testing.T) {
		t.Parallel()
		c := tools["create_thing"]
		require.Equal(t, "Create a thing", c.Description)
		require.Equal(t, mcpgen.Binding{
			OperationID: "createThing", Method: http.MethodPost, Path: "/things",
			Headers:  map[string]string{"idempotency_key": "Idempotency-Key"},
			BodyArgs: []string{"born_at", "color", "labels", "name"}, Body: true, Status: http.StatusCreated,
		}, c.HTTP)
		require.Equal(t, asJSON(t, map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"name"},
			"properties": map[string]any{
				"idempotency_key": map[string]any{"type": "string", "maxLength": 10},
				"name":            map[string]any{"type": "string", "minLength": 1},
				"color":           map[string]any{"type": "string", "enum": []string{"red", "green"}},
				"born_at":         map[string]any{"type": "string", "format": "date-time"},
				"labels":          map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			},
		}), asJSON(t, c.InputSchema), "readOnly id is no input; $refs are inlined; examples dropped")
		require.Equal(t, mcpgen.Annotations{DestructiveHint: new(bool)}, c.Annotations)
	})

	t.Run("output_schema_is_json_schema", func(t *testing.T) {
		t.Parallel()
		g := tools["get_thing"]
		require.Equal(t, mcpgen.Binding{OperationID: "getThing", Method: http.MethodGet, Path: "/things/{thing_id}",
			PathParams: []string{"thing_id"}, Status: http.StatusOK}, g.HTTP)
		require.Equal(t, asJSON(t, map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"thing_id"},
			"properties": map[string]any{"thing_id": map[string]any{"type": "integer", "minimum": 1}},
		}), asJSON(t, g.InputSchema), "path-level parameters count; format int64 dropped")
		require.Equal(t, asJSON(t, map[string]any{
			"type": "object", "required": []string{"id", "name", "color", "parent"},
			"properties": map[string]any{
				"id":   map[string]any{"type": "integer"},
				"name": map[string]any{"type": "string"},
				"color": map[string]any{"anyOf": []any{
					map[string]any{"allOf": []any{map[string]any{"type": "string", "enum": []string{"red", "green"}}}},
					map[string]any{"type": "null"},
				}},
				"weight": map[string]any{"type": "number", "exclusiveMinimum": 0},
				"parent": map[string]any{"type": []string{"integer", "null"}},
				"shade":  map[string]any{"type": []string{"string", "null"}, "enum": []any{"light", "dark", nil}},
			},
		}), asJSON(t, g.OutputSchema), "writeOnly secret is no output; nullable becomes null")
		require.True(t, g.Annotations.ReadOnlyHint)
	})

	t.Run("queries_arrays_and_skipped_headers", func(t *testing.T) {
		t.Parallel()
		l := tools["list_things"]
		require.Equal(t, "List things\n\nEvery thing, filtered.", l.Description)
		require.Equal(t, []string{"color"}, l.HTTP.QueryParams)
		require.Empty(t, l.HTTP.Headers, "If-None-Match means nothing to a tool")
		require.Equal(t, asJSON(t, map[string]any{"type": "array", "description": "Only things of these colors.",
			"items": map[string]any{"type": "string", "enum": []string{"red", "green"}}}),
			asJSON(t, l.InputSchema["properties"].(map[string]any)["color"]))
	})

	t.Run("no_json_answer_no_output_schema", func(t *testing.T) {
		t.Parallel()
		a := tools["archive_o_auth_thing"]
		require.Nil(t, a.OutputSchema)
		require.Equal(t, http.StatusNoContent, a.HTTP.Status)
	})
}

func TestToolsRefuses(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(doc *openapi3.T){
		"a_parameter_and_a_body_field_of_one_name": func(doc *openapi3.T) {
			op := doc.Paths.Value("/things").Post
			op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: openapi3.NewQueryParameter("name").
				WithSchema(openapi3.NewStringSchema())})
		},
		"a_cookie_parameter": func(doc *openapi3.T) {
			op := doc.Paths.Value("/things").Get
			op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: openapi3.NewCookieParameter("sid").
				WithSchema(openapi3.NewStringSchema())})
		},
		"a_body_that_is_no_object": func(doc *openapi3.T) {
			doc.Paths.Value("/things").Post.RequestBody.Value.Content["application/json"].Schema =
				openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema()).NewRef()
		},
		"no_operation_id": func(doc *openapi3.T) { doc.Paths.Value("/things").Get.OperationID = "" },
		"two_operations_of_one_tool_name": func(doc *openapi3.T) {
			doc.Paths.Value("/things").Get.OperationID = "getThing"
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc := fixture(t)
			edit(doc)
			_, err := mcpgen.Tools(doc)
			require.Error(t, err)
		})
	}
}

// TestGeneratedGlue drives the glue written into gen/mcp with tools made from the
// fixture: arguments land in the path, query, headers and body of the request.
func TestGeneratedGlue(t *testing.T) {
	t.Parallel()
	tools, err := mcpgen.Tools(fixture(t))
	require.NoError(t, err)
	js, err := mcpgen.JSON(tools)
	require.NoError(t, err)
	var glued []genmcp.Tool
	require.NoError(t, json.Unmarshal(js, &glued))
	byName := map[string]*genmcp.Tool{}
	for i := range glued {
		byName[glued[i].Name] = &glued[i]
	}
	ctx := context.Background()

	req, err := byName["create_thing"].Request(ctx, json.RawMessage(`{"name":"box","idempotency_key":"k1","extra":1,"born_at":null}`))
	require.NoError(t, err)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, "/things", req.URL.String())
	require.Equal(t, "k1", req.Header.Get("Idempotency-Key"))
	require.Equal(t, "application/json", req.Header.Get("Content-Type"))
	body, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"box","extra":1,"born_at":null}`, string(body), "unknown arguments go to the body, where validation sees them")

	req, err = byName["get_thing"].Request(ctx, json.RawMessage(`{"thing_id":12345678901234567}`))
	require.NoError(t, err)
	require.Equal(t, "/things/12345678901234567", req.URL.String(), "int64 ids keep every digit")
	require.Nil(t, req.Body)

	req, err = byName["get_thing"].Request(ctx, json.RawMessage(`{"thing_id":"a/b"}`))
	require.NoError(t, err)
	require.Equal(t, "/things/a%2Fb", req.URL.EscapedPath())

	req, err = byName["list_things"].Request(ctx, json.RawMessage(`{"color":["red","green"]}`))
	require.NoError(t, err)
	require.Equal(t, "/things?color=red&color=green", req.URL.String())
	req, err = byName["list_things"].Request(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "/things", req.URL.String())

	for args, field := range map[string]string{
		`{}`:                   "thing_id",
		`{"thing_id":null}`:    "thing_id",
		`{"thing_id":{"a":1}}`: "thing_id",
		`{"thing_id":1,"x":2}`: "x",
		`[1]`:                  "arguments",
		`"text"`:               "arguments",
	} {
		_, err := byName["get_thing"].Request(ctx, json.RawMessage(args))
		var ae *genmcp.ArgumentError
		require.True(t, errors.As(err, &ae), "%s: %v", args, err)
		require.Equal(t, field, ae.Field, args)
	}
}

// TestWriteDir writes the fixture's tools and the glue, as `make generate` does.
func TestWriteDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, mcpgen.WriteDir("testdata/fixture.yaml", dir))
	glue, err := os.ReadFile(filepath.Join(dir, "mcp.gen.go"))
	require.NoError(t, err)
	committed, err := os.ReadFile("../../gen/mcp/mcp.gen.go")
	require.NoError(t, err)
	require.True(t, bytes.Equal(committed, glue))
	js, err := os.ReadFile(filepath.Join(dir, "tools.json"))
	require.NoError(t, err)
	var tools []map[string]any
	require.NoError(t, json.Unmarshal(js, &tools))
	require.Len(t, tools, 4)
	require.Error(t, mcpgen.WriteDir("testdata/missing.yaml", dir))
}
