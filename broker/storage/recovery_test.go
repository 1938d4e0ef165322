package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// fillLog appends n batches of 2 records tagged b<i> and returns the
// offset after each batch.
func fillLog(t *testing.T, l *Log, from, n int) []int64 {
	t.Helper()
	var ends []int64
	for i := from; i < from+n; i++ {
		res := mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: -1, tag: fmt.Sprintf("b%d", i), valueSize: 40}))
		ends = append(ends, res.LastOffset+1)
	}
	l.SetHighWatermark(l.LogEndOffset())
	return ends
}

func lastSegmentPath(t *testing.T, fsys vfs.FS, dir string) string {
	t.Helper()
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".log" {
			last = e.Name()
		}
	}
	return filepath.Join(dir, last)
}

func fileBytes(t *testing.T, fsys vfs.FS, path string) []byte {
	t.Helper()
	b, err := vfs.ReadFile(fsys, path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t *testing.T, fsys vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// batchStarts returns the byte positions of the batches in a segment file.
func batchStarts(t *testing.T, b []byte) []int {
	t.Helper()
	var starts []int
	if err := record.Batches(b, func(pos int, _ []byte, _ record.Header) error {
		starts = append(starts, pos)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return starts
}

// TestTornTail damages the end of the log in the ways a crash or a bad disk
// does, after both a clean close and an unflushed "kill", and checks that
// Open truncates at the last good batch and never serves the damage.
func TestTornTail(t *testing.T) {
	damages := []struct {
		name string
		// damage returns the damaged file and how many whole batches of
		// the last segment survive.
		damage func(b []byte, starts []int) ([]byte, int)
	}{
		{"truncate mid-batch", func(b []byte, s []int) ([]byte, int) {
			return b[:s[len(s)-1]+30], len(s) - 1
		}},
		{"truncate mid-header", func(b []byte, s []int) ([]byte, int) {
			return b[:s[len(s)-1]+5], len(s) - 1
		}},
		{"flip byte in last batch", func(b []byte, s []int) ([]byte, int) {
			b[len(b)-3] ^= 0x40
			return b, len(s) - 1
		}},
		{"flip byte in a middle batch", func(b []byte, s []int) ([]byte, int) {
			b[s[2]+70] ^= 0x01
			return b, 2
		}},
		{"corrupt base offset", func(b []byte, s []int) ([]byte, int) {
			b[s[3]+2] ^= 0x10
			return b, 3
		}},
		{"append zeros", func(b []byte, s []int) ([]byte, int) {
			return append(b, make([]byte, 4096)...), len(s)
		}},
		{"append garbage length", func(b []byte, s []int) ([]byte, int) {
			return append(b, 0, 0, 0, 0, 0, 0, 0, 9, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3), len(s)
		}},
	}
	for _, clean := range []bool{true, false} {
		for _, d := range damages {
			t.Run(fmt.Sprintf("%s/clean=%v", d.name, clean), func(t *testing.T) {
				forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
					// The first 25 batches fill a segment; the rest go to
					// the second.
					bsize := len(makeBatch(t, batchSpec{n: 2, pid: -1, tag: "b10", valueSize: 40}))
					cfg := Config{SegmentBytes: int64(25 * bsize), IndexIntervalBytes: 200}
					l := openLog(t, fsys, dir, cfg)
					fillLog(t, l, 0, 40)
					if clean {
						if err := l.Close(); err != nil {
							t.Fatal(err)
						}
					} else {
						if err := l.Flush(); err != nil {
							t.Fatal(err)
						}
						fillLog(t, l, 40, 3)
						// Abandon l without closing: a kill -9.
						l.closeFiles(false)
					}
					seg := lastSegmentPath(t, fsys, dir)
					b := fileBytes(t, fsys, seg)
					starts := batchStarts(t, b)
					if len(starts) < 5 {
						t.Fatalf("last segment has only %d batches", len(starts))
					}
					segBase, _ := parseFileBase(filepath.Base(seg), logSuffix)
					damaged, keep := d.damage(slices.Clone(b), starts)
					writeBytes(t, fsys, seg, damaged)

					l = openLog(t, fsys, dir, cfg)
					defer l.Close()
					wantEnd := segBase + int64(2*keep)
					if got := l.LogEndOffset(); got != wantEnd {
						t.Fatalf("LEO after recovery %d, want %d", got, wantEnd)
					}
					recs := readAll(t, l, 0)
					checkSequential(t, recs, 0)
					if int64(len(recs)) != wantEnd {
						t.Fatalf("read %d records, want %d", len(recs), wantEnd)
					}
					size := int64(len(b))
					if keep < len(starts) {
						size = int64(starts[keep])
					}
					if got := int64(len(fileBytes(t, fsys, seg))); got != size {
						t.Fatalf("segment is %d bytes after recovery, want %d", got, size)
					}
					// The log takes appends where it was cut.
					res := mustAppend(t, l, plain(t, "new", 1))
					if res.BaseOffset != wantEnd {
						t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, wantEnd)
					}
				})
			})
		}
	}
}

// TestCorruptMiddleSegmentDropsLaterSegments checks that damage in an
// unflushed segment that is not the last one deletes every later segment.
func TestCorruptMiddleSegmentDropsLaterSegments(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 1024}
		l := openLog(t, fsys, dir, cfg)
		fillLog(t, l, 0, 10)
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		rpSeg := l.activeLocked()
		fillLog(t, l, 10, 30)
		segs := l.segments()
		if len(segs) < 4 {
			t.Fatalf("only %d segments", len(segs))
		}
		l.closeFiles(false) // kill
		// Damage the segment after the one holding the recovery point.
		var victim *segment
		for i, s := range segs {
			if s == rpSeg {
				victim = segs[i+1]
			}
		}
		b := fileBytes(t, fsys, victim.path(logSuffix))
		b[100] ^= 0xff
		writeBytes(t, fsys, victim.path(logSuffix), b)

		l = openLog(t, fsys, dir, cfg)
		defer l.Close()
		last := l.segments()[len(l.segments())-1]
		if last.base != victim.base {
			t.Fatalf("active segment after recovery is %d, want the damaged %d", last.base, victim.base)
		}
		if l.LogEndOffset() != victim.base {
			// byte 100 is inside the first batch of the victim
			t.Fatalf("LEO %d, want %d", l.LogEndOffset(), victim.base)
		}
		checkSequential(t, readAll(t, l, 0), 0)
		if _, err := fsys.Stat(segs[len(segs)-1].path(logSuffix)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("later segment survived: %v", err)
		}
	})
}

