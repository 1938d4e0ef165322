package storage

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestTruncatedTailNotSyncedAtOpen: opening a log whose tail is torn
// truncates it without fsyncing the segment (on a slow disk the fsync of
// what the killed broker left unflushed held the partition for seconds
// before it served); the next flush syncs it, as it does every verified
// segment. A power loss before that flush still recovers to a clean log
// holding at least everything flushed before.
func TestTruncatedTailNotSyncedAtOpen(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			mem := vfs.NewCrashable()
			efs := vfs.NewErrorFS(mem)
			dir := "/data/topic-0"
			cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 100}
			l := openLog(t, efs, dir, cfg)
			fillLog(t, l, 0, 8)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			flushed := l.LogEndOffset()
			fillLog(t, l, 100, 4+int(seed))
			written := l.LogEndOffset()
			l.closeFiles(false) // kill -9
			// A torn write at the end of the last segment.
			f, err := efs.OpenFile(lastSegmentPath(t, efs, dir), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte{0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 1, 0, 7, 7, 7}); err != nil {
				t.Fatal(err)
			}
			f.Close()

			var logSyncs atomic.Int64
			efs.SetHook(func(op vfs.Op, path string) error {
				if op == vfs.OpSync && strings.HasSuffix(path, logSuffix) {
					logSyncs.Add(1)
				}
				return nil
			})
			l = openLog(t, efs, dir, cfg)
			if n := logSyncs.Load(); n != 0 {
				t.Errorf("opening the torn log fsynced a segment %d time(s)", n)
			}
			if got := l.LogEndOffset(); got != written {
				t.Fatalf("LEO %d after truncating the torn tail, want %d", got, written)
			}
			if l.UnflushedSince().IsZero() {
				t.Error("the recovered tail is not left for the next flush")
			}
			checkSequential(t, readAll(t, l, 0), 0)

			// Power loss before any flush: back to a clean log.
			mem.CrashTorn(seed)
			l.closeFiles(false)
			l = openLog(t, efs, dir, cfg)
			leo := l.LogEndOffset()
			if leo < flushed || leo > written {
				t.Fatalf("LEO %d after a power loss, flushed %d, written %d", leo, flushed, written)
			}
			checkSequential(t, readAll(t, l, 0), 0)
			fillLog(t, l, 200, 3)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			if logSyncs.Load() == 0 {
				t.Error("the flush after recovery synced no segment")
			}
			l = reopenAfterPowerLoss(t, mem, efs, dir, cfg, l, l.LogEndOffset())
			defer l.Close()
		})
	}
}

