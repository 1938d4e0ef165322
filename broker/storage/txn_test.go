package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// txnBatch is an n-record transactional batch of producer pid.
func txnBatch(t testing.TB, pid int64, epoch int16, seq int32, tag string, n int) []byte {
	t.Helper()
	b := record.NewBuilder()
	b.SetProducer(pid, epoch, seq).SetTransactional(true)
	for i := range n {
		b.Add([]byte(tag), []byte(tag+"-"+string(rune('a'+i))), nil, 1_700_000_000_000)
	}
	return b.Build()
}

func appendHW(t testing.TB, l *Log, batch []byte) AppendResult {
	t.Helper()
	res := mustAppend(t, l, batch)
	l.SetHighWatermark(l.LogEndOffset())
	return res
}

func marker(t testing.TB, l *Log, pid int64, epoch int16, commit bool) int64 {
	t.Helper()
	off, err := l.AppendMarker(pid, epoch, commit, 0, 0)
	if err != nil {
		t.Fatalf("AppendMarker(%d, %v): %v", pid, commit, err)
	}
	l.SetHighWatermark(l.LogEndOffset())
	return off
}

// TestTxnStateAndRecovery: transactional batches hold the last stable
// offset at the first open one; markers end them, aborts are listed; the
// state comes back after a clean close, after the snapshots are lost
// (replayed from the segments), and after the recovery point is lost too
// (replayed from the recovery scan).
func TestTxnStateAndRecovery(t *testing.T) {
	for _, lose := range []string{"nothing", "snapshots", "snapshots and recovery point"} {
		t.Run(strings.ReplaceAll(lose, " ", "_"), func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				l := openLog(t, fsys, dir, Config{})
				appendHW(t, l, plain(t, "p", 2))             // 0-1
				appendHW(t, l, txnBatch(t, 7, 0, 0, "a", 2)) // 2-3, aborted below
				appendHW(t, l, txnBatch(t, 8, 0, 0, "c", 1)) // 4, committed below
				if got := l.LastStableOffset(); got != 2 {
					t.Fatalf("LSO with two open = %d, want 2", got)
				}
				appendHW(t, l, plain(t, "q", 1))                // 5
				if off := marker(t, l, 7, 0, false); off != 6 { // abort 7
					t.Fatalf("abort marker at %d, want 6", off)
				}
				if got := l.LastStableOffset(); got != 4 {
					t.Fatalf("LSO after abort = %d, want 4", got)
				}
				marker(t, l, 8, 0, true)                     // 7
				appendHW(t, l, txnBatch(t, 7, 0, 2, "o", 1)) // 8, stays open
				want := []AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 6}}
				check := func(stage string) {
					t.Helper()
					if got := l.LastStableOffset(); got != 8 {
						t.Fatalf("%s: LSO = %d, want 8", stage, got)
					}
					if got := l.AbortedTxns(0, 100); !slices.Equal(got, want) {
						t.Fatalf("%s: aborted %+v, want %+v", stage, got, want)
					}
					if got := l.AbortedTxns(7, 100); len(got) != 0 {
						t.Fatalf("%s: aborted from 7 = %+v, want none", stage, got)
					}
					if got := l.AbortedTxns(0, 2); len(got) != 0 {
						t.Fatalf("%s: aborted below 2 = %+v, want none", stage, got)
					}
					if got := l.OpenTxns(); len(got) != 1 || got[0].ProducerID != 7 || got[0].FirstOffset != 8 {
						t.Fatalf("%s: open %+v", stage, got)
					}
				}
				check("live")
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if lose != "nothing" {
					entries, err := fsys.ReadDir(dir)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range entries {
						if strings.HasSuffix(e.Name(), snapshotSuffix) || (lose != "snapshots" && (e.Name() == recoveryPointFile || e.Name() == cleanShutdownFile)) {
							if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				l = openLog(t, fsys, dir, Config{})
				defer l.Close()
				l.SetHighWatermark(l.LogEndOffset())
				check("reopened")
				// A marker from an older epoch is fenced; one from a newer
				// epoch ends the transaction and resets the sequence.
				if _, err := l.AppendMarker(7, -1, false, 0, 0); err == nil {
					t.Fatal("marker with epoch -1 accepted")
				}
				marker(t, l, 7, 1, false) // 9
				want = append(want, AbortedTxn{ProducerID: 7, FirstOffset: 8, LastOffset: 9})
				if got := l.AbortedTxns(0, 100); !slices.Equal(got, want) {
					t.Fatalf("aborted %+v, want %+v", got, want)
				}
				if _, err := l.Append(txnBatch(t, 7, 0, 3, "z", 1), 0); err == nil {
					t.Fatal("batch of the fenced epoch accepted")
				}
				appendHW(t, l, txnBatch(t, 7, 1, 0, "n", 1)) // 10
				if got := l.LastStableOffset(); got != 10 {
					t.Fatalf("LSO = %d, want 10", got)
				}
			})
		})
	}
}

