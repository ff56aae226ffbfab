// Package auth logs users in, issues and verifies access tokens (JWT), rotates opaque
// refresh tokens with reuse detection, and carries the authenticated principal through
// a request's context. It is the only package that reads password hashes: the user
// record cache holds an Account, which has none, and a hash travels only inside the
// opaque Credentials.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/password"
)

// Principal is the authenticated caller of a request: a user, acting through a password
// session (an access token) or through one of their API keys.
type Principal struct {
	UserID  int64
	Email   string
	IsAdmin bool
	// APIKeyID is the API key the request was made with; 0 for a password session.
	APIKeyID int64
	// Scopes are the scopes of the API key; a password session holds every scope.
	Scopes []string
}

// HasScope reports whether the principal may use an operation that requires scope: a
// password session always may, an API key only when it was granted the scope.
func (p Principal) HasScope(scope string) bool {
	return p.APIKeyID == 0 || slices.Contains(p.Scopes, scope)
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
	Users *cache.Entity[Account]
	// Sessions caches the state of login sessions between requests (nil: none); logout
	// and refresh-token reuse invalidate it, so a session's access tokens end at once.
	Sessions *cache.Entity[Session]
	// SessionMaxAge is the absolute lifetime of a login session, counted from the login
	// (SESSION_MAX_DAYS); zero means none. Refreshing never extends a session past it.
	SessionMaxAge time.Duration
}

// Service implements login, refresh, logout and token verification.
type Service struct {
	store     store
	opts      Options
	method    jwt.SigningMethod
	parser    *jwt.Parser
	dummyHash string // verified against when the email is unknown, so both paths cost the same
	verified  *cache.Bounded[string, verifiedToken]
}

// verifiedToken is what verify learnt from an access token's signature and claims. The
// service remembers it under the exact token string (see cache.Bounded for what that
// buys), with the token's validity window, which is checked on every use. Revocation is
// not its business: the user behind the token and its session are still loaded (or read
// from their record caches) on every request, and the token's generation and session
// checked against them.
type verifiedToken struct {
	userID     int64
	generation int64 // the user's token generation when the token was issued
	sessionID  int64 // 0 for a token outside any session (AccessToken)
	notBefore  time.Time
	expiresAt  time.Time
}

// maxVerifiedTokens bounds the memory of the verified tokens (about 300 bytes per token).
const maxVerifiedTokens = 10_000

const issuer = "enterprise-automation"

// refreshPrefix marks our refresh tokens so a leaked one is recognisable in secret scanners.
const refreshPrefix = "rt_"

// NewService builds a Service over s (a *store.DB). It fails on an unsupported algorithm
// or an empty secret.
func NewService(s store, opts Options) (*Service, error) {
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
		verified:  cache.NewBounded[string, verifiedToken](maxVerifiedTokens),
	}, nil
}

// HashPassword hashes a new password with the service's parameters. It fails only when
// the system's random source does.
func (s *Service) HashPassword(plain string) (string, error) {
	return password.Hash(plain, s.opts.Password)
}

// CheckPassword reports whether plain is the password of c. Internal errors only (a
// malformed stored hash).
func (s *Service) CheckPassword(c Credentials, plain string) (bool, error) {
	ok, err := password.Verify(c.passwordHash, plain)
	if err != nil {
		return false, apperr.Wrap(apperr.Internal, err, "auth: stored password hash of user %d", c.ID)
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
		return TokenPair{}, s.loginFailed(ctx, nil)
	}
	row, err := s.store.UserGetByEmail(ctx, email)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return TokenPair{}, fmt.Errorf("auth: login: %w", err)
	}
	if err != nil {
		_, _ = password.Verify(s.dummyHash, plain)
		return TokenPair{}, s.loginFailed(ctx, nil)
	}
	c := CredentialsFromRow(row)
	ok, err := s.CheckPassword(c, plain)
	if err != nil {
		return TokenPair{}, err
	}
	if !ok || !c.IsActive {
		return TokenPair{}, s.loginFailed(ctx, &c.ID)
	}
	var pair TokenPair
	err = s.store.InTx(ctx, func(q db.Querier) error {
		sess, err := q.SessionCreate(ctx, db.SessionCreateParams{FamilyID: uuid.New(), UserID: c.ID})
		if err != nil {
			return err
		}
		if pair, err = s.issue(ctx, q, c.Account, sessionFromRow(sess)); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Action: ActionLoginSucceeded, Resource: "session", ID: &sess.ID, UserID: &c.ID})
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: login: %w", err)
	}
	return pair, nil
}

