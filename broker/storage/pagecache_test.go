package storage

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// dropRecFS records the DropCache calls made on its files.
type dropRecFS struct {
	vfs.FS
	mu    sync.Mutex
	drops map[string][][2]int64 // file base name -> [off, n] calls
}

type dropRecFile struct {
	vfs.File
	fs *dropRecFS
}

func (f *dropRecFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return dropRecFile{File: file, fs: f}, nil
}

func (f dropRecFile) DropCache(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	name := filepath.Base(f.Name())
	f.fs.drops[name] = append(f.fs.drops[name], [2]int64{off, n})
	return nil
}

// dropped returns, per file, the byte count dropped from offset 0 on,
// failing on gaps or overlaps between calls.
func (f *dropRecFS) dropped(t *testing.T) map[string]int64 {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for name, calls := range f.drops {
		var end int64
		for _, c := range calls {
			if c[0] != end || c[1] <= 0 {
				t.Fatalf("%s: drop calls %v are not contiguous from 0", name, calls)
			}
			end += c[1]
		}
		out[name] = end
	}
	return out
}

// TestPageCacheRetain: each flush drops the cached pages of flushed data
// more than PageCacheRetainBytes behind the log's end, segment by segment
// from the oldest, never the most recent bytes, never a byte twice.
func TestPageCacheRetain(t *testing.T) {
	fsys := &dropRecFS{FS: vfs.NewMem(), drops: map[string][][2]int64{}}
	cfg := Config{SegmentBytes: 16 << 10, PageCacheRetainBytes: 20 << 10}
	l := openLog(t, fsys, "/d/topic-0", cfg)
	defer l.Close()

	check := func(step string) {
		t.Helper()
		segs := l.segments()
		var total int64
		sizes := map[string]int64{}
		for _, s := range segs {
			_, size := s.end()
			sizes[filepath.Base(s.path(logSuffix))] = size
			total += size
		}
		dropped := fsys.dropped(t)
		// Walking from the newest segment back, everything beyond the
		// first PageCacheRetainBytes must be dropped, nothing within it.
		names := make([]string, 0, len(sizes))
		for n := range sizes {
			names = append(names, n)
		}
		sort.Strings(names) // zero-padded base offsets: oldest first
		behind := int64(0)
		for i := len(names) - 1; i >= 0; i-- {
			n := names[i]
			want := max(sizes[n]-max(cfg.PageCacheRetainBytes-behind, 0), 0)
			behind += sizes[n]
			if dropped[n] != want {
				t.Fatalf("%s: %s dropped %d of %d bytes, want %d (log %d bytes, drops %v)", step, n, dropped[n], sizes[n], want, total, dropped)
			}
		}
	}

	for i := range 100 {
		mustAppend(t, l, makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: -1, tag: "v"}))
		if i%7 == 6 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			check("after a flush")
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	check("final flush")
	if err := l.Flush(); err != nil { // nothing new: nothing more dropped
		t.Fatal(err)
	}
	check("idle flush")
	if len(l.segments()) < 4 {
		t.Fatalf("only %d segments; the test wants several behind the retained bytes", len(l.segments()))
	}

	// Off: no drops at all.
	off := &dropRecFS{FS: vfs.NewMem(), drops: map[string][][2]int64{}}
	l2 := openLog(t, off, "/d/topic-0", Config{SegmentBytes: 16 << 10})
	defer l2.Close()
	for range 40 {
		mustAppend(t, l2, makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: -1, tag: "v"}))
	}
	if err := l2.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := off.dropped(t); len(d) != 0 {
		t.Fatalf("drops with PageCacheRetainBytes 0: %v", d)
	}
}