// TestCrash appends, flushes, appends more and simulates power loss: what
// was flushed is there, nothing corrupt is served, and the log continues.
func TestCrash(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			fsys := vfs.NewCrashable()
			dir := "/data/topic-0"
			cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 100}
			l := openLog(t, fsys, dir, cfg)
			fillLog(t, l, 0, 10+int(seed))
			if seed%3 == 0 {
				fillLog(t, l, 100, 1)
			}
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			flushed := l.LogEndOffset()
			fillLog(t, l, 200, int(seed)*3)
			unflushed := l.LogEndOffset()
			if seed%2 == 0 {
				fsys.Crash()
			} else {
				fsys.CrashTorn(seed)
			}
			l.closeFiles(false)

			l = openLog(t, fsys, dir, cfg)
			defer l.Close()
			leo := l.LogEndOffset()
			if leo < flushed || leo > unflushed {
				t.Fatalf("LEO %d after crash, flushed %d, written %d", leo, flushed, unflushed)
			}
			recs := readAll(t, l, 0)
			checkSequential(t, recs, 0)
			if int64(len(recs)) != leo {
				t.Fatalf("%d records, LEO %d", len(recs), leo)
			}
			fillLog(t, l, 300, 5)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			want := l.LogEndOffset()
			fsys.Crash()
			l.closeFiles(false)
			l2 := openLog(t, fsys, dir, cfg)
			defer l2.Close()
			if l2.LogEndOffset() != want {
				t.Fatalf("second crash: LEO %d, want %d", l2.LogEndOffset(), want)
			}
			checkSequential(t, readAll(t, l2, 0), 0)
		})
	}
}

// TestFullDisk fills the disk mid-append: the append fails with
// ErrStorage carrying ENOSPC, the segment on disk is cut back to the last
// whole batch, reads keep working, and once space is freed the log takes
// appends again without a restart (and a reopened log has them all).
func TestFullDisk(t *testing.T) {
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			inner, base := c.make(t)
			efs := vfs.NewErrorFS(inner)
			dir := filepath.Join(base, "topic-0")
			l := openLog(t, efs, dir, Config{})
			fillLog(t, l, 0, 5)
			efs.SetWriteLimit(50) // less than a batch
			_, err := l.Append(plain(t, "x", 3), 0)
			if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append on full disk: %v", err)
			}
			seg := lastSegmentPath(t, inner, dir)
			_, size := l.activeLocked().end()
			if got := int64(len(fileBytes(t, inner, seg))); got != size {
				t.Fatalf("segment is %d bytes on disk, log says %d", got, size)
			}
			if _, err := l.Append(plain(t, "x", 3), 0); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("second append on full disk: %v", err)
			}
			if recs := readAll(t, l, 0); len(recs) != 10 {
				t.Fatalf("read %d records on a full disk, want 10", len(recs))
			}
			efs.SetWriteLimit(-1)
			res := mustAppend(t, l, plain(t, "y", 1))
			if res.BaseOffset != 10 {
				t.Fatalf("append after space was freed at offset %d, want 10", res.BaseOffset)
			}
			if err := l.Flush(); err != nil {
				t.Fatalf("flush after space was freed: %v", err)
			}
			l.SetHighWatermark(l.LogEndOffset())
			if recs := readAll(t, l, 0); len(recs) != 11 {
				t.Fatalf("read %d records, want 11", len(recs))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, efs, dir, Config{})
			defer l.Close()
			if l.LogEndOffset() != 11 {
				t.Fatalf("LEO after reopen %d, want 11", l.LogEndOffset())
			}
			checkSequential(t, readAll(t, l, 0), 0)
			mustAppend(t, l, plain(t, "z", 1))
		})
	}
}

