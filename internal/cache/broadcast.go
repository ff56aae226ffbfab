package cache

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Broadcast is the in-process cache of one of several processes (API instances and
// workers) that share a database but no Redis. Invalidate drops the keys here and
// publishes them (through PostgreSQL NOTIFY); every process hands what it hears to
// Receive, which drops them too, so a demoted user or a changed record is not served
// from another process's cache for up to the TTL. When the listening connection is
// re-established, Resync drops every value: what was missed meanwhile is unknown.
//
// Invalidate returns once every listening process has dropped the keys: each one
// acknowledges what it heard (its own echo counts for the publisher), bounded by
// EchoTimeout. A client that goes from one instance to another right after a write is
// therefore not served the old value.
type Broadcast struct {
	*Memory
	publish   PublishFunc
	listening func() bool
	log       *slog.Logger

	origin string // tags this process's payloads
	seq    atomic.Uint64
	mu     sync.Mutex
	heard  map[string]chan struct{} // tag → one value per process that dropped its keys
}

// PublishFunc sends a payload to every listening process and returns how many listen.
type PublishFunc func(ctx context.Context, payload string) (listeners int64, err error)

// EchoTimeout bounds how long Invalidate waits for the listening processes.
const EchoTimeout = time.Second

// maxPayload keeps one notification under PostgreSQL's 8000-byte payload limit.
const maxPayload = 7000

// Payloads: "#<tag>\n<key>\n<key>…" invalidates the keys; "!<tag>" acknowledges it.
const (
	tagMark = "#"
	ackMark = "!"
)

// NewBroadcast wraps local. publish sends a payload to every process (store's
// InvalidationPublisher.Publish); listening reports whether this process hears them now (nil:
// never wait for acknowledgements).
func NewBroadcast(local *Memory, publish PublishFunc, listening func() bool, log *slog.Logger) *Broadcast {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if listening == nil {
		listening = func() bool { return false }
	}
	return &Broadcast{
		Memory: local, publish: publish, listening: listening, log: log,
		origin: rand.Text()[:13], heard: map[string]chan struct{}{},
	}
}

// Invalidate implements Cache: the keys are dropped here at once and published to every
// process, in as few notifications as fit. A failed publication is logged and returned;
// the other processes then serve the old value for at most its TTL.
func (b *Broadcast) Invalidate(ctx context.Context, keys ...string) error {
	_ = b.Memory.Invalidate(ctx, keys...)
	wait := b.listening()
	var firstErr error
	type pending struct {
		heard chan struct{}
		want  int64
	}
	var waits []pending
	for _, batch := range batches(keys) {
		tag := b.origin + "-" + strconv.FormatUint(b.seq.Add(1), 36)
		var heard chan struct{}
		if wait {
			heard = make(chan struct{}, 1024)
			b.mu.Lock()
			b.heard[tag] = heard
			b.mu.Unlock()
			defer b.forget(tag)
		}
		listeners, err := b.publish(ctx, tagMark+tag+"\n"+batch)
		if err != nil {
			b.log.Warn("publishing a cache invalidation failed; other processes may serve the old value until it expires",
				"keys", batch, "error", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if heard != nil {
			waits = append(waits, pending{heard, max(listeners, 1)})
		}
	}
	timeout := time.NewTimer(EchoTimeout)
	defer timeout.Stop()
	for _, w := range waits {
		for range w.want {
			select {
			case <-w.heard:
			case <-timeout.C:
				b.log.Warn("not every process acknowledged a cache invalidation in time", "timeout", EchoTimeout)
				return firstErr
			case <-ctx.Done():
				return firstErr
			}
		}
	}
	return firstErr
}

func (b *Broadcast) forget(tag string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.heard, tag)
}

// count records that one process has dropped the keys published under tag.
func (b *Broadcast) count(tag string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if heard, ok := b.heard[tag]; ok {
		select {
		case heard <- struct{}{}:
		default:
		}
	}
}

// Receive handles one published payload: it drops the keys (this process's own
// included) and acknowledges another process's invalidation, or counts an
// acknowledgement of this process's own. It does not block.
func (b *Broadcast) Receive(payload string) {
	if tag, ok := strings.CutPrefix(payload, ackMark); ok {
		b.count(tag)
		return
	}
	head, keys, _ := strings.Cut(payload, "\n")
	tag, ok := strings.CutPrefix(head, tagMark)
	if !ok {
		tag, keys = "", payload
	}
	if keys != "" {
		_ = b.Memory.Invalidate(context.Background(), strings.Split(keys, "\n")...)
	}
	switch {
	case tag == "":
	case strings.HasPrefix(tag, b.origin+"-"):
		b.count(tag) // our own echo
	default:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), EchoTimeout)
			defer cancel()
			if _, err := b.publish(ctx, ackMark+tag); err != nil {
				b.log.Debug("acknowledging a cache invalidation failed", "error", err)
			}
		}()
	}
}

// Resync drops every cached value (the fill guards of recent invalidations stay).
func (b *Broadcast) Resync() {
	m := b.Memory
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.values)
}

// batches joins keys with newlines into payloads of at most maxPayload bytes.
func batches(keys []string) []string {
	var out []string
	var cur strings.Builder
	for _, k := range keys {
		if k == "" || strings.Contains(k, "\n") || len(k) > maxPayload {
			continue // not a key this package writes
		}
		if cur.Len() > 0 && cur.Len()+1+len(k) > maxPayload {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(k)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
