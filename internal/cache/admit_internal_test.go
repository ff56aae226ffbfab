package cache

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDoorkeeperForgetsAfterItsWindow(t *testing.T) {
	t.Parallel()
	d := newDoorkeeper()
	require.False(t, d.seen(42))
	require.True(t, d.seen(42))
	require.True(t, d.seen(42), "seen stays seen")
	for id := int64(1_000_000); d.marks.Load() != 0; id++ { // first misses until the window is full
		d.seen(id)
	}
	require.False(t, d.seen(42), "forgotten once the window has passed")
	require.True(t, d.seen(42))
}
