package storage

import (
	"errors"
	"math"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

func pbatch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	return makeBatch(t, batchSpec{n: n, pid: pid, epoch: epoch, seq: seq, tag: "p"})
}

func TestIdempotence(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := openLog(t, fsys, dir, Config{})
		defer l.Close()

		// An unknown producer must start at 0 in a partition never
		// written.
		if _, err := l.Append(pbatch(t, 7, 0, 5, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("first batch at seq 5 in empty partition: %v", err)
		}
		first := mustAppend(t, l, pbatch(t, 7, 0, 0, 3))  // seq 0..2, offsets 0..2
		second := mustAppend(t, l, pbatch(t, 7, 0, 3, 2)) // seq 3..4, offsets 3..4
		mustAppend(t, l, plain(t, "other", 1))            // offset 5
		third := mustAppend(t, l, pbatch(t, 7, 0, 5, 1))  // seq 5, offset 6
		if third.BaseOffset != 6 {
			t.Fatalf("third at %d", third.BaseOffset)
		}

		// Retries of any of the last five batches return the originals.
		for _, c := range []struct {
			seq  int32
			n    int
			want AppendResult
		}{{0, 3, first}, {3, 2, second}, {5, 1, third}} {
			res, err := l.Append(pbatch(t, 7, 0, c.seq, c.n), 0)
			if err != nil {
				t.Fatalf("dup seq %d: %v", c.seq, err)
			}
			if !res.Duplicate || res.BaseOffset != c.want.BaseOffset || res.LastOffset != c.want.LastOffset {
				t.Fatalf("dup seq %d: %+v, want offsets of %+v", c.seq, res, c.want)
			}
		}
		if l.LogEndOffset() != 7 {
			t.Fatalf("duplicates appended: LEO %d", l.LogEndOffset())
		}

		// Gaps and overlaps are rejected.
		for _, seq := range []int32{7, 4, 1} {
			if _, err := l.Append(pbatch(t, 7, 0, seq, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
				t.Fatalf("seq %d: %v", seq, err)
			}
		}
		// A new epoch must start at 0; then the old one is fenced.
		if _, err := l.Append(pbatch(t, 7, 1, 6, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("new epoch at seq 6: %v", err)
		}
		mustAppend(t, l, pbatch(t, 7, 1, 0, 1))
		if _, err := l.Append(pbatch(t, 7, 0, 6, 1), 0); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("old epoch: %v", err)
		}
		// An unknown producer may start anywhere once the partition has
		// data (KIP-360).
		mustAppend(t, l, pbatch(t, 8, 0, 42, 1))
		mustAppend(t, l, pbatch(t, 8, 0, 43, 1))

		// Several batches in one append are checked in order.
		two := append(pbatch(t, 7, 1, 1, 2), pbatch(t, 7, 1, 3, 1)...)
		res := mustAppend(t, l, two)
		if res.LastOffset-res.BaseOffset != 2 {
			t.Fatalf("two-batch append %+v", res)
		}
		bad := append(pbatch(t, 7, 1, 4, 1), pbatch(t, 7, 1, 9, 1)...)
		leo := l.LogEndOffset()
		if _, err := l.Append(bad, 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("second batch out of order: %v", err)
		}
		if l.LogEndOffset() != leo {
			t.Fatal("a rejected multi-batch append wrote something")
		}
	})
}

func TestSequenceWrap(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "/d/t-0", Config{})
	defer l.Close()
	mustAppend(t, l, plain(t, "x", 1))
	mustAppend(t, l, pbatch(t, 1, 0, math.MaxInt32-1, 2)) // MaxInt32-1, MaxInt32
	mustAppend(t, l, pbatch(t, 1, 0, 0, 2))               // wraps to 0
	if _, err := l.Append(pbatch(t, 1, 0, 3, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after wrap: %v", err)
	}
	wrapping := mustAppend(t, l, pbatch(t, 1, 0, 2, 1))
	res, err := l.Append(pbatch(t, 1, 0, 2, 1), 0)
	if err != nil || !res.Duplicate || res.BaseOffset != wrapping.BaseOffset {
		t.Fatalf("dup after wrap: %+v %v", res, err)
	}
}

