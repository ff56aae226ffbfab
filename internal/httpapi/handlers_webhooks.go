package httpapi

import (
	"context"
	"encoding/json"
	"strconv"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
	"enterprise-automation/internal/user"
	"enterprise-automation/internal/webhook"
)

// WebhookData renders a webhook event's data exactly as the API returns the resource:
// tasks, users and agent runs through the same mapping as their responses; anything
// else (the test event's data) as JSON.
func WebhookData(v any) ([]byte, error) {
	switch v := v.(type) {
	case task.Task:
		t, err := toTask(v)
		if err != nil {
			return nil, err
		}
		return json.Marshal(t)
	case user.User:
		return json.Marshal(toUser(v))
	case agent.Run:
		r, err := toRun(v)
		if err != nil {
			return nil, err
		}
		return json.Marshal(r)
	default:
		return json.Marshal(v)
	}
}

func toWebhook(e webhook.Endpoint) api.Webhook {
	events := make([]api.WebhookSubscription, len(e.Events))
	for i, t := range e.Events {
		events[i] = api.WebhookSubscription(t)
	}
	return api.Webhook{
		Id: e.ID, Url: e.URL, Events: events, Description: e.Description, IsActive: e.IsActive,
		DisabledReason: nullableOf(e.DisabledReason), CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
	}
}

func toDelivery(d webhook.Delivery) api.WebhookDelivery {
	return api.WebhookDelivery{
		Id: d.ID, EventId: d.EventID, EventType: api.WebhookEventType(d.EventType), Status: api.WebhookDeliveryStatus(d.Status),
		Attempts: d.Attempts, LastStatusCode: nullableOf(d.LastStatusCode), LastError: nullableOf(d.LastError),
		LastResponseBody: nullableOf(d.LastResponseBody), NextAttemptAt: nullableTime(d.NextAttemptAt),
		CreatedAt: d.CreatedAt.UTC(), DeliveredAt: nullableTime(d.DeliveredAt),
	}
}

func eventTypes(in []api.WebhookSubscription) []webhook.EventType {
	out := make([]webhook.EventType, len(in))
	for i, t := range in {
		out[i] = webhook.EventType(t)
	}
	return out
}

