package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// OS is the real file system. Its files implement Fder, exposing the
// descriptor of the underlying *os.File.
var OS FS = osFS{}

type osFS struct{}

// osFile adds Size to *os.File; everything else, including Fd, is promoted.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                 { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

// ReadDir returns the entries sorted by name (os.ReadDir already sorts).
func (osFS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("sync dir %s: %w", dir, serr)
	}
	if cerr != nil {
		return fmt.Errorf("sync dir %s: %w", dir, cerr)
	}
	return nil
}

// ErrMaybeReplaced marks WriteFileAtomic's errors from the rename on: the
// new content may already be in place, or be after a crash, so the caller
// can no longer count on the old content. Errors before it leave the old
// content in place.
var ErrMaybeReplaced = errors.New("the file may hold the new content")

// WriteFileAtomic replaces path with data so that after a crash the file
// holds either its old content or all of data, never a mix: it writes
// path+".tmp", syncs and closes it, renames it over path, and syncs the
// parent directory. The caller must not write path+".tmp" concurrently.
// Errors from the rename on wrap ErrMaybeReplaced.
func WriteFileAtomic(fs FS, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = fs.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = fs.Remove(tmp)
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("rename %s (%w): %w", path, ErrMaybeReplaced, err)
	}
	if err := fs.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s (%w): %w", path, ErrMaybeReplaced, err)
	}
	return nil
}

// ReadFile reads the whole named file.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := Open(fs, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	// io.EOF only means the file shrank since Size; return what is there.
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf[:n], nil
}

// MkdirAllDurable is MkdirAll followed by a SyncDir of the parent of every
// directory it created, so that the new directories survive a crash.
func MkdirAllDurable(fs FS, dir string, perm os.FileMode) error {
	// Find the missing ancestors, deepest first.
	var missing []string
	for d := filepath.Clean(dir); ; {
		_, err := fs.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return opErr("mkdir", dir, err)
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return opErr("mkdir", dir, err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fs.SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
	}
	return nil
}

// Space implements SpaceReporter with statfs(2); available is what an
// unprivileged writer may still use.
func (osFS) Space(dir string) (total, available int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	bsize := int64(st.Bsize) // int64 on Linux, uint32 on darwin
	return int64(st.Blocks) * bsize, int64(st.Bavail) * bsize, nil
}

// opErr wraps err with op and path, unless err is an *fs.PathError that
// already says both (os.MkdirAll's and os.OpenFile's are), so messages do
// not read "mkdir /x: mkdir /x: not a directory".
func opErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == op && filepath.Clean(pe.Path) == filepath.Clean(path) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