// The audit actions of logins (instead of the operation's id).
const (
	ActionLoginSucceeded = "login_succeeded"
	ActionLoginFailed    = "login_failed"
	// ActionRefreshTokenReused is recorded when a spent refresh token is presented again
	// and its session is ended.
	ActionRefreshTokenReused = "refresh_token_reused"
)

// loginFailed records a failed login (of userID's account, when the email named one)
// and returns the error the caller sees.
func (s *Service) loginFailed(ctx context.Context, userID *int64) error {
	if err := audit.Record(ctx, s.store, audit.Entry{Action: ActionLoginFailed, Resource: "session", UserID: userID}); err != nil {
		return fmt.Errorf("auth: login: %w", err)
	}
	return errBadCredentials
}

// Refresh rotates a refresh token: the presented one is spent and a new pair returned.
// Presenting a token that was already rotated or revoked ends its session (the whole
// family and its access tokens) and returns Unauthorized; so do unknown and expired
// tokens, sessions past their absolute lifetime and inactive users.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	var (
		pair  TokenPair
		reuse bool
		ended []int64
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
			if ended, err = endFamily(ctx, q, rt.FamilyID); err != nil {
				return err
			}
			return audit.Record(ctx, q, audit.Entry{Action: ActionRefreshTokenReused, Resource: "session", ID: first(ended), UserID: &rt.UserID})
		}
		now := s.opts.Now()
		if !now.Before(rt.ExpiresAt) {
			return apperr.E(apperr.Unauthorized, "the refresh token has expired")
		}
		// Locked, so that a concurrent password change or logout either sees this
		// refresh's new token or is seen by it.
		row, err := q.SessionGetByFamilyForUpdate(ctx, rt.FamilyID)
		if apperr.Is(err, apperr.NotFound) {
			return apperr.E(apperr.Unauthorized, "invalid refresh token")
		}
		if err != nil {
			return err
		}
		sess := sessionFromRow(row)
		if sess.RevokedAt != nil {
			return apperr.E(apperr.Unauthorized, "the session has ended; log in again")
		}
		if end, ok := s.sessionEnd(sess); ok && !now.Before(end) {
			return apperr.E(apperr.Unauthorized, "the session has reached its maximum lifetime; log in again")
		}
		u, err := LoadAccount(ctx, q, rt.UserID)
		if err != nil {
			return err
		}
		if !u.IsActive {
			return apperr.E(apperr.Unauthorized, "the account is inactive")
		}
		if err := q.RefreshTokenMarkUsed(ctx, rt.ID); err != nil {
			return err
		}
		if pair, err = s.issue(ctx, q, u, sess); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "session", ID: &sess.ID, UserID: &u.ID})
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: refresh: %w", err)
	}
	s.opts.Sessions.Invalidate(ctx, ended...)
	if reuse {
		return TokenPair{}, apperr.E(apperr.Unauthorized, "the refresh token was already used; every session from that login has been revoked")
	}
	return pair, nil
}

// Logout ends the refresh token's session: its whole family is revoked, and every
// access token issued from it stops working on the next request, on every instance
// (through the session cache's invalidation). Unknown tokens are ignored.
func (s *Service) Logout(ctx context.Context, token string) error {
	var ended []int64
	err := s.store.InTx(ctx, func(q db.Querier) error {
		rt, err := q.RefreshTokenGetByHashForUpdate(ctx, hashToken(token))
		if apperr.Is(err, apperr.NotFound) {
			// Nothing to end, but the attempt is still on record.
			return audit.Record(ctx, q, audit.Entry{Resource: "session"})
		}
		if err != nil {
			return err
		}
		if ended, err = endFamily(ctx, q, rt.FamilyID); err != nil {
			return err
		}
		return audit.Record(ctx, q, audit.Entry{Resource: "session", ID: first(ended), UserID: &rt.UserID})
	})
	if err != nil {
		return fmt.Errorf("auth: logout: %w", err)
	}
	s.opts.Sessions.Invalidate(ctx, ended...)
	return nil
}

