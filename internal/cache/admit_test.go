package cache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/cache"
)

func TestEntityAdmitsOnSecondMiss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, c := range implementations(t) {
		for _, keep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keep_objects=%v", name, keep), func(t *testing.T) {
				t.Parallel()
				e := cache.NewEntity[record](c, "adm"+randomHex(3), time.Minute, nil).AdmitOnSecondMiss()
				if keep {
					e = e.KeepObjects()
				}
				var loads atomic.Int32
				load := func(_ context.Context, id int64) (record, error) {
					loads.Add(1)
					return record{ID: id, Name: "v1"}, nil
				}
				for i, wantLoads := range []int32{1, 2, 2, 2} {
					got, err := e.Get(ctx, 7, load)
					require.NoError(t, err)
					require.Equal(t, record{ID: 7, Name: "v1"}, got)
					require.Equal(t, wantLoads, loads.Load(), "read %d: the first miss is not cached, the second is", i+1)
				}
				e.Invalidate(ctx, 7)
				_, err := e.Get(ctx, 7, load)
				require.NoError(t, err)
				require.Equal(t, int32(3), loads.Load(), "an invalidated record is loaded again")
			})
		}
	}

	t.Run("records read once are never stored", func(t *testing.T) {
		t.Parallel()
		m := cache.NewMemory(0, nil)
		e := cache.NewEntity[record](m, "once", time.Minute, nil).AdmitOnSecondMiss()
		for id := range int64(5000) {
			_, err := e.Get(ctx, id, func(_ context.Context, id int64) (record, error) { return record{ID: id}, nil })
			require.NoError(t, err)
		}
		values, _, _ := m.Len()
		require.Zero(t, values)

		plain := cache.NewEntity[record](m, "plain", time.Minute, nil)
		_, err := plain.Get(ctx, 1, func(_ context.Context, id int64) (record, error) { return record{ID: id}, nil })
		require.NoError(t, err)
		values, _, _ = m.Len()
		require.Equal(t, 1, values, "without the option the first miss fills the cache")
	})
}
