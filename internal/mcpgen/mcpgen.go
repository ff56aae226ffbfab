// Package mcpgen turns the operations of an OpenAPI 3.0 contract marked `x-mcp: true`
// into Model Context Protocol tools: a name (the operationId in snake_case), a
// description (summary and description), an inputSchema merged from the parameters and
// the JSON request body, an outputSchema from the 2xx JSON response, and the binding
// that maps a call's arguments back onto the operation's HTTP request. `make generate`
// runs it (cmd/mcpgen) and writes gen/mcp; the server serves those tools at /mcp.
//
// Schemas are emitted as plain JSON Schema that MCP clients accept (validators of
// draft-07 and 2020-12 read them alike): every $ref is inlined, `nullable` becomes a
// "null" type, OpenAPI-only keywords (example, x-…, readOnly fields in inputs) are
// dropped and only formats JSON Schema defines are kept.
package mcpgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"
)

// Extension marks an operation as an MCP tool.
const Extension = "x-mcp"

// Tool is one generated tool, as written to tools.json.
type Tool struct {
	Name         string         `json:"name"`
	Title        string         `json:"title,omitempty"`
	Description  string         `json:"description,omitempty"`
	InputSchema  map[string]any `json:"inputSchema"`
	OutputSchema map[string]any `json:"outputSchema,omitempty"`
	Annotations  Annotations    `json:"annotations"`
	HTTP         Binding        `json:"http"`
}

// Annotations are the MCP tool hints, derived from the HTTP method.
type Annotations struct {
	ReadOnlyHint    bool  `json:"readOnlyHint"`
	DestructiveHint *bool `json:"destructiveHint,omitempty"`
	IdempotentHint  bool  `json:"idempotentHint"`
	OpenWorldHint   bool  `json:"openWorldHint"`
}

// Binding says how a call's arguments become the operation's HTTP request.
type Binding struct {
	OperationID string   `json:"operationId"`
	Method      string   `json:"method"`
	Path        string   `json:"path"`                  // OpenAPI path template
	PathParams  []string `json:"pathParams,omitempty"`  // arguments substituted into Path
	QueryParams []string `json:"queryParams,omitempty"` // arguments sent in the query string
	// Headers maps an argument to the request header that carries it.
	Headers map[string]string `json:"headers,omitempty"`
	// BodyArgs lists the arguments sent as the JSON body's properties; with Body set,
	// any other argument goes to the body too, where validation rejects it.
	BodyArgs []string `json:"bodyArgs,omitempty"`
	Body     bool     `json:"body,omitempty"` // the operation takes a JSON object body
	// Status is the success status whose JSON answer the outputSchema describes (0 when
	// the success answer has no JSON object body).
	Status int `json:"status,omitempty"`
}

// skippedHeaders are header parameters a tool does not offer: conditional GETs answer
// 304 without a body, which means nothing to a tool call.
var skippedHeaders = map[string]bool{"If-None-Match": true}

// Tools builds the tools of doc's operations marked x-mcp, sorted by name. It fails on
// an operation it cannot express as a tool: no operationId, a non-object or non-JSON
// body, a parameter in a cookie, or a parameter and a body field of the same name.
func Tools(doc *openapi3.T) ([]Tool, error) {
	var tools []Tool
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			if on, _ := op.Extensions[Extension].(bool); !on {
				continue
			}
			t, err := tool(method, path, item, op)
			if err != nil {
				return nil, fmt.Errorf("mcpgen: %s %s: %w", method, path, err)
			}
			tools = append(tools, t)
		}
	}
	slices.SortFunc(tools, func(a, b Tool) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(tools); i++ {
		if tools[i].Name == tools[i-1].Name {
			return nil, fmt.Errorf("mcpgen: two operations make the tool %s", tools[i].Name)
		}
	}
	return tools, nil
}

// JSON renders tools as the indented, stable JSON that gen/mcp/tools.json holds.
func JSON(tools []Tool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tools); err != nil {
		return nil, fmt.Errorf("mcpgen: encode tools: %w", err)
	}
	return buf.Bytes(), nil
}

