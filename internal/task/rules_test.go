package task

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/etag"
	pgstore "enterprise-automation/internal/store"
)

// fakeStore keeps tasks and users in maps. It implements db.Querier by embedding a nil
// one: any query the service is not expected to call panics.
type fakeStore struct {
	db.Querier
	tasks     map[int64]db.Task
	users     map[int64]db.User
	writeErr  error // returned by TaskCreate and TaskUpdate when set
	userReads int
}

func (f *fakeStore) InTx(_ context.Context, fn func(q db.Querier) error) error { return fn(f) }

func (f *fakeStore) TaskGetByIDForUpdate(ctx context.Context, id int64) (db.Task, error) {
	return f.TaskGetByID(ctx, id)
}

func (f *fakeStore) TaskGetByID(_ context.Context, id int64) (db.Task, error) {
	t, ok := f.tasks[id]
	if !ok {
		return db.Task{}, apperr.E(apperr.NotFound, "not found")
	}
	return t, nil
}

func (f *fakeStore) UserGetByID(_ context.Context, id int64) (db.User, error) {
	f.userReads++
	u, ok := f.users[id]
	if !ok {
		return db.User{}, apperr.E(apperr.NotFound, "not found")
	}
	return u, nil
}

func (f *fakeStore) TaskCreate(_ context.Context, p db.TaskCreateParams) (db.TaskCreateRow, error) {
	if f.writeErr != nil {
		return db.TaskCreateRow{}, f.writeErr
	}
	t := db.Task{ID: int64(len(f.tasks) + 1), Title: p.Title, Description: p.Description, Status: db.TaskStatusPending,
		Priority: p.Priority, AssigneeID: p.AssigneeID, CreatedBy: p.CreatedBy, DueAt: p.DueAt, Tags: p.Tags,
		Metadata: p.Metadata, Version: 1}
	f.tasks[t.ID] = t
	return db.TaskCreateRow(t), nil
}

func (f *fakeStore) TaskUpdate(_ context.Context, p db.TaskUpdateParams) (db.Task, error) {
	if f.writeErr != nil {
		return db.Task{}, f.writeErr
	}
	t, ok := f.tasks[p.ID]
	if !ok || t.Version != p.Version {
		return db.Task{}, apperr.E(apperr.NotFound, "not found")
	}
	t.Title, t.Description, t.Status, t.Priority = p.Title, p.Description, p.Status, p.Priority
	t.AssigneeID, t.DueAt, t.Tags, t.Metadata, t.CompletedAt = p.AssigneeID, p.DueAt, p.Tags, p.Metadata, p.CompletedAt
	t.Version++
	f.tasks[p.ID] = t
	return t, nil
}

func (f *fakeStore) TaskDelete(_ context.Context, p db.TaskDeleteParams) (int64, error) {
	if t, ok := f.tasks[p.ID]; !ok || t.Version != p.Version {
		return 0, nil
	}
	delete(f.tasks, p.ID)
	return 1, nil
}

// The people of the rule tests: ids 1 to 5 are users; 5 is inactive.
var (
	admin    = auth.Principal{UserID: 1, IsAdmin: true}
	creator  = auth.Principal{UserID: 2}
	assignee = auth.Principal{UserID: 3}
	stranger = auth.Principal{UserID: 4}
)

const (
	otherUser    = int64(1) // active; the administrator
	inactiveUser = int64(5)
	missingUser  = int64(99)
)

var testNow = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

type testBundle struct {
	store *fakeStore
	svc   *Service
	id    int64 // a task created by creator, assigned to assignee
}

