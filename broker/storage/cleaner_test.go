package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestCleanKeepsLatestPerKey fills a compacted log with updates to a few
// keys in every codec, cleans it, and checks that below the cleaned offset
// exactly the latest record of each key is left, at its original offset;
// that the codec of each batch is kept; that the log reads the same after
// a reopen, also when the recovery point is lost and the whole log (gaps
// and all) is verified; and that a second round of updates cleans too.
func TestCleanKeepsLatestPerKey(t *testing.T) {
	codecs := []record.Codec{record.CodecNone, record.CodecGzip, record.CodecSnappy, record.CodecLZ4, record.CodecZstd}
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				rng := rand.New(rand.NewPCG(uint64(codec), 1))
				l := openLog(t, fsys, dir, compactConfig())
				defer func() { _ = l.Close() }()
				m := newModel()
				fillKeyed(t, l, m, rng, 120, 10, codec, false)
				roll(t, l, m)
				sizeBefore := l.Size()
				c := NewCleaner(CleanerConfig{})
				res := clean(t, c, l)
				cleaned := res.EndOffset
				if cleaned != l.segments()[len(l.segments())-1].base {
					t.Fatalf("cleaned to %d, want the active segment's base %d", cleaned, l.segments()[len(l.segments())-1].base)
				}
				if res.RecordsRemoved == 0 || res.SegmentsWritten == 0 || l.Size() >= sizeBefore/4 {
					t.Fatalf("clean did little: %+v, %d bytes before, %d after", res, sizeBefore, l.Size())
				}
				recs := checkLog(t, l, m, cleaned)
				for _, r := range recs {
					if r.codec != codec && r.key != "filler" {
						t.Fatalf("offset %d is in a %v batch, appended as %v", r.offset, r.codec, codec)
					}
				}
				if st := l.CleanerStats(); st.Passes != 1 || st.FirstDirtyOffset != cleaned || st.BytesWritten == 0 || st.RecordsRemoved != res.RecordsRemoved {
					t.Fatalf("stats %+v after %+v", st, res)
				}

				// Reopen, and reopen verifying everything.
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openLog(t, fsys, dir, compactConfig())
				checkLog(t, l, m, cleaned)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if err := fsys.Remove(checkpointPath(dir, recoveryPointFile)); err != nil {
					t.Fatal(err)
				}
				l = openLog(t, fsys, dir, compactConfig())
				if got := l.LogEndOffset(); got != int64(len(m.recs)) {
					t.Fatalf("log end offset %d after a full verify, want %d", got, len(m.recs))
				}
				checkLog(t, l, m, cleaned)

				// More updates; the second pass merges the small cleaned
				// segments.
				fillKeyed(t, l, m, rng, 60, 10, codec, false)
				roll(t, l, m)
				segsBefore := len(l.segments())
				res = clean(t, c, l)
				if len(l.segments()) > segsBefore/2 {
					t.Fatalf("second pass left %d of %d segments", len(l.segments()), segsBefore)
				}
				checkLog(t, l, m, res.EndOffset)
				recs, _ = readKeyed(t, l)
				below := 0
				for _, r := range recs {
					if r.offset < res.EndOffset {
						below++
					}
				}
				if below > 11 { // ten keys and the filler
					t.Fatalf("%d records below the cleaned offset %d", below, res.EndOffset)
				}
			})
		})
	}
}