// TestCleanShutdownMarkerNotSynced: Close writes the clean-shutdown marker
// in place without an fsync (it only changes the next open's log
// message), and a torn marker is ignored and removed at open.
func TestCleanShutdownMarkerNotSynced(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	dir := "/data/topic-0"
	l := openLog(t, efs, dir, Config{})
	fillLog(t, l, 0, 3)
	end := l.LogEndOffset()
	var markerSyncs, renames atomic.Int64
	efs.SetHook(func(op vfs.Op, path string) error {
		switch {
		case op == vfs.OpSync && strings.Contains(path, cleanShutdownFile):
			markerSyncs.Add(1)
		case op == vfs.OpRename && strings.Contains(path, cleanShutdownFile):
			renames.Add(1)
		}
		return nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	efs.SetHook(nil)
	if markerSyncs.Load() != 0 || renames.Load() != 0 {
		t.Errorf("the marker was written with %d fsyncs and %d renames, want none", markerSyncs.Load(), renames.Load())
	}
	p, err := readCheckpoint(efs, checkpointPath(dir, cleanShutdownFile), magicCleanShutdown)
	if err != nil || p == nil {
		t.Fatalf("marker after close: %x, %v", p, err)
	}
	if got, err := decodeOffset(p); err != nil || got != end {
		t.Fatalf("marker holds %d (%v), want log end %d", got, err, end)
	}

	// Torn, as a power loss can leave it: ignored, and removed.
	f, err := efs.OpenFile(checkpointPath(dir, cleanShutdownFile), os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("GRC")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l = openLog(t, efs, dir, Config{})
	defer l.Close()
	if l.LogEndOffset() != end {
		t.Fatalf("log end %d after a torn marker, want %d", l.LogEndOffset(), end)
	}
	if _, err := efs.Stat(checkpointPath(dir, cleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("torn marker still there: %v", err)
	}
}

// TestCleanReopenNotResynced: a log opened after a clean close that left
// it as it is has nothing to flush: neither the next flush nor the next
// close fsyncs its active segment or rewrites its index files (every
// partition did, three fsyncs each, after every start). One append makes
// the close sync them again, and a power loss then loses nothing.
func TestCleanReopenNotResynced(t *testing.T) {
	mem := vfs.NewCrashable()
	efs := vfs.NewErrorFS(mem)
	dir := "/data/topic-0"
	cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 100}
	l := openLog(t, efs, dir, cfg)
	fillLog(t, l, 0, 12) // several segments
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var syncs atomic.Int64
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && (strings.HasSuffix(path, logSuffix) || strings.HasSuffix(path, indexSuffix) || strings.HasSuffix(path, timeIndexSuffix)) {
			syncs.Add(1)
		}
		return nil
	})
	l = openLog(t, efs, dir, cfg)
	if !l.UnflushedSince().IsZero() {
		t.Error("a log reopened after a clean close has unflushed data")
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("flush and close of a cleanly reopened, unchanged log: %d segment or index fsyncs, want 0", n)
	}

	l = openLog(t, efs, dir, cfg)
	fillLog(t, l, 100, 1)
	closeAfterAppendSurvives(t, l, &syncs, mem, efs, dir, cfg)
}

// TestPristineLogCloseSyncsNothing: closing a log nothing was ever written
// to (a new partition) fsyncs nothing and writes no index, snapshot or
// recovery-point file (a broker with 15,000 new partitions paid about ten
// fsyncs each at its first shutdown); after a power loss it opens empty
// and usable. Once written to, its close syncs again.
func TestPristineLogCloseSyncsNothing(t *testing.T) {
	mem := vfs.NewCrashable()
	efs := vfs.NewErrorFS(mem)
	dir := "/data/topic-0"
	cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 100}
	var syncs, creates atomic.Int64
	efs.SetHook(func(op vfs.Op, path string) error {
		switch op {
		case vfs.OpSync, vfs.OpSyncDir:
			syncs.Add(1)
		case vfs.OpOpen:
			creates.Add(1)
		}
		return nil
	})
	for round := range 2 {
		l := openLog(t, efs, dir, cfg)
		syncs.Store(0)
		creates.Store(0)
		if err := l.FlushIfDue(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// The clean-shutdown marker alone is written.
		if n, c := syncs.Load(), creates.Load(); n != 0 || c != 1 {
			t.Fatalf("round %d: due flush and close of a log never written to: %d fsyncs, %d files opened, want 0 and 1", round, n, c)
		}
	}
	l := reopenAfterPowerLoss(t, mem, efs, dir, cfg, nil, 0)
	fillLog(t, l, 0, 3)
	closeAfterAppendSurvives(t, l, &syncs, mem, efs, dir, cfg)
}

// closeAfterAppendSurvives closes l, just appended to, checks that the
// close fsynced something (syncs counts what efs's hook sees), and that a
// power loss after it loses nothing.
func closeAfterAppendSurvives(t *testing.T, l *Log, syncs *atomic.Int64, mem *vfs.MemFS, efs *vfs.ErrorFS, dir string, cfg Config) {
	t.Helper()
	end := l.LogEndOffset()
	syncs.Store(0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() == 0 {
		t.Fatal("the close after an append fsynced nothing")
	}
	efs.SetHook(nil)
	l = reopenAfterPowerLoss(t, mem, efs, dir, cfg, nil, end)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// reopenAfterPowerLoss simulates a power loss on mem (only what was
// fsynced survives), drops prev's files if it is still open, reopens the
// log at dir and checks that it ends at want with its records numbered
// from 0. The caller closes the log it returns.
func reopenAfterPowerLoss(t *testing.T, mem *vfs.MemFS, fsys vfs.FS, dir string, cfg Config, prev *Log, want int64) *Log {
	t.Helper()
	mem.Crash()
	if prev != nil {
		prev.closeFiles(false)
	}
	l := openLog(t, fsys, dir, cfg)
	if got := l.LogEndOffset(); got != want {
		t.Fatalf("log end %d after a power loss, want %d", got, want)
	}
	checkSequential(t, readAll(t, l, 0), 0)
	return l
}
