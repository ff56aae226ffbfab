package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/apperr"
)

// problemKinds gives each error kind its status and problem type.
var problemKinds = map[apperr.Kind]struct {
	status int
	slug   string
}{
	apperr.Internal:             {http.StatusInternalServerError, "internal"},
	apperr.Malformed:            {http.StatusBadRequest, "malformed-request"},
	apperr.Invalid:              {http.StatusUnprocessableEntity, "validation"},
	apperr.Unauthorized:         {http.StatusUnauthorized, "unauthorized"},
	apperr.Forbidden:            {http.StatusForbidden, "forbidden"},
	apperr.NotFound:             {http.StatusNotFound, "not-found"},
	apperr.Conflict:             {http.StatusConflict, "conflict"},
	apperr.PreconditionFailed:   {http.StatusPreconditionFailed, "precondition-failed"},
	apperr.RateLimited:          {http.StatusTooManyRequests, "rate-limited"},
	apperr.Unavailable:          {http.StatusServiceUnavailable, "unavailable"},
	apperr.TooLarge:             {http.StatusRequestEntityTooLarge, "payload-too-large"},
	apperr.UnsupportedMediaType: {http.StatusUnsupportedMediaType, "unsupported-media-type"},
	apperr.QuotaExceeded:        {http.StatusTooManyRequests, "quota-exceeded"},
	apperr.InsufficientScope:    {http.StatusForbidden, "insufficient-scope"},
}

// statusKinds maps the statuses Echo itself produces back to kinds.
var statusKinds = map[int]apperr.Kind{
	http.StatusBadRequest:            apperr.Malformed,
	http.StatusUnauthorized:          apperr.Unauthorized,
	http.StatusForbidden:             apperr.Forbidden,
	http.StatusNotFound:              apperr.NotFound,
	http.StatusConflict:              apperr.Conflict,
	http.StatusPreconditionFailed:    apperr.PreconditionFailed,
	http.StatusRequestEntityTooLarge: apperr.TooLarge,
	http.StatusUnsupportedMediaType:  apperr.UnsupportedMediaType,
	http.StatusUnprocessableEntity:   apperr.Invalid,
	http.StatusTooManyRequests:       apperr.RateLimited,
	http.StatusServiceUnavailable:    apperr.Unavailable,
}

// problemContentType is the media type of every error body (RFC 9457).
const problemContentType = "application/problem+json"

// toProblem maps any error to a problem body. It is the only place errors become HTTP.
func toProblem(err error, c echo.Context) api.Problem {
	status, slug, detail := http.StatusInternalServerError, "internal", "an unexpected error occurred"
	var fields []apperr.FieldError

	var he *echo.HTTPError
	if e := apperr.As(err); e != nil {
		k := problemKinds[e.Kind]
		status, slug = k.status, k.slug
		if e.Kind != apperr.Internal {
			detail, fields = e.Message, e.Fields
		}
		if e.Kind == apperr.RateLimited && e.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
		}
	} else if errors.As(err, &he) {
		status = he.Code
		slug = "http-" + strconv.Itoa(status)
		if kind, ok := statusKinds[status]; ok {
			slug = problemKinds[kind].slug
		}
		switch status {
		case http.StatusNotFound:
			detail = fmt.Sprintf("no route for %s %s", c.Request().Method, c.Request().URL.Path)
		case http.StatusMethodNotAllowed:
			slug = "method-not-allowed"
			detail = fmt.Sprintf("method %s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
		case http.StatusRequestEntityTooLarge:
			detail = fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes)
		default:
			if status < 500 {
				detail = fmt.Sprint(he.Message)
			}
		}
	}
	if status == http.StatusUnauthorized && c.Response().Header().Get("WWW-Authenticate") == "" {
		c.Response().Header().Set("WWW-Authenticate", `Bearer`)
	}
	p := api.Problem{
		Type:      "/problems/" + slug,
		Title:     http.StatusText(status),
		Status:    int32(status),
		Detail:    &detail,
		Instance:  ptr(c.Request().URL.Path),
		RequestId: requestID(c),
	}
	if len(fields) > 0 {
		items := make([]api.FieldError, len(fields))
		for i, f := range fields {
			items[i] = api.FieldError{Location: api.FieldErrorLocation(f.Location), Field: f.Field, Message: f.Message}
		}
		p.Errors = &items
	}
	return p
}

// handleError is Echo's HTTPErrorHandler: it renders every error as a problem and logs
// server-side failures with the request id.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := toProblem(err, c)
	if p.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"request_id", p.RequestId, "method", c.Request().Method, "route", c.Path(), "error", err.Error())
	}
	body, mErr := json.Marshal(p)
	if mErr != nil {
		body = []byte(`{"type":"/problems/internal","title":"Internal Server Error","status":500,"request_id":""}`)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, problemContentType)
	h.Del("ETag")
	if c.Request().Method == http.MethodHead {
		c.Response().WriteHeader(int(p.Status))
		return
	}
	c.Response().WriteHeader(int(p.Status))
	if _, wErr := c.Response().Write(body); wErr != nil {
		s.log.DebugContext(c.Request().Context(), "writing problem failed", slog.String("error", wErr.Error()))
	}
}

func ptr[T any](v T) *T { return &v }
