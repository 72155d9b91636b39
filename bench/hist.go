// A latency histogram with log-linear buckets: exact below 128 µs, then 64
// buckets per power of two (about 1.6% resolution) up to hours. It is
// recorded into with atomic adds from many reader goroutines, merged across
// processes as JSON, and read for percentiles.

package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // buckets per power of two
	histLinear  = 2 * histSub      // values below this have their own bucket
	histBuckets = histLinear + 40*histSub
)

// Hist counts durations in microsecond buckets. The zero value is empty and
// ready; Record is safe for concurrent use.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

func histIndex(us int64) int {
	if us < 0 {
		us = 0
	}
	if us < histLinear {
		return int(us)
	}
	e := bits.Len64(uint64(us)) - (histSubBits + 1)
	i := histLinear + (e-1)*histSub + int(uint64(us)>>e) - histSub
	return min(i, histBuckets-1)
}

// histLow is the smallest value of bucket i, in µs.
func histLow(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	e := (i-histLinear)/histSub + 1
	sub := (i-histLinear)%histSub + histSub
	return int64(sub) << e
}

// Record adds one observation.
func (h *Hist) Record(d time.Duration) {
	us := d.Microseconds()
	h.counts[histIndex(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Hist) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the value at quantile q (0..1): the upper bound of the
// bucket holding it, capped by the largest value seen.
func (h *Hist) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			hi := histLow(i+1) - 1
			if i < histLinear {
				hi = int64(i)
			}
			return time.Duration(min(hi, h.max.Load())) * time.Microsecond
		}
	}
	return h.Max()
}

// Max is the largest value recorded.
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Merge adds o's observations to h.
func (h *Hist) Merge(o *Hist) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// histJSON is the sparse wire form of a Hist: bucket index → count.
type histJSON struct {
	Buckets map[int]uint64 `json:"buckets"`
	MaxUS   int64          `json:"max_us"`
}

func (h *Hist) toJSON() histJSON {
	out := histJSON{Buckets: map[int]uint64{}, MaxUS: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out.Buckets[i] = c
		}
	}
	return out
}

func (h *Hist) addJSON(j histJSON) {
	for i, c := range j.Buckets {
		if i >= 0 && i < histBuckets {
			h.counts[i].Add(c)
		}
	}
	for {
		m := h.max.Load()
		if j.MaxUS <= m || h.max.CompareAndSwap(m, j.MaxUS) {
			return
		}
	}
}
