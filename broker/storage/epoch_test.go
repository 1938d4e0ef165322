package storage

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

func TestLeaderEpochCache(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{SegmentBytes: 1024})
		defer l.Close()
		if e, off := l.EndOffsetForEpoch(0); e != -1 || off != -1 {
			t.Fatalf("empty: %d %d", e, off)
		}
		appendAt := func(epoch int32, n int) {
			t.Helper()
			for range n {
				if _, err := l.Append(plain(t, "e", 2), epoch); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendAt(0, 5) // 0..9
		appendAt(2, 5) // 10..19
		appendAt(5, 5) // 20..29
		if _, err := l.Append(plain(t, "old", 1), 4); !errors.Is(err, ErrFencedLeaderEpoch) {
			t.Fatalf("append with an older epoch: %v", err)
		}
		want := []EpochEntry{{0, 0}, {2, 10}, {5, 20}}
		check := func(want []EpochEntry) {
			t.Helper()
			got := l.Epochs()
			if len(got) != len(want) {
				t.Fatalf("epochs %v, want %v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("epochs %v, want %v", got, want)
				}
			}
		}
		check(want)
		if l.LatestEpoch() != 5 {
			t.Fatalf("latest %d", l.LatestEpoch())
		}
		for _, c := range []struct {
			req, epoch int32
			end        int64
		}{
			{5, 5, 30}, {4, 2, 20}, {3, 2, 20}, {2, 2, 20}, {1, 0, 10}, {0, 0, 10}, {6, -1, -1}, {-1, -1, -1},
		} {
			if e, off := l.EndOffsetForEpoch(c.req); e != c.epoch || off != c.end {
				t.Fatalf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", c.req, e, off, c.epoch, c.end)
			}
		}
		// Batches carry the epoch they were written in.
		c, err := l.Read(12, -1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		hs, _ := chunkBatches(t, c)
		c.Release()
		if hs[0].PartitionLeaderEpoch != 2 {
			t.Fatalf("batch at 12 has epoch %d", hs[0].PartitionLeaderEpoch)
		}

		// Persisted, and trimmed by truncation and log start.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, Config{SegmentBytes: 1024})
		defer l.Close()
		check(want)
		if err := l.Truncate(20); err != nil {
			t.Fatal(err)
		}
		check(want[:2])
		l.SetHighWatermark(20)
		if _, err := l.DeleteRecordsBefore(12); err != nil {
			t.Fatal(err)
		}
		check([]EpochEntry{{2, 12}})
		if e, off := l.EndOffsetForEpoch(0); e != 0 || off != 12 {
			t.Fatalf("epoch before the first: %d %d", e, off)
		}
		appendAt(7, 1)
		check([]EpochEntry{{2, 12}, {7, 20}})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, Config{SegmentBytes: 1024})
		defer l.Close()
		check([]EpochEntry{{2, 12}, {7, 20}})
	})
}

func TestTruncate(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 1024, IndexIntervalBytes: 100}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		for i := range int32(30) {
			mustAppend(t, l, pbatch(t, 1, 0, i*2, 2)) // offsets 2i, 2i+1
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		l.SetHighWatermark(l.LogEndOffset())
		before := len(l.segments())
		// Mid-batch: the whole batch goes.
		if err := l.Truncate(25); err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() != 24 || l.HighWatermark() != 24 {
			t.Fatalf("LEO %d HWM %d after truncate to 25", l.LogEndOffset(), l.HighWatermark())
		}
		if len(l.segments()) >= before {
			t.Fatalf("segments %d -> %d", before, len(l.segments()))
		}
		recs := readAll(t, l, 0)
		checkSequential(t, recs, 0)
		if len(recs) != 24 {
			t.Fatalf("%d records", len(recs))
		}
		// Producer state follows: sequence 24 is next, 30 is a gap.
		if _, err := l.Append(pbatch(t, 1, 0, 30, 2), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("after truncate, seq 30: %v", err)
		}
		if res := mustAppend(t, l, pbatch(t, 1, 0, 24, 2)); res.BaseOffset != 24 || res.Duplicate {
			t.Fatalf("after truncate, seq 24: %+v", res)
		}
		// The recovery point moved back: a crash now recovers the
		// appended data by scanning, not by trusting stale positions.
		l.closeFiles(false)
		l = openLog(t, fsys, dir, cfg)
		defer l.Close()
		if l.LogEndOffset() != 26 {
			t.Fatalf("LEO after reopen %d", l.LogEndOffset())
		}
		checkSequential(t, readAll(t, l, 0), 0)
		// At a segment base, and then everything.
		second := l.segments()[1].base
		if err := l.Truncate(second); err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() != second {
			t.Fatalf("LEO %d after truncating at segment base %d", l.LogEndOffset(), second)
		}
		if err := l.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() != 0 || l.Size() != 0 || len(l.segments()) != 1 {
			t.Fatalf("after truncate to 0: LEO %d size %d segments %d", l.LogEndOffset(), l.Size(), len(l.segments()))
		}
		mustAppend(t, l, pbatch(t, 9, 0, 0, 1))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, cfg)
		defer l.Close()
		if l.LogEndOffset() != 1 {
			t.Fatalf("LEO after reopen %d", l.LogEndOffset())
		}
	})
}

// TestBecomeLeader: an epoch the broker leads in starts at the log end; a
// newer one with nothing written in between replaces it (as in Kafka's
// cache); appends in it change nothing; the entry at the log end survives
// a reopen without the checkpoint being rewritten.
func TestBecomeLeader(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{})
		for range 4 {
			if _, err := l.Append(plain(t, "e", 2), 0); err != nil { // 0..7
				t.Fatal(err)
			}
		}
		for _, epoch := range []int32{1, 2, 2, 0} {
			if err := l.BecomeLeader(epoch); err != nil {
				t.Fatal(err)
			}
		}
		want := []EpochEntry{{0, 0}, {2, 8}}
		if got := l.Epochs(); !slices.Equal(got, want) {
			t.Fatalf("epochs %v, want %v", got, want)
		}
		if e, end := l.EndOffsetForEpoch(1); e != 0 || end != 8 {
			t.Fatalf("EndOffsetForEpoch(1) = %d, %d; want 0, 8", e, end)
		}
		if e, end := l.EndOffsetForEpoch(2); e != 2 || end != 8 {
			t.Fatalf("EndOffsetForEpoch(2) = %d, %d; want 2, 8", e, end)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		ef := vfs.NewErrorFS(fsys)
		var writes atomic.Int32
		ef.SetHook(func(op vfs.Op, path string) error {
			if op == vfs.OpOpen && strings.HasSuffix(path, epochCheckpoint+".tmp") {
				writes.Add(1) // a checkpoint is written to a temporary file, then renamed
			}
			return nil
		})
		l = openLog(t, ef, dir, Config{})
		defer l.Close()
		if got := l.Epochs(); !slices.Equal(got, want) {
			t.Fatalf("epochs after reopen %v, want %v", got, want)
		}
		if err := l.BecomeLeader(2); err != nil {
			t.Fatal(err)
		}
		if n := writes.Load(); n != 0 {
			t.Fatalf("leader-epoch checkpoint written %d times by a reopen that changed nothing", n)
		}
		if _, err := l.Append(plain(t, "e", 2), 2); err != nil {
			t.Fatal(err)
		}
		if got := l.Epochs(); !slices.Equal(got, want) {
			t.Fatalf("epochs after an append in epoch 2: %v, want %v", got, want)
		}
	})
}
