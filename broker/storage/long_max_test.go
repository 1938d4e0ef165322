package storage

import (
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
