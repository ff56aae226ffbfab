// Package audit records who changed what: one append-only event per change made through
// the API or by an agent's tool, written by the service that makes the change inside the
// change's own transaction (Record), so that there is no change without its event and no
// event without its change. The request's side (action, actor, request id, client
// address) travels in the context (WithMeta), set once per mutating request by the HTTP
// layer and per tool call by the agent runner; services add only what changed.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
)

// ActorType says who made a change.
type ActorType string

// The actor types.
const (
	ActorUser     ActorType = "user"
	ActorAPIKey   ActorType = "api_key"
	ActorAgentRun ActorType = "agent_run"
	ActorSystem   ActorType = "system"
)

// Actor is who made a change: a user (password session), an API key (and its owner), an
// agent run (and its creator), or the system itself.
type Actor struct {
	Type       ActorType
	UserID     *int64
	APIKeyID   *int64
	AgentRunID *int64
}

// RequestActor is the actor of a request made by user userID: its API key when it used
// one (apiKeyID not 0), else the user.
func RequestActor(userID, apiKeyID int64) Actor {
	if apiKeyID != 0 {
		return Actor{Type: ActorAPIKey, UserID: &userID, APIKeyID: &apiKeyID}
	}
	return Actor{Type: ActorUser, UserID: &userID}
}

// AgentRunActor is the actor of a write made by an agent run's tool; userID is the run's
// creator (nil once that user is gone).
func AgentRunActor(runID int64, userID *int64) Actor {
	return Actor{Type: ActorAgentRun, UserID: userID, AgentRunID: &runID}
}

// Meta is the side of an event its request knows: the action (the contract's
// operationId, or an agent tool's name), the actor, the request id and client address.
type Meta struct {
	Action    string
	Actor     Actor
	RequestID string
	IP        string
}

type metaKey struct{}

// WithMeta returns a context whose changes are recorded with m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the Meta in ctx, if any.
func MetaFrom(ctx context.Context) (Meta, bool) {
	m, ok := ctx.Value(metaKey{}).(Meta)
	return m, ok
}

// Entry is the change's side of an event.
type Entry struct {
	// Action replaces the Meta's action when set (login_succeeded, login_failed).
	Action string
	// Resource is the changed resource's type (user, task, agent, agent_run, session);
	// ID its id, nil when there is none (a failed login for an unknown email).
	Resource string
	ID       *int64
	// UserID names the actor's user when the request had no principal (login, refresh,
	// logout: the session's user).
	UserID *int64
	// Changes is stored as JSON: Changes for updates, anything for system events; nil
	// for creates and deletes.
	Changes any
}

// Changes maps each changed field to its old and new values.
type Changes map[string]Change

// Change is one field's old and new value.
type Change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// Set records field's change from from to to, unless they are equal. Never pass
// passwords, hashes, keys or secrets.
func (c Changes) Set(field string, from, to any) {
	if reflect.DeepEqual(from, to) {
		return
	}
	c[field] = Change{From: from, To: to}
}

// Writer appends events: the Querier of the change's transaction.
type Writer interface {
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
}

// Record appends e's event with the Meta in ctx through q, which must be the change's
// transaction. Without a Meta in ctx (start-up seeding, service tests) it records nothing.
// Its errors are the database's, or Internal when the changes cannot be encoded.
func Record(ctx context.Context, q Writer, e Entry) error {
	p, ok, err := Params(ctx, e)
	if err != nil || !ok {
		return err
	}
	if err := q.AuditEventCreate(ctx, p); err != nil {
		return fmt.Errorf("audit: record: %w", err)
	}
	return nil
}

// Params returns the insert parameters of e's event with the Meta in ctx, for a query
// that appends the event in the same statement as its change; ok is false without a Meta.
func Params(ctx context.Context, e Entry) (p db.AuditEventCreateParams, ok bool, err error) {
	m, ok := MetaFrom(ctx)
	if !ok {
		return p, false, nil
	}
	p = db.AuditEventCreateParams{
		ActorType: string(m.Actor.Type), ActorUserID: m.Actor.UserID, ActorApiKeyID: m.Actor.APIKeyID,
		ActorAgentRunID: m.Actor.AgentRunID, Action: m.Action, ResourceType: e.Resource, ResourceID: e.ID,
		RequestID: nonEmpty(m.RequestID), Ip: nonEmpty(m.IP),
	}
	if p.ActorType == "" {
		p.ActorType = string(ActorUser)
	}
	if p.ActorUserID == nil {
		p.ActorUserID = e.UserID
	}
	if e.Action != "" {
		p.Action = e.Action
	}
	emptyChanges := isChanges(e.Changes) && len(e.Changes.(Changes)) == 0
	if e.Changes != nil && !emptyChanges {
		if p.Changes, err = json.Marshal(e.Changes); err != nil {
			return p, false, apperr.Wrap(apperr.Internal, err, "audit: encode changes")
		}
	}
	return p, true, nil
}

func isChanges(v any) bool { _, ok := v.(Changes); return ok }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Event is a recorded audit event.
type Event struct {
	ID           int64
	OccurredAt   time.Time
	Actor        Actor
	Action       string
	ResourceType string
	ResourceID   *int64
	RequestID    *string
	IP           *string
	Changes      json.RawMessage // nil when none
}

// eventFromRow maps a stored event.
func eventFromRow(r db.AuditEvent) Event {
	return Event{
		ID: r.ID, OccurredAt: r.OccurredAt,
		Actor:  Actor{Type: ActorType(r.ActorType), UserID: r.ActorUserID, APIKeyID: r.ActorApiKeyID, AgentRunID: r.ActorAgentRunID},
		Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID, RequestID: r.RequestID, IP: r.Ip,
		Changes: json.RawMessage(r.Changes),
	}
}
