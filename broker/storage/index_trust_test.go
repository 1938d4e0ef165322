package storage

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// withObserver sends the log's output to an observer (debug and up) as
// well as to the test log.
func withObserver(obs *observer.ObservedLogs, core zapcore.Core) logOpt {
	return func(o *Options) {
		o.Logger = zap.New(zapcore.NewTee(o.Logger.Core(), core))
	}
}

// observed returns a logOpt that records the log's output, and the
// records.
func observed() (logOpt, *observer.ObservedLogs) {
	core, obs := observer.New(zapcore.DebugLevel)
	return withObserver(obs, core), obs
}

// entriesMentioning returns the entries at level whose message or string
// fields contain s.
func entriesMentioning(obs *observer.ObservedLogs, level zapcore.Level, s string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range obs.All() {
		if e.Level != level {
			continue
		}
		text := e.Message
		for k, v := range e.ContextMap() {
			text += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(text, s) {
			out = append(out, e)
		}
	}
	return out
}

// timedBatches appends n batches of 2 records, batch i with timestamps
// t0+10i and t0+10i+1, so that every batch's max timestamp is distinct.
func timedBatches(t *testing.T, l *Log, t0 int64, n int) {
	t.Helper()
	for i := range n {
		mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: -1, ts: t0 + int64(i)*10, valueSize: 40, tag: fmt.Sprint("b", i)}))
	}
	l.SetHighWatermark(l.LogEndOffset())
}

// checkTimedIndexesFromFiles checks a log of n timedBatches from
// 1_700_000_000_000: ListOffsets by each batch's timestamp finds it, and
// every closed segment's index was loaded from its files, not rebuilt.
func checkTimedIndexesFromFiles(t *testing.T, l *Log, n int64) {
	t.Helper()
	for i := range n {
		if off, _, err := l.OffsetForTimestamp(1_700_000_000_000 + 10*i); err != nil || off != 2*i {
			t.Fatalf("offset for batch %d's timestamp: %d (%v)", i, off, err)
		}
	}
	segs := l.segments()
	for _, s := range segs[:len(segs)-1] {
		s.idx.mu.RLock()
		fromFile := s.idx.fromFile
		s.idx.mu.RUnlock()
		if !fromFile {
			t.Errorf("segment %d: index rebuilt, not loaded from its files", s.base)
		}
	}
}