func tool(method, path string, item *openapi3.PathItem, op *openapi3.Operation) (Tool, error) {
	if op.OperationID == "" {
		return Tool{}, errors.New("an MCP tool needs an operationId")
	}
	t := Tool{
		Name:        SnakeCase(op.OperationID),
		Title:       op.Summary,
		Description: strings.TrimSpace(strings.Join(nonEmpty(op.Summary, strings.TrimSpace(op.Description)), "\n\n")),
		Annotations: annotations(method),
		HTTP:        Binding{OperationID: op.OperationID, Method: method, Path: path},
	}
	props := map[string]any{}
	var required []string
	add := func(name string, schema map[string]any, req bool) error {
		if _, dup := props[name]; dup {
			return fmt.Errorf("argument %q is both a parameter and a body field", name)
		}
		props[name] = schema
		if req {
			required = append(required, name)
		}
		return nil
	}
	params := slices.Concat(item.Parameters, op.Parameters)
	for _, ref := range params {
		p := ref.Value
		if p.In == openapi3.ParameterInHeader && skippedHeaders[p.Name] {
			continue
		}
		schema := map[string]any{}
		if p.Schema != nil {
			schema = convert(p.Schema.Value, forInput)
		}
		if p.Description != "" {
			schema["description"] = p.Description
		}
		name := p.Name
		switch p.In {
		case openapi3.ParameterInPath:
			t.HTTP.PathParams = append(t.HTTP.PathParams, name)
		case openapi3.ParameterInQuery:
			t.HTTP.QueryParams = append(t.HTTP.QueryParams, name)
		case openapi3.ParameterInHeader:
			name = SnakeCase(p.Name)
			if t.HTTP.Headers == nil {
				t.HTTP.Headers = map[string]string{}
			}
			t.HTTP.Headers[name] = p.Name
		default:
			return Tool{}, fmt.Errorf("parameter %s in %s cannot be a tool argument", p.Name, p.In)
		}
		if err := add(name, schema, p.Required); err != nil {
			return Tool{}, err
		}
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		mt := rb.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil || len(rb.Value.Content) != 1 {
			return Tool{}, errors.New("an MCP tool's body must be application/json only")
		}
		body := convert(mt.Schema.Value, forInput)
		bodyProps, _ := body["properties"].(map[string]any)
		if body["type"] != "object" || bodyProps == nil {
			return Tool{}, errors.New("an MCP tool's body must be an object with properties")
		}
		bodyRequired, _ := body["required"].([]string)
		for _, name := range sortedKeys(bodyProps) {
			if err := add(name, bodyProps[name].(map[string]any), rb.Value.Required && slices.Contains(bodyRequired, name)); err != nil {
				return Tool{}, err
			}
			t.HTTP.BodyArgs = append(t.HTTP.BodyArgs, name)
		}
		t.HTTP.Body = true
	}
	in := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		in["required"] = required
	}
	t.InputSchema = in
	t.HTTP.Status, t.OutputSchema = outputOf(op)
	return t, nil
}

// output finds the first 2xx answer with a JSON object body.
func outputOf(op *openapi3.Operation) (int, map[string]any) {
	for status := 200; status < 300; status++ {
		res := op.Responses.Status(status)
		if res == nil || res.Value == nil {
			continue
		}
		mt := res.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			return status, nil
		}
		s := convert(mt.Schema.Value, forOutput)
		if s["type"] != "object" {
			return status, nil // MCP's structuredContent is an object
		}
		return status, s
	}
	return 0, nil
}

func annotations(method string) Annotations {
	a := Annotations{OpenWorldHint: false}
	switch method {
	case http.MethodGet, http.MethodHead:
		a.ReadOnlyHint, a.IdempotentHint = true, true
	case http.MethodDelete:
		a.DestructiveHint, a.IdempotentHint = ptr(true), true
	case http.MethodPut:
		a.DestructiveHint, a.IdempotentHint = ptr(true), true
	default:
		a.DestructiveHint = ptr(method == http.MethodPatch)
	}
	return a
}

// direction tells convert which side of the exchange a schema describes.
type direction int

const (
	forInput  direction = iota // drop readOnly properties
	forOutput                  // drop writeOnly properties
)

// formats JSON Schema defines, which MCP clients' validators know; OpenAPI's own
// (int32, int64, double, password, …) are dropped.
var formats = map[string]bool{
	"date-time": true, "date": true, "time": true, "email": true, "uri": true, "uuid": true,
	"hostname": true, "ipv4": true, "ipv6": true,
}

