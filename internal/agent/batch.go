package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/llm"
)

// maxBatch bounds how many runs one statement creates, starts or finishes.
const maxBatch = 256

// flushTimeout bounds one batch's statements, whatever the callers' contexts.
const flushTimeout = 30 * time.Second

// batcher writes many calls' rows in one statement, as a database's group commit does:
// the first caller sends its row at once; calls that arrive while a statement is in flight
// wait and go out together as the next one. An idle system adds no delay; a busy one makes
// one round trip (and one commit) for many runs.
//
// The caller at the head of the queue leads: it sends the batch, hands each caller its
// result, and passes the lead to the head of whatever queued meanwhile.
type batcher[In, Out any] struct {
	// flush writes a batch and returns one result per input, in order, or an error that
	// fails the whole batch.
	flush func(ctx context.Context, batch []In) ([]Out, error)

	mu      sync.Mutex
	busy    bool
	pending []*batchCall[In, Out]
}

type batchCall[In, Out any] struct {
	in   In
	wake chan bool // receives exactly once: true to lead the next batch, false when done
	out  Out
	err  error
}

// do writes in with the next batch and returns its result.
func (b *batcher[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &batchCall[In, Out]{in: in, wake: make(chan bool, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if b.busy {
		b.mu.Unlock()
		if lead := <-c.wake; !lead {
			return c.out, c.err
		}
		b.mu.Lock()
	}
	b.busy = true
	// c is at the head of the queue: the first caller, or the one the lead was passed to.
	n := min(len(b.pending), maxBatch)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	b.mu.Unlock()

	b.send(ctx, batch)

	b.mu.Lock()
	if len(b.pending) > 0 {
		b.pending[0].wake <- true
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	return c.out, c.err
}

// send writes one batch and wakes every caller in it but the leader (batch[0]).
func (b *batcher[In, Out]) send(ctx context.Context, batch []*batchCall[In, Out]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	ins := make([]In, len(batch))
	for i, c := range batch {
		ins[i] = c.in
	}
	outs, err := b.flush(ctx, ins)
	if err == nil && len(outs) != len(batch) {
		err = fmt.Errorf("agent: a batch of %d gave %d results", len(batch), len(outs))
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

// inOrder returns, for each of ids, the run with that id among rows, or nil when the
// statement left it out (it had already ended).
func inOrder[R any](ids []int64, rows []R, run func(R) db.AgentRun) []*db.AgentRun {
	byID := make(map[int64]db.AgentRun, len(rows))
	for _, r := range rows {
		a := run(r)
		byID[a.ID] = a
	}
	out := make([]*db.AgentRun, len(ids))
	for i, id := range ids {
		if a, ok := byID[id]; ok {
			out[i] = &a
		}
	}
	return out
}

// start is one run's new attempt, by the queue job running it.
type start struct {
	runID, jobID int64
	attempt      int
}

// startRuns marks runs in progress and appends their run.status events; the result is
// in starts' order (nil for a run that had ended).
func startRuns(ctx context.Context, q db.Querier, starts []start) ([]*db.AgentRun, error) {
	p := db.AgentRunStartParams{
		Ids: make([]int64, len(starts)), Attempts: make([]int32, len(starts)), JobIds: make([]int64, len(starts)),
	}
	for i, s := range starts {
		p.Ids[i], p.Attempts[i], p.JobIds[i] = s.runID, int32(s.attempt), s.jobID
	}
	rows, err := q.AgentRunStart(ctx, p)
	if err != nil {
		return nil, err
	}
	return inOrder(p.Ids, rows, func(r db.AgentRunStartRow) db.AgentRun { return db.AgentRun(r) }), nil
}

// ending is how one run ends.
type ending struct {
	runID        int64
	status       db.AgentRunStatus
	output       *string
	steps        []byte // JSON array
	errorCode    string // empty: none
	errorMessage string
	usage        llm.Usage
	delta        string // output text not yet sent as an event (empty: none)
}

// finishRuns ends runs that have not ended yet and appends their last events; the result
// is in es' order (nil for a run that had ended).
func finishRuns(ctx context.Context, q db.Querier, es []ending) ([]*db.AgentRun, error) {
	n := len(es)
	p := db.AgentRunFinishParams{
		Ids: make([]int64, n), Statuses: make([]string, n), HasOutputs: make([]bool, n), Outputs: make([]string, n),
		Steps: make([][]byte, n), ErrorCodes: make([]string, n), ErrorMessages: make([]string, n),
		PromptTokens: make([]int64, n), CompletionTokens: make([]int64, n), TotalTokens: make([]int64, n),
		CachedCompletions: make([]int64, n), Deltas: make([]string, n),
	}
	for i, e := range es {
		p.Ids[i], p.Statuses[i], p.Steps[i] = e.runID, string(e.status), e.steps
		if e.output != nil {
			p.HasOutputs[i], p.Outputs[i] = true, *e.output
		}
		p.ErrorCodes[i], p.ErrorMessages[i], p.Deltas[i] = e.errorCode, e.errorMessage, e.delta
		p.PromptTokens[i], p.CompletionTokens[i] = e.usage.PromptTokens, e.usage.CompletionTokens
		p.TotalTokens[i], p.CachedCompletions[i] = e.usage.TotalTokens, e.usage.CachedCompletions
	}
	rows, err := q.AgentRunFinish(ctx, p)
	if err != nil {
		return nil, err
	}
	return inOrder(p.Ids, rows, func(r db.AgentRunFinishRow) db.AgentRun { return db.AgentRun(r) }), nil
}
