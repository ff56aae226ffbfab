package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/apperr"
)

// operation is what the middleware needs to know about one operation of the contract.
type operation struct {
	route        *routers.Route
	secured      bool
	requiredRole string
	// requiredScope is x-required-scope: the scope an API key needs ("" on public operations).
	requiredScope string
	// acceptsKey: the operation's security requirements include the API key scheme.
	acceptsKey  bool
	bodyTypes   map[string]bool // accepted request content types; nil when no body
	idempotent  bool            // declares an Idempotency-Key header
	rateLimited bool            // declares a 429 response
	readsQuery  bool            // declares query parameters, or a form body (parsing it parses the query too)
}

// routeKey names an operation by method and Echo path template ("/users/:user_id").
func routeKey(method, echoPath string) string { return method + " " + echoPath }

// operationOf returns the contract's operation for the route Echo matched for c.
func (s *Server) operationOf(c echo.Context) (*operation, bool) {
	return s.lookupOperation(c.Request().Method, c.Path())
}

// lookupOperation returns the operation of a method and Echo path template. Several
// middlewares ask on every request, so the key is built on the stack: the map lookup
// of a converted byte slice does not copy it.
func (s *Server) lookupOperation(method, path string) (*operation, bool) {
	var buf [128]byte
	k := append(append(append(buf[:0], method...), ' '), path...)
	op, ok := s.ops[string(k)]
	return op, ok
}

// echoPath converts an OpenAPI path template to Echo's syntax.
func echoPath(p string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(p)
}

// operations indexes the contract's operations by Echo route key, so that validation
// needs no second router: Echo has already matched the route.
func operations(doc *openapi3.T) map[string]*operation {
	ops := map[string]*operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			o := &operation{
				route:   &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
				secured: len(security) > 0,
			}
			if role, ok := op.Extensions["x-required-role"].(string); ok {
				o.requiredRole = role
			}
			if scope, ok := op.Extensions["x-required-scope"].(string); ok {
				o.requiredScope = scope
			}
			for _, req := range security {
				if _, ok := req[apiKeyScheme]; ok {
					o.acceptsKey = true
				}
			}
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.In == "header" && p.Value.Name == idempotencyKeyHeader {
					o.idempotent = true
				}
				if p.Value != nil && p.Value.In == "query" {
					o.readsQuery = true
				}
			}
			o.rateLimited = op.Responses.Value("429") != nil
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				o.bodyTypes = map[string]bool{}
				for ct := range op.RequestBody.Value.Content {
					o.bodyTypes[ct] = true
					if ct == echo.MIMEApplicationForm {
						o.readsQuery = true
					}
				}
			}
			ops[routeKey(method, echoPath(path))] = o
		}
	}
	return ops
}

// emailFormat validates `format: email` with the standard library's address parser,
// accepting only a bare address.
type emailFormat struct{}

func (emailFormat) Validate(v string) error {
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
		return errors.New("must be a valid email address")
	}
	return nil
}

// SchemaOptions are the schema validation options the contract needs (custom formats);
// tests validate responses with them too.
// The formats are one shared map, read only: WithStringFormatValidator would build a new
// map for every value validated.
var SchemaOptions = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{"email": emailFormat{}}),
}

var validationOptions = &openapi3filter.Options{
	AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc, // enforced by Server.authenticate
	MultiError:              true,
	SkipSettingDefaults:     true, // handlers apply defaults; keep the body as sent
	SchemaValidationOptions: SchemaOptions,
}

// validate checks each request against its operation in the contract: content type
// (415), syntax (400) and schema (422 listing every bad field).
func (s *Server) validate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		op, ok := s.operationOf(c)
		if !ok {
			return next(c)
		}
		req := c.Request()
		// Operations that read no query ignore the query string, as they ignore unknown
		// parameters; the others must be able to read it.
		if op.readsQuery && req.URL.RawQuery != "" {
			if _, err := url.ParseQuery(req.URL.RawQuery); err != nil {
				return apperr.Wrap(apperr.Malformed, err, "the query string is malformed: %v", err)
			}
		}
		if op.bodyTypes != nil && hasBody(req) {
			mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
			if err != nil || !op.bodyTypes[mt] {
				return apperr.E(apperr.UnsupportedMediaType, "content type %q is not supported; use %s",
					req.Header.Get(echo.HeaderContentType), strings.Join(sortedKeys(op.bodyTypes), " or "))
			}
			if mt == echo.MIMEApplicationJSON {
				if err := requireSingleJSONValue(req); err != nil {
					return err
				}
			}
		}
		params := make(map[string]string, len(c.ParamNames()))
		for i, name := range c.ParamNames() {
			params[name] = c.ParamValues()[i]
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: op.route, Options: validationOptions}
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			return validationError(err)
		}
		return next(c)
	}
}

