package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// benchBatch is a ~16 KB batch of 100-byte records, as a producer with
// default batching sends them.
func benchBatch(b *testing.B) ([]byte, int) {
	bl := record.NewBuilder()
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for i := 0; ; i++ {
		bl.Add(nil, value, nil, 1_700_000_000_000+int64(i))
		if len(bl.Build()) > 16<<10-150 {
			break
		}
	}
	return bl.Build(), bl.NumRecords()
}

func benchLog(b *testing.B, cfg Config) *Log {
	b.Helper()
	l, err := Open(Options{FS: vfs.OS, Dir: filepath.Join(b.TempDir(), "bench-0"), Config: cfg, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// BenchmarkAppend appends ~16 KB batches of 100-byte records to a log on
// the real file system with the default flush policy (fsync by the
// background flusher, not on the append path; here never, as no Manager
// runs).
func BenchmarkAppend(b *testing.B) {
	batch, n := benchBatch(b)
	l := benchLog(b, Config{SegmentBytes: 256 << 20})
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*n)/sec, "records/s")
	b.ReportMetric(float64(b.N*len(batch))/sec/1e6, "MB/s")
}

func fillBench(b *testing.B, l *Log, batches int) {
	batch, _ := benchBatch(b)
	for range batches {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
}

// BenchmarkRead reads 1 MiB chunks at random offsets of a 64 MiB log, as a
// fetch does before handing the chunk to sendfile.
func BenchmarkRead(b *testing.B) {
	l := benchLog(b, Config{SegmentBytes: 16 << 20})
	fillBench(b, l, 4096)
	leo := l.LogEndOffset()
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int64
	for range b.N {
		c, err := l.Read(rng.Int64N(leo), -1, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		bytes += c.Size
		c.Release()
	}
	b.StopTimer()
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/read")
}

// BenchmarkIndexLookup finds the batch holding a random offset in a 64 MiB
// segment through the sparse index and a short header scan.
func BenchmarkIndexLookup(b *testing.B) {
	l := benchLog(b, Config{SegmentBytes: 1 << 30})
	fillBench(b, l, 4096)
	s := l.segments()[0]
	next, size := s.end()
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := s.lookup(rng.Int64N(next), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTailLookup finds the batch holding the newest offset of a log of
// one-record batches of 100 B (a producer that does not linger, as in
// perf e2e), as a consumer at the end of the log does at every fetch: a
// step from the last sparse index entry over up to index.interval.bytes of
// small batches.
func BenchmarkTailLookup(b *testing.B) {
	l := benchLog(b, Config{SegmentBytes: 1 << 30})
	bl := record.NewBuilder()
	bl.Add(nil, make([]byte, 100), nil, 1_700_000_000_000)
	batch := bl.Build()
	for range 100_000 {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	s := l.segments()[0]
	next, size := s.end()
	start, _, _ := s.indexFloor(next - 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Every batch between the index entry and the end, in turn.
		target := next - 1 - int64(i)%((size-start)/int64(len(batch)))
		if _, _, err := s.lookup(target, size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAfterKill opens a log whose 64 MiB active segment was never
// flushed, as after kill -9: recovery verifies the whole active segment
// (reported as MB/s of verified data).
func BenchmarkOpenAfterKill(b *testing.B) {
	l := benchLog(b, Config{SegmentBytes: 1 << 30})
	fillBench(b, l, 4096)
	dir := l.Dir()
	_, size := l.activeLocked().end()
	l.closeFiles(false)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		l2, err := Open(Options{FS: vfs.OS, Dir: dir, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		l2.closeFiles(false)
	}
}

// BenchmarkClean measures the cleaner on a 32 MiB compacted log of
// 100-byte values over 20,000 keys (about 94% of the records superseded),
// in 8 MiB segments, on the real file system, uncompressed and with LZ4
// (every partly kept batch is decompressed and recompressed). MB/s is of
// the log cleaned (segment bytes in), the I/O unthrottled.
func BenchmarkClean(b *testing.B) {
	for _, codec := range []record.Codec{record.CodecNone, record.CodecLZ4} {
		b.Run(codec.String(), func(b *testing.B) {
			template := filepath.Join(b.TempDir(), "template")
			cfg := Config{SegmentBytes: 8 << 20, CleanupPolicy: PolicyCompact, RetentionMs: -1}
			l, err := Open(Options{FS: vfs.OS, Dir: template, Config: cfg, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			value := make([]byte, 100)
			bl := record.NewBuilder()
			if err := bl.SetCodec(codec); err != nil {
				b.Fatal(err)
			}
			for l.Size() < 32<<20 {
				bl.Reset()
				for range 100 {
					for i := range value {
						value[i] = byte('a' + rng.IntN(26))
					}
					bl.Add(fmt.Appendf(nil, "key-%05d", rng.IntN(20_000)), value, nil, 1_700_000_000_000)
				}
				if _, err := l.Append(bl.Build(), 0); err != nil {
					b.Fatal(err)
				}
			}
			l.mu.Lock()
			_, err = l.rollLocked(l.leo.Load())
			l.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			c := NewCleaner(CleanerConfig{})
			var in, out int64
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), fmt.Sprint("run-", i))
				copyDir(b, template, dir)
				l, err := Open(Options{FS: vfs.OS, Dir: dir, Config: cfg, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				before := l.Size()
				b.StartTimer()
				res, err := c.Clean(context.Background(), l)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				in, out = before, res.BytesWritten
				_ = l.Close()
				b.StartTimer()
			}
			b.StopTimer()
			b.SetBytes(in)
			b.ReportMetric(float64(out)/float64(in), "out/in")
		})
	}
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(b *testing.B, src, dst string) {
	b.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