// CreateWebhook implements POST /api/v1/webhooks.
func (s *Server) CreateWebhook(ctx context.Context, req api.CreateWebhookRequestObject) (api.CreateWebhookResponseObject, error) {
	b := req.Body
	p := webhook.CreateParams{URL: b.Url, Events: eventTypes(b.Events), IsActive: b.IsActive}
	if b.Description != nil {
		p.Description = *b.Description
	}
	c, err := s.webhooks.Create(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	w := toWebhook(c.Endpoint)
	return api.CreateWebhook201JSONResponse{
		Body: api.WebhookCreated{
			Id: w.Id, Url: w.Url, Events: w.Events, Description: w.Description, IsActive: w.IsActive,
			DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, Secret: c.Secret,
		},
		Headers: api.CreateWebhook201ResponseHeaders{
			Location: ptr("/api/v1/webhooks/" + strconv.FormatInt(c.ID, 10)), ETag: ptr(etag.Format(c.Version)),
		},
	}, nil
}

// ListWebhooks implements GET /api/v1/webhooks.
func (s *Server) ListWebhooks(ctx context.Context, req api.ListWebhooksRequestObject) (api.ListWebhooksResponseObject, error) {
	res, err := s.webhooks.List(ctx, actor(ctx), page.NewRequest(req.Params.Skip, req.Params.Limit))
	if err != nil {
		return nil, err
	}
	out := page.Map(res, toWebhook)
	return api.ListWebhooks200JSONResponse{Items: out.Items, Total: out.Total, Page: out.Page, PageSize: out.PageSize, TotalPages: out.TotalPages}, nil
}

// GetWebhook implements GET /api/v1/webhooks/{webhook_id}.
func (s *Server) GetWebhook(ctx context.Context, req api.GetWebhookRequestObject) (api.GetWebhookResponseObject, error) {
	e, err := s.webhooks.Get(ctx, actor(ctx), req.WebhookId)
	if err != nil {
		return nil, err
	}
	return api.GetWebhook200JSONResponse{Body: toWebhook(e), Headers: api.GetWebhook200ResponseHeaders{ETag: ptr(etag.Format(e.Version))}}, nil
}

// UpdateWebhook implements PATCH /api/v1/webhooks/{webhook_id}.
func (s *Server) UpdateWebhook(ctx context.Context, req api.UpdateWebhookRequestObject) (api.UpdateWebhookResponseObject, error) {
	b := req.Body
	p := webhook.UpdateParams{URL: b.Url, Description: b.Description, IsActive: b.IsActive}
	if b.Events != nil {
		ev := eventTypes(*b.Events)
		p.Events = &ev
	}
	e, err := s.webhooks.Update(ctx, actor(ctx), req.WebhookId, p, etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	return api.UpdateWebhook200JSONResponse{Body: toWebhook(e), Headers: api.UpdateWebhook200ResponseHeaders{ETag: ptr(etag.Format(e.Version))}}, nil
}

// DeleteWebhook implements DELETE /api/v1/webhooks/{webhook_id}.
func (s *Server) DeleteWebhook(ctx context.Context, req api.DeleteWebhookRequestObject) (api.DeleteWebhookResponseObject, error) {
	if err := s.webhooks.Delete(ctx, actor(ctx), req.WebhookId, etag.IfMatch(req.Params.IfMatch)); err != nil {
		return nil, err
	}
	return api.DeleteWebhook204Response{}, nil
}

// RotateWebhookSecret implements POST /api/v1/webhooks/{webhook_id}/rotate-secret.
func (s *Server) RotateWebhookSecret(ctx context.Context, req api.RotateWebhookSecretRequestObject) (api.RotateWebhookSecretResponseObject, error) {
	secret, err := s.webhooks.RotateSecret(ctx, actor(ctx), req.WebhookId)
	if err != nil {
		return nil, err
	}
	return api.RotateWebhookSecret200JSONResponse{Secret: secret}, nil
}

// SendWebhookTest implements POST /api/v1/webhooks/{webhook_id}/test.
func (s *Server) SendWebhookTest(ctx context.Context, req api.SendWebhookTestRequestObject) (api.SendWebhookTestResponseObject, error) {
	d, err := s.webhooks.SendTest(ctx, actor(ctx), req.WebhookId)
	if err != nil {
		return nil, err
	}
	return api.SendWebhookTest202JSONResponse(toDelivery(d)), nil
}

// ListWebhookDeliveries implements GET /api/v1/webhooks/{webhook_id}/deliveries.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req api.ListWebhookDeliveriesRequestObject) (api.ListWebhookDeliveriesResponseObject, error) {
	p := webhook.DeliveryListParams{Page: page.NewRequest(req.Params.Skip, req.Params.Limit)}
	if req.Params.Status != nil {
		st := webhook.DeliveryStatus(*req.Params.Status)
		p.Status = &st
	}
	res, err := s.webhooks.ListDeliveries(ctx, actor(ctx), req.WebhookId, p)
	if err != nil {
		return nil, err
	}
	out := page.Map(res, toDelivery)
	return api.ListWebhookDeliveries200JSONResponse{Items: out.Items, Total: out.Total, Page: out.Page, PageSize: out.PageSize, TotalPages: out.TotalPages}, nil
}

// RedeliverWebhookDelivery implements POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver.
func (s *Server) RedeliverWebhookDelivery(ctx context.Context, req api.RedeliverWebhookDeliveryRequestObject) (api.RedeliverWebhookDeliveryResponseObject, error) {
	d, err := s.webhooks.Redeliver(ctx, actor(ctx), req.WebhookId, req.DeliveryId)
	if err != nil {
		return nil, err
	}
	return api.RedeliverWebhookDelivery202JSONResponse(toDelivery(d)), nil
}
