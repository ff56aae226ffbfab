package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// MaxOutputSchemaBytes bounds an output schema, as JSON.
const MaxOutputSchemaBytes = 16 << 10

// schemaURL is where a compiled schema says it lives (nothing is ever fetched).
const schemaURL = "urn:agent:schema"

// noLoader refuses every $ref outside the schema itself: a schema must not make the
// server read files or fetch URLs.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references outside the schema are not allowed (%s)", url)
}

// compileSchema compiles a JSON Schema object (draft 2020-12 unless it says otherwise).
// The error says in words what is wrong with it.
func compileSchema(raw []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errors.New("must be a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, errors.New(schemaErrorText(err))
	}
	return s, nil
}

// CheckOutputSchema validates an output schema (nil: none); the error says why it is
// not acceptable.
func CheckOutputSchema(raw []byte) error {
	if raw == nil {
		return nil
	}
	if len(raw) > MaxOutputSchemaBytes {
		return fmt.Errorf("must be at most %d bytes as JSON", MaxOutputSchemaBytes)
	}
	_, err := compileSchema(raw)
	return err
}

// validateJSON checks a JSON text against a schema; the error says what did not match.
func validateJSON(s *jsonschema.Schema, text string) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return fmt.Errorf("the answer is not valid JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return errors.New(schemaErrorText(err))
	}
	return nil
}

// CheckArguments validates a tool call's arguments against the tool's parameters; the
// error says what did not match.
func CheckArguments(tool string, args json.RawMessage) error {
	t, ok := Tools[tool]
	if !ok {
		return fmt.Errorf("unknown tool %q", tool)
	}
	raw, err := json.Marshal(t.Parameters)
	if err != nil {
		return err
	}
	s, err := compileSchema(raw)
	if err != nil {
		return err
	}
	return validateJSON(s, string(args))
}

// schemaErrorText is a validation or compilation error in a few lines, without the
// schema's internal URL.
func schemaErrorText(err error) string {
	text := err.Error()
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		var parts []string
		for _, c := range leaves(ve) {
			loc := "/" + strings.Join(c.InstanceLocation, "/")
			parts = append(parts, fmt.Sprintf("at %s: %s", loc, c.ErrorKind.LocalizedString(english)))
		}
		if len(parts) > 0 {
			text = strings.Join(parts, "; ")
		}
	}
	text = strings.ReplaceAll(text, schemaURL, "schema")
	if len(text) > 1000 {
		text = text[:1000] + "…"
	}
	return text
}

var english = message.NewPrinter(language.English)

// leaves returns the innermost causes of a validation error (at most 10).
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
		if len(out) >= 10 {
			return out[:10]
		}
	}
	return out
}
