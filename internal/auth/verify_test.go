package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/password"
	"enterprise-automation/internal/store"
)

// TestRememberedTokensStillExpire authenticates with a token until it is remembered as
// verified, then moves the clock: past its expiry it is refused like any expired token,
// and a token from another key is never accepted because a valid one was remembered.
func TestRememberedTokensStillExpire(t *testing.T) {
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := store.New(pool)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	opts := auth.Options{
		Secret: benchSecret, Algorithm: "HS256", AccessTTL: 10 * time.Minute, RefreshTTL: time.Hour,
		Password: password.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, Now: clock,
	}
	svc, err := auth.NewService(s, opts)
	require.NoError(t, err)
	u, err := s.UserCreate(ctx, db.UserCreateParams{Name: "Clock", Email: "clock@example.test", PasswordHash: "x"})
	require.NoError(t, err)
	token, err := svc.AccessToken(u.ID)
	require.NoError(t, err)

	for range 3 {
		p, err := svc.Authenticate(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, u.ID, p.UserID)
	}

	opts.Secret = []byte("another-secret-another-secret-another")
	other, err := auth.NewService(s, opts)
	require.NoError(t, err)
	_, err = other.Authenticate(ctx, token)
	assert.True(t, apperr.Is(err, apperr.Unauthorized), "a service with another key verifies for itself: %v", err)

	mu.Lock()
	now = now.Add(10*time.Minute + time.Second)
	mu.Unlock()
	_, err = svc.Authenticate(ctx, token)
	require.True(t, apperr.Is(err, apperr.Unauthorized), "expired: %v", err)

	mu.Lock()
	now = now.Add(-time.Hour) // before the token was issued
	mu.Unlock()
	_, err = svc.Authenticate(ctx, token)
	require.True(t, apperr.Is(err, apperr.Unauthorized), "not yet valid: %v", err)
}