// TestCleanTombstones checks delete.retention.ms: a tombstone survives the
// pass that first cleans it and every pass within delete.retention.ms of
// it, and then goes with every older record of its key; a log whose only
// work is an expired tombstone is due for cleaning though nothing is dirty.
func TestCleanTombstones(t *testing.T) {
	clk := newClock()
	fsys := vfs.NewMem()
	cfg := compactConfig()
	cfg.DeleteRetentionMs = 1000
	l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	defer func() { _ = l.Close() }()
	m := newModel()
	for round := range 3 {
		for k := range 10 {
			m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%d", k), value: fmt.Sprintf("v%d-%d", k, round)}}, pid: -1})
		}
	}
	// Delete k0..k4; k4 comes back.
	for k := range 5 {
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%d", k), tomb: true}}, pid: -1})
	}
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "k4", value: "back"}}, pid: -1})
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{})

	res := clean(t, c, l)
	recs := checkLog(t, l, m, res.EndOffset)
	if got := tombstonesIn(recs, res.EndOffset); len(got) != 4 || res.TombstonesRemoved != 0 {
		t.Fatalf("first pass: tombstones %v left, %d removed; want k0..k3's, none removed", got, res.TombstonesRemoved)
	}
	if _, due := l.cleanability(clk.Now()); due {
		t.Fatal("log is due right after a pass")
	}

	clk.Advance(999 * time.Millisecond)
	if _, due := l.cleanability(clk.Now()); due {
		t.Fatal("log is due before delete.retention.ms")
	}
	res = clean(t, c, l)
	if recs = checkLog(t, l, m, res.EndOffset); len(tombstonesIn(recs, res.EndOffset)) != 4 {
		t.Fatalf("tombstones removed before delete.retention.ms: %+v", res)
	}

	clk.Advance(time.Millisecond)
	if ratio, due := l.cleanability(clk.Now()); !due || ratio != 0 {
		t.Fatalf("cleanability %v, %v once tombstones expired; want due at ratio 0", ratio, due)
	}
	res = clean(t, c, l)
	recs = checkLog(t, l, m, res.EndOffset)
	if got := tombstonesIn(recs, l.LogEndOffset()); len(got) != 0 || res.TombstonesRemoved != 4 {
		t.Fatalf("tombstones %v left, %d removed after delete.retention.ms", got, res.TombstonesRemoved)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.key+"="+r.value)
	}
	want := []string{"k5=v5-2", "k6=v6-2", "k7=v7-2", "k8=v8-2", "k9=v9-2", "k4=back"}
	if len(keys) < len(want) || !slices.Equal(keys[:len(want)], want) {
		t.Fatalf("log holds %v, want %v then the filler", keys, want)
	}
	if _, due := l.cleanability(clk.Now()); due {
		t.Fatal("log still due after removing every tombstone")
	}
	if st := l.CleanerStats(); st.TombstonesRemoved != 4 || st.Passes != 3 {
		t.Fatalf("stats %+v", st)
	}

	// The tombstone ranges survive a restart: a new tombstone cleaned now
	// is kept for delete.retention.ms across the reopen.
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "k9", tomb: true}}, pid: -1})
	roll(t, l, m)
	clean(t, c, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(500 * time.Millisecond)
	l = openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	res = clean(t, c, l)
	if recs = checkLog(t, l, m, res.EndOffset); len(tombstonesIn(recs, res.EndOffset)) != 1 {
		t.Fatalf("the k9 tombstone went before delete.retention.ms after a restart")
	}
	clk.Advance(500 * time.Millisecond)
	if _, due := l.cleanability(clk.Now()); !due {
		t.Fatal("not due with an expired tombstone after a restart")
	}
	res = clean(t, c, l)
	if recs = checkLog(t, l, m, res.EndOffset); len(tombstonesIn(recs, res.EndOffset)) != 0 || res.TombstonesRemoved != 1 {
		t.Fatalf("k9 tombstone not removed: %+v", res)
	}
}

// TestCompactedTopicRefusesNullKeys: a record without a key is refused
// with ErrInvalidRecord by a compacted log and accepted otherwise; records
// without keys from before the topic became compacted are dropped by the
// cleaner.
func TestCompactedTopicRefusesNullKeys(t *testing.T) {
	fsys := vfs.NewMem()
	cfg := compactConfig()
	cfg.CleanupPolicy = PolicyDelete
	l := openLog(t, fsys, "/d/t-0", cfg)
	defer func() { _ = l.Close() }()
	m := newModel()
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "a", value: "1"}, {noKey: true, value: "x"}}, pid: -1})
	cfg.CleanupPolicy = PolicyCompact | PolicyDelete
	l.SetConfig(cfg)
	for _, codec := range []record.Codec{record.CodecNone, record.CodecZstd} {
		_, err := l.Append(keyedBatch(t, keyedSpec{recs: []kv{{key: "b", value: "2"}, {noKey: true, value: "y"}}, pid: -1, codec: codec}), 0)
		if !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%v: appending a null key to a compacted log: %v, want ErrInvalidRecord", codec, err)
		}
	}
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "a", value: "2"}}, pid: -1})
	roll(t, l, m)
	res := clean(t, NewCleaner(CleanerConfig{}), l)
	if res.NullKeysRemoved != 1 {
		t.Fatalf("%+v, want one null key removed", res)
	}
	checkLog(t, l, m, res.EndOffset)
}

