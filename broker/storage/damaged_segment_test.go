package storage

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestDamagedSegmentBelowRecoveryPoint damages a closed segment below the
// recovery point while the log is closed: cut mid-batch (a torn copy), or
// a batch length overwritten in the middle. The segment's whole batches
// before the damage are served; a read at or past the damaged batch is
// ErrCorruptBatch; one error names the file, the position and the offsets
// that cannot be served; nothing is truncated; the segments after it are
// served as before.
func TestDamagedSegmentBelowRecoveryPoint(t *testing.T) {
	damages := []struct {
		name string
		// damage damages the segment's bytes b, whose batches start at
		// starts, and returns them with the index of the first damaged
		// batch.
		damage func(b []byte, starts []int) ([]byte, int)
	}{
		{"cut mid-batch", func(b []byte, starts []int) ([]byte, int) {
			k := len(starts) / 2
			return b[:starts[k]+30], k
		}},
		{"cut in the last batch", func(b []byte, starts []int) ([]byte, int) {
			k := len(starts) - 1
			return b[:len(b)-1], k
		}},
		{"batch length overwritten mid-segment", func(b []byte, starts []int) ([]byte, int) {
			k := len(starts) / 3
			binary.BigEndian.PutUint32(b[starts[k]+8:], 0x7fff0000)
			return b, k
		}},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				cfg := Config{SegmentBytes: 8 << 10, IndexIntervalBytes: 512}
				l := openLog(t, fsys, dir, cfg)
				fillLog(t, l, 0, 250)
				segs := l.segments()
				if len(segs) < 4 {
					t.Fatalf("%d segments", len(segs))
				}
				victim, after := segs[1].base, segs[2].base
				leo := l.LogEndOffset()
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}

				path := filepath.Join(dir, fileBase(victim)+logSuffix)
				b := fileBytes(t, fsys, path)
				starts := batchStarts(t, b)
				damaged, k := d.damage(b, starts)
				writeBytes(t, fsys, path, damaged)
				firstBad := headerFor(t, b[starts[k]:]).BaseOffset // 2 records a batch

				logs, obs := observed()
				l = openLog(t, fsys, dir, cfg, logs)
				defer l.Close()
				if l.LogEndOffset() != leo {
					t.Fatalf("log end offset %d after reopen, want %d", l.LogEndOffset(), leo)
				}
				// A consumer reaching the damage gets ErrCorruptBatch. (A
				// damaged length in the middle of a segment whose tail is
				// intact is found by the first read that scans into it.)
				for _, off := range []int64{firstBad, firstBad + 1, after - 1} {
					c, err := l.Read(off, -1, 1<<20)
					if !errors.Is(err, ErrCorruptBatch) {
						c.Release()
						t.Fatalf("read %d (damaged range [%d, %d)): %v, want ErrCorruptBatch", off, firstBad, after, err)
					}
				}
				// Every offset before the damage reads, and a read from
				// the segment's start ends at the damaged batch.
				for off := victim; off < firstBad; off++ {
					c, err := l.Read(off, -1, 1<<20)
					if err != nil {
						t.Fatalf("read %d (before the damage at %d): %v", off, firstBad, err)
					}
					if end := c.Pos + c.Size; end > int64(starts[k]) {
						t.Fatalf("read %d returned bytes up to %d, past the damage at %d", off, end, starts[k])
					}
					c.Release()
				}
				recs := readFrom(t, l, victim, firstBad)
				checkSequential(t, recs, victim)
				if int64(len(recs)) != firstBad-victim {
					t.Fatalf("read %d records of [%d, %d)", len(recs), victim, firstBad)
				}
				recs = readAll(t, l, after)
				checkSequential(t, recs, after)
				if int64(len(recs)) != leo-after {
					t.Fatalf("read %d records after the damaged segment, want %d", len(recs), leo-after)
				}

				errs := entriesMentioning(obs, zapcore.ErrorLevel, path)
				if len(errs) != 1 {
					t.Fatalf("%d errors name %s, want 1: %v", len(errs), path, obs.All())
				}
				f := errs[0].ContextMap()
				if f["position"] != int64(starts[k]) || f["first_unreadable_offset"] != firstBad || f["last_unreadable_offset"] != after-1 {
					t.Fatalf("error fields %v, want position %d, offsets [%d, %d]", f, starts[k], firstBad, after-1)
				}
				if got := fileBytes(t, fsys, path); len(got) != len(damaged) {
					t.Fatalf("segment is %d bytes on disk, was %d: the damage was truncated", len(got), len(damaged))
				}
			})
		})
	}
}

// readFrom reads the records in [from, to) through Read.
func readFrom(t *testing.T, l *Log, from, to int64) []rec {
	t.Helper()
	l.SetHighWatermark(l.LogEndOffset())
	var out []rec
	for _, r := range readUpTo(t, l, from, to) {
		if r.offset >= from && r.offset < to {
			out = append(out, r)
		}
	}
	return out
}

// readUpTo reads from offset from until the first offset at or past to.
func readUpTo(t *testing.T, l *Log, from, to int64) []rec {
	t.Helper()
	var out []rec
	for next := from; next < to; {
		c, err := l.Read(next, to, 1<<10)
		if err != nil {
			t.Fatalf("Read(%d): %v", next, err)
		}
		if c.Size == 0 {
			c.Release()
			break
		}
		recs := chunkRecords(t, c)
		c.Release()
		progressed := false
		for _, r := range recs {
			if r.offset >= next {
				out = append(out, r)
				next, progressed = r.offset+1, true
			}
		}
		if !progressed {
			t.Fatalf("read at %d made no progress", next)
		}
	}
	return out
}