// convert renders an OpenAPI 3.0 schema as JSON Schema, inlining every reference.
func convert(s *openapi3.Schema, dir direction) map[string]any {
	out := map[string]any{}
	if s == nil {
		return out
	}
	var typ string
	if s.Type != nil && len(*s.Type) == 1 {
		typ = (*s.Type)[0]
		out["type"] = typ
	}
	if s.Title != "" {
		out["title"] = s.Title
	}
	if s.Description != "" {
		out["description"] = strings.TrimSpace(s.Description)
	}
	if formats[s.Format] {
		out["format"] = s.Format
	}
	if len(s.Enum) > 0 {
		out["enum"] = slices.Clone(s.Enum)
	}
	if s.Default != nil {
		out["default"] = s.Default
	}
	if s.Min != nil {
		if s.ExclusiveMin.Bool != nil && *s.ExclusiveMin.Bool {
			out["exclusiveMinimum"] = *s.Min
		} else {
			out["minimum"] = *s.Min
		}
	}
	if s.Max != nil {
		if s.ExclusiveMax.Bool != nil && *s.ExclusiveMax.Bool {
			out["exclusiveMaximum"] = *s.Max
		} else {
			out["maximum"] = *s.Max
		}
	}
	if s.MultipleOf != nil {
		out["multipleOf"] = *s.MultipleOf
	}
	if s.MinLength > 0 {
		out["minLength"] = s.MinLength
	}
	if s.MaxLength != nil {
		out["maxLength"] = *s.MaxLength
	}
	if s.Pattern != "" {
		out["pattern"] = s.Pattern
	}
	if s.MinItems > 0 {
		out["minItems"] = s.MinItems
	}
	if s.MaxItems != nil {
		out["maxItems"] = *s.MaxItems
	}
	if s.UniqueItems {
		out["uniqueItems"] = true
	}
	if s.Items != nil {
		out["items"] = convert(s.Items.Value, dir)
	}
	if s.MinProps > 0 {
		out["minProperties"] = s.MinProps
	}
	if s.MaxProps != nil {
		out["maxProperties"] = *s.MaxProps
	}
	if len(s.Properties) > 0 {
		props := map[string]any{}
		for name, ref := range s.Properties {
			if p := ref.Value; p != nil && (dir == forInput && p.ReadOnly || dir == forOutput && p.WriteOnly) {
				continue
			}
			props[name] = convert(ref.Value, dir)
		}
		out["properties"] = props
		var required []string
		for _, name := range s.Required {
			if _, ok := props[name]; ok {
				required = append(required, name)
			}
		}
		if len(required) > 0 {
			out["required"] = required
		}
	}
	if ap := s.AdditionalProperties; ap.Has != nil {
		out["additionalProperties"] = *ap.Has
	} else if ap.Schema != nil {
		out["additionalProperties"] = convert(ap.Schema.Value, dir)
	}
	for key, refs := range map[string]openapi3.SchemaRefs{"allOf": s.AllOf, "anyOf": s.AnyOf, "oneOf": s.OneOf} {
		if len(refs) == 0 {
			continue
		}
		list := make([]any, len(refs))
		for i, ref := range refs {
			list[i] = convert(ref.Value, dir)
		}
		out[key] = list
	}
	if s.Not != nil {
		out["not"] = convert(s.Not.Value, dir)
	}
	if s.Deprecated {
		out["deprecated"] = true
	}
	if !s.Nullable {
		return out
	}
	// nullable: a simple type admits null as well; anything composed is wrapped.
	if typ != "" && s.AllOf == nil && s.AnyOf == nil && s.OneOf == nil {
		out["type"] = []string{typ, "null"}
		if enum, ok := out["enum"].([]any); ok && !slices.Contains(enum, any(nil)) {
			out["enum"] = append(enum, nil)
		}
		return out
	}
	desc, hasDesc := out["description"]
	delete(out, "description")
	wrapped := map[string]any{"anyOf": []any{out, map[string]any{"type": "null"}}}
	if hasDesc {
		wrapped["description"] = desc
	}
	return wrapped
}

// SnakeCase turns an operationId or a header name into snake_case:
// "createAgentRun" → "create_agent_run", "getHTTPStatus" → "get_http_status",
// "Idempotency-Key" → "idempotency_key".
func SnakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		switch {
		case c == '-' || c == ' ' || c == '.':
			b.WriteByte('_')
			continue
		case unicode.IsUpper(c):
			prevLower := i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]))
			nextLower := i > 0 && i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1])
			if (prevLower || nextLower) && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func nonEmpty(ss ...string) []string {
	return slices.DeleteFunc(ss, func(s string) bool { return s == "" })
}

func ptr[T any](v T) *T { return &v }
