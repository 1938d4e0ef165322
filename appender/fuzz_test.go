package appender

import (
	"errors"
	"os"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// FuzzSpillReplay feeds arbitrary bytes to the spill reader as a segment
// left by a previous run: it must never panic, only return records or
// report corruption, and always make progress.
func FuzzSpillReplay(f *testing.F) {
	// A valid segment with three records, and damaged copies of it.
	valid := func() []byte {
		fs := vfs.NewMem()
		sp, err := openSpill(fs, "/s", "t", 1<<20, 1<<10, 64<<10, func(int64, int64, error) {})
		if err != nil {
			f.Fatal(err)
		}
		s := &Shipper{}
		for _, v := range []string{`{"a":1}`, `{"b":2}`, ""} {
			e := &entry{s: s}
			e.rec.Value = []byte(v)
			e.rec.Key = []byte("k")
			e.hdrs[2].Value = []byte("info")
			if err := sp.append(e); err != nil {
				f.Fatal(err)
			}
		}
		sp.writePending()
		seg := sp.mu.segs[0]
		b := make([]byte, seg.written.Load())
		seg.f.ReadAt(b, 0)
		return b
	}()
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append([]byte{0, 0, 0, 1}, valid...))
	flipped := append([]byte(nil), valid...)
	flipped[12] ^= 0xff
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/s", 0o755); err != nil {
			t.Fatal(err)
		}
		file, err := fs.OpenFile("/s/t.00000000000000000001.spill", os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		file.Close()
		sp, err := openSpill(fs, "/s", "t", 1<<20, 1<<10, 64<<10, func(int64, int64, error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _, _, _ = sp.close(nil, nil) }()
		s := &Shipper{}
		for i := 0; i <= len(data); i++ {
			e := &entry{s: s}
			_, ok, err := sp.next(e)
			var ce *SpillCorruptionError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("unexpected error: %v", err)
			}
			if !ok && err == nil {
				if sp.active.Load() {
					t.Fatal("spill still active after the last record")
				}
				return
			}
		}
		t.Fatal("the reader made no progress")
	})
}
