package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Media types the raw requests use.
const (
	JSON = "application/json"
	Form = "application/x-www-form-urlencoded"
)

// Ptr returns a pointer to v, for the optional fields of the generated client's types.
func Ptr[T any](v T) *T { return &v }

// Request is one raw request, for what the generated client cannot send: malformed or
// oversized bodies, odd content types, extra or missing headers.
type Request struct {
	Method string
	// Path is the path (with any query) relative to the server's base URL.
	Path string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// ContentType is sent as is; empty sends none, whatever the body.
	ContentType string
	// Body is nil or "" for no body, a string, []byte or io.Reader sent as is, url.Values
	// sent form-encoded, or any other value sent as its JSON encoding.
	Body any
	// Header holds further headers; they replace any set by the fields above.
	Header map[string]string
	// Chunked sends the body without a Content-Length.
	Chunked bool
	// NoRedirect answers a redirect as it is instead of following it.
	NoRedirect bool
	// Client sends the request; by default the environment's contract-validating client.
	Client *http.Client
}

// Response is a raw response, read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ResponseOf is a response already read elsewhere.
func ResponseOf(res *http.Response, body []byte) *Response {
	return &Response{Status: res.StatusCode, Header: res.Header, Body: body}
}

// StatusCode returns the status, as the generated client's responses do.
func (r *Response) StatusCode() int { return r.Status }

// GetBody returns the body, as the generated client's responses do.
func (r *Response) GetBody() []byte { return r.Body }

// Do sends a raw request through the contract-validating client: token (unless empty) as
// a bearer token; body as described for Request.Body, sent as application/json (a
// url.Values as a form); headers as name/value pairs, which replace those (a
// "Content-Type" pair replaces the body's).
func (e *Env) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	r := Request{Method: method, Path: path, Token: token, Body: body}
	switch b := body.(type) {
	case nil:
	case string:
		if b != "" {
			r.ContentType = JSON
		}
	case url.Values:
		r.ContentType = Form
	default:
		r.ContentType = JSON
	}
	require.Zero(t, len(headers)%2, "headers come in name/value pairs")
	if len(headers) > 0 {
		r.Header = make(map[string]string, len(headers)/2)
		for i := 0; i < len(headers); i += 2 {
			r.Header[headers[i]] = headers[i+1]
		}
	}
	return e.Send(t, r)
}

// Send sends r to the environment and reads the whole response; the test fails if the
// request cannot be made.
func (e *Env) Send(t testing.TB, r Request) *Response {
	t.Helper()
	if r.Client == nil {
		r.Client = e.HTTP
	}
	return Send(t, e.BaseURL, r)
}

// Send sends r to the server at baseURL (one that is not an Env, such as an
// httptest.Server) through r.Client, or http.DefaultClient if it is nil.
func Send(t testing.TB, baseURL string, r Request) *Response {
	t.Helper()
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case string:
		if b != "" {
			body = strings.NewReader(b)
		}
	case []byte:
		body = bytes.NewReader(b)
	case io.Reader:
		body = b
	case url.Values:
		body = strings.NewReader(b.Encode())
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), r.Method, baseURL+r.Path, body)
	require.NoError(t, err)
	if r.Chunked {
		req.ContentLength = -1
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	hc := r.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	if r.NoRedirect {
		c := *hc
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc = &c
	}
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return ResponseOf(res, b)
}