// TestCleanKeepsProducerState: an idempotent producer's batches are
// cleaned away but its last batch stays (empty) so that, with every
// snapshot gone, the producer state rebuilt from the log still accepts
// the next sequence and answers a retry of the last batch as a duplicate.
func TestCleanKeepsProducerState(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, compactConfig())
		m := newModel()
		seq := int32(0)
		var last AppendResult
		var lastBatch []byte
		for i := range 20 {
			spec := keyedSpec{recs: []kv{{key: "p", value: fmt.Sprint(i)}, {key: "q", value: fmt.Sprint(i)}}, pid: 7, epoch: 2, seq: seq, codec: record.CodecSnappy}
			lastBatch = keyedBatch(t, spec)
			last = m.appendKeyed(t, l, spec)
			seq += 2
		}
		// Another writer supersedes every record of the producer.
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "p", value: "other"}, {key: "q", value: "other"}}, pid: -1})
		roll(t, l, m)
		res := clean(t, NewCleaner(CleanerConfig{}), l)
		recs := checkLog(t, l, m, res.EndOffset)
		for _, r := range recs {
			if r.offset < res.EndOffset && r.value != "other" && r.key != "filler" {
				t.Fatalf("producer record %+v survived", r)
			}
		}
		_, hdrs := readKeyed(t, l)
		var empties []record.Header
		for _, h := range hdrs {
			if h.ProducerID == 7 {
				empties = append(empties, h)
			}
		}
		if len(empties) != 1 || empties[0].NumRecords != 0 || empties[0].BaseOffset != last.BaseOffset ||
			empties[0].LastOffset() != last.LastOffset || empties[0].BaseSequence != seq-2 || empties[0].ProducerEpoch != 2 {
			t.Fatalf("producer batches left: %+v, want one empty batch at %d..%d", empties, last.BaseOffset, last.LastOffset)
		}

		// Lose every snapshot: the state comes from the log alone.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		snaps, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range snaps {
			if strings.HasSuffix(e.Name(), snapshotSuffix) {
				if err := fsys.Remove(dir + "/" + e.Name()); err != nil {
					t.Fatal(err)
				}
			}
		}
		l = openLog(t, fsys, dir, compactConfig())
		defer func() { _ = l.Close() }()
		dup, err := l.Append(lastBatch, 0)
		if err != nil || !dup.Duplicate || dup.BaseOffset != last.BaseOffset || dup.LastOffset != last.LastOffset {
			t.Fatalf("retry of the last batch: %+v, %v; want a duplicate at %d", dup, err, last.BaseOffset)
		}
		next := m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "p", value: "next"}}, pid: 7, epoch: 2, seq: seq})
		if next.Duplicate {
			t.Fatal("next sequence taken for a duplicate")
		}
		if _, err := l.Append(keyedBatch(t, keyedSpec{recs: []kv{{key: "p", value: "gap"}}, pid: 7, epoch: 2, seq: seq + 5}), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("sequence gap after cleaning: %v", err)
		}
		checkLog(t, l, m, 0)
	})
}

