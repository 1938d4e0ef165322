package storage

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

func TestOffsetMap(t *testing.T) {
	m := newOffsetMap(64 << 10) // 2730 slots -> 2048, 1536 keys
	if got := m.capacity(); got != 1536 {
		t.Fatalf("capacity %d, want 1536", got)
	}
	for i := range 1536 {
		if !m.put(fmt.Appendf(nil, "key-%d", i), int64(i)) {
			t.Fatalf("put %d failed below capacity", i)
		}
	}
	for i := range 1536 {
		if !m.put(fmt.Appendf(nil, "key-%d", i), int64(10_000+i)) {
			t.Fatalf("overwriting %d failed in a full map", i)
		}
	}
	if m.put([]byte("one too many"), 1) {
		t.Fatal("put beyond capacity succeeded")
	}
	for i := range 1536 {
		if off, ok := m.get(fmt.Appendf(nil, "key-%d", i)); !ok || off != int64(10_000+i) {
			t.Fatalf("get %d = %d, %v", i, off, ok)
		}
	}
	if _, ok := m.get([]byte("absent")); ok {
		t.Fatal("found an absent key")
	}
	if _, ok := m.get(nil); ok {
		t.Fatal("found the empty key")
	}
	m.reset()
	if _, ok := m.get([]byte("key-1")); ok || m.size != 0 {
		t.Fatal("reset kept entries")
	}
	if !m.put([]byte(""), 0) {
		t.Fatal("put of an empty key at offset 0")
	}
	if off, ok := m.get([]byte{}); !ok || off != 0 {
		t.Fatalf("empty key at offset 0: %d, %v", off, ok)
	}
}

func TestThrottler(t *testing.T) {
	now := time.Unix(0, 0)
	var slept time.Duration
	th := newThrottler(1000) // bytes/s
	th.now = func() time.Time { return now }
	th.sleep = func(_ context.Context, d time.Duration) error {
		slept += d
		now = now.Add(d)
		return nil
	}
	ctx := context.Background()
	for range 10 {
		if err := th.wait(ctx, 500); err != nil {
			t.Fatal(err)
		}
	}
	if slept < 4900*time.Millisecond || slept > 5100*time.Millisecond {
		t.Fatalf("slept %v for 5000 bytes at 1000 B/s", slept)
	}
	unlimited := newThrottler(0)
	unlimited.sleep = th.sleep
	slept = 0
	for range 10 {
		_ = unlimited.wait(ctx, 1<<30)
	}
	if slept != 0 {
		t.Fatalf("unlimited throttler slept %v", slept)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := newThrottler(1).wait(cancelled, 1000); err == nil {
		t.Fatal("wait ignored a cancelled context")
	}
}

// TestCleanThrottled: a pass with an I/O limit sleeps about
// bytes/limit in total.
func TestCleanThrottled(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "/d/t-0", compactConfig())
	defer func() { _ = l.Close() }()
	m := newModel()
	fillKeyed(t, l, m, rand.New(rand.NewPCG(1, 2)), 100, 10, record.CodecNone, false)
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{IOMaxBytesPerSecond: 100_000})
	var slept time.Duration
	now := time.Unix(0, 0)
	c.throttle.now = func() time.Time { return now }
	c.throttle.sleep = func(_ context.Context, d time.Duration) error {
		slept += d
		now = now.Add(d)
		return nil
	}
	res := clean(t, c, l)
	want := time.Duration(float64(res.BytesRead+res.BytesWritten) / 100_000 * float64(time.Second))
	if slept < want*9/10 || slept > want*11/10 || res.Throttled != slept {
		t.Fatalf("slept %v (reported %v) for %d bytes at 100 kB/s, want about %v", slept, res.Throttled, res.BytesRead+res.BytesWritten, want)
	}
	checkLog(t, l, m, res.EndOffset)
}

