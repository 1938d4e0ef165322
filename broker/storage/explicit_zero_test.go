package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/internal/vfs"
)

// A topic's explicit 0 is Kafka's 0, not the default (storage.Config
// reads 0 as "default"; topicconfig passes ExplicitZero or -1): before,
// retention.ms=0 and retention.bytes=0 kept everything (the common way to
// purge a topic did nothing), flush.ms=0 waited a second, index.interval.
// bytes=0 indexed every 4 KiB, max.message.bytes=0 took 1 MiB batches and
// file.delete.delay.ms=0 kept deleted files a minute.
func TestExplicitZeroConfigs(t *testing.T) {
	fill := func(t *testing.T, cfg Config) (*Log, vfs.FS, *clock) {
		clk := newClock()
		fsys := vfs.NewMem()
		l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
		t.Cleanup(func() { _ = l.Close() })
		for range 12 {
			mustAppend(t, l, makeBatch(t, batchSpec{n: 4, valueSize: 100, pid: -1, ts: clk.Now().UnixMilli()}))
		}
		l.SetHighWatermark(l.LogEndOffset())
		if n := len(l.segments()); n < 4 {
			t.Fatalf("%d segments", n)
		}
		return l, fsys, clk
	}
	leftovers := func(t *testing.T, fsys vfs.FS) int {
		names, err := fsys.ReadDir("/d/t-0")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range names {
			if strings.HasSuffix(e.Name(), deletedSuffix) {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"retention.ms", Config{SegmentBytes: 1024, RetentionMs: ExplicitZero, FileDeleteDelayMs: -1}},
		{"retention.bytes", Config{SegmentBytes: 1024, RetentionBytes: ExplicitZero, FileDeleteDelayMs: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, fsys, clk := fill(t, c.cfg)
			lastBase := l.segments()[len(l.segments())-1].base
			clk.Advance(time.Second)
			if err := l.Maintain(); err != nil {
				t.Fatal(err)
			}
			if l.LogStartOffset() < lastBase {
				t.Fatalf("%s=0: log start %d, the last segment starts at %d", c.name, l.LogStartOffset(), lastBase)
			}
			// file.delete.delay.ms=0: the files went with the same pass.
			if n := leftovers(t, fsys); n != 0 {
				t.Fatalf("file.delete.delay.ms=0: %d deleted files left", n)
			}
		})
	}
	// The defaults still keep it all, and keep deleted files a minute.
	t.Run("defaults", func(t *testing.T) {
		l, fsys, clk := fill(t, Config{SegmentBytes: 1024})
		clk.Advance(time.Second)
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if l.LogStartOffset() != 0 {
			t.Fatalf("default retention: log start %d", l.LogStartOffset())
		}
		if _, err := l.DeleteRecordsBefore(10); err != nil {
			t.Fatal(err)
		}
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if n := leftovers(t, fsys); n == 0 {
			t.Fatal("default file.delete.delay.ms: deleted files removed at once")
		}
	})

	t.Run("max.message.bytes", func(t *testing.T) {
		l := openLog(t, vfs.NewMem(), "/d/t-0", Config{MaxMessageBytes: -1})
		defer l.Close()
		_, err := l.Append(makeBatch(t, batchSpec{n: 1, pid: -1}), 0)
		if !errors.Is(err, ErrBatchTooLarge) || !strings.Contains(err.Error(), "max.message.bytes is 0") {
			t.Fatalf("max.message.bytes=0: %v", err)
		}
	})
	t.Run("flush.ms", func(t *testing.T) {
		l := openLog(t, vfs.NewMem(), "/d/t-0", Config{FlushMs: -1})
		defer l.Close()
		mustAppend(t, l, makeBatch(t, batchSpec{n: 1, pid: -1}))
		if err := l.FlushIfDue(); err != nil {
			t.Fatal(err)
		}
		if l.firstUnflushed.Load() != 0 {
			t.Fatal("flush.ms=0: not flushed at the first check")
		}
	})
	t.Run("index.interval.bytes", func(t *testing.T) {
		sizes := map[int32]int64{}
		for _, interval := range []int32{-1, 0} {
			fsys := vfs.NewMem()
			l := openLog(t, fsys, "/d/t-0", Config{IndexIntervalBytes: interval})
			for range 12 {
				mustAppend(t, l, makeBatch(t, batchSpec{n: 4, valueSize: 100, pid: -1}))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := fsys.Stat(filepath.Join("/d/t-0", "00000000000000000000.index"))
			if err != nil {
				t.Fatal(err)
			}
			sizes[interval] = fi.Size()
		}
		if sizes[-1] != 11*8 || sizes[0] >= sizes[-1] {
			t.Fatalf("index sizes: explicit 0 %d bytes (want 11 entries, 88), default %d", sizes[-1], sizes[0])
		}
	})
}