// TestReadAcrossGaps reads from every offset of a cleaned log, including
// those the cleaner removed: each read returns the first surviving record
// at or after the offset.
func TestReadAcrossGaps(t *testing.T) {
	fsys := vfs.NewMem()
	l := openLog(t, fsys, "/d/t-0", compactConfig())
	defer func() { _ = l.Close() }()
	m := newModel()
	rng := rand.New(rand.NewPCG(3, 3))
	fillKeyed(t, l, m, rng, 150, 6, record.CodecLZ4, true)
	roll(t, l, m)
	clean(t, NewCleaner(CleanerConfig{}), l)
	all, _ := readKeyed(t, l)
	for off := l.LogStartOffset(); off < l.HighWatermark(); off++ {
		c, err := l.Read(off, l.HighWatermark(), 1)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		buf := make([]byte, c.Size)
		if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
			t.Fatal(err)
		}
		c.Release()
		i, _ := slices.BinarySearchFunc(all, off, func(r keyedRec, o int64) int { return int(r.offset - o) })
		first := int64(-1)
		_ = record.Batches(buf, func(_ int, batch []byte, h record.Header) error {
			return record.Records(h, batch, func(r *record.Record) error {
				if o := h.BaseOffset + int64(r.OffsetDelta); first < 0 && o >= off {
					first = o
				}
				return nil
			})
		})
		if i < len(all) && first != all[i].offset {
			t.Fatalf("Read(%d) starts with offset %d, want %d", off, first, all[i].offset)
		}
	}
}