// TestSyncFailureIsSticky fails an fsync: Flush reports ErrStorage and the
// write side stays failed even after the disk recovers.
func TestSyncFailureIsSticky(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := openLog(t, efs, "/d/t-0", Config{})
	defer l.Close()
	fillLog(t, l, 0, 3)
	efs.FailSync(syscall.EIO)
	if err := l.Flush(); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("flush with failing fsync: %v", err)
	}
	efs.Clear()
	if _, err := l.Append(plain(t, "a", 1), 0); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after failed fsync: %v", err)
	}
	if got := len(readAll(t, l, 0)); got != 6 {
		t.Fatalf("reads after failed fsync: %d records", got)
	}
}

// TestRecoveryScansOnlyTail checks that segments below the recovery point
// are not read at open: their index files are loaded lazily.
func TestRecoveryScansOnlyTail(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	cfg := Config{SegmentBytes: 1024, IndexIntervalBytes: 128}
	l := openLog(t, fsys, dir, cfg)
	fillLog(t, l, 0, 60)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	fillLog(t, l, 60, 2)
	n := len(l.segments())
	l.closeFiles(false)

	// Damage the first segment's data: a trusted segment is not
	// verified at open (only a full scan would notice).
	l = openLog(t, fsys, dir, cfg)
	defer l.Close()
	segs := l.segments()
	if len(segs) != n {
		t.Fatalf("%d segments, want %d", len(segs), n)
	}
	for _, s := range segs[:len(segs)-2] {
		s.idx.mu.RLock()
		loaded := s.idx.loaded
		s.idx.mu.RUnlock()
		if loaded {
			t.Fatalf("segment %d index loaded at open", s.base)
		}
	}
	recs := readAll(t, l, 0)
	checkSequential(t, recs, 0)
	if len(recs) != 124 {
		t.Fatalf("%d records", len(recs))
	}
	s := segs[1]
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	if !s.idx.fromFile || len(s.idx.offsets) == 0 {
		t.Fatalf("segment %d index not loaded from file: fromFile=%v entries=%d", s.base, s.idx.fromFile, len(s.idx.offsets))
	}
}

// TestBadIndexFileIsRebuilt corrupts a trusted segment's index file.
func TestBadIndexFileIsRebuilt(t *testing.T) {
	for _, damage := range []string{"missing", "garbage", "wrong positions"} {
		t.Run(damage, func(t *testing.T) {
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 128}
			l := openLog(t, fsys, dir, cfg)
			fillLog(t, l, 0, 60)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			idx := filepath.Join(dir, fileBase(0)+indexSuffix)
			b := fileBytes(t, fsys, idx)
			switch damage {
			case "missing":
				if err := fsys.Remove(idx); err != nil {
					t.Fatal(err)
				}
			case "garbage":
				writeBytes(t, fsys, idx, []byte("not an index"))
			case "wrong positions":
				// Keep the entries plausible but point them one batch on.
				for i := 0; i+16 <= len(b); i += 8 {
					copy(b[i+4:i+8], b[i+12:i+16])
				}
				writeBytes(t, fsys, idx, b[:len(b)-8])
			}
			l = openLog(t, fsys, dir, cfg)
			defer l.Close()
			for from := int64(0); from < 30; from++ {
				recs := readAll(t, l, from)
				checkSequential(t, recs, from)
				if int64(len(recs)) != 120-from {
					t.Fatalf("from %d: %d records", from, len(recs))
				}
			}
		})
	}
}

// TestRecoverLargeBatch verifies batches larger than the recovery read
// buffer, intact and damaged.
func TestRecoverLargeBatch(t *testing.T) {
	for _, damage := range []bool{false, true} {
		t.Run(fmt.Sprintf("damaged=%v", damage), func(t *testing.T) {
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			cfg := Config{MaxMessageBytes: 4 << 20}
			l := openLog(t, fsys, dir, cfg)
			mustAppend(t, l, plain(t, "a", 2))
			big := makeBatch(t, batchSpec{n: 3, valueSize: 600 << 10, pid: -1, tag: "big"})
			mustAppend(t, l, big)
			mustAppend(t, l, plain(t, "c", 2))
			l.closeFiles(false)
			seg := lastSegmentPath(t, fsys, dir)
			b := fileBytes(t, fsys, seg)
			starts := batchStarts(t, b)
			if damage {
				b[starts[1]+1<<20] ^= 1
				writeBytes(t, fsys, seg, b)
			}
			l = openLog(t, fsys, dir, cfg)
			defer l.Close()
			want := int64(7)
			if damage {
				want = 2
			}
			if l.LogEndOffset() != want {
				t.Fatalf("LEO %d, want %d", l.LogEndOffset(), want)
			}
			checkSequential(t, readAll(t, l, 0), 0)
		})
	}
}