// requireSingleJSONValue rejects bodies with data after the first JSON value, which the
// decoders downstream would silently ignore. The body is put back for them.
func requireSingleJSONValue(req *http.Request) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *echo.HTTPError
		if errors.As(err, &tooLarge) && tooLarge.Code == http.StatusRequestEntityTooLarge {
			return apperr.Wrap(apperr.TooLarge, err, "the request body is larger than %d bytes", maxBodyBytes)
		}
		return apperr.Wrap(apperr.Malformed, err, "the request body could not be read")
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte(`\u0000`)) {
		// PostgreSQL cannot store NUL characters in text; say which field has one.
		var v any
		if json.Unmarshal(body, &v) == nil {
			if field := findNUL(v, ""); field != "" {
				return apperr.Validation(apperr.FieldError{Location: "body", Field: field, Message: "must not contain NUL characters"})
			}
		}
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		msg := "the request body is not valid JSON"
		if err := dec.Decode(&v); err != nil {
			msg += ": " + err.Error()
		} else {
			msg += ": unexpected data after the JSON value"
		}
		return apperr.E(apperr.Malformed, "%s", msg)
	}
	return nil
}

// findNUL returns the dotted path of the first string (or key) holding a NUL character.
func findNUL(v any, path string) string {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case string:
		if strings.ContainsRune(x, 0) {
			return cmpOr(path, "body")
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, 0) {
				return cmpOr(path, "body")
			}
			if f := findNUL(e, join(k)); f != "" {
				return f
			}
		}
	case []any:
		for i, e := range x {
			if f := findNUL(e, join(fmt.Sprint(i))); f != "" {
				return f
			}
		}
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, `"`+k+`"`)
	}
	sort.Strings(out)
	return out
}

// validationError converts kin-openapi's errors to a domain error: body syntax errors
// are Malformed, an oversized body TooLarge, everything else Invalid with one entry per
// field.
func validationError(err error) error {
	var fields []apperr.FieldError
	var malformed error
	collectFieldErrors(err, &fields, &malformed)
	if malformed != nil {
		return malformed
	}
	if len(fields) == 0 {
		return apperr.Wrap(apperr.Invalid, err, "the request is invalid")
	}
	return apperr.Validation(fields...)
}

// collectFieldErrors walks kin-openapi's error tree. It uses type switches rather than
// errors.As on purpose: MultiError.As would pick out one nested error and lose the
// RequestError around it that says where (which parameter) the error is.
func collectFieldErrors(err error, fields *[]apperr.FieldError, malformed *error) {
	var tooLarge *echo.HTTPError
	if errors.As(err, &tooLarge) && tooLarge.Code == http.StatusRequestEntityTooLarge {
		*malformed = apperr.Wrap(apperr.TooLarge, err, "the request body is larger than %d bytes", maxBodyBytes)
		return
	}
	var re *openapi3filter.RequestError
	switch e := err.(type) { //nolint:errorlint // deliberate: see above
	case openapi3.MultiError:
		for _, inner := range e {
			collectFieldErrors(inner, fields, malformed)
		}
		return
	case *openapi3.SchemaError:
		*fields = append(*fields, schemaFieldError("body", "", e))
		return
	case *openapi3filter.RequestError:
		re = e
	default:
		*fields = append(*fields, apperr.FieldError{Location: "body", Message: "is invalid"})
		return
	}
	switch {
	case re.Parameter != nil:
		loc, name := re.Parameter.In, re.Parameter.Name
		var se *openapi3.SchemaError
		var pe *openapi3filter.ParseError
		inner, isMulti := re.Err.(openapi3.MultiError) //nolint:errorlint // the validator's own list, never wrapped
		switch {
		case isMulti:
			for _, e := range inner {
				if errors.As(e, &se) {
					*fields = append(*fields, schemaFieldError(loc, name, se))
				}
			}
		case errors.As(re.Err, &se):
			*fields = append(*fields, schemaFieldError(loc, name, se))
		case errors.As(re.Err, &pe):
			*fields = append(*fields, apperr.FieldError{Location: loc, Field: name, Message: "must be " + typeName(re.Parameter.Schema)})
		case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
			*fields = append(*fields, apperr.FieldError{Location: loc, Field: name, Message: "is required"})
		case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
			*fields = append(*fields, apperr.FieldError{Location: loc, Field: name, Message: "must not be empty"})
		default:
			*fields = append(*fields, apperr.FieldError{Location: loc, Field: name, Message: "is invalid"})
		}
	case re.RequestBody != nil:
		var pe *openapi3filter.ParseError
		var se *openapi3.SchemaError
		inner, isMulti := re.Err.(openapi3.MultiError) //nolint:errorlint // the validator's own list, never wrapped
		switch {
		case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
			*fields = append(*fields, apperr.FieldError{Location: "body", Field: "", Message: "a request body is required"})
		case isMulti:
			for _, e := range inner {
				collectFieldErrors(e, fields, malformed)
			}
		case errors.As(re.Err, &se):
			*fields = append(*fields, schemaFieldError("body", "", se))
		case errors.As(re.Err, &pe):
			cause := pe.Cause
			for cause != nil && errors.Unwrap(cause) != nil {
				cause = errors.Unwrap(cause)
			}
			msg := "the request body could not be parsed"
			if cause != nil {
				msg += ": " + cause.Error()
			}
			var big *echo.HTTPError
			if errors.As(re.Err, &big) && big.Code == http.StatusRequestEntityTooLarge {
				*malformed = apperr.Wrap(apperr.TooLarge, err, "the request body is larger than %d bytes", maxBodyBytes)
				return
			}
			*malformed = apperr.Wrap(apperr.Malformed, err, "%s", msg)
		default:
			*malformed = apperr.Wrap(apperr.Malformed, err, "the request body could not be read")
		}
	default:
		*fields = append(*fields, apperr.FieldError{Location: "body", Message: re.Reason})
	}
}