// TestRecoveryAcceptsGapsOnlyWhereCleaned: after cleaning, a batch that
// skips offsets in the active segment (above the gap bound) is still
// corruption that recovery truncates.
func TestRecoveryAcceptsGapsOnlyWhereCleaned(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	l := openLog(t, fsys, dir, compactConfig())
	m := newModel()
	fillKeyed(t, l, m, rand.New(rand.NewPCG(4, 4)), 60, 5, record.CodecNone, false)
	roll(t, l, m)
	clean(t, NewCleaner(CleanerConfig{}), l)
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Append a batch at leo+3 to the active segment behind the log's back.
	bad := keyedBatch(t, keyedSpec{recs: []kv{{key: "x", value: "y"}}, pid: -1})
	record.SetBaseOffset(bad, leo+3)
	f, err := fsys.OpenFile(lastSegmentPath(t, fsys, dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bad); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	l = openLog(t, fsys, dir, compactConfig())
	defer func() { _ = l.Close() }()
	if got := l.LogEndOffset(); got != leo {
		t.Fatalf("log end offset %d after a gap in the active segment, want %d (truncated)", got, leo)
	}
	checkLog(t, l, m, 0)
}

// TestCleanRespectsBounds: the active segment, segments not yet flushed
// and segments younger than min.compaction.lag.ms are never rewritten;
// a log that is not compacted is left alone.
func TestCleanRespectsBounds(t *testing.T) {
	clk := newClock()
	fsys := vfs.NewMem()
	cfg := compactConfig()
	cfg.MinCompactionLagMs = 10_000
	l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	defer func() { _ = l.Close() }()
	m := newModel()
	rng := rand.New(rand.NewPCG(5, 5))
	c := NewCleaner(CleanerConfig{})

	// Nothing flushed: nothing cleanable.
	fillKeyed(t, l, m, rng, 40, 4, record.CodecNone, false)
	if res := clean(t, c, l); res.SegmentsRewritten != 0 {
		t.Fatalf("cleaned unflushed segments: %+v", res)
	}
	// Flushed, but records are newer than the lag (timestamps are the
	// clock's start).
	// Flushed, but the records (stamped with the clock's start) are
	// younger than the lag.
	roll(t, l, m)
	if res := clean(t, c, l); res.SegmentsRewritten != 0 {
		t.Fatalf("cleaned segments younger than min.compaction.lag.ms: %+v", res)
	}
	clk.Advance(11 * time.Second)
	res := clean(t, c, l)
	if res.SegmentsRewritten == 0 {
		t.Fatalf("nothing cleaned once past min.compaction.lag.ms: %+v", res)
	}
	active := l.segments()[len(l.segments())-1]
	if res.EndOffset > active.base {
		t.Fatalf("cleaned into the active segment: end %d, active at %d", res.EndOffset, active.base)
	}
	checkLog(t, l, m, res.EndOffset)

	// A delete-policy log is not touched.
	cfg.CleanupPolicy = PolicyDelete
	l.SetConfig(cfg)
	fillKeyed(t, l, m, rng, 40, 4, record.CodecNone, false)
	roll(t, l, m)
	if res := clean(t, c, l); res != (CleanResult{}) {
		t.Fatalf("cleaned a delete-policy log: %+v", res)
	}
	if _, due := l.cleanability(clk.Now()); due {
		t.Fatal("delete-policy log is due for cleaning")
	}
}

// TestRetentionByPolicy: retention.ms deletes segments of compact,delete
// logs but not of compact-only ones nor of those with an empty policy.
func TestRetentionByPolicy(t *testing.T) {
	for _, policy := range []CleanupPolicy{PolicyCompact, PolicyCompact | PolicyDelete, PolicyDelete, PolicyNone} {
		t.Run(fmt.Sprintf("%q", policy.String()), func(t *testing.T) {
			clk := newClock()
			cfg := compactConfig()
			cfg.CleanupPolicy = policy
			cfg.RetentionMs = 1000
			l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
			defer func() { _ = l.Close() }()
			m := newModel()
			fillKeyed(t, l, m, rand.New(rand.NewPCG(6, 6)), 40, 4, record.CodecNone, false)
			roll(t, l, m)
			clk.Advance(24 * time.Hour)
			if err := l.Maintain(); err != nil {
				t.Fatal(err)
			}
			deleted := l.LogStartOffset() > 0
			if deleted != policy.Delete() {
				t.Fatalf("policy %v: retention deleted segments: %v", policy, deleted)
			}
			if res := clean(t, NewCleaner(CleanerConfig{}), l); (res != CleanResult{}) != policy.Compact() {
				t.Fatalf("policy %v: cleaned %+v", policy, res)
			}
		})
	}
}

// TestCleanAbortsWhenTheLogChanges: a truncation in the middle of a pass
// (here while the cleaned segment is being written) aborts it, leaves no
// cleaner files, and a later pass cleans.
func TestCleanAbortsWhenTheLogChanges(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	dir := "/d/t-0"
	l := openLog(t, efs, dir, compactConfig())
	defer func() { _ = l.Close() }()
	m := newModel()
	fillKeyed(t, l, m, rand.New(rand.NewPCG(7, 7)), 80, 5, record.CodecNone, false)
	roll(t, l, m)
	truncateTo := l.LogEndOffset() - 3
	fired := false
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpWrite && strings.HasSuffix(path, cleanedSuffix) && !fired {
			fired = true
			if err := l.Truncate(truncateTo); err != nil {
				t.Errorf("Truncate: %v", err)
			}
		}
		return nil
	})
	c := NewCleaner(CleanerConfig{})
	_, err := c.Clean(context.Background(), l)
	efs.SetHook(nil)
	if !errors.Is(err, ErrCleanAborted) {
		t.Fatalf("Clean during a truncation: %v, want ErrCleanAborted", err)
	}
	m.forget(l.LogEndOffset())
	entries, _ := mem.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
			t.Fatalf("left %s behind", e.Name())
		}
	}
	checkLog(t, l, m, 0)
	roll(t, l, m)
	res := clean(t, c, l)
	checkLog(t, l, m, res.EndOffset)

	// A cancelled context aborts too.
	fillKeyed(t, l, m, rand.New(rand.NewPCG(8, 8)), 40, 5, record.CodecNone, false)
	roll(t, l, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Clean(ctx, l); !errors.Is(err, ErrCleanAborted) {
		t.Fatalf("Clean with a cancelled context: %v", err)
	}
	checkLog(t, l, m, 0)
}

