package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/idempotency"
)

const idempotencyKeyHeader = "Idempotency-Key"

// replayedHeaders are the response headers stored with a first response and replayed.
var replayedHeaders = []string{echo.HeaderContentType, echo.HeaderLocation, "ETag"}

// idempotent makes the operations that declare an Idempotency-Key header safe to retry.
// It runs after validation, so only well-formed requests claim a key; responses with a
// 5xx or 429 status are not stored, so the client may retry those with the same key.
func (s *Server) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		op, ok := s.operationOf(c)
		key := c.Request().Header.Get(idempotencyKeyHeader)
		if !ok || !op.idempotent || key == "" || s.idem == nil {
			return next(c)
		}
		p, ok := auth.PrincipalFrom(c.Request().Context())
		if !ok {
			return next(c)
		}
		req := c.Request()
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.New()
		_, _ = io.WriteString(h, req.Method+"\n"+req.URL.Path+"\n") // a hash never fails to write
		_, _ = h.Write(body)

		ctx := req.Context()
		stored, err := s.idem.Begin(ctx, p.UserID, key, h.Sum(nil))
		if err != nil {
			return err
		}
		if stored != nil {
			for k, v := range stored.Header {
				c.Response().Header()[k] = v
			}
			c.Response().Header().Set("Idempotent-Replayed", "true")
			body := stored.Body
			if stored.Header.Get(echo.HeaderContentType) == problemContentType {
				body = problemForRequest(body, requestID(c))
			}
			c.Response().WriteHeader(stored.Status)
			_, err := c.Response().Write(body)
			return err
		}

		rec := &recorder{ResponseWriter: c.Response().Writer}
		c.Response().Writer = rec
		if err := next(c); err != nil {
			c.Error(err)
		}
		c.Response().Writer = rec.ResponseWriter
		status := c.Response().Status
		bg := context.WithoutCancel(ctx)
		if status >= 500 || status == http.StatusTooManyRequests {
			if err := s.idem.Release(bg, p.UserID, key); err != nil {
				s.log.ErrorContext(ctx, "releasing idempotency key", "request_id", requestID(c), "error", err)
			}
			return nil
		}
		header := http.Header{}
		for _, k := range replayedHeaders {
			if v := c.Response().Header().Get(k); v != "" {
				header.Set(k, v)
			}
		}
		if err := s.idem.Complete(bg, p.UserID, key, idempotency.Response{Status: status, Header: header, Body: rec.body.Bytes()}); err != nil {
			s.log.ErrorContext(ctx, "storing idempotent response", "request_id", requestID(c), "error", err)
		}
		return nil
	}
}

// problemForRequest returns a replayed problem body carrying this request's id, so that the
// body and the X-Request-ID header name the same request.
func problemForRequest(problem []byte, id string) []byte {
	var p map[string]any
	if json.Unmarshal(problem, &p) != nil {
		return problem
	}
	p["request_id"] = id
	b, err := json.Marshal(p)
	if err != nil {
		return problem
	}
	return b
}

// recorder copies what is written to the client.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
