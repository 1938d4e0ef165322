package storage

import (
	"errors"
	"syscall"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestFullDiskTruncateFailureIsSticky: when the partial write on a full
// disk cannot even be cut back, the file's tail is unknown, so the log
// refuses appends until it is reopened (which truncates the torn tail).
func TestFullDiskTruncateFailureIsSticky(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := openLog(t, efs, "/d/t-0", Config{})
	fillLog(t, l, 0, 3)
	efs.SetWriteLimit(50)
	efs.FailOn(vfs.OpTruncate, "", syscall.EIO)
	if _, err := l.Append(plain(t, "x", 3), 0); !errors.Is(err, ErrStorage) {
		t.Fatalf("append on full disk: %v", err)
	}
	efs.Clear()
	if _, err := l.Append(plain(t, "y", 1), 0); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after a failed cut-back is not refused: %v", err)
	}
	l.closeFiles(false)
	l = openLog(t, efs, "/d/t-0", Config{})
	defer l.Close()
	if l.LogEndOffset() != 6 {
		t.Fatalf("LEO after reopen %d, want 6", l.LogEndOffset())
	}
	checkSequential(t, readAll(t, l, 0), 0)
}

// TestFullDiskAtRoll: a segment roll that cannot create its file for want
// of space refuses that append only.
func TestFullDiskAtRoll(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	cfg := Config{SegmentBytes: 512}
	l := openLog(t, efs, "/d/t-0", cfg)
	defer l.Close()
	fillLog(t, l, 0, 3) // about 290 bytes: the next two batches roll
	segs := len(l.segments())
	efs.FailOn(vfs.OpOpen, ".log", syscall.ENOSPC)
	var err error
	for range 4 {
		if _, err = l.Append(plain(t, "x", 4), 0); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append needing a roll on a full disk: %v", err)
	}
	efs.Clear()
	leo := l.LogEndOffset()
	res := mustAppend(t, l, plain(t, "y", 4))
	if res.BaseOffset != leo || len(l.segments()) <= segs {
		t.Fatalf("append after space was freed: base %d (want %d), %d segments (had %d)", res.BaseOffset, leo, len(l.segments()), segs)
	}
	l.SetHighWatermark(l.LogEndOffset())
	checkSequential(t, readAll(t, l, 0), 0)
}

// TestFullDiskAtFlush: a flush that cannot write a closed segment's index
// files, the producer snapshot or the recovery point, or sync the
// directory, for want of space or of file descriptors (EMFILE from a
// burst of client connections, ENFILE), fails with ErrStorage but leaves
// the log writable and the flush due; the next flush writes what was
// missing, and a reopened log trusts it.
func TestFullDiskAtFlush(t *testing.T) {
	for _, c := range []struct {
		name  string
		errno syscall.Errno
		fail  func(*vfs.ErrorFS)
	}{
		{"index", syscall.ENOSPC, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpWrite, indexSuffix, syscall.ENOSPC) }},
		{"timeindex", syscall.ENOSPC, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpWrite, timeIndexSuffix, syscall.ENOSPC) }},
		{"recovery-point", syscall.ENOSPC, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpWrite, recoveryPointFile, syscall.ENOSPC) }},
		{"snapshot", syscall.ENOSPC, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpWrite, snapshotSuffix, syscall.ENOSPC) }},
		{"everything", syscall.ENOSPC, func(e *vfs.ErrorFS) { e.SetWriteLimit(0) }},
		{"index-fds", syscall.EMFILE, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpOpen, indexSuffix, syscall.EMFILE) }},
		{"recovery-point-fds", syscall.EMFILE, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpOpen, recoveryPointFile, syscall.EMFILE) }},
		{"snapshot-fds", syscall.ENFILE, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpOpen, snapshotSuffix, syscall.ENFILE) }},
		{"dir-fds", syscall.EMFILE, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpSyncDir, "", syscall.EMFILE) }},
		{"every-open-fds", syscall.EMFILE, func(e *vfs.ErrorFS) { e.FailOn(vfs.OpOpen, "", syscall.EMFILE) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fsys := vfs.NewMem()
			efs := vfs.NewErrorFS(fsys)
			cfg := Config{SegmentBytes: 512}
			l := openLog(t, efs, "/d/t-0", cfg)
			// A producer's batches, so that the flush has a snapshot to
			// write, over several segments.
			for i := range 8 {
				mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 7, seq: int32(2 * i), tag: "p", valueSize: 40}))
			}
			if len(l.segments()) < 2 {
				t.Fatalf("%d segments, want several", len(l.segments()))
			}
			c.fail(efs)
			err := l.Flush()
			if !errors.Is(err, ErrStorage) || !errors.Is(err, c.errno) {
				t.Fatalf("flush short of %v: %v", c.errno, err)
			}
			if err := l.WriteError(); err != nil {
				t.Fatalf("log fenced: %v", err)
			}
			if l.firstUnflushed.Load() == 0 {
				t.Fatal("the failed flush is no longer due")
			}
			efs.Clear()
			mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 7, seq: 16, tag: "p", valueSize: 40}))
			if err := l.Flush(); err != nil {
				t.Fatalf("flush after space was freed: %v", err)
			}
			leo := l.LogEndOffset()
			// Crash: only what the flush made durable counts.
			l.closeFiles(false)
			l = openLog(t, efs, "/d/t-0", cfg)
			defer l.Close()
			if l.LogEndOffset() != leo {
				t.Fatalf("LEO after reopen %d, want %d", l.LogEndOffset(), leo)
			}
			l.SetHighWatermark(leo)
			checkSequential(t, readAll(t, l, 0), 0)
			// The producer's state came back: its next batch is in
			// sequence, a repeat is a duplicate.
			if res := mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 7, seq: 16, tag: "p", valueSize: 40})); !res.Duplicate {
				t.Fatalf("repeated batch after reopen not a duplicate: %+v", res)
			}
			mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 7, seq: 18, tag: "p", valueSize: 40}))
		})
	}
}

