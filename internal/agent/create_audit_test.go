package agent

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/audit"
)

// TestCreateRunsRecordEachRunsAuditEventInItsStatement creates a batch of runs made by
// different requests (a user, an API key, one without audit metadata): the statement
// that inserts the runs records one audit event per audited run, in the runs' order,
// each with its own request's actor, action, request id and IP, and none for the run
// created without metadata.
func TestCreateRunsRecordEachRunsAuditEventInItsStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, s, _, actor, a := newTestService(t)
	uid, keyID := actor.UserID, int64(77)
	byUser := audit.WithMeta(context.Background(), audit.Meta{Action: "createAgentRun",
		Actor: audit.RequestActor(uid, 0), RequestID: "req-user", IP: "192.0.2.1"})
	byKey := audit.WithMeta(context.Background(), audit.Meta{Action: "createAgentRun",
		Actor: audit.RequestActor(uid, keyID), RequestID: "req-key"})
	rs := []newRun{
		{agentID: a.ID, input: "one", model: "m", metadata: []byte(`{}`), createdBy: uid, ctx: byUser},
		{agentID: a.ID, input: "two", model: "m", metadata: []byte(`{}`), createdBy: uid},
		{agentID: a.ID, input: "three", model: "m", metadata: []byte(`{}`), createdBy: uid, ctx: byKey},
	}
	out, err := svc.createRuns(ctx, rs)
	require.NoError(t, err)
	require.Len(t, out, 3)
	for _, o := range out {
		require.NoError(t, o.err)
	}

	typ := "agent_run"
	evs, err := s.AuditEventList(ctx, db.AuditEventListParams{ResourceType: &typ, MaxRows: 10})
	require.NoError(t, err)
	slices.Reverse(evs) // oldest first
	require.Len(t, evs, 2, "one event per audited run, none for the run without metadata")

	first, third := evs[0], evs[1]
	require.Less(t, first.ID, third.ID, "events in the runs' order")
	require.Equal(t, out[0].run.ID, *first.ResourceID)
	require.Equal(t, "createAgentRun", first.Action)
	require.Equal(t, string(audit.ActorUser), first.ActorType)
	require.Equal(t, uid, *first.ActorUserID)
	require.Nil(t, first.ActorApiKeyID)
	require.Nil(t, first.ActorAgentRunID)
	require.Equal(t, "req-user", *first.RequestID)
	require.Equal(t, "192.0.2.1", *first.Ip)
	require.Nil(t, first.Changes)

	require.Equal(t, out[2].run.ID, *third.ResourceID)
	require.Equal(t, string(audit.ActorAPIKey), third.ActorType)
	require.Equal(t, uid, *third.ActorUserID)
	require.Equal(t, keyID, *third.ActorApiKeyID)
	require.Equal(t, "req-key", *third.RequestID)
	require.Nil(t, third.Ip)
}
