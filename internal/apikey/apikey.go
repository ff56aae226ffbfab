// Package apikey issues, lists and revokes API keys, and authenticates the requests made
// with them. A key is a long random secret ("eak_" and 43 url-safe characters) that a
// machine client sends instead of a password session; only its SHA-256 hash is stored (a
// key carries 256 random bits, so a fast hash is enough), and its first 12 characters
// name it afterwards. A key acts for its owner, narrowed to its scopes.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/page"
)

// Scopes are the scopes a key may hold, as the contract's x-required-scope names them.
var Scopes = []string{
	"users:read", "users:write", "tasks:read", "tasks:write", "agents:read", "agents:write",
	"runs:read", "runs:write", "webhooks:read", "webhooks:write", "audit:read",
}

// Prefix starts every key, so that a leaked one is recognisable (in logs, by secret
// scanners) and a request can tell a key from an access token.
const Prefix = "eak_"

// prefixLen is how many leading characters of a key are kept to name it.
const prefixLen = 12

// secretBytes is the randomness of a key; base64url without padding makes 43 characters.
const secretBytes = 32

var keyLen = len(Prefix) + base64.RawURLEncoding.EncodedLen(secretBytes)

// touchEvery is how often a key's last_used_at is written at most.
const touchEvery = time.Minute

// Key is an API key as its owner sees it: never the secret, which is shown once, at
// creation.
type Key struct {
	ID         int64
	UserID     int64
	Name       string
	Prefix     string
	Scopes     []string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Created is a new key with its secret, which is never shown again.
type Created struct {
	Key
	Secret string
}

// Accounts gives the account of a user acting now; auth.Service is one. It returns
// Unauthorized for a deleted or inactive user.
type Accounts interface {
	ActiveAccount(ctx context.Context, id int64) (auth.Account, error)
}

// Service manages API keys and authenticates requests made with them.
type Service struct {
	store    store
	accounts Accounts
	keys     *cache.Entity[Key]
	ids      *cache.Bounded[string, int64] // key hash → key id; the pair never changes
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	touched map[int64]time.Time // when this instance last wrote a key's last_used_at
}

// NewService builds a Service over s (a *store.DB) that checks key owners with accounts.
func NewService(s store, accounts Accounts, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store: s, accounts: accounts, log: log, now: time.Now,
		ids:     cache.NewBounded[string, int64](10_000),
		touched: map[int64]time.Time{},
	}
}

// WithCache caches key records between requests (nil: none); revocation invalidates
// them, on every instance. It returns s.
func (s *Service) WithCache(keys *cache.Entity[Key]) *Service {
	s.keys = keys
	return s
}

// CreateParams are the fields of a new key.
type CreateParams struct {
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
}

var errPasswordSession = apperr.E(apperr.Forbidden, "API keys are managed with a password session, not with an API key")

// Create issues a key for the actor. Forbidden when the actor is itself an API key;
// Invalid for an empty or too long name, no scopes, unknown or repeated scopes, or an
// expiry that is not in the future.
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (Created, error) {
	if actor.APIKeyID != 0 {
		return Created{}, errPasswordSession
	}
	var fields []apperr.FieldError
	if n := len([]rune(p.Name)); n < 1 || n > 100 || strings.TrimSpace(p.Name) == "" {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "name", Message: "must be 1 to 100 characters"})
	}
	if len(p.Scopes) == 0 {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "scopes", Message: "must name at least one scope"})
	}
	for i, sc := range p.Scopes {
		switch {
		case !slices.Contains(Scopes, sc):
			fields = append(fields, apperr.FieldError{Location: "body", Field: fmt.Sprintf("scopes.%d", i),
				Message: fmt.Sprintf("unknown scope %q; want one of %s", sc, strings.Join(Scopes, ", "))})
		case slices.Index(p.Scopes, sc) != i:
			fields = append(fields, apperr.FieldError{Location: "body", Field: fmt.Sprintf("scopes.%d", i),
				Message: fmt.Sprintf("scope %q is listed twice", sc)})
		}
	}
	if p.ExpiresAt != nil && !p.ExpiresAt.After(s.now()) {
		fields = append(fields, apperr.FieldError{Location: "body", Field: "expires_at", Message: "must be in the future"})
	}
	if len(fields) > 0 {
		return Created{}, apperr.Validation(fields...)
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return Created{}, apperr.Wrap(apperr.Internal, err, "apikey: random key")
	}
	secret := Prefix + base64.RawURLEncoding.EncodeToString(raw)
	var row db.ApiKey
	err := s.store.InTx(ctx, func(q db.Querier) error {
		var err error
		row, err = q.APIKeyCreate(ctx, db.APIKeyCreateParams{
			UserID: actor.UserID, Name: p.Name, Prefix: secret[:prefixLen], KeyHash: hash(secret),
			Scopes: p.Scopes, ExpiresAt: p.ExpiresAt,
		})
		if err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "api_key", ID: &row.ID})
	})
	if err != nil {
		return Created{}, fmt.Errorf("apikey: create: %w", err)
	}
	return Created{Key: keyFromRow(row), Secret: secret}, nil
}

// ListParams filter a list of keys.
type ListParams struct {
	Page   page.Request
	UserID *int64 // administrators only; nil lists the actor's own keys
}