// TestProducerStateSurvivesRestart checks duplicates are still detected
// after a clean restart, a kill, a power loss after a flush, and with the
// snapshots removed (rebuilt from the log alone).
func TestProducerStateSurvivesRestart(t *testing.T) {
	for _, how := range []string{"clean", "kill", "crash", "no snapshots", "rolled"} {
		t.Run(how, func(t *testing.T) {
			fsys := vfs.NewCrashable()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: 600}
			l := openLog(t, fsys, dir, cfg)
			var results []AppendResult
			for i := range int32(20) {
				results = append(results, mustAppend(t, l, pbatch(t, 3, 2, i*2, 2)))
				mustAppend(t, l, plain(t, "noise", 1))
			}
			switch how {
			case "clean", "no snapshots":
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			case "kill", "rolled":
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				mustAppend(t, l, plain(t, "unflushed", 1))
				l.closeFiles(false)
			case "crash":
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				fsys.Crash()
				l.closeFiles(false)
			}
			if how == "no snapshots" {
				snaps, _ := l.listSnapshots()
				for _, off := range snaps {
					if err := fsys.Remove(l.snapshotPath(off)); err != nil {
						t.Fatal(err)
					}
				}
			}
			l = openLog(t, fsys, dir, cfg)
			defer l.Close()
			for i := 15; i < 20; i++ {
				res, err := l.Append(pbatch(t, 3, 2, int32(i)*2, 2), 0)
				if err != nil || !res.Duplicate || res.BaseOffset != results[i].BaseOffset {
					t.Fatalf("retry of batch %d after %s restart: %+v %v (original %+v)", i, how, res, err, results[i])
				}
			}
			if _, err := l.Append(pbatch(t, 3, 2, 41, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
				t.Fatalf("gap after restart: %v", err)
			}
			mustAppend(t, l, pbatch(t, 3, 2, 40, 1))
		})
	}
}

func TestProducerSnapshotRoundTrip(t *testing.T) {
	ps := producerStates{}
	for i := range 8 {
		h := headerFor(t, pbatch(t, int64(i%3), int16(i/3), int32(i), 2))
		h.BaseOffset = int64(10 * i)
		ps.apply(&h)
	}
	got, err := decodeProducerStates(ps.encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ps) {
		t.Fatalf("%d producers, want %d", len(got), len(ps))
	}
	for id, e := range ps {
		if *got[id] != *e {
			t.Fatalf("producer %d: %+v, want %+v", id, *got[id], *e)
		}
	}
}

// TestProducerIDExpiration: Maintain forgets a producer whose newest batch
// is older than ProducerIDExpirationMs, keeps a recent one, and a forgotten
// producer that comes back mid-sequence is accepted as a new one (in a
// partition that has records), as Kafka does. A restart rebuilds both.
// (A restart may also bring back a producer expired since the last
// snapshot; the next check expires it again.)
func TestProducerIDExpiration(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		clk := newClock()
		day := int64(24 * 60 * 60 * 1000)
		cfg := Config{ProducerIDExpirationMs: day}
		l := openLog(t, fsys, dir, cfg, withNow(clk))
		defer func() { l.Close() }()
		now := clk.Now().UnixMilli()
		mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 1, seq: 0, ts: now - day - 1000, tag: "old"}))
		mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: 2, seq: 0, ts: now - 1000, tag: "new"}))
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		_, has1 := l.mu.producers[1]
		_, has2 := l.mu.producers[2]
		l.mu.Unlock()
		if has1 || !has2 {
			t.Fatalf("after Maintain: producer 1 kept %v (want false), producer 2 kept %v (want true)", has1, has2)
		}
		// Producer 1 resumes at sequence 2: unknown now, so accepted.
		mustAppend(t, l, makeBatch(t, batchSpec{n: 1, pid: 1, seq: 2, ts: now, tag: "back"}))
		// Producer 2 is still checked: a gap is refused.
		if _, err := l.Append(makeBatch(t, batchSpec{n: 1, pid: 2, seq: 5, ts: now, tag: "gap"}), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("gap from a remembered producer: %v", err)
		}
		// Both are in the state again after a restart.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, fsys, dir, cfg, withNow(clk))
		l.mu.Lock()
		n := len(l.mu.producers)
		l.mu.Unlock()
		if n != 2 {
			t.Fatalf("after reopen: %d producers, want 2", n)
		}
	})
}