// endFamily revokes a refresh-token family and ends its session; it returns the ids of
// the sessions it ended, to invalidate once the transaction has committed.
func endFamily(ctx context.Context, q queries, family uuid.UUID) ([]int64, error) {
	if err := q.RefreshTokenRevokeFamily(ctx, family); err != nil {
		return nil, err
	}
	return q.SessionRevoke(ctx, family)
}

// EndUserSessions ends every session of a user (password change, deactivation) in the
// caller's transaction and returns their ids; pass them to ForgetSessions once it has
// committed. Access tokens of those sessions are refused from then on (the caller also
// moves the user's token generation on, which refuses them already). It returns the
// database's errors as they are.
func EndUserSessions(ctx context.Context, q SessionQueries, userID int64) ([]int64, error) {
	if err := q.RefreshTokenRevokeUser(ctx, userID); err != nil {
		return nil, err
	}
	return q.SessionRevokeUser(ctx, userID)
}

// ForgetSessions drops ended sessions from the session cache, on every instance.
func (s *Service) ForgetSessions(ctx context.Context, ids ...int64) {
	s.opts.Sessions.Invalidate(ctx, ids...)
}

// sessionEnd is when a session reaches its absolute lifetime; ok is false without one.
func (s *Service) sessionEnd(sess Session) (end time.Time, ok bool) {
	if s.opts.SessionMaxAge <= 0 {
		return time.Time{}, false
	}
	return sess.CreatedAt.Add(s.opts.SessionMaxAge), true
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	Type string `json:"typ"`
	// Generation is the user's token generation at issue; a password change or a
	// deactivation moves it on, ending every token issued before.
	Generation int64 `json:"gen"`
	// SessionID names the login session (refresh-token family) the token was issued
	// from; ending the session ends the token. Empty outside any session.
	SessionID string `json:"sid,omitempty"`
}

var errTokenRevoked = apperr.E(apperr.Unauthorized, "the access token has been revoked; log in again")

// Authenticate verifies an access token and loads its user and session. It returns
// Unauthorized for a malformed, tampered, expired or not-yet-valid token, for a deleted
// or inactive user, for a token issued before the user's last password change or
// deactivation, and for a token whose session has ended (logout, reuse of a rotated
// refresh token, absolute lifetime); Unavailable when the database is down.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	vt, err := s.verify(token)
	if err != nil {
		return Principal{}, err
	}
	u, err := s.ActiveAccount(ctx, vt.userID)
	if err != nil {
		return Principal{}, err
	}
	if vt.generation != u.TokenGeneration {
		return Principal{}, errTokenRevoked
	}
	if vt.sessionID != 0 {
		sess, err := s.opts.Sessions.Get(ctx, vt.sessionID, s.loadSession)
		if apperr.Is(err, apperr.NotFound) {
			return Principal{}, errTokenRevoked
		}
		if err != nil {
			return Principal{}, fmt.Errorf("auth: load session: %w", err)
		}
		if sess.UserID != u.ID || sess.RevokedAt != nil {
			return Principal{}, errTokenRevoked
		}
		if end, ok := s.sessionEnd(sess); ok && !s.opts.Now().Before(end) {
			return Principal{}, apperr.E(apperr.Unauthorized, "the session has reached its maximum lifetime; log in again")
		}
	}
	return Principal{UserID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin}, nil
}

// ActiveAccount returns the account of a user acting now, through the user record cache
// (so deactivation and deletion apply at once, on every instance). Unauthorized when the
// user no longer exists or is inactive; Unavailable when the database is down.
func (s *Service) ActiveAccount(ctx context.Context, id int64) (Account, error) {
	u, err := s.opts.Users.Get(ctx, id, s.LoadUser)
	if apperr.Is(err, apperr.NotFound) {
		return Account{}, apperr.E(apperr.Unauthorized, "the account no longer exists")
	}
	if err != nil {
		return Account{}, fmt.Errorf("auth: load principal: %w", err)
	}
	if !u.IsActive {
		return Account{}, apperr.E(apperr.Unauthorized, "the account is inactive")
	}
	return u, nil
}

