// Package webhook tells other systems what happened, on the Standard Webhooks spec:
// administrators subscribe endpoints to event types; services record each event in the
// transaction of the change it describes (Emit: the outbox), or the change's own
// statement records it with the row as stored (its body rendered at dispatch), with one
// pending delivery per subscribed endpoint and one River job per delivery; the delivery
// worker signs the body (webhook-id, webhook-timestamp, webhook-signature) and posts it,
// at least once, on a retry schedule, through a dialer that refuses private networks at
// connect time.
package webhook

import (
	"encoding/json"
	"slices"
	"time"
)

// EventType names what happened.
type EventType string

// The event types; Wildcard subscribes to all of them.
const (
	TaskCreated            EventType = "task.created"
	TaskUpdated            EventType = "task.updated"
	TaskDeleted            EventType = "task.deleted"
	AgentRunCompleted      EventType = "agent_run.completed"
	AgentRunFailed         EventType = "agent_run.failed"
	AgentRunCancelled      EventType = "agent_run.cancelled"
	AgentRunIncomplete     EventType = "agent_run.incomplete"
	AgentRunRequiresAction EventType = "agent_run.requires_action"
	AgentRunExpired        EventType = "agent_run.expired"
	UserCreated            EventType = "user.created"
	UserDeleted            EventType = "user.deleted"
	Test                   EventType = "webhook.test"
	Wildcard               EventType = "*"
)

// EventTypes lists every event type, in the contract's order.
var EventTypes = []EventType{
	TaskCreated, TaskUpdated, TaskDeleted,
	AgentRunCompleted, AgentRunFailed, AgentRunCancelled, AgentRunIncomplete, AgentRunRequiresAction, AgentRunExpired,
	UserCreated, UserDeleted, Test,
}

// Valid reports whether t is an event type or the wildcard.
func (t EventType) Valid() bool { return t == Wildcard || slices.Contains(EventTypes, t) }

// Endpoint is a subscribed receiver. Its secrets are not part of it: they are shown only
// when created or rotated (Created, Rotated).
type Endpoint struct {
	ID             int64
	URL            string
	Description    string
	Events         []EventType
	IsActive       bool
	DisabledReason *string // set when the system deactivated it (410 Gone)
	Version        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Created is a new endpoint with its signing secret.
type Created struct {
	Endpoint
	Secret string
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// The delivery statuses.
const (
	StatusPending   DeliveryStatus = "pending"
	StatusSucceeded DeliveryStatus = "succeeded"
	StatusRetrying  DeliveryStatus = "retrying"
	StatusFailed    DeliveryStatus = "failed"
)

// Delivery is one event's delivery to one endpoint.
type Delivery struct {
	ID               int64
	EndpointID       int64
	EventID          string // the event's webhook-id
	EventType        EventType
	Status           DeliveryStatus
	Attempts         int32
	LastStatusCode   *int32
	LastError        *string
	LastResponseBody *string
	NextAttemptAt    *time.Time
	CreatedAt        time.Time
	DeliveredAt      *time.Time
}

// Payload is the body every delivery carries: {type, timestamp, data}, data being the
// resource exactly as the API returns it.
type Payload struct {
	Type      EventType       `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}
