package agent

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
)

// TestFinding06_BatchCountsEachCreatorsRuns: one batch of creations for two users, with
// a limit of 3 active runs each, creates the first three of the user who asked for four
// and both of the other's; the fourth gets QuotaExceeded, only created runs get jobs, and
// the next batch sees the runs the first one committed.
func TestFinding06_BatchCountsEachCreatorsRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, s, q, actor, a := newTestService(t)
	svc.WithActiveRunLimit(3)
	other, err := s.UserCreate(ctx, db.UserCreateParams{Email: "other@example.com", Name: "Other", PasswordHash: "x"})
	require.NoError(t, err)
	run := func(user int64, input string) newRun {
		return newRun{agentID: a.ID, input: input, model: "m", metadata: []byte(`{}`), createdBy: user}
	}
	rs := []newRun{
		run(actor.UserID, "a1"), run(other.ID, "b1"), run(actor.UserID, "a2"),
		run(actor.UserID, "a3"), run(actor.UserID, "a4"), run(other.ID, "b2"),
	}
	out, err := svc.createRuns(ctx, rs)
	require.NoError(t, err)
	require.Len(t, out, len(rs))
	var enqueued []int64
	for i, o := range out {
		if rs[i].input == "a4" {
			require.True(t, apperr.Is(o.err, apperr.QuotaExceeded), "a4: %v", o.err)
			continue
		}
		require.NoError(t, o.err, rs[i].input)
		require.Equal(t, rs[i].input, o.run.Input)
		enqueued = append(enqueued, o.run.ID)
	}
	require.Equal(t, enqueued, q.enqueued(), "only the created runs have jobs")

	again, err := svc.createRuns(ctx, []newRun{run(actor.UserID, "a5"), run(other.ID, "b3"), run(other.ID, "b4")})
	require.NoError(t, err)
	require.True(t, apperr.Is(again[0].err, apperr.QuotaExceeded), "a5: %v", again[0].err)
	require.NoError(t, again[1].err, "b3 is the other user's third")
	require.True(t, apperr.Is(again[2].err, apperr.QuotaExceeded), "b4: %v", again[2].err)
}