// TestTxnControlBatchesRefused: a produced control batch is refused
// (INVALID_RECORD); markers come only from AppendMarker. A producer with
// a transaction open cannot write outside it, in its epoch or a newer one
// (whose marker the partition would then refuse, leaving the transaction
// open for good).
func TestTxnControlBatchesRefused(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{})
		defer l.Close()
		if _, err := l.Append(buildMarker(1, 0, true, 0, 1_700_000_000_000), 0); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("control batch from a producer: %v, want ErrInvalidRecord", err)
		}
		appendHW(t, l, txnBatch(t, 4, 0, 0, "t", 1))
		for _, epoch := range []int16{0, 1} {
			seq := int32(1)
			if epoch == 1 {
				seq = 0
			}
			b := makeBatch(t, batchSpec{n: 1, pid: 4, epoch: epoch, seq: seq, tag: "plain"})
			if _, err := l.Append(b, 0); !errors.Is(err, ErrInvalidTxnState) {
				t.Fatalf("non-transactional batch in epoch %d with a transaction open: %v, want ErrInvalidTxnState", epoch, err)
			}
		}
		marker(t, l, 4, 0, true)
		appendHW(t, l, makeBatch(t, batchSpec{n: 1, pid: 4, epoch: 0, seq: 1, tag: "plain"}))
	})
}

// TestTxnCleanerDropsAborted: in a compacted log, records of an aborted
// transaction are removed and do not shadow the committed value of their
// key; markers stay; an open transaction is not cleaned.
func TestTxnCleanerDropsAborted(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{CleanupPolicy: PolicyCompact, SegmentBytes: 1, MinCleanableDirtyRatio: -1}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		committed := record.NewBuilder()
		committed.SetProducer(1, 0, 0).SetTransactional(true)
		committed.Add([]byte("k"), []byte("good"), nil, 1_700_000_000_000)
		appendHW(t, l, committed.Build()) // 0
		marker(t, l, 1, 0, true)          // 1
		aborted := record.NewBuilder()
		aborted.SetProducer(2, 0, 0).SetTransactional(true)
		aborted.Add([]byte("k"), []byte("bad"), nil, 1_700_000_000_001)
		appendHW(t, l, aborted.Build())  // 2
		marker(t, l, 2, 0, false)        // 3
		appendHW(t, l, plain(t, "x", 1)) // 4: key "k" too, but later
		appendHW(t, l, txnBatch(t, 3, 0, 0, "open", 1))
		appendHW(t, l, plain(t, "y", 1))
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		c := NewCleaner(CleanerConfig{})
		if _, err := c.Clean(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		got := dataValues(t, l)
		// Offset 4 ("x-0", key "k") is the latest committed value of k,
		// the open transaction (5) and what follows it are not cleaned.
		want := []string{"x-0", "open-a", "y-0"}
		if !slices.Equal(got, want) {
			t.Fatalf("after cleaning: %q, want %q", got, want)
		}
		if got := l.AbortedTxns(0, 100); len(got) != 1 || got[0].ProducerID != 2 {
			t.Fatalf("aborted %+v", got)
		}
	})
}

