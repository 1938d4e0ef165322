package storage

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// chunkBatches returns the headers of the whole batches in a chunk and the
// number of trailing bytes that are not a whole batch.
func chunkBatches(t *testing.T, c Chunk) ([]record.Header, int) {
	t.Helper()
	buf := make([]byte, c.Size)
	if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
		t.Fatal(err)
	}
	var hs []record.Header
	used := 0
	err := record.Batches(buf, func(pos int, batch []byte, h record.Header) error {
		hs = append(hs, h)
		used = pos + len(batch)
		return nil
	})
	if err != nil && !errors.Is(err, record.ErrShort) {
		t.Fatal(err)
	}
	return hs, len(buf) - used
}

func TestReadBoundaries(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		big := makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: -1, tag: "big"})
		small := plain(t, "s", 1)
		cfg := Config{SegmentBytes: int64(3*len(big) + 2*len(small)), IndexIntervalBytes: 64}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		// Segment 0: big(0-9) small(10) big(11-20) small(21) big(22-31)
		// Segment 1: big(32-41) ...
		for range 3 {
			mustAppend(t, l, big)
			mustAppend(t, l, small)
		}
		mustAppend(t, l, big)
		l.SetHighWatermark(l.LogEndOffset())
		if n := len(l.segments()); n != 2 {
			t.Fatalf("%d segments", n)
		}

		read := func(off, max int64, maxBytes int32) ([]record.Header, int) {
			t.Helper()
			c, err := l.Read(off, max, maxBytes)
			if err != nil {
				t.Fatalf("Read(%d,%d,%d): %v", off, max, maxBytes, err)
			}
			defer c.Release()
			if c.Size == 0 {
				return nil, 0
			}
			return chunkBatches(t, c)
		}
		bases := func(hs []record.Header) []int64 {
			var b []int64
			for _, h := range hs {
				b = append(b, h.BaseOffset)
			}
			return b
		}

		// maxBytes smaller than the first batch: one whole batch.
		if hs, partial := read(5, -1, 10); len(hs) != 1 || hs[0].BaseOffset != 0 || partial != 0 {
			t.Fatalf("small maxBytes: %v partial %d", bases(hs), partial)
		}
		// maxBytes a bit more than one batch: the whole batch only, cut
		// where the index (an entry per batch here) knows the next starts.
		if hs, partial := read(0, -1, int32(len(big)+10)); len(hs) != 1 || partial != 0 {
			t.Fatalf("maxBytes one batch + 10: %v partial %d", bases(hs), partial)
		}
		// Room for three batches and part of a fourth: three whole ones.
		if hs, partial := read(0, -1, int32(2*len(big)+len(small)+10)); !equal(bases(hs), []int64{0, 10, 11}) || partial != 0 {
			t.Fatalf("maxBytes three batches + 10: %v partial %d", bases(hs), partial)
		}
		// maxOffset inside the segment stops before the batch holding it.
		if hs, _ := read(0, 21, 1<<20); !equal(bases(hs), []int64{0, 10, 11}) {
			t.Fatalf("maxOffset 21: %v", bases(hs))
		}
		if hs, _ := read(0, 15, 1<<20); !equal(bases(hs), []int64{0, 10}) {
			t.Fatalf("maxOffset 15 (mid-batch): %v", bases(hs))
		}
		// Offset and maxOffset in the same batch: nothing to send.
		if hs, _ := read(12, 15, 1<<20); len(hs) != 0 {
			t.Fatalf("offset and maxOffset in one batch: %v", bases(hs))
		}
		// A read stays in one segment.
		if hs, _ := read(21, -1, 1<<20); !equal(bases(hs), []int64{21, 22}) {
			t.Fatalf("to the end of segment 0: %v", bases(hs))
		}
		if hs, _ := read(32, -1, 1<<20); !equal(bases(hs), []int64{32, 33}) {
			t.Fatalf("segment 1: %v", bases(hs))
		}
		// maxOffset at the high watermark.
		l.SetHighWatermark(22)
		if hs, _ := read(21, l.HighWatermark(), 1<<20); !equal(bases(hs), []int64{21}) {
			t.Fatalf("up to hwm 22: %v", bases(hs))
		}
		if _, err := l.Read(-1, -1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("negative offset: %v", err)
		}
		if _, err := l.Read(44, -1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("past LEO: %v", err)
		}
	})
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOffsetForTimestamp(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{SegmentBytes: 1024, IndexIntervalBytes: 100})
		defer l.Close()
		if off, ts, err := l.OffsetForTimestamp(0); err != nil || off != -1 || ts != -1 {
			t.Fatalf("empty log: %d %d %v", off, ts, err)
		}
		if off, ts := l.MaxTimestamp(); off != -1 || ts != -1 {
			t.Fatalf("empty log max: %d %d", off, ts)
		}
		// Batch i (offsets 3i..3i+2) holds records at T+1000i+{0,1,2},
		// compressed every other batch; batch 7 goes back to T+500.
		const T = 1_000_000
		for i := range int64(20) {
			ts := T + 1000*i
			if i == 7 {
				ts = T + 500
			}
			codec := record.CodecNone
			if i%2 == 1 {
				codec = record.CodecZstd
			}
			mustAppend(t, l, makeBatch(t, batchSpec{n: 3, ts: ts, pid: -1, codec: codec, valueSize: 20}))
		}
		l.SetHighWatermark(l.LogEndOffset())
		if n := len(l.segments()); n < 3 {
			t.Fatalf("%d segments", n)
		}
		for _, c := range []struct{ ts, off, got int64 }{
			{0, 0, T},
			{T, 0, T},
			{T + 1, 1, T + 1},
			{T + 2, 2, T + 2},
			{T + 3, 3, T + 1000},
			{T + 501, 3, T + 1000},
			{T + 6001, 19, T + 6001},
			{T + 6003, 24, T + 8000},
			{T + 19002, 59, T + 19002},
			{T + 19003, -1, -1},
		} {
			off, ts, err := l.OffsetForTimestamp(c.ts)
			if err != nil || off != c.off || ts != c.got {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want %d, %d", c.ts, off, ts, err, c.off, c.got)
			}
		}
		if off, ts := l.MaxTimestamp(); off != 59 || ts != T+19002 {
			t.Fatalf("MaxTimestamp %d %d", off, ts)
		}
		// Not beyond the high watermark.
		l.SetHighWatermark(30)
		if off, _, _ := l.OffsetForTimestamp(T + 15000); off != -1 {
			t.Fatalf("above hwm: %d", off)
		}
		// Survives reopen (trusted segments' time indexes from files).
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, Config{SegmentBytes: 1024, IndexIntervalBytes: 100})
		defer l.Close()
		if off, ts, err := l.OffsetForTimestamp(T + 6003); err != nil || off != 24 || ts != T+8000 {
			t.Fatalf("after reopen: %d %d %v", off, ts, err)
		}
		if off, ts := l.MaxTimestamp(); off != 59 || ts != T+19002 {
			t.Fatalf("MaxTimestamp after reopen %d %d", off, ts)
		}
	})
}