// setup gives a service over a fake store holding one task in status.
func setup(t *testing.T, status Status) *testBundle {
	t.Helper()
	f := &fakeStore{tasks: map[int64]db.Task{}, users: map[int64]db.User{}}
	for id := int64(1); id <= 5; id++ {
		f.users[id] = db.User{ID: id, IsActive: id != inactiveUser, IsAdmin: id == admin.UserID}
	}
	row := db.Task{ID: 7, Title: "Reconcile invoices", Status: db.TaskStatus(status), Priority: db.TaskPriorityMedium,
		AssigneeID: ptr(assignee.UserID), CreatedBy: ptr(creator.UserID), Tags: []string{"billing"},
		Metadata: []byte(`{"k": 1}`), Version: 3}
	if IsTerminal(status) {
		row.CompletedAt = ptr(testNow.Add(-time.Hour))
	}
	f.tasks[row.ID] = row
	svc := NewService(f)
	svc.now = func() time.Time { return testNow }
	return &testBundle{store: f, svc: svc, id: row.ID}
}

func ptr[T any](v T) *T { return &v }

func TestCanTransitionFollowsTheTable(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Status]bool{
		{StatusPending, StatusInProgress}:   true,
		{StatusPending, StatusCancelled}:    true,
		{StatusInProgress, StatusPending}:   true,
		{StatusInProgress, StatusCompleted}: true,
		{StatusInProgress, StatusFailed}:    true,
		{StatusInProgress, StatusCancelled}: true,
		{StatusCompleted, StatusPending}:    true,
		{StatusFailed, StatusPending}:       true,
		{StatusCancelled, StatusPending}:    true,
	}
	for _, from := range Statuses {
		for _, to := range Statuses {
			want := from == to || allowed[[2]Status{from, to}]
			require.Equal(t, want, CanTransition(from, to), "%s to %s", from, to)
		}
	}
	require.False(t, CanTransition(StatusPending, "archived"), "an unknown status is never reachable")
	require.False(t, CanTransition("archived", StatusPending))
}

func TestStatusAndPriorityValid(t *testing.T) {
	t.Parallel()
	for _, s := range Statuses {
		require.True(t, s.Valid(), s)
	}
	for _, p := range []Priority{PriorityLow, PriorityMedium, PriorityHigh, PriorityUrgent} {
		require.True(t, p.Valid(), p)
	}
	require.False(t, Status("archived").Valid())
	require.False(t, Status("").Valid())
	require.False(t, Priority("critical").Valid())
}

// TestUpdateStatus tries every pair of statuses through Update: a legal change is
// written, with completed_at set on entering a terminal status and cleared on leaving it;
// an illegal one is a conflict naming both states and writes nothing.
func TestUpdateStatus(t *testing.T) {
	t.Parallel()
	for _, from := range Statuses {
		for _, to := range Statuses {
			verdict := "is_allowed"
			if !CanTransition(from, to) {
				verdict = "is_conflict"
			}
			t.Run(fmt.Sprintf("%s_to_%s_%s", from, to, verdict), func(t *testing.T) {
				t.Parallel()
				b := setup(t, from)
				before := b.store.tasks[b.id]
				got, err := b.svc.Update(context.Background(), creator, b.id, UpdateParams{Status: &to}, etag.Condition{})
				if !CanTransition(from, to) {
					require.True(t, apperr.Is(err, apperr.Conflict), "got %v", err)
					require.Contains(t, apperr.As(err).Message, fmt.Sprintf("from %s to %s", from, to))
					require.Equal(t, before, b.store.tasks[b.id], "nothing is written")
					return
				}
				require.NoError(t, err)
				require.Equal(t, to, got.Status)
				switch {
				case from == to:
					require.Equal(t, before.CompletedAt, got.CompletedAt, "no transition, completed_at stays")
				case IsTerminal(to):
					require.Equal(t, &testNow, got.CompletedAt)
				default:
					require.Nil(t, got.CompletedAt)
				}
			})
		}
	}
}

