package apitest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
)

// Result is what a *Response and every response of the generated client have in common.
type Result interface {
	StatusCode() int
	GetBody() []byte
}

// RequireProblem fails unless res is an RFC 9457 problem of the given status, as the
// server writes every error: application/problem+json, the same status in the body, a
// type, a title and the request's X-Request-ID, no ETag, and for a 401 a Bearer
// challenge and the unauthorized type. When typ is given and not empty, the type must be
// /problems/<typ>. It returns the decoded problem.
func RequireProblem(t testing.TB, res Result, status int, typ ...string) client.Problem {
	t.Helper()
	body := res.GetBody()
	require.Equal(t, status, res.StatusCode(), "body: %s", body)
	h := headerOf(t, res)
	require.Equal(t, "application/problem+json", h.Get("Content-Type"), "body: %s", body)
	var p client.Problem
	require.NoError(t, json.Unmarshal(body, &p), "problem body: %s", body)
	require.Equal(t, int32(status), p.Status, "body: %s", body)
	require.NotEmpty(t, p.Type, "body: %s", body)
	require.NotEmpty(t, p.Title, "body: %s", body)
	require.NotEmpty(t, p.RequestId, "body: %s", body)
	require.Equal(t, h.Get("X-Request-ID"), p.RequestId)
	require.Empty(t, h.Get("ETag"), "an error carries no ETag")
	if status == http.StatusUnauthorized {
		require.True(t, strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer"),
			"401 needs WWW-Authenticate: Bearer, got %q", h.Get("WWW-Authenticate"))
		require.Equal(t, "/problems/unauthorized", p.Type)
	}
	require.LessOrEqual(t, len(typ), 1, "one problem type at most")
	if len(typ) == 1 && typ[0] != "" {
		require.Equal(t, "/problems/"+typ[0], p.Type, "body: %s", body)
	}
	return p
}

// headerOf returns the headers of a *Response or of a generated client response (whose
// HTTPResponse field holds them).
func headerOf(t testing.TB, res Result) http.Header {
	t.Helper()
	if r, ok := res.(*Response); ok {
		return r.Header
	}
	v := reflect.Indirect(reflect.ValueOf(res))
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("HTTPResponse"); f.IsValid() {
			if hr, ok := f.Interface().(*http.Response); ok && hr != nil {
				return hr.Header
			}
		}
	}
	require.FailNow(t, "no headers", "cannot read the headers of a %T", res)
	return nil
}

// FieldErrors returns "location:field" for each field error of a problem.
func FieldErrors(p client.Problem) []string {
	if p.Errors == nil {
		return nil
	}
	out := make([]string, 0, len(*p.Errors))
	for _, e := range *p.Errors {
		out = append(out, string(e.Location)+":"+e.Field)
	}
	return out
}

// HasFieldError reports whether a problem names field, or one of its items (tags.3 for
// tags), at location.
func HasFieldError(p client.Problem, location, field string) bool {
	_, ok := fieldError(p, location, field)
	return ok
}

func fieldError(p client.Problem, location, field string) (client.FieldError, bool) {
	if p.Errors == nil {
		return client.FieldError{}, false
	}
	for _, e := range *p.Errors {
		if string(e.Location) == location && (e.Field == field || strings.HasPrefix(e.Field, field+".")) {
			return e, true
		}
	}
	return client.FieldError{}, false
}

// RequireFieldError fails unless a problem has a field error with a message for field,
// or one of its items (tags.3 for tags), at location.
func RequireFieldError(t testing.TB, p client.Problem, location, field string) {
	t.Helper()
	require.NotNil(t, p.Errors, "want a field error %s:%s, got a problem without errors: %s (detail %q)", location, field, p.Type, Deref(p.Detail))
	e, ok := fieldError(p, location, field)
	require.True(t, ok, "missing field error: want %s:%s, got %v (detail %q)", location, field, FieldErrors(p), Deref(p.Detail))
	require.NotEmpty(t, e.Message)
}

// RequireExactFieldErrors fails unless a problem has a field error with a message at
// location for each of fields, named exactly.
func RequireExactFieldErrors(t testing.TB, p client.Problem, location string, fields ...string) {
	t.Helper()
	for _, field := range fields {
		found := false
		if p.Errors != nil {
			for _, e := range *p.Errors {
				if string(e.Location) == location && e.Field == field {
					found = true
					require.NotEmpty(t, e.Message, "error for %s %q has no message", location, field)
				}
			}
		}
		require.True(t, found, "no %s error for field %q in %v (detail: %q)", location, field, FieldErrors(p), Deref(p.Detail))
	}
}

// Deref returns *p, or the zero value when p is nil.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
