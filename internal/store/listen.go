package store

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RunEventsChannel is the NOTIFY channel on which the id of a run with new events is sent.
const RunEventsChannel = "agent_run_events"

// Notifier fans PostgreSQL notifications about run events out to in-process subscribers,
// over one dedicated connection that it re-establishes after failures. It makes every
// server instance see events written by any worker.
type Notifier struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

// NewNotifier builds a Notifier; Run must be started for it to deliver anything.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	return &Notifier{pool: pool, log: log, subs: map[int64]map[chan struct{}]struct{}{}}
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
		n.log.Warn("run event listener lost its connection; reconnecting", "error", err, "backoff", backoff)
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
	if _, err := raw.Exec(ctx, "LISTEN "+RunEventsChannel); err != nil {
		return err
	}
	n.wakeAll()
	for {
		note, err := raw.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if id, err := strconv.ParseInt(note.Payload, 10, 64); err == nil {
			n.publish(id)
		}
	}
}
