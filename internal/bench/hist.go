package bench

import (
	"math/bits"
	"time"
)

// latencyHist records durations in fixed log-linear buckets, as HDR histograms do: every
// power of two is split into histSub equal buckets, so a bucket is at most 1/histSub of
// the values it holds wide and a percentile read at its midpoint is within 1/(2·histSub)
// (0.4 %) of the exact one, from 1 ns to the largest duration. Recording is an index
// computation and an increment, no allocation; the mean and max are exact.
type latencyHist struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	// Values below 2·histSub have a bucket each; above, the shift grows by one per power
	// of two, up to 64-(histSubBits+1) for the largest uint64.
	histBuckets = (64-histSubBits-1)*histSub + 2*histSub
)

// histIndex is the bucket of v.
func histIndex(v uint64) int {
	shift := max(0, bits.Len64(v)-histSubBits-1)
	return shift*histSub + int(v>>shift)
}

// histBucket is the lowest value of bucket i and its width.
func histBucket(i int) (low, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	shift := i/histSub - 1
	return uint64(i-shift*histSub) << shift, 1 << shift
}

// record adds one duration (negative ones count as zero).
func (h *latencyHist) record(d time.Duration) {
	d = max(d, 0)
	h.counts[histIndex(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
	h.sum += d
}

// merge adds o's durations to h.
func (h *latencyHist) merge(o *latencyHist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile is the duration at rank p·(n-1) of the recorded ones (as latencyOf ranks
// exact values): the midpoint of its bucket, kept within the recorded min and max, which
// are exact (and are ranks 0 and n-1).
func (h *latencyHist) quantile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(p*float64(h.n-1) + 0.5)
	switch {
	case rank == 0:
		return h.min
	case rank >= h.n-1:
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			low, width := histBucket(i)
			v := time.Duration(low + (width-1)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// latency is the report's summary of the recorded durations.
func (h *latencyHist) latency() Latency {
	if h.n == 0 {
		return Latency{}
	}
	return Latency{
		P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)),
		Max: ms(h.max), Mean: ms(h.sum / time.Duration(h.n)),
	}
}
