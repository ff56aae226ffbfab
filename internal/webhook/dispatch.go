package webhook

import (
	"context"
	"fmt"
	"time"

	"enterprise-automation/gen/db"
)

// The dispatcher turns committed outbox events into deliveries. A change's transaction
// writes one row (Emit); a dispatcher claims undispatched events in batches and, in one
// transaction, writes a pending delivery per subscribed endpoint, one River job per
// delivery (one statement for all of them) and marks the events dispatched. A crash at
// any point rolls the batch back for the next pass; SKIP LOCKED lets the dispatchers of
// several processes share the work without claiming an event twice, and a unique
// (event, endpoint) index makes a second fan-out fail rather than send twice.
//
// What it buys: the change's transaction costs one short insert instead of an insert,
// a fan-out over the endpoints and a job insert per delivery (the webhooks bench row).
const (
	// DispatchBatch is the most events one dispatcher transaction claims.
	DispatchBatch = 500
	// DispatchPoll is how often an idle dispatcher looks for events nobody told it of:
	// those of a process that died after its commit, or recorded by a process that runs
	// no dispatcher.
	DispatchPoll = time.Second
	// dispatchLinger is the pause after a partial batch, so that the next one gathers
	// the events committed meanwhile instead of one transaction per event.
	dispatchLinger = 5 * time.Millisecond
	// dispatchWatch is how long after a wake-up an empty claim is retried: the wake-up
	// comes from inside the change's transaction, before its commit.
	dispatchWatch = 250 * time.Millisecond
	// busyBatch is the most events a claim takes while the API is busy: small claims
	// spread the fan-out evenly between the requests.
	busyBatch = 16
)

// poke wakes this process's dispatcher without waiting.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Dispatch fans one batch of committed, undispatched events out to their endpoints:
// deliveries and their jobs, in one transaction with marking the events dispatched. It
// returns how many events it claimed. Its errors are the database's.
func (s *Service) Dispatch(ctx context.Context) (int, error) {
	n, _, err := s.dispatch(ctx, DispatchBatch)
	return n, err
}

// dispatch is Dispatch of at most limit events; it also returns how many deliveries it
// wrote.
func (s *Service) dispatch(ctx context.Context, limit int) (events, deliveries int, err error) {
	err = s.store.InTx(ctx, func(q db.Querier) error {
		claimed, err := q.WebhookEventClaim(ctx, int32(limit))
		if err != nil || len(claimed) == 0 {
			return err
		}
		events = len(claimed)
		ids, err := s.renderStored(ctx, q, claimed)
		if err != nil || len(ids) == 0 {
			return err
		}
		written, err := q.WebhookDeliveryFanOut(ctx, ids)
		if err != nil || len(written) == 0 {
			return err
		}
		deliveries = len(written)
		return s.enqueue(ctx, q, written)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("webhook: dispatch: %w", err)
	}
	return events, deliveries, nil
}

// RunDispatcher dispatches events until ctx ends: at once after Emit wakes it (retrying
// for a moment while the change commits), in batches while events keep coming, and
// every DispatchPoll when idle. Every process that records events runs one.
//
// While the API is busy (Options.Busy), it claims busyBatch events at a time and writes
// at most BusyRate deliveries per second, the rate at which the workers attempt them
// meanwhile (the Deliverer's pacing): the rest wait in the outbox, where they cost
// nothing, instead of becoming delivery rows and jobs nobody can work yet. The backlog
// is fanned out at full speed as soon as the load drops.
func (s *Service) RunDispatcher(ctx context.Context) {
	var watchUntil time.Time // keep looking until then, though claims come back empty
	pause := time.Duration(0)
	for {
		if pause > 0 && !s.sleep(ctx, pause) {
			return
		}
		limit := DispatchBatch
		paced := s.busy != nil && s.busy()
		if paced {
			limit = busyBatch
		}
		n, written, err := s.dispatch(ctx, limit)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.ErrorContext(ctx, "webhook dispatch failed", "error", err)
			pause = DispatchPoll
			continue
		case paced && n > 0:
			// The deliveries just written are BusyRate's budget for this long.
			if !s.yield(ctx, time.Duration(float64(written)/s.busyRate*float64(time.Second))) {
				return
			}
			watchUntil, pause = time.Now().Add(dispatchWatch), 0
			continue
		case n == limit:
			pause = 0
			continue
		case n > 0:
			watchUntil, pause = time.Now().Add(dispatchWatch), dispatchLinger
			continue
		case time.Now().Before(watchUntil):
			pause = min(max(2*pause, dispatchLinger), 50*time.Millisecond)
			continue
		}
		pause = 0
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			watchUntil, pause = time.Now().Add(dispatchWatch), dispatchLinger
		case <-time.After(DispatchPoll):
		}
	}
}

// sleep waits d, or less if ctx ends first; it reports whether ctx is still live.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// yield waits d while the API stays busy, in steps of paceStep, and returns early when
// the load drops; it reports whether ctx is still live.
func (s *Service) yield(ctx context.Context, d time.Duration) bool {
	for d > 0 && s.busy() {
		step := min(d, paceStep)
		if !s.sleep(ctx, step) {
			return false
		}
		d -= step
	}
	return ctx.Err() == nil
}

// StartDispatcher runs RunDispatcher in the background; the function it returns stops
// it and waits for it.
func (s *Service) StartDispatcher() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunDispatcher(ctx)
	}()
	return func() { cancel(); <-done }
}

// renderStored renders the bodies of the claimed events that their change's statement
// recorded with the row as stored (source), and stores them; it returns the ids of the
// events to fan out. An event whose source cannot be rendered is logged and not sent
// (rendering again would fail again).
func (s *Service) renderStored(ctx context.Context, q db.Querier, events []db.WebhookEventClaimRow) ([]int64, error) {
	ids := make([]int64, 0, len(events))
	var rendered []int64
	var bodies []string
	for _, ev := range events {
		if ev.Source == nil {
			ids = append(ids, ev.ID)
			continue
		}
		body, err := s.renderBody(EventType(ev.Type), ev.Source, ev.CreatedAt)
		if err != nil {
			s.log.ErrorContext(ctx, "webhook event not sent: its data cannot be rendered", "event", ev.ID, "type", ev.Type, "error", err)
			continue
		}
		ids = append(ids, ev.ID)
		rendered = append(rendered, ev.ID)
		bodies = append(bodies, string(body))
	}
	if len(rendered) == 0 {
		return ids, nil
	}
	if err := q.WebhookEventSetBodies(ctx, db.WebhookEventSetBodiesParams{Ids: rendered, Bodies: bodies}); err != nil {
		return nil, err
	}
	return ids, nil
}