// List returns a page of keys, newest first: the actor's own, or (administrators only)
// another user's. Forbidden when the actor is an API key, or not an administrator and
// asks for another user's keys.
func (s *Service) List(ctx context.Context, actor auth.Principal, p ListParams) (page.Page[Key], error) {
	if actor.APIKeyID != 0 {
		return page.Page[Key]{}, errPasswordSession
	}
	owner := actor.UserID
	if p.UserID != nil {
		if *p.UserID != actor.UserID && !actor.IsAdmin {
			return page.Page[Key]{}, apperr.E(apperr.Forbidden, "only administrators list other users' API keys")
		}
		owner = *p.UserID
	}
	var rows []db.ApiKey
	total, err := s.store.APIKeyCount(ctx, &owner)
	if err == nil && total > int64(p.Page.Skip) {
		rows, err = s.store.APIKeyList(ctx, db.APIKeyListParams{UserID: &owner, SkipRows: p.Page.Skip, MaxRows: p.Page.Limit})
	}
	if err != nil {
		return page.Page[Key]{}, fmt.Errorf("apikey: list: %w", err)
	}
	items := make([]Key, len(rows))
	for i, r := range rows {
		items[i] = keyFromRow(r)
	}
	return page.New(items, total, p.Page), nil
}

// Get returns one key: the actor's own, or any for an administrator. NotFound for a key
// that does not exist or is someone else's; Forbidden when the actor is an API key.
func (s *Service) Get(ctx context.Context, actor auth.Principal, id int64) (Key, error) {
	if actor.APIKeyID != 0 {
		return Key{}, errPasswordSession
	}
	row, err := s.store.APIKeyGetByID(ctx, id)
	if err == nil && row.UserID != actor.UserID && !actor.IsAdmin {
		err = apperr.E(apperr.NotFound, "API key not found")
	}
	if err != nil {
		return Key{}, fmt.Errorf("apikey: get: %w", err)
	}
	return keyFromRow(row), nil
}

// Revoke ends a key: from the next request on, on every instance, it is refused.
// Revoking a revoked key changes nothing. NotFound and Forbidden as Get.
func (s *Service) Revoke(ctx context.Context, actor auth.Principal, id int64) error {
	if _, err := s.Get(ctx, actor, id); err != nil {
		return err
	}
	err := s.store.InTx(ctx, func(q db.Querier) error {
		before, err := q.APIKeyGetByID(ctx, id)
		if err != nil {
			return err
		}
		after, err := q.APIKeyRevoke(ctx, id)
		if err != nil {
			return err
		}
		changes := audit.Changes{}
		if before.RevokedAt == nil {
			changes.Set("revoked_at", nil, after.RevokedAt)
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "api_key", ID: &id, Changes: changes})
	})
	if err != nil {
		return fmt.Errorf("apikey: revoke: %w", err)
	}
	s.keys.Invalidate(ctx, id)
	return nil
}

// IsKey reports whether a credential looks like an API key (rather than an access token).
func IsKey(credential string) bool { return strings.HasPrefix(credential, Prefix) }

var errUnknownKey = apperr.E(apperr.Unauthorized, "invalid API key")

// Authenticate returns the principal of a request made with an API key: its owner,
// narrowed to the key's scopes. Unauthorized for a malformed, unknown, revoked or expired
// key and for a key whose owner is deleted or inactive; Unavailable when the database is
// down.
func (s *Service) Authenticate(ctx context.Context, secret string) (auth.Principal, error) {
	if !wellFormed(secret) {
		return auth.Principal{}, apperr.E(apperr.Unauthorized, "malformed API key: want %s followed by %d url-safe characters", Prefix, keyLen-len(Prefix))
	}
	h := hash(secret)
	id, ok := s.ids.Get(string(h))
	if !ok {
		var err error
		id, err = s.store.APIKeyIDByHash(ctx, h)
		if apperr.Is(err, apperr.NotFound) {
			return auth.Principal{}, errUnknownKey
		}
		if err != nil {
			return auth.Principal{}, fmt.Errorf("apikey: authenticate: %w", err)
		}
		s.ids.Put(string(h), id)
	}
	k, err := s.keys.Get(ctx, id, s.load)
	if apperr.Is(err, apperr.NotFound) { // deleted with its owner
		return auth.Principal{}, errUnknownKey
	}
	if err != nil {
		return auth.Principal{}, fmt.Errorf("apikey: authenticate: %w", err)
	}
	now := s.now()
	if k.RevokedAt != nil {
		return auth.Principal{}, apperr.E(apperr.Unauthorized, "the API key has been revoked")
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return auth.Principal{}, apperr.E(apperr.Unauthorized, "the API key has expired")
	}
	u, err := s.accounts.ActiveAccount(ctx, k.UserID)
	if err != nil {
		return auth.Principal{}, err
	}
	s.touch(k.ID, now)
	return auth.Principal{UserID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin, APIKeyID: k.ID, Scopes: k.Scopes}, nil
}

// touch records a key's use at most once a minute per instance, in the background: the
// request does not wait for the write, and the statement itself skips keys used less
// than a minute ago (by any instance).
func (s *Service) touch(id int64, now time.Time) {
	s.mu.Lock()
	last, ok := s.touched[id]
	if ok && now.Sub(last) < touchEvery {
		s.mu.Unlock()
		return
	}
	s.touched[id] = now
	if len(s.touched) > 10_000 { // forget old uses rather than grow without bound
		for k, t := range s.touched {
			if now.Sub(t) >= touchEvery {
				delete(s.touched, k)
			}
		}
	}
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.store.APIKeyTouch(ctx, id); err != nil {
			s.log.Warn("recording an API key's use failed", "api_key_id", id, "error", err.Error())
		}
	}()
}

// load reads a key for the key record cache.
func (s *Service) load(ctx context.Context, id int64) (Key, error) {
	r, err := s.store.APIKeyGetByID(ctx, id)
	if err != nil {
		return Key{}, err
	}
	return keyFromRow(r), nil
}

// wellFormed reports whether secret has the shape of a key.
func wellFormed(secret string) bool {
	if len(secret) != keyLen || !strings.HasPrefix(secret, Prefix) {
		return false
	}
	for i := len(Prefix); i < len(secret); i++ {
		switch c := secret[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
