package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
)

// Jobs queues the delivery jobs, in the transaction of q (the River queue).
type Jobs interface {
	EnqueueDeliveries(ctx context.Context, q db.Querier, deliveryIDs []int64) error
}

// EncodeFunc renders an event's data: the resource exactly as the API returns it (the
// HTTP layer's mapping of domain values to the contract's types).
type EncodeFunc func(data any) ([]byte, error)

// RenderFunc renders the data of an event of type t recorded with the changed row as
// stored (source: the row's to_jsonb), as the API returns the resource.
type RenderFunc func(t EventType, source []byte) ([]byte, error)

// Options configure a Service.
type Options struct {
	// Guard checks endpoint URLs at creation; nil allows every address.
	Guard *Guard
	// Encode renders event data; nil uses encoding/json on the value as given.
	Encode EncodeFunc
	// Render renders the data of events recorded with their row as stored (Stored); nil
	// sends the stored row as it is.
	Render RenderFunc
	// Busy reports whether the process's foreground work (the API) keeps its CPUs busy;
	// nil: never. While it does, the dispatcher writes at most BusyRate deliveries per
	// second and leaves the rest of the events in the outbox (RunDispatcher).
	Busy     func() bool
	BusyRate float64
	Logger   *slog.Logger
}

// Service manages endpoints and their deliveries, and records events (Emit).
type Service struct {
	store    dbStore
	jobs     Jobs
	guard    *Guard
	encode   EncodeFunc
	render   RenderFunc
	log      *slog.Logger
	now      func() time.Time
	subs     subscriptions
	busy     func() bool // nil: never paced
	busyRate float64
	// wake tells this process's dispatcher that an event was recorded.
	wake chan struct{}
}

// NewService builds a Service over s.
func NewService(s dbStore, opts Options) *Service {
	if opts.Guard == nil {
		opts.Guard = &Guard{AllowPrivate: true}
	}
	if opts.Encode == nil {
		opts.Encode = json.Marshal
	}
	if opts.Render == nil {
		opts.Render = func(_ EventType, source []byte) ([]byte, error) { return source, nil }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	svc := &Service{store: s, guard: opts.Guard, encode: opts.Encode, render: opts.Render, log: opts.Logger, now: time.Now,
		wake: make(chan struct{}, 1)}
	if opts.Busy != nil && opts.BusyRate > 0 {
		svc.busy, svc.busyRate = opts.Busy, opts.BusyRate
	}
	return svc
}

// UseJobs sets the queue that carries deliveries out. Until it is set, deliveries are
// recorded as pending without jobs (service tests).
func (s *Service) UseJobs(j Jobs) { s.jobs = j }

func mustAdmin(actor auth.Principal) error {
	if !actor.IsAdmin {
		return apperr.E(apperr.Forbidden, "webhooks are managed by administrators")
	}
	return nil
}

func notFound(id int64) error { return apperr.E(apperr.NotFound, "webhook %d not found", id) }

// CheckEvents validates a subscription's event types: at least one, each known.
// Invalid, naming the field, otherwise.
func CheckEvents(events []EventType) error {
	if len(events) == 0 {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "events", Message: "must list at least one event type"})
	}
	for i, e := range events {
		if !e.Valid() {
			return apperr.Validation(apperr.FieldError{Location: "body", Field: fmt.Sprintf("events.%d", i),
				Message: fmt.Sprintf("unknown event type %q", e)})
		}
	}
	return nil
}

