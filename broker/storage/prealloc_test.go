package storage

import (
	"errors"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// allocated returns the bytes of blocks s's file holds and its size.
func allocated(t *testing.T, s *segment) (alloc, size int64) {
	t.Helper()
	p, ok := s.log.(vfs.Preallocator)
	if !ok {
		t.Skip("the OS file system cannot report allocation here")
	}
	alloc, err := p.Allocated()
	if err != nil {
		t.Fatal(err)
	}
	_, size = s.end()
	return alloc, size
}

// trimmed reports whether a file of size bytes holds no reserved blocks
// past its end (rounding and the file system's own blocks allowed).
func trimmed(alloc, size int64) bool { return alloc <= (size+4095)&^4095+64<<10 }

func TestPreallocation(t *testing.T) {
	dir := t.TempDir()
	probe, err := vfs.Create(vfs.OS, dir+"/probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.(vfs.Preallocator).Preallocate(0, 1<<20); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no fallocate on the temp dir's file system: %v", err)
	}
	_ = probe.Close()
	_ = vfs.OS.Remove(dir + "/probe")

	cfg := Config{SegmentBytes: 8 << 20}
	dir += "/topic-0"
	l := openLog(t, vfs.OS, dir, cfg)
	batch := makeBatch(t, batchSpec{n: 64, valueSize: 1000, pid: -1}) // ~66 KB
	appendTo := func(l *Log, bytes int64) {
		for l.Size() < bytes {
			mustAppend(t, l, batch)
		}
	}
	active := func(l *Log) *segment { segs := l.segments(); return segs[len(segs)-1] }

	// A small segment reserves nothing.
	appendTo(l, 512<<10)
	if alloc, size := allocated(t, active(l)); !trimmed(alloc, size) {
		t.Fatalf("segment of %d bytes holds %d: reserved before it is busy", size, alloc)
	}
	// A busy one reserves as much as it holds ahead of its end.
	appendTo(l, 3<<20)
	if alloc, size := allocated(t, active(l)); alloc < size+(1<<20) || alloc > 2*size+(1<<20) {
		t.Fatalf("segment of %d bytes holds %d, want about twice its size", size, alloc)
	}
	// Never past segment.bytes.
	appendTo(l, 7<<20)
	if alloc, _ := allocated(t, active(l)); alloc > cfg.SegmentBytes+64<<10 {
		t.Fatalf("segment holds %d bytes, more than segment.bytes %d", alloc, cfg.SegmentBytes)
	}
	// A roll gives the old segment's reservation back.
	appendTo(l, 10<<20)
	if n := len(l.segments()); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	if alloc, size := allocated(t, l.segments()[0]); !trimmed(alloc, size) {
		t.Fatalf("rolled segment of %d bytes still holds %d", size, alloc)
	}
	appendTo(l, 12<<20)
	if alloc, size := allocated(t, active(l)); trimmed(alloc, size) {
		t.Fatalf("active segment of %d bytes holds %d: no reservation", size, alloc)
	}
	want := l.LogEndOffset()

	// A crash leaves the reservation; the next open gives it back.
	l.closeFiles(false)
	l = openLog(t, vfs.OS, dir, cfg)
	if alloc, size := allocated(t, active(l)); !trimmed(alloc, size) {
		t.Fatalf("after a crash the active segment of %d bytes still holds %d", size, alloc)
	}
	if got := l.LogEndOffset(); got != want {
		t.Fatalf("end offset %d after reopen, want %d", got, want)
	}
	// A clean close gives it back too.
	appendTo(l, 15<<20)
	s := active(l)
	if alloc, size := allocated(t, s); trimmed(alloc, size) {
		t.Fatalf("active segment of %d bytes holds %d: no reservation", size, alloc)
	}
	want = l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, vfs.OS, dir, cfg)
	defer l.Close()
	if alloc, size := allocated(t, active(l)); !trimmed(alloc, size) {
		t.Fatalf("after a clean close the active segment of %d bytes holds %d", size, alloc)
	}
	if got := l.LogEndOffset(); got != want {
		t.Fatalf("end offset %d after reopen, want %d", got, want)
	}
	recs := readAll(t, l, 0)
	if int64(len(recs)) != want {
		t.Fatalf("read %d records, want %d", len(recs), want)
	}
	checkSequential(t, recs, 0)
}
