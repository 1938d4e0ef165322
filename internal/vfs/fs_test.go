package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// implementations returns every FS under test, each with a fresh empty
// directory to work in.
func implementations(t *testing.T) map[string]func(t *testing.T) (FS, string) {
	t.Helper()
	mem := func(t *testing.T) (FS, string) {
		fs := NewMem()
		if err := fs.MkdirAll("/work", 0o755); err != nil {
			t.Fatal(err)
		}
		return fs, "/work"
	}
	return map[string]func(t *testing.T) (FS, string){
		"os":  func(t *testing.T) (FS, string) { return OS, t.TempDir() },
		"mem": mem,
		"errorfs-os": func(t *testing.T) (FS, string) {
			return NewErrorFS(OS), t.TempDir()
		},
		"errorfs-mem": func(t *testing.T) (FS, string) {
			fs, dir := mem(t)
			return NewErrorFS(fs), dir
		},
	}
}

func forEachFS(t *testing.T, test func(t *testing.T, fs FS, dir string)) {
	for name, newFS := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs, dir := newFS(t)
			test(t, fs, dir)
		})
	}
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: n=%d err=%v", s, n, err)
	}
}

func mustRead(t *testing.T, fs FS, name string) string {
	t.Helper()
	b, err := ReadFile(fs, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func mustClose(t *testing.T, f File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", f.Name(), err)
	}
}

func TestCreateWriteRead(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := Create(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != name {
			t.Errorf("Name() = %q, want %q", f.Name(), name)
		}
		mustWrite(t, f, "hello ")
		mustWrite(t, f, "world")
		if size, err := f.Size(); err != nil || size != 11 {
			t.Errorf("Size() = %d, %v; want 11", size, err)
		}
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); err != nil || string(buf[:n]) != "world" {
			t.Errorf("ReadAt(6) = %q, %v", buf[:n], err)
		}
		if n, err := f.ReadAt(buf, 8); !errors.Is(err, io.EOF) || string(buf[:n]) != "rld" {
			t.Errorf("short ReadAt = %q, %v; want rld, EOF", buf[:n], err)
		}
		if _, err := f.ReadAt(buf, 11); !errors.Is(err, io.EOF) {
			t.Errorf("ReadAt at end: %v, want EOF", err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		mustClose(t, f)
		if err := f.Close(); err == nil {
			t.Error("second Close succeeded")
		}
		if _, err := f.Write([]byte("x")); err == nil {
			t.Error("Write after Close succeeded")
		}
		if got := mustRead(t, fs, name); got != "hello world" {
			t.Errorf("content = %q", got)
		}
		fi, err := fs.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Name() != "a" || fi.Size() != 11 || fi.IsDir() || fi.ModTime().IsZero() {
			t.Errorf("Stat = %s size %d dir %v mtime %v", fi.Name(), fi.Size(), fi.IsDir(), fi.ModTime())
		}
	})
}

func TestOpenFlags(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		if _, err := Open(fs, name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("open missing: %v, want ErrNotExist", err)
		}
		if _, err := Create(fs, filepath.Join(dir, "nodir", "f")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("create in missing dir: %v, want ErrNotExist", err)
		}
		f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "0123456789")
		mustClose(t, f)
		if _, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
			t.Errorf("O_EXCL on existing: %v, want ErrExist", err)
		}

		// Without O_APPEND a new handle writes from the start.
		f, err = fs.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "ab")
		mustClose(t, f)
		if got := mustRead(t, fs, name); got != "ab23456789" {
			t.Errorf("after overwrite: %q", got)
		}

		// O_APPEND writes at the end even after another handle grew the file.
		a, err := fs.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		other, err := fs.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, a, "X")
		mustWrite(t, other, "Y")
		mustWrite(t, a, "Z")
		mustClose(t, a)
		mustClose(t, other)
		if got := mustRead(t, fs, name); got != "ab23456789XYZ" {
			t.Errorf("after appends: %q", got)
		}

		// A read-only handle cannot write.
		r, err := Open(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write([]byte("no")); err == nil {
			t.Error("write on read-only handle succeeded")
		}
		mustClose(t, r)

		// O_TRUNC empties the file.
		f, err = fs.OpenFile(name, os.O_RDWR|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if size, _ := f.Size(); size != 0 {
			t.Errorf("size after O_TRUNC = %d", size)
		}
		mustClose(t, f)
	})
}

func TestSharedContentAndTruncate(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		w, err := Create(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r, err := Open(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		mustWrite(t, w, "abcdef")
		buf := make([]byte, 6)
		if _, err := r.ReadAt(buf, 0); err != nil || string(buf) != "abcdef" {
			t.Fatalf("reader sees %q, %v", buf, err)
		}
		if err := w.Truncate(2); err != nil {
			t.Fatal(err)
		}
		if size, _ := r.Size(); size != 2 {
			t.Errorf("reader size after truncate = %d", size)
		}
		// The write position stays at 6: the gap reads as zeros, never as
		// the truncated bytes.
		mustWrite(t, w, "Z")
		if got := mustRead(t, fs, name); got != "ab\x00\x00\x00\x00Z" {
			t.Errorf("after truncate+write: %q", got)
		}
		if err := w.Truncate(9); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, name); got != "ab\x00\x00\x00\x00Z\x00\x00" {
			t.Errorf("after extend: %q", got)
		}
	})
}

