package cache_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/cache"
)

func TestBounded(t *testing.T) {
	t.Parallel()

	t.Run("returns_what_was_put", func(t *testing.T) {
		t.Parallel()
		b := cache.NewBounded[string, int](4)
		_, ok := b.Get("a")
		require.False(t, ok)
		b.Put("a", 1)
		b.Put("a", 2)
		v, ok := b.Get("a")
		require.True(t, ok)
		require.Equal(t, 2, v)
		require.Equal(t, 1, b.Len())
	})

	t.Run("full_map_forgets_an_eighth_and_keeps_the_new_entry", func(t *testing.T) {
		t.Parallel()
		b := cache.NewBounded[int, int](80)
		for i := range 80 {
			b.Put(i, i)
		}
		require.Equal(t, 80, b.Len())
		b.Put(1000, 1000)
		require.Equal(t, 71, b.Len(), "70 left after forgetting an eighth, plus the new one")
		v, ok := b.Get(1000)
		require.True(t, ok)
		require.Equal(t, 1000, v)
	})

	t.Run("replacing_a_key_in_a_full_map_forgets_nothing", func(t *testing.T) {
		t.Parallel()
		b := cache.NewBounded[int, int](8)
		for i := range 8 {
			b.Put(i, i)
		}
		b.Put(3, 30)
		require.Equal(t, 8, b.Len())
	})

	t.Run("never_exceeds_its_size_under_concurrent_use", func(t *testing.T) {
		t.Parallel()
		b := cache.NewBounded[int, int](100)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					b.Put(g*1000+i, i)
					b.Get(i)
				}
			})
		}
		wg.Wait()
		require.LessOrEqual(t, b.Len(), 100)
	})
}
