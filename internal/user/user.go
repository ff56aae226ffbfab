// Package user implements the user accounts use cases and their authorization rules.
package user

import (
	"context"
	"fmt"
	"strings"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/webhook"
)

// User is a user account. Its credentials are not part of it: only the auth service
// reads password hashes.
type User struct {
	ID        int64
	Name      string
	Email     string
	IsAdmin   bool
	IsActive  bool
	Version   int64 // moves on with every change (the ETag)
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Passwords hashes and checks passwords, and forgets the sessions a password change or
// deactivation ended (the auth service). HashPassword fails only when the random source
// does; CheckPassword only on a malformed stored hash (Internal).
type Passwords interface {
	HashPassword(plain string) (string, error)
	CheckPassword(c auth.Credentials, plain string) (bool, error)
	ForgetSessions(ctx context.Context, ids ...int64)
}

// Service implements the user use cases.
type Service struct {
	store     store
	passwords Passwords
	users     *cache.Entity[auth.Account]
	tasks     invalidator
	agents    invalidator
	events    Events
}

// invalidator drops records from a record cache (a *cache.Entity of any record type).
type invalidator interface {
	Invalidate(ctx context.Context, ids ...int64)
}

// NewService builds a Service over s (a *store.DB).
func NewService(s store, p Passwords) *Service {
	return &Service{store: s, passwords: p}
}

// WithCache makes Get read through the user record cache, and every change invalidate
// the user's record (and, on deletion, the records of the tasks and agents it detaches).
func (s *Service) WithCache(users *cache.Entity[auth.Account], tasks, agents invalidator) *Service {
	s.users, s.tasks, s.agents = users, tasks, agents
	return s
}

// loadAccount reads a user for the record cache.
func (s *Service) loadAccount(ctx context.Context, id int64) (auth.Account, error) {
	return auth.LoadAccount(ctx, s.store, id)
}

// inTx runs fn in one transaction.
func (s *Service) inTx(ctx context.Context, fn func(q txQueries) error) error {
	return s.store.InTx(ctx, func(q db.Querier) error { return fn(q) })
}

// CreateParams are the fields of a new user.
type CreateParams struct {
	Name     string
	Email    string
	Password string
	IsAdmin  bool
}

// Create adds a user. Forbidden unless actor is an admin; Conflict when the email is
// taken in any letter case.
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (User, error) {
	if !actor.IsAdmin {
		return User{}, errAdminRequired
	}
	return s.create(ctx, p)
}

func (s *Service) create(ctx context.Context, p CreateParams) (User, error) {
	if strings.TrimSpace(p.Name) == "" {
		return User{}, errBlankName
	}
	hash, err := s.passwords.HashPassword(p.Password)
	if err != nil {
		return User{}, fmt.Errorf("user: create: %w", err)
	}
	var r db.User
	err = s.inTx(ctx, func(q txQueries) error {
		var err error
		r, err = q.UserCreate(ctx, db.UserCreateParams{
			Name: strings.TrimSpace(p.Name), Email: strings.TrimSpace(p.Email), PasswordHash: hash, IsAdmin: p.IsAdmin,
		})
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "user", ID: &r.ID}); err != nil {
			return err
		}
		return s.emit(ctx, q, webhook.UserCreated, userFromRow(r))
	})
	if apperr.Is(err, apperr.Conflict) {
		return User{}, apperr.Wrap(apperr.Conflict, err, "a user with email %q already exists", p.Email)
	}
	if err != nil {
		return User{}, fmt.Errorf("user: create: %w", err)
	}
	return userFromRow(r), nil
}

// EnsureAdmin creates an administrator with the given email unless a user with that
// email exists; it reports whether it created one. Used by the seed command. A user
// created meanwhile by another seeder counts as existing; other errors are the
// database's (Unavailable when it is down).
func (s *Service) EnsureAdmin(ctx context.Context, email, plain string) (bool, error) {
	_, err := s.store.UserGetByEmail(ctx, email)
	if err == nil {
		return false, nil
	}
	if !apperr.Is(err, apperr.NotFound) {
		return false, fmt.Errorf("user: ensure admin: %w", err)
	}
	_, err = s.create(ctx, CreateParams{Name: "Administrator", Email: email, Password: plain, IsAdmin: true})
	if apperr.Is(err, apperr.Conflict) {
		return false, nil // created concurrently by another seeder
	}
	return err == nil, err
}

var errBlankName = apperr.Validation(apperr.FieldError{Location: "body", Field: "name", Message: "must not be blank"})

var errAdminRequired = apperr.E(apperr.Forbidden, "administrator privileges required")

// Get returns a user. Admins may read anyone; others only themselves (Forbidden).
// NotFound when there is no such user.
func (s *Service) Get(ctx context.Context, actor auth.Principal, id int64) (User, error) {
	if !actor.IsAdmin && actor.UserID != id {
		return User{}, apperr.E(apperr.Forbidden, "you may only read your own account")
	}
	a, err := s.users.Get(ctx, id, s.loadAccount)
	if err != nil {
		return User{}, notFound(err, id)
	}
	return userFromAccount(a), nil
}

