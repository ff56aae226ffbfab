package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// within checks got against the exact want at the histogram's resolution.
func within(t *testing.T, want, got time.Duration, what string) {
	t.Helper()
	tol := math.Max(1, float64(want)/(2*histSub))
	require.InDelta(t, float64(want), float64(got), tol, "%s: want %v, got %v", what, want, got)
}

func TestLatencyHistPercentiles(t *testing.T) {
	t.Parallel()

	t.Run("one to a thousand milliseconds", func(t *testing.T) {
		t.Parallel()
		var h latencyHist
		for i := 1000; i >= 1; i-- { // order does not matter
			h.record(time.Duration(i) * time.Millisecond)
		}
		// Ranks p·(n-1) rounded, as latencyOf: 499.5 → 500 (the 501st value), 899.1 → 899,
		// 989.01 → 989.
		within(t, 501*time.Millisecond, h.quantile(0.5), "p50")
		within(t, 900*time.Millisecond, h.quantile(0.9), "p90")
		within(t, 990*time.Millisecond, h.quantile(0.99), "p99")
		require.Equal(t, time.Millisecond, h.quantile(0))
		require.Equal(t, time.Second, h.quantile(1))
		l := h.latency()
		require.InDelta(t, 500.5, l.Mean, 1e-9, "the mean is exact")
		require.InDelta(t, 1000.0, l.Max, 1e-9, "the max is exact")
		require.InDelta(t, 501, l.P50, 501.0/(2*histSub))
		require.InDelta(t, 990, l.P99, 990.0/(2*histSub))
	})

	t.Run("small values are exact", func(t *testing.T) {
		t.Parallel()
		var h latencyHist
		for i := range 2 * histSub {
			h.record(time.Duration(i))
		}
		require.Equal(t, time.Duration(128), h.quantile(0.5)) // rank 127.5 → 128
		require.Equal(t, time.Duration(26), h.quantile(0.1))  // rank 25.5 + 0.5 → 26
		require.Equal(t, time.Duration(2*histSub-1), h.quantile(1))
	})

	t.Run("a skewed tail", func(t *testing.T) {
		t.Parallel()
		// 980 fast requests at 1 ms and 20 slow ones at 250 ms: p99 (rank 989) is a slow one.
		var h latencyHist
		for range 980 {
			h.record(time.Millisecond)
		}
		for range 20 {
			h.record(250 * time.Millisecond)
		}
		within(t, time.Millisecond, h.quantile(0.5), "p50")
		within(t, time.Millisecond, h.quantile(0.9), "p90")
		within(t, 250*time.Millisecond, h.quantile(0.99), "p99")
		within(t, 250*time.Millisecond, h.quantile(0.999), "p99.9")
	})

	t.Run("matches exact percentiles on random latencies", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(1, 2))
		ds := make([]time.Duration, 50_000)
		var h latencyHist
		for i := range ds {
			// Log-normal around 2 ms, up to seconds: the shape of request latencies.
			ds[i] = time.Duration(2e6 * math.Exp(rng.NormFloat64()))
			h.record(ds[i])
		}
		exact := latencyOf(ds)
		got := h.latency()
		require.InEpsilon(t, exact.P50, got.P50, 1.0/(2*histSub))
		require.InEpsilon(t, exact.P90, got.P90, 1.0/(2*histSub))
		require.InEpsilon(t, exact.P99, got.P99, 1.0/(2*histSub))
		require.InDelta(t, exact.Max, got.Max, 1e-9)
		require.InDelta(t, exact.Mean, got.Mean, 1e-6)
	})

	t.Run("merged workers equal one histogram", func(t *testing.T) {
		t.Parallel()
		var all, a, b latencyHist
		for i := range 10_000 {
			d := time.Duration(i*i) * time.Microsecond / 100
			all.record(d)
			if i%3 == 0 {
				a.record(d)
			} else {
				b.record(d)
			}
		}
		var merged latencyHist
		merged.merge(&a)
		merged.merge(&b)
		require.Equal(t, all, merged)
	})

	t.Run("buckets tile the range", func(t *testing.T) {
		t.Parallel()
		next := uint64(0)
		for i := range histBuckets {
			low, width := histBucket(i)
			require.Equal(t, next, low, "bucket %d", i)
			require.Equal(t, i, histIndex(low))
			require.Equal(t, i, histIndex(low+width-1))
			next = low + width
		}
		require.Zero(t, next, "the last bucket ends at the top of uint64")
		require.Equal(t, histBuckets-1, histIndex(math.MaxUint64))
	})

	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		var h latencyHist
		require.Equal(t, Latency{}, h.latency())
	})
}

func BenchmarkLatencyHistRecord(b *testing.B) {
	var h latencyHist
	d := 3 * time.Millisecond
	for b.Loop() {
		h.record(d)
		d += 7919
	}
}