func TestDeleteRecordsBefore(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 1024}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		fillLog(t, l, 0, 40) // 80 records
		l.SetHighWatermark(70)
		if _, err := l.DeleteRecordsBefore(71); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("beyond hwm: %v", err)
		}
		before := len(l.segments())
		start, err := l.DeleteRecordsBefore(33)
		if err != nil || start != 33 || l.LogStartOffset() != 33 {
			t.Fatalf("delete before 33: %d %v", start, err)
		}
		if len(l.segments()) >= before {
			t.Fatalf("no segment deleted: %d -> %d", before, len(l.segments()))
		}
		if _, err := l.Read(32, -1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below log start: %v", err)
		}
		recs := readAll(t, l, 33)
		checkSequential(t, recs, 33)
		if start, _ := l.DeleteRecordsBefore(10); start != 33 {
			t.Fatalf("moving back: %d", start)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, cfg)
		defer l.Close()
		if l.LogStartOffset() != 33 {
			t.Fatalf("log start after reopen %d", l.LogStartOffset())
		}
		// Everything: an empty active segment remains at the end.
		if _, err := l.DeleteRecordsBefore(80); err != nil {
			t.Fatal(err)
		}
		if n := len(l.segments()); n != 1 || l.LogStartOffset() != 80 || l.Size() != 0 {
			t.Fatalf("after deleting everything: %d segments, start %d, size %d", n, l.LogStartOffset(), l.Size())
		}
		mustAppend(t, l, plain(t, "x", 1))
		l.SetHighWatermark(l.LogEndOffset())
		if recs := readAll(t, l, 80); len(recs) != 1 || recs[0].offset != 80 {
			t.Fatalf("after delete-all and append: %+v", recs)
		}
	})
}