// ListParams filter and page a user list.
type ListParams struct {
	Page     page.Request
	Q        *string
	IsActive *bool
	IsAdmin  *bool
}

// List returns a page of users ordered by id, from p.Page's skip or after its cursor.
// Forbidden unless actor is an admin; Invalid for a cursor of other filters.
func (s *Service) List(ctx context.Context, actor auth.Principal, p ListParams) (page.Page[User], error) {
	if !actor.IsAdmin {
		return page.Page[User]{}, errAdminRequired
	}
	var q *string
	if p.Q != nil {
		escaped := page.EscapeLike(*p.Q)
		q = &escaped
	}
	filter := page.Fingerprint(deref(p.Q), optBool(p.IsActive), optBool(p.IsAdmin))
	cur, err := page.ParseCursor(p.Page, listSort, filter)
	if err != nil {
		return page.Page[User]{}, err
	}
	pos, afterID := int64(p.Page.Skip), int64(0)
	if cur != nil {
		pos, afterID = cur.Pos, cur.ID
	}
	// Count and page in one statement; only a page past the end needs a second one for
	// the total. Without filters the statement is prepared once and planned generically.
	var rows []db.User
	var total int64
	if q == nil && p.IsActive == nil && p.IsAdmin == nil {
		var res []db.UserPageRow
		res, err = s.store.UserPage(ctx, db.UserPageParams{AfterID: afterID, SkipRows: p.Page.Skip, MaxRows: p.Page.Limit + 1})
		for _, r := range res {
			rows, total = append(rows, r.User), r.Total
		}
	} else {
		var res []db.UserPageFilteredRow
		res, err = s.store.UserPageFiltered(ctx, db.UserPageFilteredParams{
			Q: q, IsActive: p.IsActive, IsAdmin: p.IsAdmin, AfterID: afterID, SkipRows: p.Page.Skip, MaxRows: p.Page.Limit + 1,
		})
		for _, r := range res {
			rows, total = append(rows, r.User), r.Total
		}
	}
	if err == nil && len(rows) == 0 && pos > 0 {
		total, err = s.store.UserCount(ctx, db.UserCountParams{Q: q, IsActive: p.IsActive, IsAdmin: p.IsAdmin})
	}
	if err != nil {
		return page.Page[User]{}, fmt.Errorf("user: list: %w", err)
	}
	items := make([]User, len(rows))
	for i, r := range rows {
		items[i] = userFromRow(r)
	}
	return page.NewKeyset(items, total, p.Page, pos, func(last User) page.Cursor {
		return page.Cursor{Sort: listSort, Filter: filter, ID: last.ID}
	}), nil
}

// listSort is the user list's only order, which its cursors name.
const listSort = "id"

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return "=" + *s
}

func optBool(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "true"
	}
	return "false"
}

// UpdateParams are the fields to change; nil leaves a field as it is.
type UpdateParams struct {
	Name            *string
	Email           *string
	Password        *string
	CurrentPassword *string
	IsAdmin         *bool
	IsActive        *bool
}

