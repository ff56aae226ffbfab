package user

import (
	"context"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/webhook"
)

// queries are the queries the service runs outside its transactions.
type queries interface {
	UserCreate(ctx context.Context, arg db.UserCreateParams) (db.User, error)
	UserGetByID(ctx context.Context, id int64) (db.User, error)
	UserGetByEmail(ctx context.Context, email string) (db.User, error)
	UserCount(ctx context.Context, arg db.UserCountParams) (int64, error)
	UserList(ctx context.Context, arg db.UserListParams) ([]db.User, error)
	UserPage(ctx context.Context, arg db.UserPageParams) ([]db.UserPageRow, error)
	UserPageFiltered(ctx context.Context, arg db.UserPageFilteredParams) ([]db.UserPageFilteredRow, error)
}

// txQueries are the queries the service runs in its transactions.
type txQueries interface {
	auth.SessionQueries // auth.EndUserSessions
	UserGetByIDForUpdate(ctx context.Context, id int64) (db.User, error)
	UserUpdate(ctx context.Context, arg db.UserUpdateParams) (db.User, error)
	UserDelete(ctx context.Context, arg db.UserDeleteParams) (int64, error)
	UserCreate(ctx context.Context, arg db.UserCreateParams) (db.User, error)
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
	TaskDetachUser(ctx context.Context, userID int64) ([]int64, error)
	AgentDetachUser(ctx context.Context, userID int64) ([]int64, error)
	webhook.Outbox
}

// store is what the service needs of the database: its queries, and transactions whose
// db.Querier it uses as txQueries (InTx commits when fn returns nil and rolls back
// otherwise). store.DB is one.
type store interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// userFromRow maps a stored user to a User, leaving its credentials behind.
func userFromRow(r db.User) User {
	return User{
		ID: r.ID, Name: r.Name, Email: r.Email, IsAdmin: r.IsAdmin, IsActive: r.IsActive,
		Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// userFromAccount maps an account from the user record cache to a User.
func userFromAccount(a auth.Account) User {
	return User{
		ID: a.ID, Name: a.Name, Email: a.Email, IsAdmin: a.IsAdmin, IsActive: a.IsActive,
		Version: a.Version, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}
