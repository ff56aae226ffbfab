package auth_test

// Benchmarks of what the auth middleware does on every authenticated request:
// Authenticate (JWT verification + one user read), and its parts alone. Run with:
//
//	go test -run xxx -bench . -benchmem ./internal/auth/

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
)

var benchSecret = []byte("0123456789abcdef0123456789abcdef")

// benchClaims mirror the service's access token claims.
type benchClaims struct {
	jwt.RegisteredClaims
	Type string `json:"typ"`
}

// BenchmarkAuthenticate measures Service.Authenticate on a database configured like
// production (store.Open): a valid token (JWT verification plus one primary-key read of
// the user), a token of a deleted user (verification plus a miss), a token with a bad
// signature (rejected before the database), and the user read alone.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(b), 0)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	s := store.New(pool)
	svc, err := auth.NewService(s, auth.Options{
		Secret: benchSecret, Algorithm: "HS256", AccessTTL: 30 * time.Minute, RefreshTTL: 24 * time.Hour,
		Password: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	})
	require.NoError(b, err)
	u, err := s.UserCreate(ctx, db.UserCreateParams{Name: "Bench", Email: "bench@example.test", PasswordHash: "x"})
	require.NoError(b, err)
	valid, err := svc.AccessToken(u.ID)
	require.NoError(b, err)
	gone, err := svc.AccessToken(u.ID + 1_000_000)
	require.NoError(b, err)
	tampered := valid[:len(valid)-4] + "AAAA"
	if tampered == valid {
		tampered = valid[:len(valid)-4] + "BBBB"
	}

	cases := []struct {
		name  string
		token string
		fails bool // with Unauthorized
	}{
		{"valid_token", valid, false},
		{"deleted_user", gone, true},
		{"bad_signature", tampered, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			check := func() {
				p, err := svc.Authenticate(ctx, c.token)
				if !c.fails {
					if err != nil || p.UserID != u.ID {
						b.Fatalf("authenticate: %v %+v", err, p)
					}
				} else if !apperr.Is(err, apperr.Unauthorized) {
					b.Fatalf("authenticate: got %v, want Unauthorized", err)
				}
			}
			check()
			b.ReportAllocs()
			for b.Loop() {
				check()
			}
		})
	}
	b.Run("user_get_by_id_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.UserGetByID(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same read on a pool left at PostgreSQL's default plan_cache_mode (store.Open
	// forces custom plans, i.e. planning on every execution, for the list queries).
	b.Run("user_get_by_id_only_default_plan_cache", func(b *testing.B) {
		cfg, err := pgxpool.ParseConfig(pool.Config().ConnString())
		require.NoError(b, err)
		plain, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(b, err)
		defer plain.Close()
		ps := store.New(plain)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ps.UserGetByID(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJWTVerifyOnly measures what Authenticate spends before the database: parsing
// and verifying an access token with golang-jwt and the parser options the service uses.
// Signing (AccessToken) is measured too, for login and refresh.
func BenchmarkJWTVerifyOnly(b *testing.B) {
	now := time.Now()
	svc, err := auth.NewService(nil, auth.Options{
		Secret: benchSecret, Algorithm: "HS256", AccessTTL: 30 * time.Minute, RefreshTTL: 24 * time.Hour,
		Password: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Now:      func() time.Time { return now },
	})
	require.NoError(b, err)
	token, err := svc.AccessToken(42)
	require.NoError(b, err)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithIssuer("enterprise-automation"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	key := func(*jwt.Token) (any, error) { return benchSecret, nil }

	b.Run("parse_and_verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var claims benchClaims
			if _, err := parser.ParseWithClaims(token, &claims, key); err != nil || claims.Type != "access" || claims.Subject != "42" {
				b.Fatalf("parse: %v %+v", err, claims)
			}
		}
	})
	b.Run("parse_unverified", func(b *testing.B) {
		// Decoding alone (base64 + JSON), without HMAC and claim checks, to split the cost.
		b.ReportAllocs()
		for b.Loop() {
			var claims benchClaims
			if _, _, err := parser.ParseUnverified(token, &claims); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign_access_token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := svc.AccessToken(42); err != nil {
				b.Fatal(err)
			}
		}
	})
}
