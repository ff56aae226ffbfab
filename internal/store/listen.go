package store

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The NOTIFY channels the Notifier listens on.
const (
	// RunEventsChannel carries the id of a run with new events.
	RunEventsChannel = "agent_run_events"
	// RunStreamsChannel carries "run:<id>" when a run is deleted and "user:<id>" when a
	// user is deleted, deactivated or loses the administrator role (database triggers).
	RunStreamsChannel = "agent_run_streams"
	// CacheInvalidationsChannel carries newline-separated cache keys that every process
	// drops from its in-process cache (CacheInvalidationNotify).
	CacheInvalidationsChannel = "cache_invalidations"
)

// Notifier fans PostgreSQL notifications out to in-process subscribers, over one
// dedicated connection per process that it re-establishes after failures: run events
// (Subscribe), the end of what authorized an event stream (Watch), and whatever other
// channels are registered with Handle. It makes every server instance and worker see
// changes made by any other.
type Notifier struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu       sync.Mutex
	subs     map[int64]map[chan struct{}]struct{}
	byRun    map[int64]map[*watch]struct{}
	byUser   map[int64]map[*watch]struct{}
	handlers map[string]handler
	// connected is true while the listening connection is established.
	connected bool
}

type handler struct {
	notify    func(payload string)
	reconnect func()
}

// watch is one stream's Watch: ch is closed when the stream must end.
type watch struct {
	ch            chan struct{}
	runID, userID int64
}

// NewNotifier builds a Notifier; Run must be started for it to deliver anything.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	return &Notifier{
		pool: pool, log: log, subs: map[int64]map[chan struct{}]struct{}{},
		byRun: map[int64]map[*watch]struct{}{}, byUser: map[int64]map[*watch]struct{}{},
		handlers: map[string]handler{},
	}
}

// Handle registers notify for every notification on channel and reconnect for every
// time the connection is (re)established, when notifications may have been missed.
// Both run on the listening goroutine and must not block. Call Handle before Run.
func (n *Notifier) Handle(channel string, notify func(payload string), reconnect func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[channel] = handler{notify: notify, reconnect: reconnect}
}

// Connected reports whether notifications are being received now.
func (n *Notifier) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connected
}

// Subscribe returns a channel that receives a value (coalesced) whenever run runID has new
// events, and a function to unsubscribe.
func (n *Notifier) Subscribe(runID int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs[runID] == nil {
		n.subs[runID] = map[chan struct{}]struct{}{}
	}
	n.subs[runID][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs[runID], ch)
		if len(n.subs[runID]) == 0 {
			delete(n.subs, runID)
		}
		n.mu.Unlock()
	}
}

// Watch returns a channel that is closed when a stream of run runID opened by user
// userID must end: the run was deleted, or the user deleted, deactivated or demoted, or
// the listening connection was re-established (what happened meanwhile is unknown; the
// client reconnects and is authorized again). stop releases the watch.
func (n *Notifier) Watch(runID, userID int64) (ended <-chan struct{}, stop func()) {
	w := &watch{ch: make(chan struct{}), runID: runID, userID: userID}
	n.mu.Lock()
	if n.byRun[runID] == nil {
		n.byRun[runID] = map[*watch]struct{}{}
	}
	n.byRun[runID][w] = struct{}{}
	if n.byUser[userID] == nil {
		n.byUser[userID] = map[*watch]struct{}{}
	}
	n.byUser[userID][w] = struct{}{}
	n.mu.Unlock()
	return w.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.forget(w)
	}
}

// forget removes w from the indexes; the caller holds mu. It reports whether w was there.
func (n *Notifier) forget(w *watch) bool {
	if _, ok := n.byRun[w.runID][w]; !ok {
		return false
	}
	delete(n.byRun[w.runID], w)
	if len(n.byRun[w.runID]) == 0 {
		delete(n.byRun, w.runID)
	}
	delete(n.byUser[w.userID], w)
	if len(n.byUser[w.userID]) == 0 {
		delete(n.byUser, w.userID)
	}
	return true
}

// end closes the watches in set; the caller holds mu.
func (n *Notifier) end(set map[*watch]struct{}) {
	for w := range set {
		if n.forget(w) {
			close(w.ch)
		}
	}
}

// revoke ends the watches a RunStreamsChannel payload names.
func (n *Notifier) revoke(payload string) {
	kind, idText, _ := strings.Cut(payload, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch kind {
	case "run":
		n.end(n.byRun[id])
	case "user":
		n.end(n.byUser[id])
	}
}

// endAll ends every watch, after a reconnect in which revocations may have been lost.
func (n *Notifier) endAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, set := range n.byRun {
		n.end(set)
	}
}

func (n *Notifier) publish(runID int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[runID] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// wakeAll nudges every subscriber, after a reconnect in which notifications may have been lost.
func (n *Notifier) wakeAll() {
	n.mu.Lock()
	ids := make([]int64, 0, len(n.subs))
	for id := range n.subs {
		ids = append(ids, id)
	}
	n.mu.Unlock()
	for _, id := range ids {
		n.publish(id)
	}
}

// Run listens until ctx ends, reconnecting with a short backoff.
func (n *Notifier) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("notification listener lost its connection; reconnecting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (n *Notifier) listen(ctx context.Context) error {
	conn, err := n.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection carries LISTEN state: never hand it back to the pool.
	raw := conn.Hijack()
	defer raw.Close(context.WithoutCancel(ctx))
	n.mu.Lock()
	handlers := make(map[string]handler, len(n.handlers))
	for ch, h := range n.handlers {
		handlers[ch] = h
	}
	n.mu.Unlock()
	channels := []string{RunEventsChannel, RunStreamsChannel}
	for ch := range handlers {
		channels = append(channels, ch)
	}
	// One statement, so that it stays the connection's last query in pg_stat_activity,
	// where CacheInvalidationListeners counts the listeners.
	if _, err := raw.Exec(ctx, "LISTEN "+strings.Join(channels, "; LISTEN ")); err != nil {
		return err
	}
	n.mu.Lock()
	n.connected = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.connected = false
		n.mu.Unlock()
	}()
	n.wakeAll()
	n.endAll()
	for _, h := range handlers {
		h.reconnect()
	}
	for {
		note, err := raw.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch note.Channel {
		case RunEventsChannel:
			if id, err := strconv.ParseInt(note.Payload, 10, 64); err == nil {
				n.publish(id)
			}
		case RunStreamsChannel:
			n.revoke(note.Payload)
		default:
			if h, ok := handlers[note.Channel]; ok {
				h.notify(note.Payload)
			}
		}
	}
}
