package storage

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/internal/vfs"
)

// Kafka's own defaults for flush.ms and flush.messages are Long.MAX_VALUE,
// and users copy them into their configs: such a flush.ms must mean
// "never", not overflow into "now" (it did: every flush check fsynced), and
// a file.delete.delay.ms as large must keep deleted files, not remove them
// at once.
func TestLongMaxMillisecondConfigs(t *testing.T) {
	fsys := vfs.NewMem()
	dir := filepath.Join("/data", "topic-0")
	clk := newClock()
	l := openLog(t, fsys, dir, Config{
		SegmentBytes:      1024,
		FlushMs:           math.MaxInt64,
		FlushMessages:     math.MaxInt64,
		FileDeleteDelayMs: math.MaxInt64,
	}, withNow(clk))
	defer l.Close()
	for range 8 {
		mustAppend(t, l, makeBatch(t, batchSpec{n: 4, valueSize: 100, pid: -1}))
	}
	clk.Advance(100 * 365 * 24 * time.Hour)
	if err := l.FlushIfDue(); err != nil {
		t.Fatal(err)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if l.firstUnflushed.Load() == 0 {
		t.Fatal("flush.ms=Long.MAX_VALUE flushed")
	}

	l.SetHighWatermark(l.LogEndOffset())
	if _, err := l.DeleteRecordsBefore(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, n := range names {
		if strings.HasSuffix(n.Name(), ".deleted") {
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatalf("file.delete.delay.ms=Long.MAX_VALUE: deleted segments removed at once; dir holds %v", names)
	}

	// A plain flush.ms is still honoured.
	cfg := l.Config()
	cfg.FlushMs = 1000
	l.SetConfig(cfg)
	clk.Advance(999 * time.Millisecond)
	mustAppend(t, l, makeBatch(t, batchSpec{n: 1, pid: -1}))
	if err := l.FlushIfDue(); err != nil {
		t.Fatal(err)
	}
	if l.firstUnflushed.Load() != 0 {
		t.Fatal("flush.ms=1000 did not flush data appended a century ago")
	}
}

// delete.retention.ms=Long.MAX_VALUE keeps tombstones for good: the sum
// with the time they were cleaned wrapped, and they went at the first pass.
func TestTombstonesKeptForLongMax(t *testing.T) {
	clk := newClock()
	cfg := compactConfig()
	cfg.DeleteRetentionMs = math.MaxInt64
	l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
	defer func() { _ = l.Close() }()
	m := newModel()
	for k := range 10 {
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%d", k), value: "v"}}, pid: -1})
	}
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "k0", tomb: true}}, pid: -1})
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{})
	for range 3 {
		res := clean(t, c, l)
		recs := checkLog(t, l, m, res.EndOffset)
		if got := tombstonesIn(recs, res.EndOffset); len(got) != 1 || res.TombstonesRemoved != 0 {
			t.Fatalf("tombstones %v left, %d removed; want k0's kept", got, res.TombstonesRemoved)
		}
		if _, due := l.cleanability(clk.Now()); due {
			t.Fatal("log due for a tombstone that is kept for good")
		}
		clk.Advance(100 * 365 * 24 * time.Hour)
	}
}