func TestUpdateRules(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("Paris", 3600)
	tests := []struct {
		name   string
		actor  auth.Principal
		p      UpdateParams
		kind   apperr.Kind // 0 (Internal) with ok
		field  string      // the invalid field, for Invalid
		ok     bool
		check  func(t *testing.T, got Task)
		noRead bool // the assignee's account is not read
	}{
		{name: "assignee_may_change_the_title", actor: assignee, p: UpdateParams{Title: ptr("  New title  ")}, ok: true,
			check: func(t *testing.T, got Task) { require.Equal(t, "New title", got.Title, "trimmed") }},
		{name: "stranger_gets_not_found", actor: stranger, p: UpdateParams{Title: ptr("x")}, kind: apperr.NotFound},
		{name: "blank_title_is_invalid", actor: creator, p: UpdateParams{Title: ptr(" \t")}, kind: apperr.Invalid, field: "title"},
		{name: "oversized_metadata_is_invalid", actor: creator, p: UpdateParams{Metadata: []byte(`"` + strings.Repeat("x", MaxMetadataBytes) + `"`)},
			kind: apperr.Invalid, field: "metadata"},
		{name: "due_date_past_year_9999_in_utc_is_invalid", actor: creator,
			p:    UpdateParams{DueAt: Optional[time.Time]{Set: true, Value: ptr(time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)))}},
			kind: apperr.Invalid, field: "due_at"},
		{name: "due_date_is_stored_in_utc", actor: assignee,
			p: UpdateParams{DueAt: Optional[time.Time]{Set: true, Value: ptr(time.Date(2026, 6, 1, 9, 0, 0, 0, paris))}}, ok: true,
			check: func(t *testing.T, got Task) {
				require.Equal(t, time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC), *got.DueAt)
				require.Equal(t, time.UTC, got.DueAt.Location())
			}},
		{name: "null_due_date_clears_it", actor: assignee, p: UpdateParams{DueAt: Optional[time.Time]{Set: true}}, ok: true,
			check: func(t *testing.T, got Task) { require.Nil(t, got.DueAt) }},
		{name: "assignee_may_not_reassign", actor: assignee, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(otherUser)}},
			kind: apperr.Forbidden},
		{name: "assignee_may_not_unassign", actor: assignee, p: UpdateParams{AssigneeID: Optional[int64]{Set: true}}, kind: apperr.Forbidden},
		{name: "assignee_may_send_the_same_assignee", actor: assignee, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(assignee.UserID)}},
			ok: true, noRead: true, check: func(t *testing.T, got Task) { require.Equal(t, &assignee.UserID, got.AssigneeID) }},
		{name: "creator_may_reassign_to_an_active_user", actor: creator, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(otherUser)}},
			ok: true, check: func(t *testing.T, got Task) { require.Equal(t, ptr(otherUser), got.AssigneeID) }},
		{name: "admin_may_reassign", actor: admin, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(creator.UserID)}},
			ok: true, check: func(t *testing.T, got Task) { require.Equal(t, ptr(creator.UserID), got.AssigneeID) }},
		{name: "creator_may_unassign_without_a_user_check", actor: creator, p: UpdateParams{AssigneeID: Optional[int64]{Set: true}},
			ok: true, noRead: true, check: func(t *testing.T, got Task) { require.Nil(t, got.AssigneeID) }},
		{name: "inactive_assignee_is_invalid", actor: creator, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(inactiveUser)}},
			kind: apperr.Invalid, field: "assignee_id"},
		{name: "missing_assignee_is_invalid", actor: creator, p: UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(missingUser)}},
			kind: apperr.Invalid, field: "assignee_id"},
		{name: "unset_fields_stay", actor: creator, p: UpdateParams{Priority: ptr(PriorityUrgent)}, ok: true,
			check: func(t *testing.T, got Task) {
				require.Equal(t, PriorityUrgent, got.Priority)
				require.Equal(t, "Reconcile invoices", got.Title)
				require.Equal(t, []string{"billing"}, got.Tags)
				require.JSONEq(t, `{"k": 1}`, string(got.Metadata))
				require.Equal(t, &assignee.UserID, got.AssigneeID)
				require.Equal(t, int64(4), got.Version)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, StatusPending)
			before := b.store.tasks[b.id]
			got, err := b.svc.Update(context.Background(), tt.actor, b.id, tt.p, etag.Condition{})
			if tt.noRead {
				require.Zero(t, b.store.userReads, "the assignee's account is not read")
			}
			if !tt.ok {
				require.True(t, apperr.Is(err, tt.kind), "want %s, got %v", tt.kind, err)
				if tt.field != "" {
					requireField(t, err, tt.field)
				}
				require.Equal(t, before, b.store.tasks[b.id], "nothing is written")
				return
			}
			require.NoError(t, err)
			require.Equal(t, taskFromRow(b.store.tasks[b.id]), got, "returns what was written")
			tt.check(t, got)
		})
	}
}

