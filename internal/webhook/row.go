package webhook

import (
	"context"

	"enterprise-automation/gen/db"
)

// queries are the sqlc queries the service calls.
type queries interface {
	WebhookCreate(ctx context.Context, arg db.WebhookCreateParams) (db.WebhookEndpoint, error)
	WebhookGetByID(ctx context.Context, id int64) (db.WebhookEndpoint, error)
	WebhookGetByIDForUpdate(ctx context.Context, id int64) (db.WebhookEndpoint, error)
	WebhookList(ctx context.Context, arg db.WebhookListParams) ([]db.WebhookEndpoint, error)
	WebhookCount(ctx context.Context) (int64, error)
	WebhookUpdate(ctx context.Context, arg db.WebhookUpdateParams) (db.WebhookEndpoint, error)
	WebhookRotateSecret(ctx context.Context, arg db.WebhookRotateSecretParams) (db.WebhookEndpoint, error)
	WebhookDisable(ctx context.Context, arg db.WebhookDisableParams) error
	WebhookDelete(ctx context.Context, id int64) (int64, error)
	WebhookEventEmit(ctx context.Context, arg db.WebhookEventEmitParams) (int64, error)
	WebhookEventEmitTo(ctx context.Context, arg db.WebhookEventEmitToParams) (int64, error)
	WebhookDeliveryList(ctx context.Context, arg db.WebhookDeliveryListParams) ([]db.WebhookDeliveryListRow, error)
	WebhookDeliveryCount(ctx context.Context, arg db.WebhookDeliveryCountParams) (int64, error)
	WebhookDeliveryGet(ctx context.Context, arg db.WebhookDeliveryGetParams) (db.WebhookDeliveryGetRow, error)
	WebhookDeliveryReset(ctx context.Context, arg db.WebhookDeliveryResetParams) (int64, error)
	WebhookDeliveryForAttempt(ctx context.Context, id int64) (db.WebhookDeliveryForAttemptRow, error)
	WebhookDeliveryRecord(ctx context.Context, arg db.WebhookDeliveryRecordParams) error
	WebhookDeliveryDepth(ctx context.Context) ([]db.WebhookDeliveryDepthRow, error)
	WebhookSubscribedTypes(ctx context.Context) ([]string, error)
}

// store is what the service needs of the database: its queries, and transactions.
type dbStore interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

func eventTypes(in []string) []EventType {
	out := make([]EventType, len(in))
	for i, s := range in {
		out[i] = EventType(s)
	}
	return out
}

func eventStrings(in []EventType) []string {
	out := make([]string, len(in))
	for i, t := range in {
		out[i] = string(t)
	}
	return out
}

// endpointFromRow maps a stored endpoint, leaving its secrets behind.
func endpointFromRow(r db.WebhookEndpoint) Endpoint {
	return Endpoint{
		ID: r.ID, URL: r.Url, Description: r.Description, Events: eventTypes(r.Events), IsActive: r.IsActive,
		DisabledReason: r.DisabledReason, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// deliveryFromRow maps a stored delivery with its event's id and type.
func deliveryFromRow(r db.WebhookDeliveryListRow) Delivery {
	return Delivery{
		ID: r.ID, EndpointID: r.EndpointID, EventID: r.MsgID, EventType: EventType(r.EventType),
		Status: DeliveryStatus(r.Status), Attempts: r.Attempts, LastStatusCode: r.LastStatusCode,
		LastError: r.LastError, LastResponseBody: r.LastResponseBody, NextAttemptAt: r.NextAttemptAt,
		CreatedAt: r.CreatedAt, DeliveredAt: r.DeliveredAt,
	}
}
