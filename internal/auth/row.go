package auth

import (
	"context"

	"github.com/google/uuid"

	"enterprise-automation/gen/db"
)

// queries are the queries the service runs, in or out of a transaction.
type queries interface {
	UserGetByEmail(ctx context.Context, email string) (db.User, error)
	UserGetByID(ctx context.Context, id int64) (db.User, error)
	SessionCreate(ctx context.Context, arg db.SessionCreateParams) (db.Session, error)
	SessionGetByID(ctx context.Context, id int64) (db.Session, error)
	SessionGetByFamilyForUpdate(ctx context.Context, familyID uuid.UUID) (db.Session, error)
	SessionRevoke(ctx context.Context, familyID uuid.UUID) ([]int64, error)
	RefreshTokenCreate(ctx context.Context, arg db.RefreshTokenCreateParams) error
	RefreshTokenGetByHashForUpdate(ctx context.Context, tokenHash []byte) (db.RefreshToken, error)
	RefreshTokenMarkUsed(ctx context.Context, id int64) error
	RefreshTokenRevokeFamily(ctx context.Context, familyID uuid.UUID) error
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
}

// store is what the service needs of the database: its queries, and transactions (InTx
// commits when fn returns nil and rolls back otherwise). store.DB is one.
type store interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// AccountQueries is the query LoadAccount reads an account with.
type AccountQueries interface {
	UserGetByID(ctx context.Context, id int64) (db.User, error)
}

// LoadAccount reads a user's account from the database: the loader of the user record
// cache. NotFound when there is no such user; Unavailable when the database is down.
func LoadAccount(ctx context.Context, q AccountQueries, id int64) (Account, error) {
	r, err := q.UserGetByID(ctx, id)
	if err != nil {
		return Account{}, err
	}
	return accountFromRow(r), nil
}

// CredentialsFromRow returns the credentials of a user row, for CheckPassword.
func CredentialsFromRow(r db.User) Credentials {
	return Credentials{Account: accountFromRow(r), passwordHash: r.PasswordHash}
}

// SessionQueries are the queries EndUserSessions runs.
type SessionQueries interface {
	RefreshTokenRevokeUser(ctx context.Context, userID int64) error
	SessionRevokeUser(ctx context.Context, userID int64) ([]int64, error)
}

func accountFromRow(r db.User) Account {
	return Account{
		ID: r.ID, Name: r.Name, Email: r.Email, IsAdmin: r.IsAdmin, IsActive: r.IsActive,
		Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, TokenGeneration: r.TokenGeneration,
	}
}

func sessionFromRow(r db.Session) Session {
	return Session{ID: r.ID, FamilyID: r.FamilyID, UserID: r.UserID, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt}
}
