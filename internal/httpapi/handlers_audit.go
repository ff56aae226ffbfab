package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/audit"
)

// ListAuditEvents implements GET /api/v1/audit-events.
func (s *Server) ListAuditEvents(ctx context.Context, req api.ListAuditEventsRequestObject) (api.ListAuditEventsResponseObject, error) {
	q := req.Params
	f := audit.Filter{ActorUserID: q.ActorUserId, Action: q.Action, ResourceType: q.ResourceType,
		ResourceID: q.ResourceId, Since: q.Since, Until: q.Until}
	if wantsNDJSON(ctx) {
		return &auditStream{ctx: ctx, events: s.audit, filter: f, log: s}, nil
	}
	limit := 100
	if q.Limit != nil {
		limit = int(*q.Limit)
	}
	cursor := ""
	if q.Cursor != nil {
		cursor = *q.Cursor
	}
	pg, err := s.audit.List(ctx, f, limit, cursor)
	if err != nil {
		return nil, err
	}
	out := api.AuditEventPage{Items: make([]api.AuditEvent, len(pg.Items)), NextCursor: nullableOf[string](nil)}
	for i, e := range pg.Items {
		out.Items[i] = toAuditEvent(e)
	}
	if pg.NextCursor != "" {
		out.NextCursor = nullableOf(&pg.NextCursor)
	}
	return api.ListAuditEvents200JSONResponse{Body: out}, nil
}

// auditStream writes every matching event as NDJSON while it reads them, in bounded
// chunks (audit.Service.Stream), so that memory stays flat however long the log is.
type auditStream struct {
	ctx    context.Context
	events *audit.Service
	filter audit.Filter
	log    *Server
}

// VisitListAuditEventsResponse implements api.ListAuditEventsResponseObject. Once the
// first line is written the status is sent; a later failure ends the stream early (and
// is logged), since no problem can follow a 200.
func (a *auditStream) VisitListAuditEventsResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", ndjsonType)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	err := a.events.Stream(a.ctx, a.filter, func(e audit.Event) error {
		return enc.Encode(toAuditEvent(e))
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		a.log.log.WarnContext(a.ctx, "audit event stream ended early", "error", err)
	}
	return nil
}

func toAuditEvent(e audit.Event) api.AuditEvent {
	out := api.AuditEvent{
		Id: e.ID, OccurredAt: e.OccurredAt.UTC(), Action: e.Action,
		Actor: api.AuditActor{Type: api.AuditActorType(e.Actor.Type), UserId: nullableOf(e.Actor.UserID),
			ApiKeyId: nullableOf(e.Actor.APIKeyID), AgentRunId: nullableOf(e.Actor.AgentRunID)},
		Resource:  api.AuditResource{Type: e.ResourceType, Id: nullableOf(e.ResourceID)},
		RequestId: nullableOf(e.RequestID), Ip: nullableOf(e.IP), Changes: nullableOf[map[string]any](nil),
	}
	var m map[string]any
	if len(e.Changes) > 0 && json.Unmarshal(e.Changes, &m) == nil && m != nil {
		out.Changes = nullableOf(&m)
	}
	return out
}
