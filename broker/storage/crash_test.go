package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestRandomCrashes interleaves appends (plain and idempotent), flushes,
// rolls, retention, DeleteRecords and truncation with simulated power
// losses, and checks after every step that every record read back is the
// one written at that offset, after every reopen that everything flushed
// survived, and that the idempotent producer can continue.
func TestRandomCrashes(t *testing.T) {
	for seed := range uint64(32) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 99))
			fsys := vfs.NewCrashable()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: 700 + int64(rng.IntN(800)), IndexIntervalBytes: 100, RetentionBytes: -1, RetentionMs: -1, FileDeleteDelayMs: 1}
			l := openLog(t, fsys, dir, cfg)
			defer func() { l.closeFiles(false) }()
			want := map[int64]string{} // offset -> record value
			durable := int64(0)        // log end offset at the last flush
			epoch, seq := int16(0), int32(0)
			forget := func() {
				for off := range want {
					if off >= l.LogEndOffset() {
						delete(want, off)
					}
				}
				durable = min(durable, l.LogEndOffset())
			}
			for step := range 150 {
				op := rng.IntN(20)
				if testing.Verbose() {
					t.Logf("step %d op %d leo %d start %d segs %d", step, op, l.LogEndOffset(), l.LogStartOffset(), len(l.segments()))
				}
				switch {
				case op < 10:
					tag := fmt.Sprintf("s%d", step)
					n := 1 + rng.IntN(3)
					idempotent := rng.IntN(2) == 0
					spec := batchSpec{n: n, pid: -1, tag: tag}
					if idempotent {
						spec.pid, spec.epoch, spec.seq = 1, epoch, seq
					}
					res, err := l.Append(makeBatch(t, spec), 0)
					if err != nil {
						t.Fatalf("step %d: append %+v: %v", step, spec, err)
					}
					if idempotent {
						seq += int32(n)
					}
					for i := range n {
						want[res.BaseOffset+int64(i)] = fmt.Sprintf("%s-%d", tag, i)
					}
					l.SetHighWatermark(l.LogEndOffset())
				case op < 13:
					if err := l.Flush(); err != nil {
						t.Fatal(err)
					}
					durable = l.LogEndOffset()
				case op < 14:
					target := l.LogStartOffset() + rng.Int64N(l.HighWatermark()-l.LogStartOffset()+1)
					if _, err := l.DeleteRecordsBefore(target); err != nil {
						t.Fatal(err)
					}
				case op < 15:
					if err := l.Maintain(); err != nil {
						t.Fatal(err)
					}
				case op < 16:
					if l.LogEndOffset() == l.LogStartOffset() {
						continue
					}
					target := l.LogStartOffset() + 1 + rng.Int64N(l.LogEndOffset()-l.LogStartOffset())
					if err := l.Truncate(target); err != nil {
						t.Fatal(err)
					}
					forget()
					// The producer lost its tail: like a client after
					// OUT_OF_ORDER_SEQUENCE, it bumps its epoch.
					epoch, seq = epoch+1, 0
				default:
					if rng.IntN(2) == 0 {
						fsys.Crash()
					} else {
						fsys.CrashTorn(rng.Uint64())
					}
					l.closeFiles(false)
					l = openLog(t, fsys, dir, cfg)
					if l.LogEndOffset() < durable {
						t.Fatalf("step %d: LEO %d after crash, %d was flushed", step, l.LogEndOffset(), durable)
					}
					forget()
					if e, next, ok := producerNext(l, 1); ok && e == epoch {
						seq = next
					} else {
						epoch, seq = epoch+1, 0
					}
				}
				checkContent(t, l, want, step)
			}
		})
	}
}

// producerNext returns a producer's epoch and next expected sequence.
func producerNext(l *Log, pid int64) (epoch int16, seq int32, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.mu.producers[pid]
	if e == nil || e.n == 0 {
		return 0, 0, false
	}
	return e.epoch, nextSequence(e.last().lastSeq), true
}

func checkContent(t *testing.T, l *Log, want map[int64]string, step int) {
	t.Helper()
	start := l.LogStartOffset()
	recs := readAll(t, l, start)
	if int64(len(recs)) != l.HighWatermark()-start {
		t.Fatalf("step %d: read %d records in [%d, %d)", step, len(recs), start, l.HighWatermark())
	}
	for i, r := range recs {
		if r.offset != start+int64(i) {
			t.Fatalf("step %d: record %d at offset %d, want %d", step, i, r.offset, start+int64(i))
		}
		if w, ok := want[r.offset]; !ok || w != r.value {
			t.Fatalf("step %d: offset %d holds %q, wrote %q", step, r.offset, r.value, w)
		}
	}
}