// TestFullDiskAtEpochChange: the first append of a new leader epoch on a
// full disk (the leader-epoch checkpoint cannot be written) is refused
// without fencing the log, and the epoch is recorded by the next append
// once space is freed; a full disk while retention trims the epochs is not
// sticky either, and the stale checkpoint is trimmed at the next open.
func TestFullDiskAtEpochChange(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := openLog(t, efs, "/d/t-0", Config{SegmentBytes: 512})
	mustAppend(t, l, plain(t, "a", 2))
	efs.FailOn(vfs.OpWrite, epochCheckpoint, syscall.ENOSPC)
	if _, err := l.Append(plain(t, "b", 2), 1); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append of a new epoch on a full disk: %v", err)
	}
	if e := l.Epochs(); len(e) != 1 || e[0].Epoch != 0 {
		t.Fatalf("epochs after the refused append: %+v", e)
	}
	efs.Clear()
	res, err := l.Append(plain(t, "b", 2), 1)
	if err != nil {
		t.Fatalf("append of a new epoch after space was freed: %v", err)
	}
	if e := l.Epochs(); len(e) != 2 || e[1] != (EpochEntry{Epoch: 1, StartOffset: res.BaseOffset}) {
		t.Fatalf("epochs: %+v", e)
	}
	for range 6 {
		if _, err := l.Append(plain(t, "c", 4), 2); err != nil {
			t.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	efs.FailOn(vfs.OpWrite, epochCheckpoint, syscall.ENOSPC)
	if _, err := l.DeleteRecordsBefore(l.LogEndOffset() - 1); err != nil {
		t.Fatalf("DeleteRecords on a full disk for the epoch checkpoint: %v", err)
	}
	if err := l.WriteError(); err != nil {
		t.Fatalf("log fenced: %v", err)
	}
	efs.Clear()
	if _, err := l.Append(plain(t, "d", 1), 2); err != nil {
		t.Fatal(err)
	}
	want := l.Epochs()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, efs, "/d/t-0", Config{SegmentBytes: 512})
	defer l.Close()
	if got := l.Epochs(); len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("epochs after reopen %+v, want %+v", got, want)
	}
}

// TestUnreadableCheckpointFailsOpen: a checkpoint that cannot be read at
// all (no file descriptor to open it) fails Open rather than being taken
// as absent: an absent log-start-offset would bring records deleted by
// DeleteRecords back, an absent clean-shutdown marker would at worst cost a
// recovery, but one of unknown existence must not skip it. With
// descriptors back, the log opens as it was.
func TestUnreadableCheckpointFailsOpen(t *testing.T) {
	for _, file := range []string{logStartOffsetFile, cleanShutdownFile, epochCheckpoint, recoveryPointFile} {
		t.Run(file, func(t *testing.T) {
			efs := vfs.NewErrorFS(vfs.NewMem())
			l := openLog(t, efs, "/d/t-0", Config{})
			for range 5 {
				mustAppend(t, l, plain(t, "x", 2))
			}
			l.SetHighWatermark(l.LogEndOffset())
			if _, err := l.DeleteRecordsBefore(4); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			efs.FailOn(vfs.OpOpen, file, syscall.EMFILE)
			if l, err := Open(Options{FS: efs, Dir: "/d/t-0", Topic: "t", Config: Config{}}); !errors.Is(err, syscall.EMFILE) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("open with %s unreadable: %v", file, err)
			}
			efs.Clear()
			l = openLog(t, efs, "/d/t-0", Config{})
			defer l.Close()
			if start := l.LogStartOffset(); start != 4 {
				t.Fatalf("log start %d after reopening, want 4", start)
			}
		})
	}
}