var unsupportedProperty = regexp.MustCompile(`^property "(.+)" is unsupported$`)

// schemaFieldError describes one schema violation in words a client can act on.
func schemaFieldError(loc, base string, se *openapi3.SchemaError) apperr.FieldError {
	path := se.JSONPointer()
	if base != "" {
		path = append([]string{base}, path...)
	}
	field := strings.Join(path, ".")
	s := se.Schema
	msg := se.Reason
	switch se.SchemaField {
	case "required":
		msg = "is required"
	case "additionalProperties", "properties":
		if m := unsupportedProperty.FindStringSubmatch(se.Reason); m != nil {
			field = strings.Trim(field+"."+m[1], ".")
		}
		msg = "is not a known field"
	case "type":
		msg = "must be " + typeName(&openapi3.SchemaRef{Value: s})
	case "nullable":
		msg = "must not be null"
	case "minLength":
		msg = fmt.Sprintf("must be at least %d characters", s.MinLength)
	case "maxLength":
		if s.MaxLength != nil {
			msg = fmt.Sprintf("must be at most %d characters", *s.MaxLength)
		}
	case "minimum":
		if s.Min != nil {
			msg = fmt.Sprintf("must be at least %v", *s.Min)
		}
	case "maximum":
		if s.Max != nil {
			msg = fmt.Sprintf("must be at most %v", *s.Max)
		}
	case "minItems":
		msg = fmt.Sprintf("must have at least %d items", s.MinItems)
	case "maxItems":
		if s.MaxItems != nil {
			msg = fmt.Sprintf("must have at most %d items", *s.MaxItems)
		}
	case "maxProperties":
		if s.MaxProps != nil {
			msg = fmt.Sprintf("must have at most %d properties", *s.MaxProps)
		}
	case "enum":
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		msg = "must be one of: " + strings.Join(vals, ", ")
	case "format":
		switch s.Format {
		case "email":
			msg = "must be a valid email address"
		case "date-time":
			msg = "must be an RFC 3339 date-time, such as 2026-01-02T15:04:05Z"
		default:
			msg = "must be a valid " + s.Format
		}
	}
	return apperr.FieldError{Location: loc, Field: field, Message: msg}
}

func typeName(ref *openapi3.SchemaRef) string {
	if ref == nil || ref.Value == nil || ref.Value.Type == nil {
		return "a valid value"
	}
	switch {
	case ref.Value.Type.Is("integer"):
		return "an integer"
	case ref.Value.Type.Is("number"):
		return "a number"
	case ref.Value.Type.Is("boolean"):
		return "true or false"
	case ref.Value.Type.Is("array"):
		return "an array"
	case ref.Value.Type.Is("object"):
		return "an object"
	default:
		return "a string"
	}
}