func TestRetention(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		clk := newClock()
		cfg := Config{SegmentBytes: 1024, RetentionMs: 60_000, FileDeleteDelayMs: 1000}
		l := openLog(t, fsys, dir, cfg, withNow(clk))
		defer l.Close()
		now := clk.Now().UnixMilli()
		for i := range 30 {
			ts := now - 120_000 // two minutes old
			if i >= 20 {
				ts = now
			}
			mustAppend(t, l, makeBatch(t, batchSpec{n: 2, ts: ts, pid: -1, valueSize: 40}))
		}
		l.SetHighWatermark(l.LogEndOffset())
		// A reader holds a chunk of the first segment.
		c, err := l.Read(0, -1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		first := l.segments()[0]
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l.LogStartOffset() == 0 {
			t.Fatal("nothing deleted by time")
		}
		for _, s := range l.segments() {
			if ts, _, _ := s.maxTimestamp(); ts < now-60_000 {
				t.Fatalf("segment %d with max timestamp %d survived", s.base, ts)
			}
		}
		if _, err := l.Read(0, -1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read of deleted segment: %v", err)
		}
		// The held chunk still reads.
		hs, _ := chunkBatches(t, c)
		if len(hs) == 0 || hs[0].BaseOffset != 0 {
			t.Fatalf("held chunk after retention: %v", hs)
		}
		if first.refs.Load() != 1 {
			t.Fatalf("deleted segment refs %d", first.refs.Load())
		}
		c.Release()
		c.Release()
		if first.refs.Load() != 0 {
			t.Fatalf("deleted segment refs after release %d", first.refs.Load())
		}
		if _, err := fsys.Stat(first.path(logSuffix) + deletedSuffix); err != nil {
			t.Fatalf("deleted file gone before the delay: %v", err)
		}
		clk.Advance(2 * time.Second)
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(first.path(logSuffix) + deletedSuffix); !errors.Is(err, errNotExist) {
			t.Fatalf("deleted file still there after the delay: %v", err)
		}

		// Everything expires: the active segment is rolled and deleted.
		clk.Advance(10 * time.Minute)
		leo := l.LogEndOffset()
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l.LogStartOffset() != leo || l.Size() != 0 || len(l.segments()) != 1 {
			t.Fatalf("after all expired: start %d (leo %d) size %d segments %d", l.LogStartOffset(), leo, l.Size(), len(l.segments()))
		}
		if res := mustAppend(t, l, plain(t, "x", 1)); res.BaseOffset != leo {
			t.Fatalf("append after full retention at %d", res.BaseOffset)
		}
	})
}

func TestRetentionBySize(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 1000, RetentionBytes: 2500, RetentionMs: -1}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		fillLog(t, l, 0, 60)
		total := l.Size()
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l.Size() < 2500 || l.Size() >= total {
			t.Fatalf("size %d after retention (was %d)", l.Size(), total)
		}
		// One more segment's worth would bring it under the limit.
		if s := l.segments()[0]; func() bool { _, sz := s.end(); return l.Size()-sz >= 2500 }() {
			t.Fatal("retention stopped early")
		}
		checkSequential(t, readAll(t, l, l.LogStartOffset()), l.LogStartOffset())
		// Not beyond the high watermark.
		l2 := openLog(t, fsys, dir+"b", cfg)
		defer l2.Close()
		fillLog(t, l2, 0, 60)
		l2.SetHighWatermark(0)
		if err := l2.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l2.LogStartOffset() != 0 {
			t.Fatalf("retention deleted uncommitted data: start %d", l2.LogStartOffset())
		}
	})
}

// TestRollBySegmentMs: an append rolls when its records are segment.ms
// newer than the active segment's first batch; an idle segment rolls in
// Maintain once it is segment.ms old by the clock.
func TestRollBySegmentMs(t *testing.T) {
	clk := newClock()
	l := openLog(t, vfs.NewMem(), "/d/t-0", Config{SegmentMs: 1000}, withNow(clk))
	defer l.Close()
	now := func(tag string) []byte {
		return makeBatch(t, batchSpec{n: 1, pid: -1, tag: tag, ts: clk.Now().UnixMilli()})
	}
	mustAppend(t, l, now("a"))
	clk.Advance(500 * time.Millisecond)
	mustAppend(t, l, now("b"))
	if n := len(l.segments()); n != 1 {
		t.Fatalf("%d segments before segment.ms", n)
	}
	clk.Advance(600 * time.Millisecond)
	mustAppend(t, l, now("c"))
	if n := len(l.segments()); n != 2 {
		t.Fatalf("%d segments after segment.ms on append", n)
	}
	clk.Advance(2 * time.Second)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.segments()); n != 3 {
		t.Fatalf("%d segments after segment.ms in Maintain", n)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.segments()); n != 3 {
		t.Fatalf("an empty segment was rolled: %d", n)
	}
}