func dedupe(events []EventType) []EventType {
	seen := make(map[EventType]bool, len(events))
	out := make([]EventType, 0, len(events))
	for _, e := range events {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// CreateParams are the fields of a new endpoint.
type CreateParams struct {
	URL         string
	Events      []EventType
	Description string
	IsActive    *bool // nil means true
}

// Create subscribes an endpoint and returns it with its new secret. Forbidden for
// non-administrators; Invalid for a bad or refused URL or bad event types.
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (Created, error) {
	if err := mustAdmin(actor); err != nil {
		return Created{}, err
	}
	if err := CheckEvents(p.Events); err != nil {
		return Created{}, err
	}
	p.URL = strings.TrimSpace(p.URL)
	if err := s.guard.CheckURL(ctx, p.URL); err != nil {
		return Created{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Created{}, err
	}
	active := p.IsActive == nil || *p.IsActive
	var r db.WebhookEndpoint
	err = s.store.InTx(ctx, func(q db.Querier) error {
		r, err = q.WebhookCreate(ctx, db.WebhookCreateParams{
			Url: p.URL, Description: p.Description, Events: eventStrings(dedupe(p.Events)), IsActive: active, Secret: secret,
		})
		if err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "webhook", ID: &r.ID})
	})
	s.subs.invalidate()
	if err != nil {
		return Created{}, fmt.Errorf("webhook: create: %w", err)
	}
	return Created{Endpoint: endpointFromRow(r), Secret: secret}, nil
}

// Get returns an endpoint. Forbidden for non-administrators; NotFound when absent.
func (s *Service) Get(ctx context.Context, actor auth.Principal, id int64) (Endpoint, error) {
	if err := mustAdmin(actor); err != nil {
		return Endpoint{}, err
	}
	r, err := s.store.WebhookGetByID(ctx, id)
	if apperr.Is(err, apperr.NotFound) {
		return Endpoint{}, notFound(id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook: get: %w", err)
	}
	return endpointFromRow(r), nil
}

// List returns a page of endpoints, newest first. Forbidden for non-administrators.
func (s *Service) List(ctx context.Context, actor auth.Principal, p page.Request) (page.Page[Endpoint], error) {
	if err := mustAdmin(actor); err != nil {
		return page.Page[Endpoint]{}, err
	}
	total, err := s.store.WebhookCount(ctx)
	if err != nil {
		return page.Page[Endpoint]{}, fmt.Errorf("webhook: list: %w", err)
	}
	var items []Endpoint
	if total > int64(p.Skip) {
		rows, err := s.store.WebhookList(ctx, db.WebhookListParams{MaxRows: p.Limit, SkipRows: p.Skip})
		if err != nil {
			return page.Page[Endpoint]{}, fmt.Errorf("webhook: list: %w", err)
		}
		for _, r := range rows {
			items = append(items, endpointFromRow(r))
		}
	}
	return page.New(items, total, p), nil
}

// UpdateParams are the fields an update changes; nil leaves a field as it is.
type UpdateParams struct {
	URL         *string
	Events      *[]EventType
	Description *string
	IsActive    *bool
}

// Update changes an endpoint. Forbidden for non-administrators; NotFound when absent;
// Invalid as for Create; PreconditionFailed when ifMatch does not match. Reactivating
// an endpoint the system deactivated clears the reason.
func (s *Service) Update(ctx context.Context, actor auth.Principal, id int64, p UpdateParams, ifMatch etag.Condition) (Endpoint, error) {
	if err := mustAdmin(actor); err != nil {
		return Endpoint{}, err
	}
	if p.Events != nil {
		if err := CheckEvents(*p.Events); err != nil {
			return Endpoint{}, err
		}
	}
	if p.URL != nil {
		u := strings.TrimSpace(*p.URL)
		p.URL = &u
		if err := s.guard.CheckURL(ctx, u); err != nil {
			return Endpoint{}, err
		}
	}
	var out Endpoint
	err := s.store.InTx(ctx, func(q db.Querier) error {
		cur, err := q.WebhookGetByIDForUpdate(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		if !ifMatch.Allows(cur.Version) {
			return apperr.E(apperr.PreconditionFailed, "webhook %d has changed since you read it", id)
		}
		arg := db.WebhookUpdateParams{ID: id, Url: cur.Url, Description: cur.Description, Events: cur.Events, IsActive: cur.IsActive}
		if p.URL != nil {
			arg.Url = *p.URL
		}
		if p.Description != nil {
			arg.Description = *p.Description
		}
		if p.Events != nil {
			arg.Events = eventStrings(dedupe(*p.Events))
		}
		if p.IsActive != nil {
			arg.IsActive = *p.IsActive
		}
		r, err := q.WebhookUpdate(ctx, arg)
		if err != nil {
			return err
		}
		out = endpointFromRow(r)
		changes := audit.Changes{}
		changes.Set("url", cur.Url, r.Url)
		changes.Set("description", cur.Description, r.Description)
		changes.Set("events", cur.Events, r.Events)
		changes.Set("is_active", cur.IsActive, r.IsActive)
		return audit.Record(ctx, q, audit.Entry{Resource: "webhook", ID: &id, Changes: changes})
	})
	s.subs.invalidate()
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook: update: %w", err)
	}
	return out, nil
}

// Delete removes an endpoint and its deliveries (pending ones are not sent). Forbidden
// for non-administrators; NotFound when absent; PreconditionFailed when ifMatch does
// not match.
func (s *Service) Delete(ctx context.Context, actor auth.Principal, id int64, ifMatch etag.Condition) error {
	if err := mustAdmin(actor); err != nil {
		return err
	}
	err := s.store.InTx(ctx, func(q db.Querier) error {
		cur, err := q.WebhookGetByIDForUpdate(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		if !ifMatch.Allows(cur.Version) {
			return apperr.E(apperr.PreconditionFailed, "webhook %d has changed since you read it", id)
		}
		if _, err = q.WebhookDelete(ctx, id); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "webhook", ID: &id})
	})
	s.subs.invalidate()
	if err != nil {
		return fmt.Errorf("webhook: delete: %w", err)
	}
	return nil
}

// RotateSecret gives an endpoint a new secret and returns it; the previous one keeps
// signing (next to the new one) for RotationOverlap. Forbidden for non-administrators;
// NotFound when absent.
func (s *Service) RotateSecret(ctx context.Context, actor auth.Principal, id int64) (string, error) {
	if err := mustAdmin(actor); err != nil {
		return "", err
	}
	secret, err := NewSecret()
	if err != nil {
		return "", err
	}
	until := s.now().Add(RotationOverlap).UTC()
	err = s.store.InTx(ctx, func(q db.Querier) error {
		if _, err := q.WebhookRotateSecret(ctx, db.WebhookRotateSecretParams{ID: id, Secret: secret, PreviousExpiresAt: &until}); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "webhook", ID: &id})
	})
	if apperr.Is(err, apperr.NotFound) {
		return "", notFound(id)
	}
	if err != nil {
		return "", fmt.Errorf("webhook: rotate secret: %w", err)
	}
	return secret, nil
}

