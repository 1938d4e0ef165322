package storage

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestHeaderCursor walks a segment of small and large batches with a
// headerCursor and checks every header, lookup and error against single
// header reads, and that a walk over small batches reads a window at a
// time.
func TestHeaderCursor(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := openLog(t, efs, "/data/topic-0", Config{SegmentBytes: 1 << 30})
	defer l.Close()
	// Runs of one-record batches of ~100 B between batches of ~20 KB
	// and ~2 KB.
	for i := range 400 {
		switch {
		case i%100 == 50:
			mustAppend(t, l, makeBatch(t, batchSpec{n: 2, valueSize: 10 << 10, pid: -1, tag: "big"}))
		case i%100 == 75:
			mustAppend(t, l, makeBatch(t, batchSpec{n: 1, valueSize: 2 << 10, pid: -1, tag: "mid"}))
		default:
			mustAppend(t, l, makeBatch(t, batchSpec{n: 1, valueSize: 100, pid: -1, tag: "small"}))
		}
	}
	s := l.segments()[0]
	next, size := s.end()

	// Every batch start, from single reads.
	var starts []int64
	var headers []record.Header
	for pos := int64(0); pos < size; {
		h, err := s.readHeader(pos, size)
		if err != nil {
			t.Fatalf("readHeader(%d): %v", pos, err)
		}
		starts, headers = append(starts, pos), append(headers, h)
		pos += h.Size()
	}

	var reads atomic.Int64
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpRead && strings.HasSuffix(path, logSuffix) {
			reads.Add(1)
		}
		return nil
	})
	c := s.headerCursor()
	for i, pos := range starts {
		h, err := c.header(pos, size)
		if err != nil || h != headers[i] {
			t.Fatalf("cursor at %d: %+v, %v; want %+v", pos, h, err, headers[i])
		}
	}
	c.close()
	// 400 batches, ~100 KB: a header read per large batch and the one
	// after it, otherwise 8 KiB windows.
	if n := reads.Load(); n > int64(size/headerReadAhead)+2*8+2 {
		t.Errorf("walking %d batches (%d bytes) took %d reads", len(starts), size, n)
	}
	t.Logf("walked %d batches (%d bytes) in %d reads", len(starts), size, reads.Load())

	// Lookups land on the batch holding each offset.
	for i, h := range headers {
		for _, off := range []int64{h.BaseOffset, h.LastOffset()} {
			pos, n, err := s.lookup(off, size)
			if err != nil || pos != starts[i] || n != h.Size() {
				t.Fatalf("lookup(%d) = %d, %d, %v; want %d, %d", off, pos, n, err, starts[i], h.Size())
			}
		}
	}
	if pos, _, err := s.lookup(next, size); err != nil || pos != size {
		t.Fatalf("lookup(end) = %d, %v; want %d", pos, err, size)
	}

	// A limit inside a batch, or too close for a header, is corruption
	// at that batch, as for a single read; a window read past the limit
	// never is.
	last := len(starts) - 1
	for _, limit := range []int64{starts[last] + 10, starts[last] + record.HeaderSize + 1} {
		c := s.headerCursor()
		for _, pos := range starts[last-5 : last] {
			if _, err := c.header(pos, limit); err != nil {
				t.Fatalf("header(%d, limit %d): %v", pos, limit, err)
			}
		}
		_, err := c.header(starts[last], limit)
		_, want := s.readHeader(starts[last], limit)
		var ce *CorruptionError
		if !errors.As(err, &ce) || ce.Pos != starts[last] || !errors.Is(err, record.ErrShort) || err.Error() != want.Error() {
			t.Fatalf("header(%d, limit %d) = %v; want %v", starts[last], limit, err, want)
		}
		c.close()
	}

	// A read error is returned as such, not as corruption.
	efs.FailOnce(vfs.OpRead, logSuffix, errors.New("disk on fire"))
	c = s.headerCursor()
	defer c.close()
	if _, err := c.header(0, size); err == nil || errors.Is(err, ErrCorruptBatch) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("header with a failing read: %v", err)
	}
}
