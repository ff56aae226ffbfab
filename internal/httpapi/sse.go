package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
)

// RunEvents tells streams what happens to their run, from any server instance or
// worker (see store.Notifier): Subscribe wakes a stream when its run has new events, and
// Watch ends it when its run is deleted or its user deleted, deactivated or demoted.
type RunEvents interface {
	Subscribe(runID int64) (<-chan struct{}, func())
	Watch(runID, userID int64) (ended <-chan struct{}, stop func())
}

// sseKeepAlive is how often an idle stream sends a comment (no database work), and
// sseRetry how soon a stream whose read failed reads again.
const (
	sseKeepAlive = 15 * time.Second
	sseRetry     = 2 * time.Second
)

// streamCounter bounds each user's concurrent event streams on this instance.
type streamCounter struct {
	max int // 0: unbounded
	mu  sync.Mutex
	n   map[int64]int
}

// acquire takes a slot for user, or returns RateLimited when all are taken; release
// gives it back.
func (c *streamCounter) acquire(user int64) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[user] >= c.max {
		return nil, &apperr.Error{Kind: apperr.RateLimited, RetryAfter: sseRetry,
			Message: fmt.Sprintf("you already have %d open event streams (the limit per user); close one first", c.max)}
	}
	if c.n == nil {
		c.n = map[int64]int{}
	}
	c.n[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[user]--; c.n[user] <= 0 {
				delete(c.n, user)
			}
		})
	}, nil
}

// StreamAgentRunEvents implements GET /api/v1/agent-runs/{run_id}/events as Server-Sent
// Events read from the run's event log: replayed from the start (or after Last-Event-ID),
// then followed live until the terminal event. A user has at most MaxStreamsPerUser
// streams open on this instance (RateLimited beyond). A stream ends when its run is
// deleted or its user deleted, deactivated or demoted; idle streams cost the database
// nothing: they wait for notifications.
func (s *Server) StreamAgentRunEvents(ctx context.Context, req api.StreamAgentRunEventsRequestObject) (_ api.StreamAgentRunEventsResponseObject, err error) {
	a := actor(ctx)
	var after int64
	if req.Params.LastEventID != nil {
		v, err := strconv.ParseInt(*req.Params.LastEventID, 10, 64)
		if err != nil {
			return nil, apperr.Validation(apperr.FieldError{Location: "header", Field: "Last-Event-ID", Message: "must be an event id"})
		}
		after = v
	}
	release, err := s.streams.acquire(a.UserID)
	if err != nil {
		return nil, err
	}
	// Watch before the checks below, so that a revocation committed after them is heard.
	ended, stopWatch := s.runEvents.Watch(req.RunId, a.UserID)
	defer func() {
		if err != nil {
			stopWatch()
			release()
		}
	}()
	if _, err := s.agents.GetRun(ctx, a, req.RunId); err != nil {
		return nil, err
	}
	// The principal may come from a cache filled before a deactivation that committed
	// just before the watch began: read the user once more, from the database.
	if u, err := s.auth.LoadUser(ctx, a.UserID); err != nil || !u.IsActive || (a.IsAdmin && !u.IsAdmin) {
		if err != nil && !apperr.Is(err, apperr.NotFound) {
			return nil, err
		}
		return nil, apperr.E(apperr.Unauthorized, "the account is no longer active")
	}
	return &eventStream{s: s, ctx: ctx, actor: a, runID: req.RunId, after: after, ended: ended, stop: func() {
		stopWatch()
		release()
	}}, nil
}

type eventStream struct {
	s     *Server
	ctx   context.Context
	actor auth.Principal
	runID int64
	after int64
	ended <-chan struct{} // closed when the stream's authorization is gone
	stop  func()          // releases the watch and the user's slot
}

func (e *eventStream) VisitStreamAgentRunEventsResponse(w http.ResponseWriter) error {
	defer e.stop()
	rc := http.NewResponseController(w)
	// Streams outlive the server's write timeout, which guards ordinary responses.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	wake, unsubscribe := e.s.runEvents.Subscribe(e.runID)
	defer unsubscribe()
	// Idle streams touch no database: they wait for a notification. Only a failed read
	// is retried on a timer (the notification that prompted it has been spent).
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	var retry <-chan time.Time
	for {
		done, ok := e.drain(w)
		if done {
			return nil
		}
		retry = nil
		if !ok {
			retry = time.After(sseRetry)
		}
		if err := rc.Flush(); err != nil {
			return nil // the client went away
		}
		if !e.wait(w, rc, wake, retry, keepAlive.C) {
			return nil
		}
	}
}

// wait blocks until the stream has something to read again (a notification, or the
// retry of a failed read), writing a keep-alive comment each time it stays idle for
// sseKeepAlive: a keep-alive reads nothing. It returns false when the stream is to end:
// the client went away, the run was deleted or the user lost the right to see it (or
// notifications may have been missed: a client that may still see the run resumes with
// Last-Event-ID), or the server is shutting down (the client resumes on another
// instance rather than hold up the drain).
func (e *eventStream) wait(w http.ResponseWriter, rc *http.ResponseController, wake <-chan struct{}, retry, keepAlive <-chan time.Time) bool {
	for {
		select {
		case <-e.ctx.Done():
			return false
		case <-e.ended:
			return false
		case <-e.s.stopping:
			return false
		case <-wake:
			return true
		case <-retry:
			return true
		case <-keepAlive:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return false
			}
			if err := rc.Flush(); err != nil {
				return false
			}
		}
	}
}

// drain writes every event after e.after; done is true once the terminal event is out
// (or the client is gone), ok false when reading failed and should be retried.
func (e *eventStream) drain(w http.ResponseWriter) (done, ok bool) {
	for {
		evs, err := e.s.agents.EventsAfter(e.ctx, e.runID, e.after)
		if err != nil {
			if e.ctx.Err() != nil {
				return true, true
			}
			e.s.log.Warn("reading run events", "run_id", e.runID, "error", err)
			return false, false
		}
		if len(evs) == 0 {
			r, err := e.s.agents.GetRun(e.ctx, e.actor, e.runID)
			if apperr.Is(err, apperr.NotFound) {
				return true, true // the run is gone (deleted with its agent)
			}
			if err != nil {
				return false, false
			}
			if !agent.IsTerminal(r.Status) || e.after == 0 {
				return false, true
			}
			// The terminal event commits together with the status, possibly between the
			// two reads above: read the log again now that the status says it ended.
			if evs, err = e.s.agents.EventsAfter(e.ctx, e.runID, e.after); err != nil {
				return false, false
			}
			if len(evs) == 0 {
				return true, true // resumed after the terminal event: nothing more will come
			}
		}
		for _, ev := range evs {
			data := ev.Data
			terminal := ev.Type == agent.EventCompleted || ev.Type == agent.EventFailed ||
				ev.Type == agent.EventCancelled || ev.Type == agent.EventIncomplete || ev.Type == agent.EventExpired
			if terminal {
				data = e.withRun(data)
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data); err != nil {
				return true, true
			}
			e.after = ev.Seq
			if terminal {
				return true, true
			}
		}
	}
}

// withRun adds the run as it ended to a terminal event.
func (e *eventStream) withRun(data []byte) []byte {
	r, err := e.s.agents.GetRun(e.ctx, e.actor, e.runID)
	if err != nil {
		return data
	}
	run, err := toRun(r)
	if err != nil {
		return data
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	m["run"] = run
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}
