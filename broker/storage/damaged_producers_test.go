package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestProducerReplayAcrossDamagedSegment: with no producer snapshot to
// start from, producer state is replayed from the log's batch headers. A
// segment damaged below the recovery point stops the replay of that
// segment only (with a warning), not the log's open: the log serves what
// it holds, and the producer's state is rebuilt from the other segments.
func TestProducerReplayAcrossDamagedSegment(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 4 << 10, IndexIntervalBytes: 512}
		l := openLog(t, fsys, dir, cfg)
		const pid = 7
		seq := int32(0)
		for i := range 120 {
			mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: pid, seq: seq, tag: "p" + string(rune('a'+i%26)), valueSize: 40}))
			seq += 2
		}
		segs := l.segments()
		if len(segs) < 4 {
			t.Fatalf("%d segments", len(segs))
		}
		victim := segs[1].base
		leo := l.LogEndOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// No snapshot: the replay has to read every segment.
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), snapshotSuffix) {
				if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		path := filepath.Join(dir, fileBase(victim)+logSuffix)
		b := fileBytes(t, fsys, path)
		starts := batchStarts(t, b)
		writeBytes(t, fsys, path, b[:starts[len(starts)/2]+30]) // cut mid-batch

		logs, obs := observed()
		l = openLog(t, fsys, dir, cfg, logs)
		defer l.Close()
		if l.LogEndOffset() != leo {
			t.Fatalf("log end offset %d after reopen, want %d", l.LogEndOffset(), leo)
		}
		if len(entriesMentioning(obs, zapcore.WarnLevel, path)) == 0 && len(entriesMentioning(obs, zapcore.ErrorLevel, path)) == 0 {
			t.Fatalf("nothing logged names the damaged %s: %v", path, obs.All())
		}
		// The producer's state came from the last segment: its next
		// sequence is accepted, a repeat of its last batch is a
		// duplicate, and a gap is refused.
		res := mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: pid, seq: seq, tag: "next"}))
		if res.BaseOffset != leo {
			t.Fatalf("next batch at %d, want %d", res.BaseOffset, leo)
		}
		if dup, err := l.Append(makeBatch(t, batchSpec{n: 2, pid: pid, seq: seq, tag: "next"}), 0); err != nil || !dup.Duplicate {
			t.Fatalf("repeat of the last batch: %+v, %v; want a duplicate", dup, err)
		}
		if _, err := l.Append(makeBatch(t, batchSpec{n: 2, pid: pid, seq: seq + 10, tag: "gap"}), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("batch after a sequence gap: %v, want ErrOutOfOrderSequence", err)
		}
		recs := readAll(t, l, segs[2].base)
		checkSequential(t, recs, segs[2].base)
	})
}