// TestData is the data of a webhook.test event.
type TestData struct {
	WebhookID int64  `json:"webhook_id"`
	Message   string `json:"message"`
}

// SendTest queues a webhook.test event to one endpoint (subscribed to it or not) and
// returns its delivery. Forbidden for non-administrators; NotFound when absent.
func (s *Service) SendTest(ctx context.Context, actor auth.Principal, id int64) (Delivery, error) {
	if err := mustAdmin(actor); err != nil {
		return Delivery{}, err
	}
	if _, err := s.Get(ctx, actor, id); err != nil {
		return Delivery{}, err
	}
	body, msgID, err := s.body(Test, TestData{WebhookID: id, Message: "This is a test event."})
	if err != nil {
		return Delivery{}, err
	}
	var deliveryID int64
	err = s.store.InTx(ctx, func(q db.Querier) error {
		deliveryID, err = q.WebhookEventEmitTo(ctx, db.WebhookEventEmitToParams{EndpointID: id, MsgID: msgID, Type: string(Test), Body: string(body)})
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "webhook", ID: &id}); err != nil {
			return err
		}
		return s.enqueue(ctx, q, []int64{deliveryID})
	})
	if apperr.Is(err, apperr.Invalid) {
		return Delivery{}, notFound(id) // deleted meanwhile (the foreign key)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: test: %w", err)
	}
	return s.GetDelivery(ctx, actor, id, deliveryID)
}

// DeliveryListParams filter and page an endpoint's deliveries.
type DeliveryListParams struct {
	Page   page.Request
	Status *DeliveryStatus
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first. Forbidden for
// non-administrators; NotFound when the endpoint is absent.
func (s *Service) ListDeliveries(ctx context.Context, actor auth.Principal, id int64, p DeliveryListParams) (page.Page[Delivery], error) {
	if _, err := s.Get(ctx, actor, id); err != nil {
		return page.Page[Delivery]{}, err
	}
	var status *string
	if p.Status != nil {
		st := string(*p.Status)
		status = &st
	}
	total, err := s.store.WebhookDeliveryCount(ctx, db.WebhookDeliveryCountParams{EndpointID: id, Status: status})
	if err != nil {
		return page.Page[Delivery]{}, fmt.Errorf("webhook: deliveries: %w", err)
	}
	var items []Delivery
	if total > int64(p.Page.Skip) {
		rows, err := s.store.WebhookDeliveryList(ctx, db.WebhookDeliveryListParams{
			EndpointID: id, Status: status, MaxRows: p.Page.Limit, SkipRows: p.Page.Skip,
		})
		if err != nil {
			return page.Page[Delivery]{}, fmt.Errorf("webhook: deliveries: %w", err)
		}
		for _, r := range rows {
			items = append(items, deliveryFromRow(r))
		}
	}
	return page.New(items, total, p.Page), nil
}

// GetDelivery returns one delivery of an endpoint. Forbidden for non-administrators;
// NotFound when either is absent.
func (s *Service) GetDelivery(ctx context.Context, actor auth.Principal, id, deliveryID int64) (Delivery, error) {
	if err := mustAdmin(actor); err != nil {
		return Delivery{}, err
	}
	r, err := s.store.WebhookDeliveryGet(ctx, db.WebhookDeliveryGetParams{ID: deliveryID, EndpointID: id})
	if apperr.Is(err, apperr.NotFound) {
		return Delivery{}, apperr.E(apperr.NotFound, "delivery %d of webhook %d not found", deliveryID, id)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: delivery: %w", err)
	}
	return deliveryFromRow(db.WebhookDeliveryListRow(r)), nil
}

// Redeliver sends a delivery again, as a new series of attempts with the same
// webhook-id and body. Forbidden for non-administrators; NotFound when absent; Conflict
// while the delivery is still pending or retrying.
func (s *Service) Redeliver(ctx context.Context, actor auth.Principal, id, deliveryID int64) (Delivery, error) {
	d, err := s.GetDelivery(ctx, actor, id, deliveryID)
	if err != nil {
		return Delivery{}, err
	}
	if d.Status == StatusPending || d.Status == StatusRetrying {
		return Delivery{}, apperr.E(apperr.Conflict, "delivery %d is still %s", deliveryID, d.Status)
	}
	err = s.store.InTx(ctx, func(q db.Querier) error {
		if _, err := q.WebhookDeliveryReset(ctx, db.WebhookDeliveryResetParams{ID: deliveryID, EndpointID: id}); err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "webhook_delivery", ID: &deliveryID}); err != nil {
			return err
		}
		return s.enqueue(ctx, q, []int64{deliveryID})
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: redeliver: %w", err)
	}
	return s.GetDelivery(ctx, actor, id, deliveryID)
}