// Update changes a user. Non-admins may change only themselves, only name, email and
// password (the last two need the current password: ErrWrongCurrentPassword when it is
// wrong), and get Forbidden for is_admin or is_active. A new password or a deactivation
// ends every session of the user. Nobody can demote or deactivate themselves
// (Conflict). PreconditionFailed when ifMatch does not match; NotFound, Conflict (email
// taken) as usual.
func (s *Service) Update(ctx context.Context, actor auth.Principal, id int64, p UpdateParams, ifMatch etag.Condition) (User, error) {
	if !actor.IsAdmin {
		if actor.UserID != id {
			return User{}, errAdminRequired
		}
		if p.IsAdmin != nil || p.IsActive != nil {
			return User{}, apperr.E(apperr.Forbidden, "only administrators may set is_admin or is_active")
		}
	}
	if p.Name != nil && strings.TrimSpace(*p.Name) == "" {
		return User{}, errBlankName
	}
	if actor.UserID == id && ((p.IsAdmin != nil && !*p.IsAdmin && actor.IsAdmin) || (p.IsActive != nil && !*p.IsActive)) {
		return User{}, apperr.E(apperr.Conflict, "you cannot demote or deactivate yourself")
	}
	var newHash *string
	if p.Password != nil {
		h, err := s.passwords.HashPassword(*p.Password)
		if err != nil {
			return User{}, fmt.Errorf("user: update: %w", err)
		}
		newHash = &h
	}
	var (
		updated db.User
		ended   []int64
	)
	err := s.inTx(ctx, func(q txQueries) error {
		cur, err := q.UserGetByIDForUpdate(ctx, id)
		if err != nil {
			return notFound(err, id)
		}
		if !ifMatch.Allows(cur.Version) {
			return errChanged
		}
		selfSensitive := actor.UserID == id && (p.Password != nil || (p.Email != nil && !strings.EqualFold(*p.Email, cur.Email)))
		if selfSensitive {
			if p.CurrentPassword == nil {
				return apperr.Validation(apperr.FieldError{Location: "body", Field: "current_password", Message: "required to change your email or password"})
			}
			ok, err := s.passwords.CheckPassword(auth.CredentialsFromRow(cur), *p.CurrentPassword)
			if err != nil {
				return err
			}
			if !ok {
				return ErrWrongCurrentPassword
			}
		}
		// A new password or a deactivation ends every session, the caller's included:
		// the token generation moves on (refusing every access token issued before, also
		// after a later reactivation) and every refresh-token family is revoked.
		endSessions := newHash != nil || (p.IsActive != nil && !*p.IsActive)
		var name, email *string
		if p.Name != nil {
			v := strings.TrimSpace(*p.Name)
			name = &v
		}
		if p.Email != nil {
			v := strings.TrimSpace(*p.Email)
			email = &v
		}
		updated, err = q.UserUpdate(ctx, db.UserUpdateParams{
			Name: name, Email: email, PasswordHash: newHash, IsAdmin: p.IsAdmin, IsActive: p.IsActive,
			EndSessions: endSessions, ID: id, Version: cur.Version,
		})
		if apperr.Is(err, apperr.Conflict) {
			return apperr.Wrap(apperr.Conflict, err, "a user with email %q already exists", *p.Email)
		}
		if err != nil {
			return err
		}
		if endSessions {
			if ended, err = auth.EndUserSessions(ctx, q, id); err != nil {
				return err
			}
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "user", ID: &id, Changes: diff(cur, updated, newHash != nil)})
	})
	if err != nil {
		return User{}, fmt.Errorf("user: update: %w", err)
	}
	s.users.Invalidate(ctx, id)
	s.passwords.ForgetSessions(ctx, ended...)
	return userFromRow(updated), nil
}

// ErrWrongCurrentPassword is the Invalid error of an update whose current_password is
// wrong; the HTTP layer counts it as a failed password attempt.
var ErrWrongCurrentPassword = apperr.Validation(apperr.FieldError{Location: "body", Field: "current_password", Message: "is not your current password"})

var errChanged = apperr.E(apperr.PreconditionFailed, "the user has changed since the ETag in If-Match; fetch it again")

// Delete removes a user. Forbidden unless actor is an admin; Conflict for yourself;
// NotFound; PreconditionFailed when ifMatch does not match.
func (s *Service) Delete(ctx context.Context, actor auth.Principal, id int64, ifMatch etag.Condition) error {
	if !actor.IsAdmin {
		return errAdminRequired
	}
	if actor.UserID == id {
		return apperr.E(apperr.Conflict, "you cannot delete yourself")
	}
	var detached, detachedAgents []int64
	err := s.inTx(ctx, func(q txQueries) error {
		cur, err := q.UserGetByIDForUpdate(ctx, id)
		if err != nil {
			return notFound(err, id)
		}
		if !ifMatch.Allows(cur.Version) {
			return errChanged
		}
		// The foreign keys would null these references too, but silently: detach them
		// here so every changed task and agent gets a new version (and ETag).
		if detached, err = q.TaskDetachUser(ctx, id); err != nil {
			return err
		}
		if detachedAgents, err = q.AgentDetachUser(ctx, id); err != nil {
			return err
		}
		if _, err = q.UserDelete(ctx, db.UserDeleteParams{ID: id, Version: &cur.Version}); err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "user", ID: &id}); err != nil {
			return err
		}
		return s.emit(ctx, q, webhook.UserDeleted, userFromRow(cur))
	})
	if err != nil {
		return fmt.Errorf("user: delete: %w", err)
	}
	s.users.Invalidate(ctx, id)
	invalidate(ctx, s.tasks, detached)
	invalidate(ctx, s.agents, detachedAgents)
	return nil
}

func notFound(err error, id int64) error {
	if apperr.Is(err, apperr.NotFound) {
		return apperr.Wrap(apperr.NotFound, err, "user %d not found", id)
	}
	return err
}

// invalidate drops ids from c, when there is a cache.
func invalidate(ctx context.Context, c invalidator, ids []int64) {
	if c != nil {
		c.Invalidate(ctx, ids...)
	}
}

// diff is the audit record of an update: each changed field, from and to. A new password
// shows as changed, never its value or hash.
func diff(a, b db.User, passwordChanged bool) audit.Changes {
	c := audit.Changes{}
	c.Set("name", a.Name, b.Name)
	c.Set("email", a.Email, b.Email)
	c.Set("is_admin", a.IsAdmin, b.IsAdmin)
	c.Set("is_active", a.IsActive, b.IsActive)
	if passwordChanged {
		c["password"] = audit.Change{From: "[redacted]", To: "[redacted]"}
	}
	return c
}