// loadSession reads a session for the session cache.
func (s *Service) loadSession(ctx context.Context, id int64) (Session, error) {
	r, err := s.store.SessionGetByID(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return sessionFromRow(r), nil
}

// verify checks an access token's signature and claims.
func (s *Service) verify(token string) (verifiedToken, error) {
	now := s.opts.Now()
	if vt, ok := s.verified.Get(token); ok && !now.Before(vt.notBefore) && now.Before(vt.expiresAt) {
		return vt, nil
	}
	var claims accessClaims
	if _, err := s.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
		return s.opts.Secret, nil
	}); err != nil {
		msg := "invalid access token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "the access token has expired"
		}
		return verifiedToken{}, apperr.Wrap(apperr.Unauthorized, err, "%s", msg)
	}
	if claims.Type != "access" {
		return verifiedToken{}, apperr.E(apperr.Unauthorized, "invalid access token")
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil {
		return verifiedToken{}, apperr.E(apperr.Unauthorized, "invalid access token")
	}
	var sid int64
	if claims.SessionID != "" {
		if sid, err = strconv.ParseInt(claims.SessionID, 10, 64); err != nil || sid <= 0 {
			return verifiedToken{}, apperr.E(apperr.Unauthorized, "invalid access token")
		}
	}
	vt := verifiedToken{userID: id, generation: claims.Generation, sessionID: sid, expiresAt: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		vt.notBefore = claims.NotBefore.Time
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(vt.notBefore) {
		vt.notBefore = claims.IssuedAt.Time // the parser refuses tokens issued in the future
	}
	s.verified.Put(token, vt)
	return vt, nil
}

// LoadUser reads a user's account from the database, past the record cache (the
// cache's loader). NotFound when there is no such user; Unavailable when the database
// is down.
func (s *Service) LoadUser(ctx context.Context, id int64) (Account, error) {
	return LoadAccount(ctx, s.store, id)
}

// AccessToken signs an access token for a user outside any session; exported for tests
// and tools. It carries token generation 0, so it works until the user's first password
// change or deactivation. Internal when signing fails.
func (s *Service) AccessToken(userID int64) (string, error) {
	now := s.opts.Now()
	return s.accessToken(userID, 0, 0, now.Add(s.opts.AccessTTL))
}

// accessToken signs an access token; sessionID 0 names no session.
func (s *Service) accessToken(userID, generation, sessionID int64, expires time.Time) (string, error) {
	now := s.opts.Now()
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(userID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        uuid.NewString(),
		},
		Type:       "access",
		Generation: generation,
	}
	if sessionID != 0 {
		claims.SessionID = strconv.FormatInt(sessionID, 10)
	}
	signed, err := jwt.NewWithClaims(s.method, claims).SignedString(s.opts.Secret)
	if err != nil {
		return "", apperr.Wrap(apperr.Internal, err, "auth: sign access token")
	}
	return signed, nil
}

// issue signs an access token and stores a new refresh token of the session; neither
// outlives the session's absolute lifetime.
func (s *Service) issue(ctx context.Context, q queries, u Account, sess Session) (TokenPair, error) {
	now := s.opts.Now()
	accessExp, refreshExp := now.Add(s.opts.AccessTTL), now.Add(s.opts.RefreshTTL)
	if end, ok := s.sessionEnd(sess); ok {
		accessExp, refreshExp = minTime(accessExp, end), minTime(refreshExp, end)
	}
	access, err := s.accessToken(u.ID, u.TokenGeneration, sess.ID, accessExp)
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
		FamilyID:  sess.FamilyID,
		TokenHash: hashToken(refresh),
		ExpiresAt: refreshExp,
	}); err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: access, ExpiresIn: accessExp.Sub(now).Truncate(time.Second), RefreshToken: refresh}, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// hashToken hashes a refresh token for storage; the tokens carry 256 random bits, so a
// fast hash is enough.
func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return sum[:]
}

// first returns the first of ids, or nil.
func first(ids []int64) *int64 {
	if len(ids) == 0 {
		return nil
	}
	return &ids[0]
}