// TestTruncateBelowCleaned: truncating below the cleaned offset lowers the
// cleaner checkpoint; appends, reopen and cleaning carry on.
func TestTruncateBelowCleaned(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	l := openLog(t, fsys, dir, compactConfig())
	m := newModel()
	rng := rand.New(rand.NewPCG(9, 9))
	fillKeyed(t, l, m, rng, 80, 5, record.CodecGzip, true)
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{})
	res := clean(t, c, l)
	cut := res.EndOffset / 2
	if err := l.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	m.forget(l.LogEndOffset())
	if st := l.CleanerStats(); st.FirstDirtyOffset > l.LogEndOffset() {
		t.Fatalf("first dirty offset %d above the truncated end %d", st.FirstDirtyOffset, l.LogEndOffset())
	}
	fillKeyed(t, l, m, rng, 40, 5, record.CodecGzip, true)
	roll(t, l, m)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, fsys, dir, compactConfig())
	defer func() { _ = l.Close() }()
	checkLog(t, l, m, 0)
	res = clean(t, c, l)
	checkLog(t, l, m, res.EndOffset)
}

// TestCleanDedupeBufferLimit: with an offset map too small for the dirty
// section the pass ends early, and later passes finish the job.
func TestCleanDedupeBufferLimit(t *testing.T) {
	fsys := vfs.NewMem()
	l := openLog(t, fsys, "/d/t-0", compactConfig())
	defer func() { _ = l.Close() }()
	m := newModel()
	for i := range 3000 {
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("key-%d", i), value: "v"}}, pid: -1})
	}
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{DedupeBufferSize: 1})
	c.omap = newOffsetMap(1000 * offsetSlotBytes) // 512 slots: 384 keys
	c.omap.maxSlots = 512
	passes := 0
	for {
		res := clean(t, c, l)
		passes++
		checkLog(t, l, m, res.EndOffset)
		if res.EndOffset >= l.segments()[len(l.segments())-1].base {
			break
		}
		if passes > 20 {
			t.Fatalf("no end in sight: %+v", res)
		}
	}
	if passes < 5 {
		t.Fatalf("%d passes with a 384-key map over 3000 keys", passes)
	}
}

// TestEmptyCleanedSegment: a group whose records all go leaves an empty
// segment in place (the log start does not move); it reads and reopens.
// Retention of a compact,delete log does not delete it on its own, which
// would move the log start over offsets whose next records are still
// there: it goes with the first segment after it that retention deletes.
func TestEmptyCleanedSegment(t *testing.T) {
	clk := newClock()
	fsys := vfs.NewMem()
	cfg := compactConfig()
	cfg.CleanupPolicy = PolicyCompact | PolicyDelete
	cfg.RetentionMs = 24 * 60 * 60 * 1000
	l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	m := newModel()
	const t0, later = 1_700_000_000_000, 10 * 60 * 60 * 1000
	for round := range 2 {
		for k := range 40 {
			m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%02d", k), value: strings.Repeat("v", 20)}}, pid: -1, ts: t0 + int64(round)*later})
		}
	}
	roll(t, l, m)
	res := clean(t, NewCleaner(CleanerConfig{}), l)
	checkLog(t, l, m, res.EndOffset)
	first := l.segments()[0]
	if _, size := first.end(); size != 0 || first.base != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("first segment %d holds %d bytes, log start %d; want an empty segment at 0", first.base, size, l.LogStartOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Hour) // the emptied segments' records are 20 h old, the next ones 10 h
	l = openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	defer func() { _ = l.Close() }()
	checkLog(t, l, m, res.EndOffset)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if got := l.LogStartOffset(); got != 0 {
		t.Fatalf("log start %d after retention; want 0: the segments after the empty ones are not due", got)
	}
	checkLog(t, l, m, res.EndOffset)
	chunk, err := l.Read(5, l.HighWatermark(), 1<<20)
	if err != nil {
		t.Fatalf("read at offset 5, inside the emptied segments: %v", err)
	}
	chunk.Release()
	if chunk.Size == 0 {
		t.Fatal("read at offset 5 returned nothing; want the records after the emptied segments")
	}
	var firstKept int64 = -1
	for _, seg := range l.segments() {
		if _, size := seg.end(); size > 0 {
			firstKept = seg.base
			break
		}
	}
	clk.Advance(15 * time.Hour) // now the second round's records are 25 h old too
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if got := l.LogStartOffset(); got <= firstKept {
		t.Fatalf("log start %d; want past the first segment that kept records (%d), the empty ones before it gone with it", got, firstKept)
	}
	checkLog(t, l, m, res.EndOffset)
}