// chunkRecords parses the whole batches of a chunk.
func chunkRecords(t *testing.T, c Chunk) []rec {
	t.Helper()
	buf := make([]byte, c.Size)
	if err := readFull(c.File, buf, c.Pos); err != nil {
		t.Fatal(err)
	}
	var out []rec
	for _, pos := range batchStartsLenient(buf) {
		h := headerFor(t, buf[pos:])
		for i := range int64(h.LastOffsetDelta) + 1 {
			out = append(out, rec{offset: h.BaseOffset + i})
		}
	}
	return out
}

// batchStartsLenient returns the starts of the whole batches in b,
// ignoring a partial one at the end.
func batchStartsLenient(b []byte) []int {
	var starts []int
	for pos := 0; pos+12 <= len(b); {
		size := 12 + int(binary.BigEndian.Uint32(b[pos+8:]))
		if pos+size > len(b) {
			break
		}
		starts = append(starts, pos)
		pos += size
	}
	return starts
}

// TestDamagedSegmentOffsetForTimestamp: a timestamp search covers what
// can be read: it finds records before the damage, and for a timestamp in
// the damaged part answers the first readable offset after it.
func TestDamagedSegmentOffsetForTimestamp(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 128}
	l := openLog(t, fsys, dir, cfg)
	const t0 = 1_700_000_000_000
	timedBatches(t, l, t0, 80)
	victim, after := l.segments()[1].base, l.segments()[2].base
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fileBase(victim)+logSuffix)
	b := fileBytes(t, fsys, path)
	starts := batchStarts(t, b)
	k := len(starts) / 2
	writeBytes(t, fsys, path, b[:starts[k]+20])
	l = openLog(t, fsys, dir, cfg)
	defer l.Close()
	// Batch i holds offsets 2i, 2i+1 and timestamps t0+10i, t0+10i+1.
	good := victim/2 + int64(k) - 1
	if off, _, err := l.OffsetForTimestamp(t0 + 10*good); err != nil || off != 2*good {
		t.Fatalf("offset for the timestamp of an intact batch: %d (%v), want %d", off, err, 2*good)
	}
	if off, _, err := l.OffsetForTimestamp(t0 + 10*(good+1)); err != nil || off != after {
		t.Fatalf("offset for the timestamp of the damaged batch: %d (%v), want %d, the next segment's first", off, err, after)
	}
}

// TestRecoveredTailLowersRecoveryPoint: a flushed tail cut short behind the
// broker's back is reported once. Recovery lowers the recovery point to
// what it trusted, so a second crash (after new appends, before the next
// checkpoint) neither reports the loss again nor trusts the new records
// unverified: a torn copy of them is found and cut.
func TestRecoveredTailLowersRecoveryPoint(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 1024, IndexIntervalBytes: 128}
		l := openLog(t, fsys, dir, cfg)
		fillLog(t, l, 0, 40)
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		oldEnd := l.LogEndOffset()
		l.closeFiles(false) // a crash after the flush

		path := lastSegmentPath(t, fsys, dir)
		b := fileBytes(t, fsys, path)
		writeBytes(t, fsys, path, b[:len(b)-7])
		logs, obs := observed()
		l = openLog(t, fsys, dir, cfg, logs)
		if n := len(entriesMentioning(obs, zapcore.ErrorLevel, "recovery point")); n != 1 {
			t.Fatalf("%d errors about the lost flushed records, want 1: %v", n, obs.All())
		}
		recovered := l.LogEndOffset()
		if recovered >= oldEnd {
			t.Fatalf("log end %d after cutting the tail, want below %d", recovered, oldEnd)
		}
		rp, ok, err := l.readRecoveryPoint()
		if err != nil || !ok || rp.Offset > recovered {
			t.Fatalf("recovery point on disk %+v (%v, %v), want at most the log end %d", rp, ok, err, recovered)
		}
		fillLog(t, l, 100, 3)
		end := l.LogEndOffset()
		l.closeFiles(false) // a crash before the next checkpoint

		logs, obs = observed()
		l = openLog(t, fsys, dir, cfg, logs)
		if errs := entriesMentioning(obs, zapcore.ErrorLevel, "recovery point"); len(errs) != 0 {
			t.Fatalf("second crash reported lost records again: %v", errs)
		}
		if l.LogEndOffset() != end {
			t.Fatalf("log end %d after the second crash, want %d", l.LogEndOffset(), end)
		}
		checkSequential(t, readAll(t, l, 0), 0)
		l.closeFiles(false)

		// The records appended after the first recovery are verified at
		// the next open: a torn copy of them is cut, not served.
		path = lastSegmentPath(t, fsys, dir)
		b = fileBytes(t, fsys, path)
		writeBytes(t, fsys, path, b[:len(b)-5])
		l = openLog(t, fsys, dir, cfg)
		defer l.Close()
		if got := l.LogEndOffset(); got >= end || got < recovered {
			t.Fatalf("log end %d after tearing the new tail, want in [%d, %d)", got, recovered, end)
		}
		checkSequential(t, readAll(t, l, 0), 0)
	})
}
