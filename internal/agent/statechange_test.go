package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/webhook"
)

// wantingEvents is an Events that wants the listed types and records nothing.
type wantingEvents map[webhook.EventType]bool

func (w wantingEvents) Emit(context.Context, webhook.Outbox, webhook.EventType, any) error {
	return nil
}
func (w wantingEvents) Wants(_ context.Context, t webhook.EventType) bool { return w[t] }
func (w wantingEvents) Stored(webhook.EventType)                          {}

// TestWantsAnyDecidesWhetherAnEndingNeedsItsTransaction: a batch of endings runs in a
// transaction of its own (for the webhook outbox rows) exactly when some ending's status
// has an event that an endpoint may receive.
func TestWantsAnyDecidesWhetherAnEndingNeedsItsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	batch := []ending{{runID: 1, status: RunCompleted}, {runID: 2, status: RunFailed}}
	require.False(t, wantsAny(ctx, nil, batch), "no webhooks service")
	require.False(t, wantsAny(ctx, wantingEvents{}, batch), "no endpoint subscribed")
	require.False(t, wantsAny(ctx, wantingEvents{webhook.AgentRunCancelled: true}, batch), "only another status's event")
	require.True(t, wantsAny(ctx, wantingEvents{webhook.AgentRunFailed: true}, batch))
	require.True(t, wantsAny(ctx, wantingEvents{webhook.AgentRunCompleted: true}, batch[:1]))
	require.False(t, wantsAny(ctx, wantingEvents{webhook.AgentRunCompleted: true}, nil))
}
