package apikey

import (
	"context"

	"enterprise-automation/gen/db"
)

// queries are the queries the service runs.
type queries interface {
	APIKeyCreate(ctx context.Context, arg db.APIKeyCreateParams) (db.ApiKey, error)
	APIKeyGetByID(ctx context.Context, id int64) (db.ApiKey, error)
	APIKeyIDByHash(ctx context.Context, keyHash []byte) (int64, error)
	APIKeyList(ctx context.Context, arg db.APIKeyListParams) ([]db.ApiKey, error)
	APIKeyCount(ctx context.Context, userID *int64) (int64, error)
	APIKeyRevoke(ctx context.Context, id int64) (db.ApiKey, error)
	APIKeyTouch(ctx context.Context, id int64) error
}

// store is what the service needs of the database; store.DB is one. Creating and
// revoking a key write their audit event in the same transaction.
type store interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// keyFromRow maps a stored key to a Key, leaving its hash behind.
func keyFromRow(r db.ApiKey) Key {
	return Key{
		ID: r.ID, UserID: r.UserID, Name: r.Name, Prefix: r.Prefix, Scopes: r.Scopes,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
	}
}
