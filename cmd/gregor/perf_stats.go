package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// latencyHistogram is a log-linear histogram of durations (nanoseconds),
// safe for concurrent use and lock free: values below 2^histSubBits ns are
// counted exactly, larger ones in buckets 2^-(histSubBits-1) (under 1%) of
// their value wide, as HdrHistogram does. Min, max, count and sum are
// exact.
type latencyHistogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64
	min     atomic.Uint64 // stored as ^min so that the zero value means "none"
	max     atomic.Uint64
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits // exact values, then buckets per power of two ×2
	histHalf    = histSub / 2
	// A uint64 has 64-histSubBits exponents above the exact range, each
	// with histHalf buckets.
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// histIndex returns the bucket of v.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // >= 1
	top := v >> shift                    // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + int(top-histHalf)
}

// histBounds returns the smallest value of bucket i and the bucket's width.
func histBounds(i int) (lo, width uint64) {
	if i < histSub {
		return uint64(i), 1
	}
	i -= histSub
	shift := i/histHalf + 1
	top := uint64(i%histHalf + histHalf)
	return top << shift, 1 << shift
}

// record adds one duration; negative ones count as zero.
func (h *latencyHistogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.buckets[histIndex(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
	for cur := h.min.Load(); ^v > cur && !h.min.CompareAndSwap(cur, ^v); cur = h.min.Load() {
	}
}

// Count returns how many durations were recorded.
func (h *latencyHistogram) Count() uint64 { return h.count.Load() }

// quantile returns the duration at or below which a fraction q of the
// recorded durations fall: the middle of the bucket holding the
// ceil(q*count)-th smallest value, clamped to the exact min and max, which
// are themselves returned for the first and last rank. It returns 0 when
// nothing was recorded.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	switch {
	case rank <= 1:
		return time.Duration(^h.min.Load())
	case rank >= n:
		return time.Duration(h.max.Load())
	}
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			lo, width := histBounds(i)
			v := lo + (width-1)/2
			v = max(v, ^h.min.Load())
			v = min(v, h.max.Load())
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load()) // counts raced ahead of buckets
}

// latencySummary is a histogram's percentiles in milliseconds, as printed
// and as put in perf's JSON summary.
type latencySummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// summary returns the histogram's percentiles, nil if it is empty.
func (h *latencyHistogram) summary() *latencySummary {
	n := h.count.Load()
	if n == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &latencySummary{
		Count: n,
		Mean:  float64(h.sum.Load()) / float64(n) / float64(time.Millisecond),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}