// TestRollByRecordTime: segment.ms compares the records' timestamps with
// the active segment's first batch's, as Kafka does, not the broker's
// clock: a backfill of a month of records rolls a segment per segment.ms
// of their time (so retention.ms deletes the old ones), records stamped in
// the future do not keep older ones past retention.ms, and records with no
// timestamp fall back to the segment's age by the clock.
func TestRollByRecordTime(t *testing.T) {
	const day = 24 * time.Hour
	bases := func(l *Log) []int64 {
		var b []int64
		for _, s := range l.segments() {
			b = append(b, s.base)
		}
		return b
	}
	at := func(tag string, ts time.Time) []byte {
		return makeBatch(t, batchSpec{n: 1, pid: -1, tag: tag, ts: ts.UnixMilli()})
	}

	t.Run("backfill", func(t *testing.T) {
		clk := newClock()
		week := (7 * day).Milliseconds()
		l := openLog(t, vfs.NewMem(), "/d/t-0", Config{SegmentMs: week, RetentionMs: week}, withNow(clk))
		defer l.Close()
		start := clk.Now().Add(-30*day - time.Hour)
		for i := range 31 {
			mustAppend(t, l, at(fmt.Sprint(i), start.Add(time.Duration(i)*day)))
		}
		if got := bases(l); !slices.Equal(got, []int64{0, 8, 16, 24}) {
			t.Fatalf("segments at %v, want [0 8 16 24]", got)
		}
		l.SetHighWatermark(l.LogEndOffset())
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if got := l.LogStartOffset(); got != 24 {
			t.Fatalf("log start %d after retention, want 24", got)
		}
	})

	t.Run("future", func(t *testing.T) {
		clk := newClock()
		l := openLog(t, vfs.NewMem(), "/d/t-0", Config{SegmentMs: (7 * day).Milliseconds(), RetentionMs: 5000}, withNow(clk))
		defer l.Close()
		for i := range 3 {
			mustAppend(t, l, at(fmt.Sprint(i), clk.Now()))
		}
		mustAppend(t, l, at("future", clk.Now().Add(8*day)))
		mustAppend(t, l, at("now", clk.Now()))
		if got := bases(l); !slices.Equal(got, []int64{0, 3}) {
			t.Fatalf("segments at %v, want [0 3]", got)
		}
		clk.Advance(6 * time.Second)
		l.SetHighWatermark(l.LogEndOffset())
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if got := l.LogStartOffset(); got != 3 {
			t.Fatalf("log start %d after retention, want 3", got)
		}
	})

	t.Run("reopened", func(t *testing.T) {
		// After a restart the active segment's first batch is read back.
		clk := newClock()
		fsys := vfs.NewMem()
		cfg := Config{SegmentMs: (7 * day).Milliseconds()}
		l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
		mustAppend(t, l, at("old", clk.Now().Add(-20*day)))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
		defer l.Close()
		mustAppend(t, l, at("older", clk.Now().Add(-19*day)))
		mustAppend(t, l, at("newer", clk.Now().Add(-12*day)))
		if got := bases(l); !slices.Equal(got, []int64{0, 2}) {
			t.Fatalf("segments at %v, want [0 2]", got)
		}
	})

	t.Run("no timestamps", func(t *testing.T) {
		clk := newClock()
		l := openLog(t, vfs.NewMem(), "/d/t-0", Config{SegmentMs: 1000}, withNow(clk))
		defer l.Close()
		none := makeBatch(t, batchSpec{n: 1, pid: -1, tag: "none", ts: -1})
		mustAppend(t, l, none)
		clk.Advance(500 * time.Millisecond)
		mustAppend(t, l, none)
		if n := len(l.segments()); n != 1 {
			t.Fatalf("%d segments before segment.ms", n)
		}
		clk.Advance(600 * time.Millisecond)
		mustAppend(t, l, none)
		if got := bases(l); !slices.Equal(got, []int64{0, 2}) {
			t.Fatalf("segments at %v, want [0 2]", got)
		}
	})
}

// TestReadCutWithoutIndexEntry: where the index holds no batch start within
// the limit (batches smaller than the index interval), a read cut by
// maxBytes ends in a partial batch, as Kafka's do, and clients skip it.
func TestReadCutWithoutIndexEntry(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		small := plain(t, "s", 1)
		l := openLog(t, fsys, dir, Config{IndexIntervalBytes: 1 << 20})
		defer l.Close()
		for range 10 {
			mustAppend(t, l, small)
		}
		l.SetHighWatermark(l.LogEndOffset())
		c, err := l.Read(0, -1, int32(2*len(small)+5))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if hs, partial := chunkBatches(t, c); len(hs) != 2 || partial != 5 {
			t.Fatalf("read %d whole batches and %d partial bytes, want 2 and 5", len(hs), partial)
		}
	})
}
