package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

func TestAppendRead(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{SegmentBytes: 4096, IndexIntervalBytes: 256})
		defer l.Close()
		var want []string
		for i := range 100 {
			res := mustAppend(t, l, plain(t, fmt.Sprintf("b%d", i), 3))
			if res.BaseOffset != int64(3*i) || res.LastOffset != int64(3*i+2) {
				t.Fatalf("append %d: offsets %d..%d", i, res.BaseOffset, res.LastOffset)
			}
			l.SetHighWatermark(l.LogEndOffset())
			for j := range 3 {
				want = append(want, fmt.Sprintf("b%d-%d", i, j))
			}
		}
		if got := l.LogEndOffset(); got != 300 {
			t.Fatalf("LEO %d", got)
		}
		if n := len(l.segments()); n < 3 {
			t.Fatalf("expected rolled segments, have %d", n)
		}
		for _, from := range []int64{0, 1, 2, 3, 150, 151, 299} {
			recs := readAll(t, l, from)
			checkSequential(t, recs, from)
			if len(recs) != 300-int(from) {
				t.Fatalf("from %d: %d records", from, len(recs))
			}
			for i, r := range recs {
				if r.value != want[int(from)+i] {
					t.Fatalf("offset %d: value %q, want %q", r.offset, r.value, want[int(from)+i])
				}
			}
		}
		if _, err := l.Read(301, -1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read past LEO: %v", err)
		}
		c, err := l.Read(300, -1, 100)
		if err != nil || c.Size != 0 {
			t.Fatalf("read at LEO: %+v %v", c, err)
		}
		c.Release()

		// Reopen: everything is still there.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, Config{SegmentBytes: 4096, IndexIntervalBytes: 256})
		defer l.Close()
		if l.LogEndOffset() != 300 || l.HighWatermark() != 300 {
			t.Fatalf("after reopen LEO %d HWM %d", l.LogEndOffset(), l.HighWatermark())
		}
		recs := readAll(t, l, 0)
		checkSequential(t, recs, 0)
		if len(recs) != 300 {
			t.Fatalf("after reopen %d records", len(recs))
		}
		mustAppend(t, l, plain(t, "after", 1))
		if l.LogEndOffset() != 301 {
			t.Fatalf("LEO after reopen+append %d", l.LogEndOffset())
		}
	})
}

func TestClosedLog(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{})
		fillLog(t, l, 0, 3)
		c, err := l.Read(0, -1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// A chunk taken before Close still reads; the file closes on
		// release.
		if hs, _ := chunkBatches(t, c); len(hs) != 3 {
			t.Fatalf("held chunk after close: %d batches", len(hs))
		}
		c.Release()
		if _, err := l.Read(0, -1, 100); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if _, err := l.Append(plain(t, "x", 1), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
		if _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrClosed) {
			t.Fatalf("OffsetForTimestamp after Close: %v", err)
		}
		if err := l.Maintain(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Maintain after Close: %v", err)
		}
		if err := l.Flush(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Flush after Close: %v", err)
		}
		if err := l.Delete(); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(dir); !errors.Is(err, errNotExist) {
			t.Fatalf("directory after Delete: %v", err)
		}
	})
}

// TestLogAppendTime appends batches carrying old producer timestamps to a
// LogAppendTime log: each is stamped with the log's clock (attribute bit,
// maxTimestamp, a CRC that still verifies), the append reports that time,
// and timestamp lookups use it, also after a reopen.
func TestLogAppendTime(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		clk := newClock()
		cfg := Config{LogAppendTime: true}
		l := openLog(t, fsys, dir, cfg, withNow(clk))
		defer func() { l.Close() }()
		var stamps []int64
		for i, codec := range []record.Codec{record.CodecNone, record.CodecLZ4, record.CodecZstd} {
			batch := makeBatch(t, batchSpec{n: 5, pid: -1, ts: 1_600_000_000_000, codec: codec, tag: fmt.Sprint(i)})
			res := mustAppend(t, l, batch)
			now := clk.Now().UnixMilli()
			if res.LogAppendTime != now {
				t.Fatalf("batch %d: LogAppendTime %d, want %d", i, res.LogAppendTime, now)
			}
			stamps = append(stamps, now)
			clk.Advance(time.Second)
		}
		l.SetHighWatermark(l.LogEndOffset())
		check := func(l *Log) {
			t.Helper()
			c, err := l.Read(0, -1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, c.Size)
			if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
				t.Fatal(err)
			}
			c.Release()
			i := 0
			err = record.Batches(buf, func(_ int, b []byte, h record.Header) error {
				if _, err := record.Validate(b); err != nil {
					return fmt.Errorf("batch %d: %w", i, err)
				}
				if !h.LogAppendTime() || h.MaxTimestamp != stamps[i] || h.BaseTimestamp != 1_600_000_000_000 {
					return fmt.Errorf("batch %d: log append time %v, max timestamp %d (want %d), base %d",
						i, h.LogAppendTime(), h.MaxTimestamp, stamps[i], h.BaseTimestamp)
				}
				i++
				return nil
			})
			if err != nil || i != 3 {
				t.Fatalf("after %d batches: %v", i, err)
			}
			for j, ts := range stamps {
				off, got, err := l.OffsetForTimestamp(ts)
				if err != nil || off != int64(5*j) || got != ts {
					t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v; want %d", ts, off, got, err, 5*j)
				}
			}
			if off, ts := l.MaxTimestamp(); off != 10 || ts != stamps[2] {
				t.Fatalf("MaxTimestamp = %d, %d", off, ts)
			}
		}
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, cfg, withNow(clk))
		l.SetHighWatermark(l.LogEndOffset())
		check(l)

		// A CreateTime log keeps the producer's times.
		l2 := openLog(t, fsys, dir+"-create", Config{}, withNow(clk))
		defer l2.Close()
		res := mustAppend(t, l2, makeBatch(t, batchSpec{n: 2, pid: -1, ts: 1_600_000_000_000}))
		if res.LogAppendTime != -1 {
			t.Fatalf("CreateTime log: LogAppendTime %d", res.LogAppendTime)
		}
	})
}

// TestAppendLargerThanSegment: records larger than segment.bytes are
// taken, in a segment of their own, and the next append rolls again.
func TestAppendLargerThanSegment(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{SegmentBytes: 1024})
		defer l.Close()
		mustAppend(t, l, plain(t, "small", 3))
		big := makeBatch(t, batchSpec{n: 4, valueSize: 400, pid: -1})
		if len(big) <= 1024 {
			t.Fatalf("test batch of %d bytes fits a segment", len(big))
		}
		if res := mustAppend(t, l, big); res.BaseOffset != 3 {
			t.Fatalf("big batch at %d, want 3", res.BaseOffset)
		}
		mustAppend(t, l, plain(t, "after", 2))
		l.SetHighWatermark(l.LogEndOffset())
		segs := l.segments()
		if len(segs) != 3 || segs[1].base != 3 || segs[2].base != 7 {
			var bases []int64
			for _, s := range segs {
				bases = append(bases, s.base)
			}
			t.Fatalf("segment bases %v, want [0 3 7]", bases)
		}
		recs := readAll(t, l, 0)
		checkSequential(t, recs, 0)
		if len(recs) != 9 {
			t.Fatalf("read %d records, want 9", len(recs))
		}
	})
}
