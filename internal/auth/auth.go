// Package auth logs users in, issues and verifies access tokens (JWT), rotates opaque
// refresh tokens with reuse detection, and carries the authenticated principal through
// a request's context.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID  int64
	Email   string
	IsAdmin bool
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenPair is what a login or refresh returns.
type TokenPair struct {
	AccessToken  string
	ExpiresIn    time.Duration
	RefreshToken string
}

// Options configures a Service.
type Options struct {
	Secret     []byte
	Algorithm  string // HS256, HS384 or HS512
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Password   password.Params
	Now        func() time.Time // defaults to time.Now
	// Users caches the principal's user record between requests (nil: none); the user
	// service invalidates it on every change, so deactivation and deletion apply at once.
	Users *cache.Entity[db.User]
}

// Service implements login, refresh, logout and token verification.
type Service struct {
	store     store.Store
	opts      Options
	method    jwt.SigningMethod
	parser    *jwt.Parser
	dummyHash string // verified against when the email is unknown, so both paths cost the same
	verified  verifiedTokens
}

// verifiedTokens remembers access tokens whose signature and claims were verified, so a
// client's every request does not pay for decoding and verifying the same token again.
// Only the exact token string verified is remembered, with its validity window, which is
// checked on every use; the user behind it is still loaded (or read from the record
// cache) on every request.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	userID    int64
	notBefore time.Time
	expiresAt time.Time
}

// maxVerifiedTokens bounds the memory of verifiedTokens (about 300 bytes per token).
const maxVerifiedTokens = 10_000

func (v *verifiedTokens) get(token string, now time.Time) (int64, bool) {
	v.mu.Lock()
	t, ok := v.m[token]
	v.mu.Unlock()
	if !ok || now.Before(t.notBefore) || !now.Before(t.expiresAt) {
		return 0, false
	}
	return t.userID, true
}

func (v *verifiedTokens) put(token string, t verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]verifiedToken)
	}
	if len(v.m) >= maxVerifiedTokens {
		for k := range v.m { // forget an arbitrary eighth
			delete(v.m, k)
			if len(v.m) <= maxVerifiedTokens*7/8 {
				break
			}
		}
	}
	v.m[token] = t
}

const issuer = "enterprise-automation"

// refreshPrefix marks our refresh tokens so a leaked one is recognisable in secret scanners.
const refreshPrefix = "rt_"

// NewService builds a Service. It fails on an unsupported algorithm or an empty secret.
func NewService(s store.Store, opts Options) (*Service, error) {
	method := jwt.GetSigningMethod(opts.Algorithm)
	switch opts.Algorithm {
	case "HS256", "HS384", "HS512":
	default:
		return nil, fmt.Errorf("auth: unsupported algorithm %q", opts.Algorithm)
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("auth: empty secret")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Password == (password.Params{}) {
		opts.Password = password.DefaultParams
	}
	dummy, err := password.Hash("not a real password", opts.Password)
	if err != nil {
		return nil, err
	}
	return &Service{
		store:  s,
		opts:   opts,
		method: method,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{opts.Algorithm}),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(opts.Now),
		),
		dummyHash: dummy,
	}, nil
}

// HashPassword hashes a new password with the service's parameters.
func (s *Service) HashPassword(plain string) (string, error) {
	return password.Hash(plain, s.opts.Password)
}

// CheckPassword reports whether plain is the user's password. Internal errors only.
func (s *Service) CheckPassword(u db.User, plain string) (bool, error) {
	ok, err := password.Verify(u.PasswordHash, plain)
	if err != nil {
		return false, apperr.Wrap(apperr.Internal, err, "auth: stored password hash of user %d", u.ID)
	}
	return ok, nil
}

var errBadCredentials = apperr.E(apperr.Unauthorized, "incorrect email or password")

// Login checks an email and password and starts a new refresh-token family. Unknown
// email, wrong password and inactive user all return the same Unauthorized error.
func (s *Service) Login(ctx context.Context, email, plain string) (TokenPair, error) {
	if !utf8.ValidString(email) || strings.ContainsRune(email, 0) {
		// No such address can exist; answer exactly like an unknown email.
		_, _ = password.Verify(s.dummyHash, plain)
		return TokenPair{}, errBadCredentials
	}
	u, err := s.store.UserGetByEmail(ctx, email)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return TokenPair{}, fmt.Errorf("auth: login: %w", err)
	}
	if err != nil {
		_, _ = password.Verify(s.dummyHash, plain)
		return TokenPair{}, errBadCredentials
	}
	ok, err := s.CheckPassword(u, plain)
	if err != nil {
		return TokenPair{}, err
	}
	if !ok || !u.IsActive {
		return TokenPair{}, errBadCredentials
	}
	return s.issue(ctx, s.store, u, uuid.New())
}

