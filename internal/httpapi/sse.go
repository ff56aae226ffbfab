package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
)

// RunEvents wakes streams when a run has new events (see store.Notifier).
type RunEvents interface {
	Subscribe(runID int64) (<-chan struct{}, func())
}

// How often a stream re-reads the log without a notification, and sends a keep-alive.
const (
	ssePoll      = 2 * time.Second
	sseKeepAlive = 15 * time.Second
)

// StreamAgentRunEvents implements GET /api/v1/agent-runs/{run_id}/events as Server-Sent
// Events read from the run's event log: replayed from the start (or after Last-Event-ID),
// then followed live until the terminal event.
func (s *Server) StreamAgentRunEvents(ctx context.Context, req api.StreamAgentRunEventsRequestObject) (api.StreamAgentRunEventsResponseObject, error) {
	a := actor(ctx)
	if _, err := s.agents.GetRun(ctx, a, req.RunId); err != nil {
		return nil, err
	}
	var after int64
	if req.Params.LastEventID != nil {
		v, err := strconv.ParseInt(*req.Params.LastEventID, 10, 64)
		if err != nil {
			return nil, apperr.Validation(apperr.FieldError{Location: "header", Field: "Last-Event-ID", Message: "must be an event id"})
		}
		after = v
	}
	return &eventStream{s: s, ctx: ctx, actor: a, runID: req.RunId, after: after}, nil
}

type eventStream struct {
	s     *Server
	ctx   context.Context
	actor auth.Principal
	runID int64
	after int64
}

func (e *eventStream) VisitStreamAgentRunEventsResponse(w http.ResponseWriter) error {
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
	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	lastWrite := time.Now()
	for {
		done, err := e.drain(w)
		if err != nil || done {
			return err
		}
		if err := rc.Flush(); err != nil {
			return nil // the client went away
		}
		select {
		case <-e.ctx.Done():
			return nil
		case <-e.s.stopping:
			// The server is shutting down: end the stream now rather than hold up the
			// drain; the client resumes on another instance with Last-Event-ID.
			return nil
		case <-wake:
		case <-poll.C:
			if time.Since(lastWrite) >= sseKeepAlive {
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return nil
				}
				lastWrite = time.Now()
			}
		}
	}
}

// drain writes every event after e.after; done is true once the terminal event is out.
func (e *eventStream) drain(w http.ResponseWriter) (done bool, err error) {
	for {
		evs, err := e.s.agents.EventsAfter(e.ctx, e.runID, e.after)
		if err != nil {
			if e.ctx.Err() != nil {
				return true, nil
			}
			e.s.log.Warn("reading run events", "run_id", e.runID, "error", err)
			return false, nil
		}
		if len(evs) == 0 {
			r, err := e.s.agents.GetRun(e.ctx, e.actor, e.runID)
			if err != nil || !agent.IsTerminal(r.Status) || e.after == 0 {
				return false, nil
			}
			// The terminal event commits together with the status, possibly between the
			// two reads above: read the log again now that the status says it ended.
			if evs, err = e.s.agents.EventsAfter(e.ctx, e.runID, e.after); err != nil {
				return false, nil
			}
			if len(evs) == 0 {
				return true, nil // resumed after the terminal event: nothing more will come
			}
		}
		for _, ev := range evs {
			data := ev.Data
			terminal := ev.Type == agent.EventCompleted || ev.Type == agent.EventFailed ||
				ev.Type == agent.EventCancelled || ev.Type == agent.EventIncomplete
			if terminal {
				data = e.withRun(data)
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data); err != nil {
				return true, nil
			}
			e.after = ev.Seq
			if terminal {
				return true, nil
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
