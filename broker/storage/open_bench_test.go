package storage

import (
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/vfs"
)

const manySegmentsCount = 2000

// manySegmentsLog builds a closed log of 2,000 small segments (16 KiB
// each, an offset index entry every 1 KiB) and returns its directory.
func manySegmentsLog(b *testing.B, cfg Config) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "t-0")
	l, err := Open(Options{FS: vfs.OS, Dir: dir, Config: cfg, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	batch := makeBatch(b, batchSpec{n: 4, pid: -1, valueSize: 200, tag: "v"})
	for len(l.segments()) <= manySegmentsCount {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkOpenManySegments opens a cleanly closed log of 2,000 small
// segments on the real file system: the cost of the per-segment checks of
// the trusted segments (the active one is verified in full).
func BenchmarkOpenManySegments(b *testing.B) {
	cfg := Config{SegmentBytes: 16 << 10, IndexIntervalBytes: 1 << 10}
	dir := manySegmentsLog(b, cfg)
	b.ResetTimer()
	for range b.N {
		l, err := Open(Options{FS: vfs.OS, Dir: dir, Config: cfg, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(l.segments()); n != manySegmentsCount+1 {
			b.Fatalf("%d segments", n)
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/manySegmentsCount, "µs/segment")
}

// BenchmarkLoadIndexesManySegments opens the same log and loads the index
// of every segment (as a ListOffsets by a timestamp newer than all does):
// the cost of reading and checking the index files.
func BenchmarkLoadIndexesManySegments(b *testing.B) {
	cfg := Config{SegmentBytes: 16 << 10, IndexIntervalBytes: 1 << 10}
	dir := manySegmentsLog(b, cfg)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l, err := Open(Options{FS: vfs.OS, Dir: dir, Config: cfg, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, s := range l.segments() {
			if err := s.ensureIndex(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/manySegmentsCount, "µs/segment")
}