// Refresh rotates a refresh token: the presented one is spent and a new pair returned.
// Presenting a token that was already rotated or revoked revokes its whole family and
// returns Unauthorized; so do unknown and expired tokens and inactive users.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	var (
		pair  TokenPair
		reuse bool
	)
	err := s.store.InTx(ctx, func(q db.Querier) error {
		rt, err := q.RefreshTokenGetByHashForUpdate(ctx, hashToken(token))
		if apperr.Is(err, apperr.NotFound) {
			return apperr.E(apperr.Unauthorized, "invalid refresh token")
		}
		if err != nil {
			return err
		}
		if rt.UsedAt != nil || rt.RevokedAt != nil {
			reuse = true
			return q.RefreshTokenRevokeFamily(ctx, rt.FamilyID)
		}
		if !s.opts.Now().Before(rt.ExpiresAt) {
			return apperr.E(apperr.Unauthorized, "the refresh token has expired")
		}
		u, err := q.UserGetByID(ctx, rt.UserID)
		if err != nil {
			return err
		}
		if !u.IsActive {
			return apperr.E(apperr.Unauthorized, "the account is inactive")
		}
		if err := q.RefreshTokenMarkUsed(ctx, rt.ID); err != nil {
			return err
		}
		pair, err = s.issue(ctx, q, u, rt.FamilyID)
		return err
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: refresh: %w", err)
	}
	if reuse {
		return TokenPair{}, apperr.E(apperr.Unauthorized, "the refresh token was already used; every session from that login has been revoked")
	}
	return pair, nil
}

// Logout revokes the refresh token's family. Unknown tokens are ignored.
func (s *Service) Logout(ctx context.Context, token string) error {
	err := s.store.InTx(ctx, func(q db.Querier) error {
		rt, err := q.RefreshTokenGetByHashForUpdate(ctx, hashToken(token))
		if apperr.Is(err, apperr.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return q.RefreshTokenRevokeFamily(ctx, rt.FamilyID)
	})
	if err != nil {
		return fmt.Errorf("auth: logout: %w", err)
	}
	return nil
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	Type string `json:"typ"`
}

// Authenticate verifies an access token and loads its user. It returns Unauthorized for
// a malformed, tampered, expired or not-yet-valid token and for a deleted or inactive
// user; Unavailable when the database is down.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	id, err := s.verify(token)
	if err != nil {
		return Principal{}, err
	}
	u, err := s.opts.Users.Get(ctx, id, s.LoadUser)
	if apperr.Is(err, apperr.NotFound) {
		return Principal{}, apperr.E(apperr.Unauthorized, "the account no longer exists")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: load principal: %w", err)
	}
	if !u.IsActive {
		return Principal{}, apperr.E(apperr.Unauthorized, "the account is inactive")
	}
	return Principal{UserID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin}, nil
}

// verify checks an access token's signature and claims and returns its subject.
func (s *Service) verify(token string) (int64, error) {
	now := s.opts.Now()
	if id, ok := s.verified.get(token, now); ok {
		return id, nil
	}
	var claims accessClaims
	if _, err := s.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
		return s.opts.Secret, nil
	}); err != nil {
		msg := "invalid access token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "the access token has expired"
		}
		return 0, apperr.Wrap(apperr.Unauthorized, err, "%s", msg)
	}
	if claims.Type != "access" {
		return 0, apperr.E(apperr.Unauthorized, "invalid access token")
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil {
		return 0, apperr.E(apperr.Unauthorized, "invalid access token")
	}
	vt := verifiedToken{userID: id, expiresAt: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		vt.notBefore = claims.NotBefore.Time
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(vt.notBefore) {
		vt.notBefore = claims.IssuedAt.Time // the parser refuses tokens issued in the future
	}
	s.verified.put(token, vt)
	return id, nil
}

// LoadUser reads a user for the record cache: without its password hash, which never
// leaves the database except to be verified.
func (s *Service) LoadUser(ctx context.Context, id int64) (db.User, error) {
	u, err := s.store.UserGetByID(ctx, id)
	u.PasswordHash = ""
	return u, err
}

// AccessToken signs an access token for a user; exported for tests and tools.
func (s *Service) AccessToken(userID int64) (string, error) {
	now := s.opts.Now()
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(userID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.AccessTTL)),
			ID:        uuid.NewString(),
		},
		Type: "access",
	}
	signed, err := jwt.NewWithClaims(s.method, claims).SignedString(s.opts.Secret)
	if err != nil {
		return "", apperr.Wrap(apperr.Internal, err, "auth: sign access token")
	}
	return signed, nil
}

func (s *Service) issue(ctx context.Context, q db.Querier, u db.User, family uuid.UUID) (TokenPair, error) {
	access, err := s.AccessToken(u.ID)
	if err != nil {
		return TokenPair{}, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return TokenPair{}, apperr.Wrap(apperr.Internal, err, "auth: random refresh token")
	}
	refresh := refreshPrefix + base64.RawURLEncoding.EncodeToString(raw)
	if err := q.RefreshTokenCreate(ctx, db.RefreshTokenCreateParams{
		UserID:    u.ID,
		FamilyID:  family,
		TokenHash: hashToken(refresh),
		ExpiresAt: s.opts.Now().Add(s.opts.RefreshTTL),
	}); err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: access, ExpiresIn: s.opts.AccessTTL, RefreshToken: refresh}, nil
}

// hashToken hashes a refresh token for storage; the tokens carry 256 random bits, so a
// fast hash is enough.
func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return sum[:]
}
