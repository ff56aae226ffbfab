package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
)

// ndjsonType is the media type of a streamed list, one JSON object a line.
const ndjsonType = "application/x-ndjson"

type ndjsonKey struct{}

// wantsNDJSON reports whether the request asked for NDJSON in Accept.
func wantsNDJSON(ctx context.Context) bool {
	v, _ := ctx.Value(ndjsonKey{}).(bool)
	return v
}

// auditContext gives every mutating /api/v1 operation the audit Meta its services record
// their changes with: the contract's operationId as the action, the authenticated
// principal (or, on the anonymous auth operations, an actor the service names), the
// request id and the client address. It also notes an NDJSON Accept for the handlers
// that stream.
func (s *Server) auditContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		op, ok := s.operationOf(c)
		if !ok || !strings.HasPrefix(op.route.Path, "/api/v1/") {
			return next(c)
		}
		ctx := c.Request().Context()
		switch c.Request().Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			m := audit.Meta{Action: op.route.Operation.OperationID, Actor: audit.Actor{Type: audit.ActorUser},
				RequestID: requestID(c), IP: c.RealIP()}
			if p, ok := auth.PrincipalFrom(ctx); ok {
				m.Actor = audit.RequestActor(p.UserID, p.APIKeyID)
			}
			ctx = audit.WithMeta(ctx, m)
		case http.MethodGet:
			if !strings.Contains(c.Request().Header.Get(echo.HeaderAccept), ndjsonType) {
				return next(c) // nothing to add: no copy of the request
			}
			ctx = context.WithValue(ctx, ndjsonKey{}, true)
		default:
			return next(c)
		}
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}