// eachBatch calls fn with every batch up to the high watermark, each once
// (a read may start inside a batch already seen).
func eachBatch(t testing.TB, l *Log, fn func(h record.Header, batch []byte) error) {
	t.Helper()
	for next := l.LogStartOffset(); next < l.HighWatermark(); {
		c, err := l.Read(next, l.HighWatermark(), 1<<20)
		if err != nil || c.Size == 0 {
			t.Fatalf("Read(%d): %d bytes, %v", next, c.Size, err)
		}
		buf := make([]byte, c.Size)
		if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
			t.Fatal(err)
		}
		c.Release()
		err = record.Batches(buf, func(_ int, batch []byte, h record.Header) error {
			if h.LastOffset() < next {
				return nil
			}
			next = h.LastOffset() + 1
			return fn(h, batch)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// dataValues reads the values of every data record up to the high
// watermark, skipping control batches and batches left empty by the
// cleaner.
func dataValues(t testing.TB, l *Log) []string {
	t.Helper()
	var out []string
	eachBatch(t, l, func(h record.Header, batch []byte) error {
		if h.Control() {
			return nil
		}
		return record.Records(h, batch, func(r *record.Record) error {
			out = append(out, string(r.Value))
			return nil
		})
	})
	return out
}

// TestChunkBelow: a chunk bounds its records' offsets, so a
// read_committed fetch is told only the aborted transactions that may
// touch what it returns.
func TestChunkBelow(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{IndexIntervalBytes: 1})
		defer l.Close()
		for i := range 4 {
			appendHW(t, l, makeBatch(t, batchSpec{n: 10, pid: -1, valueSize: 100, tag: string(rune('a' + i))})) // 0-9, 10-19, ...
		}
		whole, err := l.Read(0, l.HighWatermark(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer whole.Release()
		if whole.Below != 40 {
			t.Fatalf("whole log: below %d, want 40", whole.Below)
		}
		capped, err := l.Read(0, 25, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer capped.Release()
		if capped.Below != 25 {
			t.Fatalf("read up to 25: below %d, want 25", capped.Below)
		}
		small, err := l.Read(0, l.HighWatermark(), int32(whole.Size/4+10))
		if err != nil {
			t.Fatal(err)
		}
		defer small.Release()
		if small.Below != 10 {
			t.Fatalf("one batch's worth of bytes: below %d, want 10", small.Below)
		}
		// A cut that ends in a partial batch, with no index entry within
		// it: bounded by the next batch the index knows (every third
		// batch here, so the fourth, at 30).
		batch := whole.Size / 4
		sparse := openLog(t, fsys, filepath.Join(filepath.Dir(dir), "topic-1"), Config{IndexIntervalBytes: int32(2*batch + 1)})
		defer sparse.Close()
		for i := range 4 {
			appendHW(t, sparse, makeBatch(t, batchSpec{n: 10, pid: -1, valueSize: 100, tag: string(rune('a' + i))}))
		}
		partial, err := sparse.Read(0, sparse.HighWatermark(), int32(batch*3/2))
		if err != nil {
			t.Fatal(err)
		}
		defer partial.Release()
		if partial.Below != 30 {
			t.Fatalf("a batch and a half: below %d, want 30", partial.Below)
		}
	})
}

// controlOffsets lists the offsets of the control batches up to the high
// watermark.
func controlOffsets(t testing.TB, l *Log) []int64 {
	t.Helper()
	var out []int64
	eachBatch(t, l, func(h record.Header, _ []byte) error {
		if h.Control() {
			out = append(out, h.BaseOffset)
		}
		return nil
	})
	return out
}

// TestTxnCleanerRemovesMarkers: as in Kafka, a transaction marker goes
// once none of its transaction's batches is left and delete.retention.ms
// has passed since a pass first found it so; a commit whose data is still
// there and a producer's last batch stay (a probe had a compacted topic
// keep one marker per transaction for ever). A removed abort marker's
// transaction leaves the aborted list, and the snapshots a replay would
// miss a removed marker from are deleted.
func TestTxnCleanerRemovesMarkers(t *testing.T) {
	clk := newClock()
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	cfg := Config{CleanupPolicy: PolicyCompact, SegmentBytes: 1, MinCleanableDirtyRatio: -1, DeleteRetentionMs: 1000}
	l := openLog(t, fsys, dir, cfg, withNow(clk))
	keyed := func(pid int64, seq int32, key string) []byte {
		b := record.NewBuilder()
		b.SetProducer(pid, 0, seq).SetTransactional(true)
		b.Add([]byte(key), []byte(key+"-v"), nil, clk.Now().UnixMilli())
		return b.Build()
	}
	appendHW(t, l, keyed(1, 0, "k"))  // 0: superseded below
	if err := l.Flush(); err != nil { // a snapshot with pid 1's transaction open
		t.Fatal(err)
	}
	snaps, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var oldSnap string
	for _, e := range snaps {
		if strings.HasSuffix(e.Name(), snapshotSuffix) {
			oldSnap = filepath.Join(dir, e.Name())
		}
	}
	if oldSnap == "" {
		t.Fatal("no producer snapshot after the first flush")
	}
	marker(t, l, 1, 0, true)         // 1: goes
	appendHW(t, l, keyed(1, 1, "k")) // 2: superseded
	marker(t, l, 1, 0, true)         // 3: pid 1's last batch, stays
	appendHW(t, l, keyed(2, 0, "k")) // 4: aborted
	marker(t, l, 2, 0, false)        // 5: goes
	appendHW(t, l, keyed(3, 0, "kept"))
	marker(t, l, 3, 0, true)           // 7: its record stays, so does it
	appendHW(t, l, keyed(2, 1, "two")) // 8: pid 2's next transaction
	marker(t, l, 2, 0, true)           // 9: pid 2's last batch, stays
	appendHW(t, l, plain(t, "x", 1))
	appendHW(t, l, plain(t, "y", 1))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	c := NewCleaner(CleanerConfig{})
	want := func(pass string, offs ...int64) {
		t.Helper()
		if got := controlOffsets(t, l); !slices.Equal(got, offs) {
			t.Fatalf("%s: markers at %v, want %v", pass, got, offs)
		}
	}
	for pass := range 2 { // the first removes the data, the second finds the marker bare
		if _, err := c.Clean(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		want(fmt.Sprintf("pass %d", pass+1), 1, 3, 5, 7, 9)
	}
	clk.Advance(999 * time.Millisecond)
	if _, err := c.Clean(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	want("before delete.retention.ms", 1, 3, 5, 7, 9)
	clk.Advance(time.Millisecond)
	res, err := c.Clean(t.Context(), l)
	if err != nil {
		t.Fatal(err)
	}
	want("after delete.retention.ms", 3, 7, 9)
	if res.MarkersRemoved != 2 {
		t.Errorf("pass removed %d markers, want 2", res.MarkersRemoved)
	}
	if got := dataValues(t, l); !slices.Equal(got, []string{"kept-v", "two-v", "x-0", "y-0"}) {
		t.Errorf("data after cleaning: %q", got)
	}
	// With the abort marker gone, a read_committed reader must not be told
	// of its transaction: it would drop pid 2's committed record at 8,
	// looking for the marker.
	if got := l.AbortedTxns(0, 100); len(got) != 0 {
		t.Errorf("aborted transactions after their marker went: %+v", got)
	}
	lso := l.LastStableOffset()
	if err := l.Flush(); err != nil { // writes a snapshot without them
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, fsys, dir, cfg, withNow(clk))
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.AbortedTxns(0, 100); len(got) != 0 || l.LastStableOffset() != lso {
		t.Errorf("after a restart: aborted %+v, last stable offset %d (want none, %d)", got, l.LastStableOffset(), lso)
	}

	// The snapshot from before the cleaning, which has pid 1's transaction
	// open at offset 0, is gone: a replay from it would not meet the
	// removed marker and would hold read_committed readers at offset 0.
	if _, err := fsys.Stat(oldSnap); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("snapshot %s older than the removed marker: %v", oldSnap, err)
	}
	// With no snapshot at all (a power loss's fallback), the replay from
	// the log start gets the same last stable offset.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), snapshotSuffix) {
			if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	l = openLog(t, fsys, dir, cfg, withNow(clk))
	defer l.Close()
	l.SetHighWatermark(l.LogEndOffset())
	if got := l.LastStableOffset(); got != lso {
		t.Fatalf("last stable offset %d after a replay from the log start, want %d", got, lso)
	}
	if got := l.AbortedTxns(0, 100); len(got) != 0 {
		t.Errorf("aborted after the replay %+v", got)
	}
}