// TestDamagedIndexFilesAreNotTrusted damages the index files of a closed
// segment below the recovery point in ways that the old load-time checks
// let through (whole entries cut off, entries zeroed, entries naming the
// wrong batch), and checks that after each of two restarts ListOffsets by
// timestamp, the max timestamp, reads and retention still answer from the
// log, and that a warning names the file.
func TestDamagedIndexFilesAreNotTrusted(t *testing.T) {
	const t0 = 1_700_000_000_000
	lastEntry := func(size int) func([]byte) []byte {
		return func(b []byte) []byte {
			clear(b[len(b)-size:])
			return b
		}
	}
	cases := []struct {
		name     string
		interval int32 // index.interval.bytes when the log was written
		suffix   string
		damage   func([]byte) []byte // nil: remove the file
		warn     bool                // a warning must name the file
	}{
		{"timeindex cut to its first entry", 128, timeIndexSuffix, func(b []byte) []byte { return b[:timeEntrySize] }, true},
		{"timeindex cut by one entry", 128, timeIndexSuffix, func(b []byte) []byte { return b[:len(b)-timeEntrySize] }, true},
		{"timeindex single entry zeroed", 4096, timeIndexSuffix, lastEntry(timeEntrySize), true},
		{"timeindex last entry zeroed", 128, timeIndexSuffix, lastEntry(timeEntrySize), true},
		{"timeindex empty", 128, timeIndexSuffix, func(b []byte) []byte { return b[:0] }, true},
		{"timeindex missing", 128, timeIndexSuffix, nil, true},
		{"timeindex odd size", 128, timeIndexSuffix, func(b []byte) []byte { return b[:len(b)-1] }, true},
		{"timeindex last entry names another batch", 128, timeIndexSuffix, func(b []byte) []byte {
			e := b[len(b)-timeEntrySize:]
			binary.BigEndian.PutUint32(e[8:], binary.BigEndian.Uint32(e[8:])-2)
			return b
		}, true},
		{"timeindex last timestamp too large", 128, timeIndexSuffix, func(b []byte) []byte {
			e := b[len(b)-timeEntrySize:]
			binary.BigEndian.PutUint64(e, binary.BigEndian.Uint64(e)+5)
			return b
		}, true},
		{"index cut to its first entry", 128, indexSuffix, func(b []byte) []byte { return b[:offsetEntrySize] }, false},
		{"index last entry zeroed", 128, indexSuffix, lastEntry(offsetEntrySize), true},
		{"index last entry one byte off", 128, indexSuffix, func(b []byte) []byte {
			e := b[len(b)-offsetEntrySize:]
			binary.BigEndian.PutUint32(e[4:], binary.BigEndian.Uint32(e[4:])+1)
			return b
		}, true},
		{"index last entry names the next batch's offset", 128, indexSuffix, func(b []byte) []byte {
			e := b[len(b)-offsetEntrySize:]
			binary.BigEndian.PutUint32(e, binary.BigEndian.Uint32(e)+2)
			return b
		}, true},
		{"index last entry past the end", 128, indexSuffix, func(b []byte) []byte {
			e := b[len(b)-offsetEntrySize:]
			binary.BigEndian.PutUint32(e[4:], 1<<20)
			return b
		}, true},
		{"index odd size", 128, indexSuffix, func(b []byte) []byte { return b[:len(b)-3] }, true},
		{"index missing", 128, indexSuffix, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			clk := newClock()
			cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: c.interval, RetentionMs: int64(24 * time.Hour / time.Millisecond)}
			l := openLog(t, fsys, dir, cfg, withNow(clk))
			const batches = 80
			timedBatches(t, l, t0, batches)
			if n := len(l.segments()); n < 4 {
				t.Fatalf("%d segments", n)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, fileBase(0)+c.suffix)
			if c.damage == nil {
				if err := fsys.Remove(file); err != nil {
					t.Fatal(err)
				}
			} else {
				writeBytes(t, fsys, file, c.damage(fileBytes(t, fsys, file)))
			}
			clk.Advance(5 * time.Minute) // the records are minutes old
			for restart := range 2 {
				logs, obs := observed()
				l = openLog(t, fsys, dir, cfg, withNow(clk), logs)
				for i := range int64(batches) {
					for d := range int64(2) {
						off, ts, err := l.OffsetForTimestamp(t0 + 10*i + d)
						if err != nil || off != 2*i+d || ts != t0+10*i+d {
							t.Fatalf("restart %d: offset for timestamp %d: %d at %d (%v), want %d", restart, t0+10*i+d, off, ts, err, 2*i+d)
						}
					}
				}
				if off, ts := l.MaxTimestamp(); off != 2*batches-1 || ts != t0+10*(batches-1)+1 {
					t.Fatalf("restart %d: max timestamp %d at %d", restart, ts, off)
				}
				s := l.segments()[0]
				if ts, _, err := s.maxTimestamp(); err != nil || ts != maxTsOfSegment(t, l, s) {
					t.Fatalf("restart %d: segment 0 max timestamp %d (%v), want %d", restart, ts, err, maxTsOfSegment(t, l, s))
				}
				if err := l.Maintain(); err != nil {
					t.Fatal(err)
				}
				if got := l.LogStartOffset(); got != 0 {
					t.Fatalf("restart %d: retention of 1 day deleted minutes-old records: log start %d", restart, got)
				}
				recs := readAll(t, l, 0)
				checkSequential(t, recs, 0)
				if len(recs) != 2*batches {
					t.Fatalf("restart %d: read %d records", restart, len(recs))
				}
				// The first open rebuilds the index and writes the files
				// again, so the second trusts them without a word.
				warned := len(entriesMentioning(obs, zapcore.WarnLevel, file)) > 0
				if c.warn && restart == 0 && !warned {
					t.Errorf("restart %d: no warning names %s; logged: %v", restart, file, obs.All())
				}
				if restart == 1 && warned {
					t.Errorf("restart %d: %s still fails its checks after the rebuild: %v", restart, file, obs.All())
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// maxTsOfSegment returns the largest batch max timestamp of a segment,
// from its log.
func maxTsOfSegment(t *testing.T, l *Log, s *segment) int64 {
	t.Helper()
	_, size := s.end()
	b := make([]byte, size)
	if err := readFull(s.log, b, 0); err != nil {
		t.Fatal(err)
	}
	max := int64(-1)
	for _, pos := range batchStarts(t, b) {
		if h := headerFor(t, b[pos:]); h.MaxTimestamp > max {
			max = h.MaxTimestamp
		}
	}
	return max
}

// TestUndamagedIndexFilesAreUsed: the checks pass the index files of an
// undamaged log, written with the default index interval and a small one:
// every trusted segment's index is
// loaded from its files, nothing is rebuilt and nothing is logged above
// info.
func TestUndamagedIndexFilesAreUsed(t *testing.T) {
	for _, interval := range []int32{4096, 128} {
		t.Run(fmt.Sprint("interval ", interval), func(t *testing.T) {
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: interval}
			l := openLog(t, fsys, dir, cfg)
			timedBatches(t, l, 1_700_000_000_000, 120)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			logs, obs := observed()
			l = openLog(t, fsys, dir, cfg, logs)
			defer l.Close()
			checkTimedIndexesFromFiles(t, l, 120)
			checkSequential(t, readAll(t, l, 0), 0)
			if n := obs.FilterLevelExact(zapcore.WarnLevel).Len() + obs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
				t.Fatalf("%d warnings and errors for an undamaged log: %v", n, obs.All())
			}
		})
	}
}

// TestCleanedIndexFilesAreUsed: the same for a compacted log after a
// cleaner pass (batches with offset gaps, segments starting after the
// previous one ends), read after a restart.
func TestCleanedIndexFilesAreUsed(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	rng := rand.New(rand.NewPCG(7, 1))
	l := openLog(t, fsys, dir, compactConfig())
	m := newModel()
	fillKeyed(t, l, m, rng, 150, 10, record.CodecNone, false)
	roll(t, l, m)
	res := clean(t, NewCleaner(CleanerConfig{}), l)
	fillKeyed(t, l, m, rng, 40, 10, record.CodecNone, false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logs, obs := observed()
	l = openLog(t, fsys, dir, compactConfig(), logs)
	defer l.Close()
	checkLog(t, l, m, res.EndOffset)
	fromFile := 0
	for _, s := range l.segments() {
		if _, _, err := s.maxTimestamp(); err != nil {
			t.Fatal(err)
		}
		s.idx.mu.RLock()
		if s.idx.fromFile {
			fromFile++
		}
		s.idx.mu.RUnlock()
	}
	if fromFile < 2 {
		t.Fatalf("%d segments loaded their index files", fromFile)
	}
	if n := obs.FilterLevelExact(zapcore.WarnLevel).Len() + obs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Fatalf("%d warnings and errors for an undamaged compacted log: %v", n, obs.All())
	}
}

// TestNoRecoveryPointWarning: a log that was never flushed says that it
// verifies everything only when there is something to verify: at info
// for one segment (a crash before a new log's first flush, ordinary
// recovery), as a warning for several (a lost recovery-point file).
func TestNoRecoveryPointWarning(t *testing.T) {
	for _, tc := range []struct {
		records  int
		segBytes int64
		level    zapcore.Level // -1: nothing said
	}{{0, 0, -1}, {3, 0, zapcore.InfoLevel}, {12, 200, zapcore.WarnLevel}} {
		t.Run(fmt.Sprint(tc.records, " batches, segment.bytes ", tc.segBytes), func(t *testing.T) {
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: tc.segBytes}
			l := openLog(t, fsys, dir, cfg)
			fillLog(t, l, 0, tc.records)
			segs := len(l.segments())
			l.closeFiles(false) // as kill -9: no flush, no recovery point
			logs, obs := observed()
			l = openLog(t, fsys, dir, cfg, logs)
			defer l.Close()
			said := obs.FilterMessageSnippet("no recovery point").All()
			switch {
			case tc.level == -1 && len(said) != 0:
				t.Fatalf("nothing to verify, logged %v", said)
			case tc.level != -1 && (len(said) != 1 || said[0].Level != tc.level):
				t.Fatalf("%d batches in %d segments: logged %v, want one line at %v", tc.records, segs, said, tc.level)
			}
		})
	}
}

// TestRecoveredIndexFilesAreUsed: segments verified at open after a crash
// (kill -9: nothing flushed, no recovery point) get index files at the next
// flush that the open after that trusts, with no warning. The recovery
// scan built their time indexes as appends do, without the final entry a
// roll adds, so these files failed their checks and were rebuilt, with a
// warning, at every later open (seen with a producer and kill -9 every
// few seconds on 64 KiB segments).
func TestRecoveredIndexFilesAreUsed(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	// Segments of 12 batches, index entries every 4: a segment's last
	// batches come after its last index entry.
	cfg := Config{SegmentBytes: 1900, IndexIntervalBytes: 512}
	l := openLog(t, fsys, dir, cfg)
	timedBatches(t, l, 1_700_000_000_000, 120)
	l.closeFiles(false)            // kill -9
	l = openLog(t, fsys, dir, cfg) // verifies every segment
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	l.closeFiles(false) // kill -9 again, after the flush
	logs, obs := observed()
	l = openLog(t, fsys, dir, cfg, logs)
	defer l.Close()
	if n := len(l.segments()); n < 5 {
		t.Fatalf("%d segments", n)
	}
	checkTimedIndexesFromFiles(t, l, 120)
	if w := entriesMentioning(obs, zapcore.WarnLevel, "fail their checks"); len(w) != 0 {
		t.Fatalf("%d index warnings after a crash and a flush: %v", len(w), w)
	}
}

// TestGoneSegmentIndexFromItsLog: a fetch may still hold a segment that
// retention has renamed for deletion (or the cleaner replaced, its name
// then another segment's). Its index, not loaded yet, is built from its
// own open log file without looking for index files by name, and nothing
// is logged as damage.
func TestGoneSegmentIndexFromItsLog(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 128}
	l := openLog(t, fsys, dir, cfg)
	timedBatches(t, l, 1_700_000_000_000, 60)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logs, obs := observed()
	l = openLog(t, fsys, dir, cfg, logs)
	defer l.Close()
	held := l.segments()[1]
	held.idx.mu.RLock()
	loaded := held.idx.loaded
	held.idx.mu.RUnlock()
	if loaded {
		t.Fatal("a closed segment's index is loaded at open")
	}
	if err := l.renameDeleted(held); err != nil {
		t.Fatal(err)
	}
	if err := held.ensureIndex(); err != nil {
		t.Fatal(err)
	}
	held.idx.mu.RLock()
	loaded, fromFile := held.idx.loaded, held.idx.fromFile
	held.idx.mu.RUnlock()
	if !loaded || fromFile {
		t.Fatalf("index of the gone segment: loaded %v, from files %v", loaded, fromFile)
	}
	if w := obs.FilterLevelExact(zapcore.WarnLevel).Len(); w != 0 {
		t.Fatalf("%d warnings: %v", w, obs.All())
	}
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if _, err := fsys.Stat(held.path(suffix)); !isNotExist(err) {
			t.Errorf("%s written for a gone segment: %v", suffix, err)
		}
	}
}