func TestUpdateOfACompletedTaskKeepsCompletedAt(t *testing.T) {
	t.Parallel()
	b := setup(t, StatusCompleted)
	was := b.store.tasks[b.id].CompletedAt
	got, err := b.svc.Update(context.Background(), creator, b.id, UpdateParams{Title: ptr("Renamed")}, etag.Condition{})
	require.NoError(t, err)
	require.Equal(t, was, got.CompletedAt)
}

func TestUpdateWithAStaleIfMatchFailsThePrecondition(t *testing.T) {
	t.Parallel()
	b := setup(t, StatusPending)
	_, err := b.svc.Update(context.Background(), creator, b.id, UpdateParams{Title: ptr("x")}, etag.IfMatch(ptr(etag.Format(2))))
	require.True(t, apperr.Is(err, apperr.PreconditionFailed), "got %v", err)

	got, err := b.svc.Update(context.Background(), creator, b.id, UpdateParams{Title: ptr("x")}, etag.IfMatch(ptr(etag.Format(3))))
	require.NoError(t, err)
	require.Equal(t, int64(4), got.Version)
}

// TestAssigneeRemovedDuringTheWriteIsAFieldError covers the assignee deleted between the
// check and the write: the store reports the assignee's foreign key by name.
func TestAssigneeRemovedDuringTheWriteIsAFieldError(t *testing.T) {
	t.Parallel()
	fk := &apperr.Error{Kind: apperr.Invalid, Message: "refers to a missing record", Constraint: assigneeConstraint}
	ctx := context.Background()

	b := setup(t, StatusPending)
	b.store.writeErr = fk
	_, err := b.svc.Update(ctx, creator, b.id, UpdateParams{AssigneeID: Optional[int64]{Set: true, Value: ptr(otherUser)}}, etag.Condition{})
	requireField(t, err, "assignee_id")
	_, err = b.svc.Create(ctx, creator, CreateParams{Title: "t", AssigneeID: ptr(otherUser)})
	requireField(t, err, "assignee_id")

	other := &apperr.Error{Kind: apperr.Invalid, Message: "refers to a missing record (assignee mentioned)", Constraint: "tasks_created_by_fkey"}
	b.store.writeErr = other
	_, err = b.svc.Create(ctx, creator, CreateParams{Title: "t"})
	require.ErrorIs(t, err, other, "another constraint is not the assignee's")
	require.Empty(t, apperr.As(err).Fields)
}

func TestCreateFillsTheDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t, StatusPending)
	got, err := b.svc.Create(context.Background(), creator, CreateParams{Title: "  Ship it  "})
	require.NoError(t, err)
	require.Equal(t, "Ship it", got.Title)
	require.Equal(t, PriorityMedium, got.Priority)
	require.Equal(t, StatusPending, got.Status)
	require.Equal(t, []string{}, got.Tags)
	require.Equal(t, "{}", string(got.Metadata))
	require.Equal(t, &creator.UserID, got.CreatedBy)
	require.Nil(t, got.AssigneeID)
	require.Zero(t, b.store.userReads, "no assignee, no user check")
}

func TestCreateRules(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		p     CreateParams
		field string
	}{
		"blank_title":        {p: CreateParams{Title: "   "}, field: "title"},
		"inactive_assignee":  {p: CreateParams{Title: "t", AssigneeID: ptr(inactiveUser)}, field: "assignee_id"},
		"missing_assignee":   {p: CreateParams{Title: "t", AssigneeID: ptr(missingUser)}, field: "assignee_id"},
		"oversized_metadata": {p: CreateParams{Title: "t", Metadata: make([]byte, MaxMetadataBytes+1)}, field: "metadata"},
		"due_before_year_1":  {p: CreateParams{Title: "t", DueAt: ptr(time.Date(1, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)))}, field: "due_at"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, StatusPending)
			_, err := b.svc.Create(context.Background(), creator, tt.p)
			requireField(t, err, tt.field)
			require.Len(t, b.store.tasks, 1, "nothing is written")
		})
	}
}

func TestDeleteRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		actor auth.Principal
		kind  apperr.Kind
		ok    bool
	}{
		{name: "creator_may_delete", actor: creator, ok: true},
		{name: "admin_may_delete", actor: admin, ok: true},
		{name: "assignee_may_not_delete", actor: assignee, kind: apperr.Forbidden},
		{name: "stranger_gets_not_found", actor: stranger, kind: apperr.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, StatusPending)
			err := b.svc.Delete(context.Background(), tt.actor, b.id, etag.Condition{})
			if tt.ok {
				require.NoError(t, err)
				require.NotContains(t, b.store.tasks, b.id)
				return
			}
			require.True(t, apperr.Is(err, tt.kind), "want %s, got %v", tt.kind, err)
			require.Contains(t, b.store.tasks, b.id)
		})
	}
}

func TestGetHidesTasksFromStrangers(t *testing.T) {
	t.Parallel()
	b := setup(t, StatusPending)
	for _, actor := range []auth.Principal{admin, creator, assignee} {
		got, err := b.svc.Get(context.Background(), actor, b.id)
		require.NoError(t, err)
		require.Equal(t, b.id, got.ID)
	}
	_, err := b.svc.Get(context.Background(), stranger, b.id)
	require.True(t, apperr.Is(err, apperr.NotFound), "got %v", err)
	_, err = b.svc.Get(context.Background(), admin, 404)
	require.True(t, apperr.Is(err, apperr.NotFound), "got %v", err)
}

// TestTaskEncodesLikeItsRow guards the task record cache across a deployment: an entry
// written from the row type must read back as the same domain task, and the other way.
func TestTaskEncodesLikeItsRow(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	row := db.Task{ID: 1<<53 + 1, Title: "t", Description: "d", Status: db.TaskStatusCompleted, Priority: db.TaskPriorityUrgent,
		AssigneeID: ptr(int64(3)), DueAt: &due, Tags: []string{"a"}, Metadata: []byte(`{"n": 12345678901234567890}`),
		CreatedAt: due, UpdatedAt: due, CompletedAt: &due, Version: 9}
	fromRowJSON, err := json.Marshal(row)
	require.NoError(t, err)
	fromTaskJSON, err := json.Marshal(taskFromRow(row))
	require.NoError(t, err)
	require.JSONEq(t, string(fromRowJSON), string(fromTaskJSON))

	var back Task
	require.NoError(t, json.Unmarshal(fromRowJSON, &back))
	require.Equal(t, taskFromRow(row), back)
}

// TestAssigneeConstraintIsTheDatabaseName checks assigneeConstraint against the name
// PostgreSQL reports when a task's assignee does not exist.
func TestAssigneeConstraintIsTheDatabaseName(t *testing.T) {
	t.Parallel()
	st := pgstore.New(dbtest.Pool(t))
	_, err := st.TaskCreate(context.Background(), db.TaskCreateParams{
		Title: "t", Priority: db.TaskPriorityMedium, AssigneeID: ptr(missingUser), Tags: []string{}, Metadata: []byte("{}"),
	})
	require.Equal(t, assigneeConstraint, apperr.ConstraintOf(err), "got %v", err)
	requireField(t, assigneeGone(err), "assignee_id")
}

func requireField(t *testing.T, err error, field string) {
	t.Helper()
	e := apperr.As(err)
	require.NotNil(t, e, "got %v", err)
	require.Equal(t, apperr.Invalid, e.Kind, "got %v", err)
	require.Len(t, e.Fields, 1, "got %v", e.Fields)
	require.Equal(t, field, e.Fields[0].Field)
}
