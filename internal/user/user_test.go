package user_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/user"
)

const adminPassword = "admin-password"

// testBundle is a user service over a fresh database, with the auth service as its
// password keeper and an administrator to act as.
type testBundle struct {
	svc   *user.Service
	auth  *auth.Service
	admin auth.Principal
}

func setup(t *testing.T) testBundle {
	t.Helper()
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool)
	authSvc, err := auth.NewService(st, auth.Options{
		Secret: []byte("0123456789abcdef0123456789abcdef"), Algorithm: "HS256",
		AccessTTL: 10 * time.Minute, RefreshTTL: time.Hour,
		Password: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	})
	require.NoError(t, err)
	svc := user.NewService(st, authSvc)
	created, err := svc.EnsureAdmin(ctx, "admin@example.test", adminPassword)
	require.NoError(t, err)
	require.True(t, created)
	b := testBundle{svc: svc, auth: authSvc}
	b.admin = b.login(t, "admin@example.test", adminPassword)
	return b
}

// login logs in and authenticates with the access token, as a request would.
func (b testBundle) login(t *testing.T, email, plain string) auth.Principal {
	t.Helper()
	ctx := context.Background()
	pair, err := b.auth.Login(ctx, email, plain)
	require.NoError(t, err)
	p, err := b.auth.Authenticate(ctx, pair.AccessToken)
	require.NoError(t, err)
	return p
}

// create makes a user as the administrator and returns it with its principal.
func (b testBundle) create(t *testing.T, name, email, plain string, isAdmin bool) (user.User, auth.Principal) {
	t.Helper()
	u, err := b.svc.Create(context.Background(), b.admin, user.CreateParams{Name: name, Email: email, Password: plain, IsAdmin: isAdmin})
	require.NoError(t, err)
	return u, auth.Principal{UserID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin}
}

func requireKind(t *testing.T, kind apperr.Kind, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, kind, apperr.KindOf(err), "error: %v", err)
}

func ptr[T any](v T) *T { return &v }

func TestCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("non_admin_is_forbidden", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, ann := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Create(ctx, ann, user.CreateParams{Name: "Bob", Email: "bob@example.test", Password: "bob-password"})
		requireKind(t, apperr.Forbidden, err)
	})

	t.Run("blank_name_is_invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Create(ctx, b.admin, user.CreateParams{Name: "  ", Email: "bob@example.test", Password: "bob-password"})
		requireKind(t, apperr.Invalid, err)
		require.Equal(t, "name", apperr.As(err).Fields[0].Field)
	})

	t.Run("email_taken_in_another_case_is_conflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Create(ctx, b.admin, user.CreateParams{Name: "Ann 2", Email: "ANN@Example.test", Password: "ann-password"})
		requireKind(t, apperr.Conflict, err)
	})

	t.Run("returns_the_active_user_with_trimmed_name_and_email", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		u, _ := b.create(t, "  Ann  ", " ann@example.test ", "ann-password", true)
		require.Equal(t, "Ann", u.Name)
		require.Equal(t, "ann@example.test", u.Email)
		require.True(t, u.IsAdmin)
		require.True(t, u.IsActive)
		require.NotZero(t, u.ID)
		require.False(t, u.CreatedAt.IsZero())
		b.login(t, "ann@example.test", "ann-password")
	})
}

func TestEnsureAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created, err := b.svc.EnsureAdmin(context.Background(), "ADMIN@example.test", "another-password")
	require.NoError(t, err)
	require.False(t, created, "an administrator with that email exists already")
	b.login(t, "admin@example.test", adminPassword)
}

func TestGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("non_admin_reads_only_themselves", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		bob, _ := b.create(t, "Bob", "bob@example.test", "bob-password", false)
		got, err := b.svc.Get(ctx, annP, ann.ID)
		require.NoError(t, err)
		require.Equal(t, ann, got)
		_, err = b.svc.Get(ctx, annP, bob.ID)
		requireKind(t, apperr.Forbidden, err)
	})

	t.Run("unknown_user_is_not_found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Get(ctx, b.admin, 1_000_000)
		requireKind(t, apperr.NotFound, err)
	})

	t.Run("through_the_record_cache_sees_every_change", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		users := cache.NewEntity[auth.Account](cache.NewMemory(0, nil), "user", time.Minute, nil).KeepObjects()
		svc := b.svc.WithCache(users, nil, nil)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		got, err := svc.Get(ctx, b.admin, ann.ID)
		require.NoError(t, err)
		require.Equal(t, ann, got)
		updated, err := svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{Name: ptr("Anne")}, etag.Condition{})
		require.NoError(t, err)
		got, err = svc.Get(ctx, b.admin, ann.ID)
		require.NoError(t, err)
		require.Equal(t, updated, got)
		require.NoError(t, svc.Delete(ctx, b.admin, ann.ID, etag.Condition{}))
		_, err = svc.Get(ctx, b.admin, ann.ID)
		requireKind(t, apperr.NotFound, err)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("non_admin_is_forbidden", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, ann := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.List(ctx, ann, user.ListParams{Page: page.Request{Limit: 10}})
		requireKind(t, apperr.Forbidden, err)
	})

	t.Run("q_is_a_literal_substring_of_name_or_email_and_filters_combine", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hundred, _ := b.create(t, "100% Ann", "ann@example.test", "ann-password", false)
		b.create(t, "1000 Bob", "bob@example.test", "bob-password", false)
		carol, _ := b.create(t, "Carol", "carol_100%@example.test", "carol-password", true)

		res, err := b.svc.List(ctx, b.admin, user.ListParams{Page: page.Request{Limit: 10}, Q: ptr("100%")})
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Total)
		require.Equal(t, []user.User{hundred, carol}, res.Items)

		res, err = b.svc.List(ctx, b.admin, user.ListParams{Page: page.Request{Limit: 10}, Q: ptr("100%"), IsAdmin: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, []user.User{carol}, res.Items)
	})

	t.Run("pages_past_the_end_are_empty_with_the_total", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, "Ann", "ann@example.test", "ann-password", false)
		res, err := b.svc.List(ctx, b.admin, user.ListParams{Page: page.Request{Skip: 5, Limit: 10}})
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Total)
		require.Empty(t, res.Items)
	})
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	none := etag.Condition{}

	t.Run("non_admin_may_not_change_others", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, ann := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		bob, _ := b.create(t, "Bob", "bob@example.test", "bob-password", false)
		_, err := b.svc.Update(ctx, ann, bob.ID, user.UpdateParams{Name: ptr("Robert")}, none)
		requireKind(t, apperr.Forbidden, err)
	})

	t.Run("non_admin_may_not_set_is_admin_or_is_active", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{IsAdmin: ptr(true)}, none)
		requireKind(t, apperr.Forbidden, err)
		_, err = b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{IsActive: ptr(true)}, none)
		requireKind(t, apperr.Forbidden, err)
	})

	t.Run("admin_sets_is_admin_and_is_active_of_others", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		u, err := b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{IsAdmin: ptr(true), IsActive: ptr(false)}, none)
		require.NoError(t, err)
		require.True(t, u.IsAdmin)
		require.False(t, u.IsActive)
		require.Equal(t, ann.Version+1, u.Version)
		_, err = b.auth.Login(ctx, "ann@example.test", "ann-password")
		requireKind(t, apperr.Unauthorized, err)
	})

	t.Run("deactivation_ends_the_users_sessions", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		pair, err := b.auth.Login(ctx, "ann@example.test", "ann-password")
		require.NoError(t, err)
		_, err = b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{IsActive: ptr(false)}, none)
		require.NoError(t, err)
		_, err = b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{IsActive: ptr(true)}, none)
		require.NoError(t, err)
		_, err = b.auth.Authenticate(ctx, pair.AccessToken)
		requireKind(t, apperr.Unauthorized, err)
		_, err = b.auth.Refresh(ctx, pair.RefreshToken)
		requireKind(t, apperr.Unauthorized, err)
	})

	t.Run("blank_name_is_invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Name: ptr(" ")}, none)
		requireKind(t, apperr.Invalid, err)
	})

	t.Run("own_password_change_needs_current_password", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Password: ptr("new-password")}, none)
		requireKind(t, apperr.Invalid, err)
		require.Equal(t, "current_password", apperr.As(err).Fields[0].Field)
	})

	t.Run("wrong_current_password_is_ErrWrongCurrentPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Password: ptr("new-password"), CurrentPassword: ptr("not-it")}, none)
		require.True(t, errors.Is(err, user.ErrWrongCurrentPassword), "error: %v", err)
		requireKind(t, apperr.Invalid, err)
		b.login(t, "ann@example.test", "ann-password")
	})

	t.Run("own_password_change_ends_sessions_and_the_old_password", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		before, err := b.auth.Login(ctx, "ann@example.test", "ann-password")
		require.NoError(t, err)
		_, err = b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Password: ptr("new-password"), CurrentPassword: ptr("ann-password")}, none)
		require.NoError(t, err)
		_, err = b.auth.Authenticate(ctx, before.AccessToken)
		requireKind(t, apperr.Unauthorized, err)
		_, err = b.auth.Login(ctx, "ann@example.test", "ann-password")
		requireKind(t, apperr.Unauthorized, err)
		b.login(t, "ann@example.test", "new-password")
	})

	t.Run("admin_sets_another_users_password_without_theirs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{Password: ptr("new-password")}, none)
		require.NoError(t, err)
		b.login(t, "ann@example.test", "new-password")
	})

	t.Run("own_email_change_needs_current_password_unless_only_its_case_changes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		_, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Email: ptr("anne@example.test")}, none)
		requireKind(t, apperr.Invalid, err)
		u, err := b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Email: ptr("Ann@Example.test")}, none)
		require.NoError(t, err)
		require.Equal(t, "Ann@Example.test", u.Email)
		u, err = b.svc.Update(ctx, annP, ann.ID, user.UpdateParams{Email: ptr("anne@example.test"), CurrentPassword: ptr("ann-password")}, none)
		require.NoError(t, err)
		require.Equal(t, "anne@example.test", u.Email)
	})

	t.Run("email_taken_is_conflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		b.create(t, "Bob", "bob@example.test", "bob-password", false)
		_, err := b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{Email: ptr("BOB@example.test")}, none)
		requireKind(t, apperr.Conflict, err)
	})

	t.Run("nobody_demotes_or_deactivates_themselves", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Update(ctx, b.admin, b.admin.UserID, user.UpdateParams{IsAdmin: ptr(false)}, none)
		requireKind(t, apperr.Conflict, err)
		_, err = b.svc.Update(ctx, b.admin, b.admin.UserID, user.UpdateParams{IsActive: ptr(false)}, none)
		requireKind(t, apperr.Conflict, err)
	})

	t.Run("stale_if_match_is_precondition_failed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		stale := etag.IfMatch(ptr(etag.Format(ann.Version + 1)))
		_, err := b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{Name: ptr("Anne")}, stale)
		requireKind(t, apperr.PreconditionFailed, err)
		current := etag.IfMatch(ptr(etag.Format(ann.Version)))
		u, err := b.svc.Update(ctx, b.admin, ann.ID, user.UpdateParams{Name: ptr("Anne")}, current)
		require.NoError(t, err)
		require.Equal(t, "Anne", u.Name)
	})

	t.Run("unknown_user_is_not_found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Update(ctx, b.admin, 1_000_000, user.UpdateParams{Name: ptr("Nobody")}, none)
		requireKind(t, apperr.NotFound, err)
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	none := etag.Condition{}

	t.Run("non_admin_is_forbidden", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, annP := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		requireKind(t, apperr.Forbidden, b.svc.Delete(ctx, annP, ann.ID, none))
	})

	t.Run("deleting_yourself_is_conflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireKind(t, apperr.Conflict, b.svc.Delete(ctx, b.admin, b.admin.UserID, none))
	})

	t.Run("unknown_user_is_not_found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireKind(t, apperr.NotFound, b.svc.Delete(ctx, b.admin, 1_000_000, none))
	})

	t.Run("stale_if_match_is_precondition_failed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		requireKind(t, apperr.PreconditionFailed, b.svc.Delete(ctx, b.admin, ann.ID, etag.IfMatch(ptr(etag.Format(ann.Version+1)))))
	})

	t.Run("deleted_user_is_gone_and_cannot_log_in", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ann, _ := b.create(t, "Ann", "ann@example.test", "ann-password", false)
		require.NoError(t, b.svc.Delete(ctx, b.admin, ann.ID, etag.IfMatch(ptr(etag.Format(ann.Version)))))
		_, err := b.svc.Get(ctx, b.admin, ann.ID)
		requireKind(t, apperr.NotFound, err)
		_, err = b.auth.Login(ctx, "ann@example.test", "ann-password")
		requireKind(t, apperr.Unauthorized, err)
	})
}