// Events is what a service that records webhook events needs of Service: Emit in the
// transaction of the change, and Wants to skip what no endpoint receives. A change whose
// own statement records its event, with the row as stored, instead calls Stored after
// the statement: the event exists if and only if that statement commits.
type Events interface {
	Emit(ctx context.Context, q Outbox, t EventType, data any) error
	// Stored tells the dispatcher that the change's statement recorded an event of
	// type t (maybe: the statement records none when no active endpoint wants t).
	Stored(t EventType)
	// Wants reports whether some endpoint may receive events of type t; it never waits
	// for the database, so it may be called inside a transaction.
	Wants(ctx context.Context, t EventType) bool
}

// Outbox is what Emit needs of the change's transaction: the Querier InTx gives out.
type Outbox interface {
	WebhookEventEmit(ctx context.Context, arg db.WebhookEventEmitParams) (int64, error)
}

// Emit records an event of type t about data (a domain value the encoder renders as
// the API returns it) through q, which must be the change's transaction: one row in
// the outbox when some active endpoint is subscribed to t (none: nothing is written).
// The event is sent if and only if the transaction commits: a dispatcher (Dispatch,
// RunDispatcher) writes its deliveries and their jobs once it is committed. Its errors
// are the database's, or Internal when data cannot be encoded.
func (s *Service) Emit(ctx context.Context, q Outbox, t EventType, data any) error {
	body, msgID, err := s.body(t, data)
	if err != nil {
		return err
	}
	n, err := q.WebhookEventEmit(ctx, db.WebhookEventEmitParams{Type: string(t), MsgID: msgID, Body: string(body)})
	if err != nil {
		return fmt.Errorf("webhook: emit %s: %w", t, err)
	}
	if n > 0 {
		s.poke()
	}
	return nil
}

// Stored wakes this process's dispatcher for an event the change's own statement
// recorded with the row as stored; the dispatcher renders its body (Options.Render).
func (s *Service) Stored(EventType) { s.poke() }

func (s *Service) enqueue(ctx context.Context, q db.Querier, ids []int64) error {
	if s.jobs == nil {
		return nil
	}
	if err := s.jobs.EnqueueDeliveries(ctx, q, ids); err != nil {
		return fmt.Errorf("webhook: enqueue: %w", err)
	}
	return nil
}

// body renders an event's body and gives it a new message id.
func (s *Service) body(t EventType, data any) ([]byte, string, error) {
	raw, err := s.encode(data)
	if err != nil {
		return nil, "", apperr.Wrap(apperr.Internal, err, "webhook: encode %s data", t)
	}
	body, err := payload(t, s.now(), raw)
	return body, NewMessageID(), err
}

// renderBody renders the body of an event recorded at at with its row as stored.
func (s *Service) renderBody(t EventType, source []byte, at time.Time) ([]byte, error) {
	raw, err := s.render(t, source)
	if err != nil {
		return nil, apperr.Wrap(apperr.Internal, err, "webhook: render %s data", t)
	}
	return payload(t, at, raw)
}

// payload is the body of an event of type t that happened at at, with data raw.
func payload(t EventType, at time.Time, raw json.RawMessage) ([]byte, error) {
	body, err := json.Marshal(Payload{Type: t, Timestamp: at.UTC().Truncate(time.Millisecond), Data: raw})
	if err != nil {
		return nil, apperr.Wrap(apperr.Internal, err, "webhook: encode %s", t)
	}
	return body, nil
}

// NewMessageID returns a new webhook-id: "msg_" and a time-ordered UUID's hex digits.
func NewMessageID() string {
	return "msg_" + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}
