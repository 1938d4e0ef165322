package main

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	// Every value falls in the bucket whose bounds contain it, indexes grow
	// with values, and buckets are narrower than 1/128 of their values.
	values := []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, 1<<40 + 12345, math.MaxUint64 >> 1, math.MaxUint64}
	for v := uint64(0); v < 5000; v++ {
		values = append(values, v)
	}
	prev := -1
	for _, v := range values {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		lo, width := histBounds(i)
		if v < lo || v-lo >= width {
			t.Fatalf("value %d in bucket %d = [%d, %d+%d)", v, i, lo, lo, width)
		}
		if v >= histSub && float64(width)/float64(v) > 1.0/128 {
			t.Fatalf("bucket of %d is %d wide", v, width)
		}
		if v < 5000 && v > 0 && i < prev {
			t.Fatalf("index not monotonic at %d", v)
		}
		prev = i
	}
	if i := histIndex(math.MaxUint64); i != histBuckets-1 {
		t.Errorf("largest value in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h latencyHistogram
	if h.quantile(0.5) != 0 || h.summary() != nil {
		t.Fatal("empty histogram must report nothing")
	}
	// 1..100000 µs: the q-quantile is q*100 ms.
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 0.01 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", q, time.Duration(got), time.Duration(want))
		}
	}
	if got := h.quantile(1); got != 100*time.Millisecond {
		t.Errorf("quantile(1) = %v, want the max", got)
	}
	if got := h.quantile(0); got != time.Microsecond {
		t.Errorf("quantile(0) = %v, want the min", got)
	}
	s := h.summary()
	if s.Count != 100000 || s.Max != 100 || math.Abs(s.Mean-50.0005) > 1e-9 {
		t.Errorf("summary = %+v", s)
	}
	if !(s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Errorf("percentiles out of order: %+v", s)
	}
}

func TestHistogramSmallAndSkewed(t *testing.T) {
	var h latencyHistogram
	h.record(-5) // counts as zero
	h.record(3 * time.Second)
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("p50 = %v, want 0", got)
	}
	if got := h.quantile(0.99); got != 3*time.Second {
		t.Errorf("p99 = %v, want 3s (clamped to the exact max)", got)
	}

	// 990 fast and 10 slow values: p99 is fast, p99.9 slow.
	var g latencyHistogram
	for range 990 {
		g.record(time.Millisecond)
	}
	for range 10 {
		g.record(time.Second)
	}
	if got := g.quantile(0.99); got < time.Millisecond || got > time.Millisecond*101/100 {
		t.Errorf("p99 = %v, want 1ms within 1%%", got)
	}
	if got := g.quantile(0.999); got != time.Second {
		t.Errorf("p99.9 = %v, want 1s", got)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h latencyHistogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(time.Duration(g*1000+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.summary()
	if s.Count != 4000 || s.Max != 4 {
		t.Fatalf("summary = %+v", s)
	}
	if got := h.quantile(0); got != time.Microsecond {
		t.Errorf("min = %v", got)
	}
}

func TestPacer(t *testing.T) {
	p := newPacer(0)
	for range 1000 {
		if err := p.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// 200 events at 10000/s take about 20 ms; allow generous slack on a
	// busy machine but require the pacing to have happened.
	p = newPacer(10000)
	start := time.Now()
	for range 200 {
		if err := p.wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 19*time.Millisecond {
		t.Errorf("200 events at 10000/s took %v", d)
	}
}

func TestPayloads(t *testing.T) {
	fixed := newPayloads(100, false, 0)
	a, b := fixed.next(), fixed.next()
	if len(a) != 100 || &a[0] != &b[0] {
		t.Error("without compression the value must be one shared slice")
	}
	unique := newPayloads(100, true, 0)
	a, b = unique.next(), unique.next()
	if len(a) != 100 || string(a) == string(b) {
		t.Error("with compression values must differ")
	}
	for _, c := range a[50:] {
		if c != 0 {
			t.Fatal("second half must be zeros")
		}
	}
	if z := newPayloads(0, true, 0).next(); len(z) != 0 {
		t.Errorf("size 0 gave %d bytes", len(z))
	}
}
