package storage

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestRecoveryPointCadence: a flush fsyncs the data but writes the
// recovery-point file only when the log has none, when the flushed point
// moved to another segment or far enough, after checkpointInterval, or at
// a clean close;
// after a power loss with the file behind, every flushed record is still
// there (verified again from the older point).
func TestRecoveryPointCadence(t *testing.T) {
	mem := vfs.NewMem()
	c := newClock()
	const dir = "/data/topic-0"
	cfg := Config{SegmentBytes: 64 << 10}
	l := openLog(t, mem, dir, cfg, withNow(c))
	onDisk := func() recoveryPoint {
		t.Helper()
		rp, _, _ := l.readRecoveryPoint()
		return rp
	}
	// The first flush of a log without the file writes it; the next
	// small one does not.
	mustAppend(t, l, plain(t, "a", 10))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if rp := onDisk(); rp.Offset != 10 {
		t.Fatalf("recovery point after the first flush: %+v, want offset 10", rp)
	}
	mustAppend(t, l, plain(t, "a2", 10))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if rp := onDisk(); rp.Offset != 10 {
		t.Fatalf("recovery point moved at a small flush: %+v", rp)
	}
	// Later: the file follows.
	c.Advance(checkpointInterval)
	mustAppend(t, l, plain(t, "b", 10))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if rp := onDisk(); rp.Offset != 30 {
		t.Fatalf("recovery point after checkpointInterval: %+v, want offset 30", rp)
	}
	// A new segment: the file follows at once.
	for l.LogEndOffset() < 2000 {
		mustAppend(t, l, makeBatch(t, batchSpec{n: 100, valueSize: 100, pid: -1, tag: "c"}))
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	rp := onDisk()
	if rp.Offset != l.LogEndOffset() || rp.SegmentBase == 0 {
		t.Fatalf("recovery point after rolling: %+v, log end %d", rp, l.LogEndOffset())
	}
	// Flushed but not checkpointed, then a power loss.
	mustAppend(t, l, plain(t, "d", 10))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	end := l.LogEndOffset()
	if onDisk() != rp {
		t.Fatalf("recovery point moved on a small flush")
	}
	mem.Crash()
	l = openLog(t, mem, dir, cfg, withNow(c))
	if l.LogEndOffset() != end {
		t.Fatalf("after the crash the log ends at %d, want %d", l.LogEndOffset(), end)
	}
	l.SetHighWatermark(end)
	if recs := readAll(t, l, 0); int64(len(recs)) != end {
		t.Fatalf("read %d records after the crash, want %d", len(recs), end)
	} else {
		checkSequential(t, recs, 0)
	}
	// A clean close writes it.
	mustAppend(t, l, plain(t, "e", 10))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, mem, dir, cfg, withNow(c))
	defer l.Close()
	if rp := onDisk(); rp.Offset != end+10 {
		t.Fatalf("recovery point after a clean close: %+v, want offset %d", rp, end+10)
	}
}

// TestIdleCloseKeepsRecoveryPoint: closing a log that took no appends
// since it opened does not write the recovery point again (the file holds
// it; a shutdown of thousands of idle logs spent its time on such
// writes), but a log whose file was bad at open gets a good one.
func TestIdleCloseKeepsRecoveryPoint(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	var writes atomic.Int32
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpOpen && strings.HasSuffix(path, recoveryPointFile+".tmp") {
			writes.Add(1)
		}
		return nil
	})
	const dir = "/d/t-0"
	l := openLog(t, efs, dir, Config{})
	mustAppend(t, l, plain(t, "x", 3))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := writes.Swap(0); n != 1 {
		t.Fatalf("close after an append wrote the recovery point %d times, want 1", n)
	}
	l = openLog(t, efs, dir, Config{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := writes.Swap(0); n != 0 {
		t.Fatalf("idle close wrote the recovery point %d times", n)
	}
	data, err := vfs.ReadFile(efs, checkpointPath(dir, recoveryPointFile))
	if err != nil {
		t.Fatal(err)
	}
	data[12] ^= 0xff // the payload no longer matches the CRC
	if err := vfs.WriteFileAtomic(efs, checkpointPath(dir, recoveryPointFile), data); err != nil {
		t.Fatal(err)
	}
	writes.Store(0)
	l = openLog(t, efs, dir, Config{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("close after a bad recovery point wrote it %d times, want 1", n)
	}
	l = openLog(t, efs, dir, Config{})
	defer l.Close()
	if rp, ok, err := l.readRecoveryPoint(); err != nil || !ok || rp.Offset != 3 {
		t.Fatalf("recovery point after the rewrite: %+v %v %v", rp, ok, err)
	}
}
