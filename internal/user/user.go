// Package user implements the user accounts use cases and their authorization rules.
package user

import (
	"context"
	"fmt"
	"strings"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/agent"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/store"
)

// Passwords hashes and checks passwords, and forgets the sessions a password change or
// deactivation ended (the auth service).
type Passwords interface {
	HashPassword(plain string) (string, error)
	CheckPassword(u db.User, plain string) (bool, error)
	ForgetSessions(ctx context.Context, ids ...int64)
}

// Service implements the user use cases.
type Service struct {
	store     store.Store
	passwords Passwords
	users     *cache.Entity[db.User]
	tasks     *cache.Entity[db.Task]
	agents    *cache.Entity[agent.Agent]
}

// NewService builds a Service.
func NewService(s store.Store, p Passwords) *Service {
	return &Service{store: s, passwords: p}
}

// WithCache makes Get read through the user record cache, and every change invalidate
// the user's record (and, on deletion, the records of the tasks and agents it detaches).
func (s *Service) WithCache(users *cache.Entity[db.User], tasks *cache.Entity[db.Task], agents *cache.Entity[agent.Agent]) *Service {
	s.users, s.tasks, s.agents = users, tasks, agents
	return s
}

// loadUser reads a user for the cache, without its password hash.
func (s *Service) loadUser(ctx context.Context, id int64) (db.User, error) {
	u, err := s.store.UserGetByID(ctx, id)
	u.PasswordHash = ""
	return u, err
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
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (db.User, error) {
	if !actor.IsAdmin {
		return db.User{}, errAdminRequired
	}
	return s.create(ctx, p)
}

func (s *Service) create(ctx context.Context, p CreateParams) (db.User, error) {
	if strings.TrimSpace(p.Name) == "" {
		return db.User{}, errBlankName
	}
	hash, err := s.passwords.HashPassword(p.Password)
	if err != nil {
		return db.User{}, fmt.Errorf("user: create: %w", err)
	}
	u, err := s.store.UserCreate(ctx, db.UserCreateParams{
		Name: strings.TrimSpace(p.Name), Email: strings.TrimSpace(p.Email), PasswordHash: hash, IsAdmin: p.IsAdmin,
	})
	if apperr.Is(err, apperr.Conflict) {
		return db.User{}, apperr.Wrap(apperr.Conflict, err, "a user with email %q already exists", p.Email)
	}
	if err != nil {
		return db.User{}, fmt.Errorf("user: create: %w", err)
	}
	return u, nil
}

// EnsureAdmin creates an administrator with the given email unless a user with that
// email exists; it reports whether it created one. Used by the seed command.
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
func (s *Service) Get(ctx context.Context, actor auth.Principal, id int64) (db.User, error) {
	if !actor.IsAdmin && actor.UserID != id {
		return db.User{}, apperr.E(apperr.Forbidden, "you may only read your own account")
	}
	u, err := s.users.Get(ctx, id, s.loadUser)
	if err != nil {
		return db.User{}, notFound(err, id)
	}
	return u, nil
}

// ListParams filter and page a user list.
type ListParams struct {
	Page     page.Request
	Q        *string
	IsActive *bool
	IsAdmin  *bool
}

// List returns a page of users. Forbidden unless actor is an admin.
func (s *Service) List(ctx context.Context, actor auth.Principal, p ListParams) (page.Page[db.User], error) {
	if !actor.IsAdmin {
		return page.Page[db.User]{}, errAdminRequired
	}
	var q *string
	if p.Q != nil {
		escaped := page.EscapeLike(*p.Q)
		q = &escaped
	}
	var items []db.User
	// Count and page are two statements with their own snapshots (as they would be in a
	// read-committed transaction, minus its two round trips).
	total, err := s.store.UserCount(ctx, db.UserCountParams{Q: q, IsActive: p.IsActive, IsAdmin: p.IsAdmin})
	if err == nil && total > int64(p.Page.Skip) {
		items, err = s.store.UserList(ctx, db.UserListParams{
			Q: q, IsActive: p.IsActive, IsAdmin: p.IsAdmin, SkipRows: p.Page.Skip, MaxRows: p.Page.Limit,
		})
	}
	if err != nil {
		return page.Page[db.User]{}, fmt.Errorf("user: list: %w", err)
	}
	return page.New(items, total, p.Page), nil
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
func (s *Service) Update(ctx context.Context, actor auth.Principal, id int64, p UpdateParams, ifMatch etag.Condition) (db.User, error) {
	if !actor.IsAdmin {
		if actor.UserID != id {
			return db.User{}, errAdminRequired
		}
		if p.IsAdmin != nil || p.IsActive != nil {
			return db.User{}, apperr.E(apperr.Forbidden, "only administrators may set is_admin or is_active")
		}
	}
	if p.Name != nil && strings.TrimSpace(*p.Name) == "" {
		return db.User{}, errBlankName
	}
	if actor.UserID == id && ((p.IsAdmin != nil && !*p.IsAdmin && actor.IsAdmin) || (p.IsActive != nil && !*p.IsActive)) {
		return db.User{}, apperr.E(apperr.Conflict, "you cannot demote or deactivate yourself")
	}
	var newHash *string
	if p.Password != nil {
		h, err := s.passwords.HashPassword(*p.Password)
		if err != nil {
			return db.User{}, fmt.Errorf("user: update: %w", err)
		}
		newHash = &h
	}
	var (
		updated db.User
		ended   []int64
	)
	err := s.store.InTx(ctx, func(q db.Querier) error {
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
			ok, err := s.passwords.CheckPassword(cur, *p.CurrentPassword)
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
			ended, err = auth.EndUserSessions(ctx, q, id)
			return err
		}
		return nil
	})
	if err != nil {
		return db.User{}, fmt.Errorf("user: update: %w", err)
	}
	s.users.Invalidate(ctx, id)
	s.passwords.ForgetSessions(ctx, ended...)
	return updated, nil
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
	err := s.store.InTx(ctx, func(q db.Querier) error {
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
		_, err = q.UserDelete(ctx, db.UserDeleteParams{ID: id, Version: &cur.Version})
		return err
	})
	if err != nil {
		return fmt.Errorf("user: delete: %w", err)
	}
	s.users.Invalidate(ctx, id)
	s.tasks.Invalidate(ctx, detached...)
	s.agents.Invalidate(ctx, detachedAgents...)
	return nil
}

func notFound(err error, id int64) error {
	if apperr.Is(err, apperr.NotFound) {
		return apperr.Wrap(apperr.NotFound, err, "user %d not found", id)
	}
	return err
}
