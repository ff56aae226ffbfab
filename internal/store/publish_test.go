package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
)

func TestInvalidationPublisherDeliversAndCountsListeners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.URL(t)
	pool, err := store.Open(ctx, url, 2)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	listener, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	_, err = listener.Exec(ctx, "LISTEN "+store.CacheInvalidationsChannel)
	require.NoError(t, err)

	p := store.NewInvalidationPublisher(store.New(pool))
	n, err := p.Publish(ctx, "user:1")
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the one listening connection is counted")

	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	note, err := listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, "user:1", note.Payload)

	// A second listener is counted once the reused count has aged out.
	second, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Close(context.Background()) })
	_, err = second.Exec(ctx, "LISTEN "+store.CacheInvalidationsChannel)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := p.Publish(ctx, "user:2")
		return err == nil && n == 2
	}, 5*time.Second, 100*time.Millisecond)
}
