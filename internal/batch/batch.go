// Package batch groups concurrent calls into one write, as a database's group commit
// does: the first caller's input goes out at once; calls that arrive while a write is in
// flight wait and go out together as the next one. An idle system adds no delay (there is
// no timer); a busy one makes one round trip, and one commit, for many calls.
//
// What it buys (internal/bench/FINDINGS.md, third round): agent runs that start or end
// while a statement is in flight share the next one — in-process pipeline
// (BenchmarkRunPipeline, 32 workers) 622 → 853 runs/s, PostgreSQL CPU 1.9 → 0.96 ms per
// run (`make bench` agent-runs, 64 workers); runs created at once share one transaction —
// agent-runs 950–990 → 1,586–1,618 runs/s, server CPU per run 0.80 → 0.51 ms,
// PostgreSQL 0.85 → 0.46 ms.
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxSize bounds how many calls one flush carries.
const maxSize = 256

// flushTimeout bounds one flush, whatever the callers' contexts.
const flushTimeout = 30 * time.Second

// FlushFunc writes a batch and returns one result per input, in order, or an error that
// fails every call of the batch.
type FlushFunc[In, Out any] func(ctx context.Context, batch []In) ([]Out, error)

// Group sends the inputs of concurrent Do calls to its FlushFunc in batches of at most
// 256. The caller at the head of the queue leads: it flushes the batch, hands each caller
// its result, and passes the lead to the head of whatever queued meanwhile. A Group must
// be made with New.
type Group[In, Out any] struct {
	flush FlushFunc[In, Out]

	mu      sync.Mutex
	busy    bool
	pending []*call[In, Out]
}

// New builds a Group that writes with flush.
func New[In, Out any](flush FlushFunc[In, Out]) *Group[In, Out] {
	return &Group[In, Out]{flush: flush}
}

type call[In, Out any] struct {
	in   In
	wake chan bool // receives exactly once: true to lead the next batch, false when done
	out  Out
	err  error
}

// Do writes in with the next batch and returns its result. The flush runs without ctx's
// cancellation (a caller that gives up does not abandon the others' write) and within 30
// seconds. It returns the flush's error, or an error when the flush gave fewer or more
// results than inputs.
func (g *Group[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{in: in, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		if lead := <-c.wake; !lead {
			return c.out, c.err
		}
		g.mu.Lock()
	}
	g.busy = true
	// c is at the head of the queue: the first caller, or the one the lead was passed to.
	n := min(len(g.pending), maxSize)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()

	g.send(ctx, batch)

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].wake <- true
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return c.out, c.err
}

// send writes one batch and wakes every caller in it but the leader (batch[0]).
func (g *Group[In, Out]) send(ctx context.Context, batch []*call[In, Out]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	ins := make([]In, len(batch))
	for i, c := range batch {
		ins[i] = c.in
	}
	outs, err := g.flush(ctx, ins)
	if err == nil && len(outs) != len(batch) {
		err = fmt.Errorf("batch: a batch of %d gave %d results", len(batch), len(outs))
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.out = outs[i]
		}
		if i > 0 {
			c.wake <- false
		}
	}
}