// TestManagerCleaner: the Manager's cleaner compacts a compacted topic on
// its own once it is dirty enough, leaves delete-policy topics alone, and
// stops with Close (goleak checks in TestMain).
func TestManagerCleaner(t *testing.T) {
	fsys := vfs.NewMem()
	mgr, err := OpenManager(ManagerOptions{
		FS:      fsys,
		DataDir: "/data",
		Logger:  zaptest.NewLogger(t),
		ConfigFor: func(topic string) Config {
			cfg := compactConfig()
			cfg.FlushMs = 1
			if topic == "plain" {
				cfg.CleanupPolicy = PolicyDelete
			}
			return cfg
		},
		MaintainInterval:   time.Hour,
		FlushCheckInterval: time.Millisecond,
		Cleaner:            CleanerConfig{Backoff: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mgr.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	compacted, err := mgr.Create("state", 0)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := mgr.Create("plain", 0)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel()
	rng := rand.New(rand.NewPCG(2, 3))
	fillKeyed(t, compacted, m, rng, 100, 5, record.CodecSnappy, false)
	fillKeyed(t, plain, newModel(), rng, 100, 5, record.CodecSnappy, false)
	roll(t, compacted, m)
	deadline := time.Now().Add(10 * time.Second)
	for compacted.CleanerStats().Passes == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not cleaned in 10s: %+v", compacted.CleanerStats())
		}
		time.Sleep(time.Millisecond)
	}
	checkLog(t, compacted, m, compacted.CleanerStats().FirstDirtyOffset)
	if st := plain.CleanerStats(); st.Passes != 0 {
		t.Fatalf("delete-policy log cleaned: %+v", st)
	}
}

func TestCleanerStateCodec(t *testing.T) {
	st := cleanerState{firstDirty: 100, gapBound: 120, swapBase: 50, swapEnd: 80,
		tombstones: []tombstoneRange{{1, 5, 1000}, {5, 6, 2000}, {90, 110, 3000}}}
	got, err := decodeCleanerState(st.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.encode(), st.encode()) {
		t.Fatalf("round trip: %+v != %+v", got, st)
	}
	for _, bad := range []cleanerState{
		{firstDirty: 10, gapBound: 5, swapBase: -1, swapEnd: -1},
		{firstDirty: 10, gapBound: 10, swapBase: 5, swapEnd: 5},
		{firstDirty: 10, gapBound: 10, swapBase: -1, swapEnd: 7},
		{firstDirty: 10, gapBound: 10, swapBase: -1, swapEnd: -1, tombstones: []tombstoneRange{{3, 3, 0}}},
		{firstDirty: 10, gapBound: 10, swapBase: -1, swapEnd: -1, tombstones: []tombstoneRange{{3, 5, 0}, {4, 6, 0}}},
		{firstDirty: 10, gapBound: 10, swapBase: -1, swapEnd: -1, tombstones: []tombstoneRange{{3, 11, 0}}},
		{firstDirty: 10, gapBound: 12, swapBase: -1, swapEnd: -1, tombstones: []tombstoneRange{{-1, 11, 0}}},
	} {
		if _, err := decodeCleanerState(bad.encode()); err == nil {
			t.Errorf("decoded invalid state %+v", bad)
		}
	}
	if at, ok := st.cleanedAt(5); !ok || at != 2000 {
		t.Fatalf("cleanedAt(5) = %d, %v", at, ok)
	}
	if _, ok := st.cleanedAt(6); ok {
		t.Fatal("cleanedAt(6) found a range")
	}
	if d := st.tombstoneDeadline(10); d != 1010 {
		t.Fatalf("deadline %d", d)
	}
	if d := (&cleanerState{}).tombstoneDeadline(10); d != math.MaxInt64 {
		t.Fatalf("deadline without tombstones %d", d)
	}

	var many []tombstoneRange
	for i := range 200 {
		many = append(many, tombstoneRange{int64(2 * i), int64(2*i + 1), int64(i * 7 % 13)})
	}
	merged := mergeTombstoneRanges(append([]tombstoneRange(nil), many...))
	if len(merged) != maxTombstoneRanges {
		t.Fatalf("%d ranges after merging", len(merged))
	}
	// Every tombstone is covered by a range at least as late as its own.
	for _, r := range many {
		covered := false
		for _, g := range merged {
			if g.start <= r.start && r.end <= g.end && g.cleanedAtMs >= r.cleanedAtMs {
				covered = true
			}
		}
		if !covered {
			t.Fatalf("range %+v lost or made earlier by merging", r)
		}
	}
}

func TestCleanupPolicy(t *testing.T) {
	for _, c := range []struct {
		in   string
		want CleanupPolicy
		ok   bool
	}{
		{"delete", PolicyDelete, true},
		{"compact", PolicyCompact, true},
		{"compact,delete", PolicyCompact | PolicyDelete, true},
		{" delete , compact", PolicyCompact | PolicyDelete, true},
		{"", PolicyNone, true},
		{"  ", PolicyNone, true},
		{"compact,", 0, false},
		{"remove", 0, false},
	} {
		got, err := ParseCleanupPolicy(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCleanupPolicy(%q) = %v, %v", c.in, got, err)
		}
	}
	if s := (PolicyCompact | PolicyDelete).String(); s != "compact,delete" {
		t.Errorf("String = %q", s)
	}
	if !CleanupPolicy(0).Delete() || CleanupPolicy(0).Compact() {
		t.Error("zero policy is not delete")
	}
	if none := (Config{CleanupPolicy: PolicyNone}).WithDefaults().CleanupPolicy; none != PolicyNone || none.Delete() || none.Compact() || none.String() != "" {
		t.Errorf("the empty policy: %v, delete %v, compact %v, %q", none, none.Delete(), none.Compact(), none.String())
	}
	cfg := Config{DeleteRetentionMs: -5, MinCleanableDirtyRatio: -1}.WithDefaults()
	if cfg.deleteRetention() != 0 || cfg.minCleanableRatio() != 0 || cfg.CleanupPolicy != PolicyDelete {
		t.Errorf("negative delete.retention.ms and ratio: %+v", cfg)
	}
	cfg = Config{}.WithDefaults()
	if cfg.deleteRetention() != DefaultDeleteRetentionMs || cfg.minCleanableRatio() != DefaultMinCleanableDirtyRatio {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestCleanReadsEachByteOncePerPass: batches that straddle the end of the
// cleaner's read buffer are completed from it, not read again from their
// start (helper-76 saw a first clean read three times the log), so a first
// clean (the offset map, then the copy) reads the log about twice.
func TestCleanReadsEachByteOncePerPass(t *testing.T) {
	cfg := compactConfig()
	cfg.SegmentBytes = 64 << 10
	l := openLog(t, vfs.NewMem(), "/d/t-0", cfg)
	defer func() { _ = l.Close() }()
	m := newModel()
	for i := range 60 {
		k := fmt.Sprintf("k%02d", i%10)
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: k, value: strings.Repeat("v", 2500+i*7)}}, codec: record.CodecNone, pid: -1})
	}
	roll(t, l, m)
	size := l.Size()
	c := NewCleaner(CleanerConfig{IOBufferSize: 4096})
	res := clean(t, c, l)
	t.Logf("read %d bytes of a %d-byte log (%.2fx)", res.BytesRead, size, float64(res.BytesRead)/float64(size))
	if res.BytesRead > size*22/10 {
		t.Fatalf("a first clean read %d bytes of a %d-byte log (%.2fx), want at most about 2x", res.BytesRead, size, float64(res.BytesRead)/float64(size))
	}
	checkLog(t, l, m, res.EndOffset)
}