func TestDirectories(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		sub := filepath.Join(dir, "x", "y")
		if err := fs.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fs.MkdirAll(sub, 0o755); err != nil {
			t.Fatalf("MkdirAll of existing dir: %v", err)
		}
		for _, n := range []string{"c", "a", "b"} {
			f, err := Create(fs, filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			mustClose(t, f)
		}
		if err := fs.MkdirAll(filepath.Join(dir, "a", "z"), 0o755); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("MkdirAll under a file: %v, want ENOTDIR", err)
		}
		entries, err := fs.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			s := e.Name()
			if e.IsDir() {
				s += "/"
			}
			got = append(got, s)
		}
		if want := "[a b c x/]"; fmtSlice(got) != want {
			t.Errorf("ReadDir = %v, want %s", got, want)
		}
		if fi, err := fs.Stat(sub); err != nil || !fi.IsDir() {
			t.Errorf("Stat dir: %v, %v", fi, err)
		}
		if err := fs.SyncDir(dir); err != nil {
			t.Errorf("SyncDir: %v", err)
		}
		if err := fs.Remove(filepath.Join(dir, "x")); err == nil {
			t.Error("Remove of non-empty dir succeeded")
		}
		if err := fs.Remove(filepath.Join(dir, "a")); err != nil {
			t.Error(err)
		}
		if _, err := fs.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat removed: %v", err)
		}
		if err := fs.Remove(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Remove missing: %v", err)
		}
		if err := fs.RemoveAll(filepath.Join(dir, "x")); err != nil {
			t.Error(err)
		}
		if err := fs.RemoveAll(filepath.Join(dir, "x")); err != nil {
			t.Errorf("RemoveAll missing: %v", err)
		}
		if _, err := fs.Stat(sub); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat after RemoveAll: %v", err)
		}
	})
}

func fmtSlice(s []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	b.WriteByte(']')
	return b.String()
}

func TestRename(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		if err := WriteFileAtomic(fs, a, []byte("A")); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(fs, b, []byte("B")); err != nil {
			t.Fatal(err)
		}
		if err := fs.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, b); got != "A" {
			t.Errorf("renamed content = %q", got)
		}
		if _, err := fs.Stat(a); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("old name: %v", err)
		}
		if err := fs.Rename(a, b); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("rename missing: %v", err)
		}
		sub := filepath.Join(dir, "sub")
		if err := fs.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fs.Rename(b, filepath.Join(sub, "c")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, filepath.Join(sub, "c")); got != "A" {
			t.Errorf("moved content = %q", got)
		}
		// An open handle follows the file across a rename.
		f, err := Open(fs, filepath.Join(sub, "c"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fs.Rename(sub, filepath.Join(dir, "sub2")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := f.ReadAt(buf, 0); err != nil || buf[0] != 'A' {
			t.Errorf("read after dir rename: %q %v", buf, err)
		}
	})
}

func TestWriteFileAtomicAndMkdirAllDurable(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		deep := filepath.Join(dir, "p", "q")
		if err := MkdirAllDurable(fs, deep, 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(deep, "ckpt")
		for _, content := range []string{"first", "second, longer", "3"} {
			if err := WriteFileAtomic(fs, name, []byte(content)); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, fs, name); got != content {
				t.Errorf("content = %q, want %q", got, content)
			}
		}
		entries, err := fs.ReadDir(deep)
		if err != nil || len(entries) != 1 {
			t.Errorf("temp file left behind: %v %v", entries, err)
		}
		if err := WriteFileAtomic(fs, filepath.Join(dir, "missing", "f"), nil); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WriteFileAtomic in missing dir: %v", err)
		}
	})
}

func TestOSFilesHaveDescriptors(t *testing.T) {
	for _, fs := range []FS{OS, NewErrorFS(OS)} {
		f, err := Create(fs, filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		fd, ok := f.(Fder)
		if !ok {
			t.Fatalf("%T does not implement Fder", f)
		}
		mustWrite(t, f, "xyz")
		var st syscall.Stat_t
		if err := syscall.Fstat(int(fd.Fd()), &st); err != nil || st.Size != 3 {
			t.Errorf("fstat: size %d, %v", st.Size, err)
		}
		mustClose(t, f)
	}
	if _, ok := any(&memFile{}).(Fder); ok {
		t.Error("memory files must not claim a descriptor")
	}
	f, err := Create(NewErrorFS(NewMem()), "/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(Fder); ok {
		t.Error("ErrorFS over MemFS claims a descriptor")
	}
}

func TestSyncDirErrors(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		if err := fs.SyncDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("SyncDir missing: %v", err)
		}
	})
}

func TestOSFileDropCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OS.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	d, ok := f.(CacheDropper)
	if !ok {
		t.Fatal("OS files do not implement CacheDropper")
	}
	if err := d.DropCache(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	// The data is still there, read back from disk.
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 1<<19); err != nil {
		t.Fatal(err)
	}
}

// TestErrorsNameThePathOnce: a failed mkdir or lock says the path once.
func TestErrorsNameThePathOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "afile")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := MkdirAllDurable(OS, file, 0o755)
	if err == nil || strings.Count(err.Error(), file) != 1 {
		t.Fatalf("mkdir over a file: %v", err)
	}
	locker, ok := OS.(Locker)
	if !ok {
		t.Skip("no Locker")
	}
	_, err = locker.Lock(filepath.Join(file, ".lock"))
	if err == nil || strings.Count(err.Error(), file) != 1 {
		t.Fatalf("lock under a file: %v", err)
	}
}
