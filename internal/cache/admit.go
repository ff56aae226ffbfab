package cache

import "sync/atomic"

// doorkeeper remembers which records missed recently, one bit per record in a bitset
// indexed by a hash of the id, as TinyLFU's doorkeeper does. Two ids sharing a bit only
// admit a record a miss early. After `window` marks it forgets them all, so "recently"
// means within the last `window` first misses. Safe for concurrent use.
type doorkeeper struct {
	bits   []atomic.Uint64
	shift  uint // 64 - log2(number of bits)
	marks  atomic.Int64
	window int64
}

// doorkeeperBits is the bitset's size (128 KiB); a window of an eighth of it keeps the
// chance that a first miss finds its bit already set below one in eight.
const doorkeeperBits = 1 << 20

func newDoorkeeper() *doorkeeper {
	return &doorkeeper{bits: make([]atomic.Uint64, doorkeeperBits/64), shift: 64 - 20, window: doorkeeperBits / 8}
}

// seen reports whether id missed within the window, and marks it.
func (d *doorkeeper) seen(id int64) bool {
	i := (uint64(id) * 0x9E3779B97F4A7C15) >> d.shift // Fibonacci hashing spreads sequential ids
	w, bit := &d.bits[i/64], uint64(1)<<(i%64)
	if w.Load()&bit != 0 || w.Or(bit)&bit != 0 {
		return true
	}
	if d.marks.Add(1) >= d.window {
		d.marks.Store(0)
		for j := range d.bits {
			d.bits[j].Store(0)
		}
	}
	return false
}
