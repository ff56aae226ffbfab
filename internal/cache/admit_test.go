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

// taskLike has the shape of a task record (what the task cache holds).
type taskLike struct {
	ID                   int64
	Title, Description   string
	Status, Priority     string
	AssigneeID, Creator  *int64
	DueAt                *time.Time
	Tags                 []string
	Metadata             []byte
	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// BenchmarkEntityMiss reads records that are never read again (random ids among
// millions), the cache's cost on top of the load: with the fill, each miss encodes the
// record and inserts it into a full in-process cache; admitted on their second miss,
// they cost a bit in the doorkeeper.
func BenchmarkEntityMiss(b *testing.B) {
	ctx := context.Background()
	owner := int64(3)
	due := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	record := taskLike{Title: "Review the quarterly report", Description: "Check the figures and the summary before Friday.",
		Status: "in_progress", Priority: "high", AssigneeID: &owner, Creator: &owner, DueAt: &due,
		Tags: []string{"finance", "q4"}, Metadata: []byte(`{"source":"import"}`), CreatedAt: due, UpdatedAt: due, Version: 3}
	for _, admit := range []bool{false, true} {
		b.Run(fmt.Sprintf("admit_on_second_miss=%v", admit), func(b *testing.B) {
			e := cache.NewEntity[taskLike](cache.NewMemory(20_000, nil), "task", time.Minute, nil)
			if admit {
				e = e.AdmitOnSecondMiss()
			}
			id := int64(0)
			b.ReportAllocs()
			for b.Loop() {
				id++
				if _, err := e.Get(ctx, id, func(_ context.Context, id int64) (taskLike, error) {
					r := record
					r.ID = id
					return r, nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
