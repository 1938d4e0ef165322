package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// newCrashDir returns a crashable FS with a durable directory /d.
func newCrashDir(t *testing.T) *CrashableFS {
	t.Helper()
	fs := NewCrashable()
	if err := MkdirAllDurable(fs, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	return fs
}

// writeDurable creates name with content, syncs it and its directory.
func writeDurable(t *testing.T, fs FS, name, content string) {
	t.Helper()
	f, err := Create(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, content)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, f)
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
}

func openAppend(t *testing.T, fs FS, name string) File {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// contentOrMissing reads name, or returns "<missing>".
func contentOrMissing(t *testing.T, fs FS, name string) string {
	t.Helper()
	b, err := ReadFile(fs, name)
	if errors.Is(err, os.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCrash(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, fs *CrashableFS) // runs on /d/f = "durable"
		want  map[string]string                   // path -> content after crash
	}{
		{
			name: "unsynced append lost",
			setup: func(t *testing.T, fs *CrashableFS) {
				f := openAppend(t, fs, "/d/f")
				mustWrite(t, f, "+more")
				mustClose(t, f)
			},
			want: map[string]string{"/d/f": "durable"},
		},
		{
			name: "synced append kept",
			setup: func(t *testing.T, fs *CrashableFS) {
				f := openAppend(t, fs, "/d/f")
				mustWrite(t, f, "+more")
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "+lost")
			},
			want: map[string]string{"/d/f": "durable+more"},
		},
		{
			name: "O_SYNC writes are durable",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := fs.OpenFile("/d/f", os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "+sync")
			},
			want: map[string]string{"/d/f": "durable+sync"},
		},
		{
			name: "overwrite of synced bytes reverted",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := fs.OpenFile("/d/f", os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "XX")
				mustWrite(t, f, "more bytes past the end")
			},
			want: map[string]string{"/d/f": "durable"},
		},
		{
			name: "truncate reverted",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := fs.OpenFile("/d/f", os.O_RDWR|os.O_TRUNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "new")
			},
			want: map[string]string{"/d/f": "durable"},
		},
		{
			name: "synced truncate kept",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := fs.OpenFile("/d/f", os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(3); err != nil {
					t.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "dur"},
		},
		{
			name: "synced file in unsynced dir lost",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := Create(fs, "/d/new")
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "x")
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/new": "<missing>", "/d/f": "durable"},
		},
		{
			name: "unsynced file in synced dir is empty",
			setup: func(t *testing.T, fs *CrashableFS) {
				f, err := Create(fs, "/d/new")
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, f, "x")
				if err := fs.SyncDir("/d"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/new": ""},
		},
		{
			name: "unsynced rename restores old name",
			setup: func(t *testing.T, fs *CrashableFS) {
				if err := fs.Rename("/d/f", "/d/g"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "durable", "/d/g": "<missing>"},
		},
		{
			name: "unsynced rename over existing restores both",
			setup: func(t *testing.T, fs *CrashableFS) {
				writeDurable(t, fs, "/d/g", "other")
				if err := fs.Rename("/d/f", "/d/g"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "durable", "/d/g": "other"},
		},
		{
			name: "synced rename kept",
			setup: func(t *testing.T, fs *CrashableFS) {
				if err := fs.Rename("/d/f", "/d/g"); err != nil {
					t.Fatal(err)
				}
				if err := fs.SyncDir("/d"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "<missing>", "/d/g": "durable"},
		},
		{
			name: "unsynced remove undone",
			setup: func(t *testing.T, fs *CrashableFS) {
				if err := fs.Remove("/d/f"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "durable"},
		},
		{
			name: "unsynced RemoveAll of dir undone",
			setup: func(t *testing.T, fs *CrashableFS) {
				if err := fs.RemoveAll("/d"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/f": "durable"},
		},
		{
			name: "new dir needs its parent synced",
			setup: func(t *testing.T, fs *CrashableFS) {
				if err := MkdirAllDurable(fs, "/d/kept/x", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := fs.MkdirAll("/d/lost/x", 0o755); err != nil {
					t.Fatal(err)
				}
				// Syncing the new directory itself is not enough.
				if err := WriteFileAtomic(fs, "/d/lost/x/f", []byte("x")); err != nil {
					t.Fatal(err)
				}
				if err := fs.SyncDir("/d/lost"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/lost": "<missing>", "/d/kept/x": "<dir>", "/d/f": "durable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newCrashDir(t)
			writeDurable(t, fs, "/d/f", "durable")
			tt.setup(t, fs)
			fs.Crash()
			for name, want := range tt.want {
				if want == "<dir>" {
					if fi, err := fs.Stat(name); err != nil || !fi.IsDir() {
						t.Errorf("%s: want a directory, got %v", name, err)
					}
					continue
				}
				if _, err := fs.Stat(name); want == "<missing>" && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: Stat = %v, want ErrNotExist", name, err)
					continue
				}
				if got := contentOrMissing(t, fs, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestCrashInvalidatesHandles(t *testing.T) {
	fs := newCrashDir(t)
	writeDurable(t, fs, "/d/f", "durable")
	f := openAppend(t, fs, "/d/f")
	fs.Crash()
	if _, err := f.Write([]byte("zombie")); !errors.Is(err, ErrCrashed) {
		t.Errorf("write after crash: %v, want ErrCrashed", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrCrashed) {
		t.Errorf("read after crash: %v, want ErrCrashed", err)
	}
	if err := f.Sync(); !errors.Is(err, ErrCrashed) {
		t.Errorf("sync after crash: %v, want ErrCrashed", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close after crash: %v", err)
	}
	// The restarted "process" works normally, and a second crash forgets
	// only what came after the first.
	g := openAppend(t, fs, "/d/f")
	mustWrite(t, g, "+1")
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "+2")
	fs.Crash()
	if got := mustRead(t, fs, "/d/f"); got != "durable+1" {
		t.Errorf("after second crash: %q", got)
	}
}

func TestCrashTorn(t *testing.T) {
	const synced, unsynced = "synced|", "0123456789abcdefghijklmnopqrstuvwxyz"
	run := func(seed uint64) string {
		fs := newCrashDir(t)
		writeDurable(t, fs, "/d/f", synced)
		f := openAppend(t, fs, "/d/f")
		mustWrite(t, f, unsynced)
		fs.CrashTorn(seed)
		return mustRead(t, fs, "/d/f")
	}
	lengths := map[int]bool{}
	for seed := range uint64(50) {
		got := run(seed)
		if !strings.HasPrefix(synced+unsynced, got) || len(got) < len(synced) {
			t.Fatalf("seed %d: %q is not synced content plus a prefix of the append", seed, got)
		}
		if again := run(seed); again != got {
			t.Fatalf("seed %d not reproducible: %q then %q", seed, got, again)
		}
		lengths[len(got)] = true
	}
	if len(lengths) < 5 {
		t.Errorf("torn crashes kept only %d distinct lengths over 50 seeds", len(lengths))
	}

	// Overwritten synced bytes are never torn: the file reverts.
	fs := newCrashDir(t)
	writeDurable(t, fs, "/d/f", synced)
	f, err := fs.OpenFile("/d/f", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "OVERWRITTEN and longer")
	fs.CrashTorn(1)
	if got := mustRead(t, fs, "/d/f"); got != synced {
		t.Errorf("torn crash after overwrite: %q", got)
	}
}

// TestWriteFileAtomicCrash crashes the FS before each operation
// WriteFileAtomic performs: until it returns, a crash leaves the old
// content; once it has returned, the new.
func TestWriteFileAtomicCrash(t *testing.T) {
	const old, updated = "old content", "new content, longer"
	var opsNeeded int
	for crashAt := 1; ; crashAt++ {
		mem := newCrashDir(t)
		writeDurable(t, mem, "/d/ckpt", old)
		efs := NewErrorFS(mem)
		ops, crashed := 0, false
		efs.SetHook(func(op Op, path string) error {
			ops++
			if ops == crashAt {
				mem.Crash()
				crashed = true
			}
			if crashed {
				return errors.New("process dead")
			}
			return nil
		})
		err := WriteFileAtomic(efs, "/d/ckpt", []byte(updated))
		if !crashed {
			// WriteFileAtomic finished before the crash point.
			if err != nil {
				t.Fatal(err)
			}
			opsNeeded = ops
			mem.Crash()
			if got := mustRead(t, mem, "/d/ckpt"); got != updated {
				t.Fatalf("crash after WriteFileAtomic returned: %q, want %q", got, updated)
			}
			break
		}
		if err == nil {
			t.Fatalf("crash at op %d: WriteFileAtomic reported success", crashAt)
		}
		if got := mustRead(t, mem, "/d/ckpt"); got != old {
			t.Fatalf("crash at op %d: %q, want the old content", crashAt, got)
		}
	}
	if opsNeeded < 5 {
		t.Errorf("WriteFileAtomic took only %d operations", opsNeeded)
	}
}

// TestMemConcurrent runs readers against an appender; run with -race.
func TestMemConcurrent(t *testing.T) {
	fs := NewMem()
	w, err := fs.OpenFile("/log", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const records = 2000
	record := func(i int) []byte { return fmt.Appendf(nil, "%08d", i) }
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Open(fs, "/log")
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			buf := make([]byte, 8)
			for read := 0; read < records; {
				size, err := r.Size()
				if err != nil {
					errs <- err
					return
				}
				for ; int64(read+1)*8 <= size; read++ {
					if _, err := r.ReadAt(buf, int64(read)*8); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(buf, record(read)) {
						errs <- fmt.Errorf("record %d = %q", read, buf)
						return
					}
				}
			}
		}()
	}
	for i := range records {
		mustWrite(t, w, string(record(i)))
		if i%100 == 0 {
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMemPaths(t *testing.T) {
	fs := NewMem()
	if err := fs.MkdirAll("a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(fs, "/a/./b/../b/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, fs, "a/b/f"); got != "x" {
		t.Errorf("relative path read %q", got)
	}
	if _, err := Open(fs, "/a/b/f/g"); err == nil {
		t.Error("path through a file resolved")
	}
	if _, err := Open(fs, "/a"); err == nil {
		t.Error("opening a directory succeeded")
	}
	if err := fs.Rename("/a", "/a/b/c"); err == nil {
		t.Error("renaming a directory into itself succeeded")
	}
	if err := fs.Remove("/"); err == nil {
		t.Error("removing the root succeeded")
	}
}