// TestEmptyCleanedSegmentBySize: retention.bytes deletes an emptied
// segment on its own while the log is at least that size, as Kafka's
// size rule does (total - retention.bytes - 0 >= 0), and keeps it below.
func TestEmptyCleanedSegmentBySize(t *testing.T) {
	for _, over := range []bool{false, true} {
		fsys := vfs.NewMem()
		cfg := compactConfig()
		cfg.CleanupPolicy = PolicyCompact | PolicyDelete
		cfg.RetentionMs = -1
		l := openLog(t, fsys, "/d/t-0", cfg)
		m := newModel()
		for range 2 {
			for k := range 40 {
				m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%02d", k), value: strings.Repeat("v", 20)}}, pid: -1})
			}
		}
		roll(t, l, m)
		res := clean(t, NewCleaner(CleanerConfig{}), l)
		var firstKept int64 = -1
		for _, seg := range l.segments() {
			if _, size := seg.end(); size > 0 {
				firstKept = seg.base
				break
			}
		}
		if firstKept <= 0 {
			t.Fatalf("no emptied segment before the first kept one (%d)", firstKept)
		}
		// At the log's size, every emptied segment goes and no other
		// one does (each holds more than the one byte of slack); one
		// byte over it, none does.
		cfg.RetentionBytes = l.size.Load() - 1
		if !over {
			cfg.RetentionBytes = l.size.Load() + 1
		}
		l.SetConfig(cfg)
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if over {
			want = firstKept
		}
		if got := l.LogStartOffset(); got != want {
			t.Fatalf("over=%v: log start %d, want %d", over, got, want)
		}
		checkLog(t, l, m, res.EndOffset)
		_ = l.Close()
	}
}

// TestMaxCompactionLag: with a dirty ratio far below
// min.cleanable.dirty.ratio, an update is still compacted within
// max.compaction.lag.ms: the active segment holding it is rolled once its
// first batch is that old, and the log is then due for cleaning.
func TestMaxCompactionLag(t *testing.T) {
	clk := newClock()
	cfg := compactConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.MinCleanableDirtyRatio = 0.99
	cfg.MaxCompactionLagMs = 60_000
	l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
	defer func() { _ = l.Close() }()
	m := newModel()
	for k := range 100 {
		m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: fmt.Sprintf("k%d", k), value: "v1"}}, pid: -1, ts: clk.Now().UnixMilli()})
	}
	roll(t, l, m)
	c := NewCleaner(CleanerConfig{})
	clean(t, c, l)

	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "k0", value: "v2"}}, pid: -1, ts: clk.Now().UnixMilli()})
	l.SetHighWatermark(l.LogEndOffset())
	segs := len(l.segments())
	clk.Advance(59 * time.Second)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if len(l.segments()) != segs {
		t.Fatal("active segment rolled before max.compaction.lag.ms")
	}
	if _, due := l.cleanability(clk.Now()); due {
		t.Fatal("due before max.compaction.lag.ms")
	}
	clk.Advance(2 * time.Second)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if len(l.segments()) != segs+1 {
		t.Fatalf("%d segments after max.compaction.lag.ms, want the active one rolled (%d)", len(l.segments()), segs+1)
	}
	if err := l.Flush(); err != nil { // as flush.ms does: only flushed segments are cleaned
		t.Fatal(err)
	}
	ratio, due := l.cleanability(clk.Now())
	if !due || ratio > 0.5 {
		t.Fatalf("cleanability %v, %v after max.compaction.lag.ms; want due at a low ratio", ratio, due)
	}
	res := clean(t, c, l)
	if res.RecordsRemoved != 1 {
		t.Fatalf("pass removed %d records, want k0's old value: %+v", res.RecordsRemoved, res)
	}
	checkLog(t, l, m, res.EndOffset)
}
