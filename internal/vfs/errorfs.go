package vfs

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Op names a file-system operation for error injection.
type Op int

// Operations ErrorFS can fail. OpAny matches every operation.
const (
	OpAny      Op = iota
	OpOpen        // FS.OpenFile
	OpRead        // File.ReadAt
	OpWrite       // File.Write
	OpSync        // File.Sync
	OpTruncate    // File.Truncate
	OpSize        // File.Size
	OpClose       // File.Close
	OpRemove      // FS.Remove and FS.RemoveAll
	OpRename      // FS.Rename (matched against both names)
	OpMkdir       // FS.MkdirAll
	OpReadDir     // FS.ReadDir
	OpStat        // FS.Stat
	OpSyncDir     // FS.SyncDir
)

var opNames = [...]string{
	OpAny: "any", OpOpen: "open", OpRead: "read", OpWrite: "write", OpSync: "sync",
	OpTruncate: "truncate", OpSize: "size", OpClose: "close", OpRemove: "remove",
	OpRename: "rename", OpMkdir: "mkdir", OpReadDir: "readdir", OpStat: "stat",
	OpSyncDir: "syncdir",
}

// String returns the operation's name, as used in the injected errors.
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// ErrorFS wraps an FS and fails chosen operations, to test how code copes
// with a full disk, a failing fsync or a broken device. Injected errors are
// *os.PathError wrapping the error given, so errors.Is sees it (for example
// syscall.ENOSPC or syscall.EIO). Rules can be changed at any time from
// any goroutine. Files of an inner FS that implement Fder are returned as
// Fder too; reads through the descriptor bypass injection.
type ErrorFS struct {
	inner FS
	mu    struct {
		sync.Mutex
		rules []*rule
		// writeBudget is how many more bytes may be written; <0 is no limit.
		writeBudget int64
		hook        func(op Op, path string) error
		injected    int
	}
}

type rule struct {
	op           Op
	pathContains string
	err          error
	remaining    int // failures left; 0 is unlimited
}

// NewErrorFS returns an ErrorFS over inner that, until told otherwise,
// passes everything through.
func NewErrorFS(inner FS) *ErrorFS {
	e := &ErrorFS{inner: inner}
	e.mu.writeBudget = -1
	return e
}

// SetWriteLimit lets n more bytes be written through the ErrorFS's files,
// after which writes fail with an error wrapping syscall.ENOSPC, the one
// that crosses the limit after writing the part that fits, as a full disk
// does. A negative n removes the limit. Truncate is not limited.
func (e *ErrorFS) SetWriteLimit(n int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.writeBudget = n
}

// FailSync makes every File.Sync and FS.SyncDir fail with err.
func (e *ErrorFS) FailSync(err error) {
	e.FailOn(OpSync, "", err)
	e.FailOn(OpSyncDir, "", err)
}

// FailOn makes every op on a path containing pathContains fail with err
// ("" matches every path) until Clear.
func (e *ErrorFS) FailOn(op Op, pathContains string, err error) {
	e.addRule(&rule{op: op, pathContains: pathContains, err: err})
}

// FailOnce is FailOn for the next matching operation only.
func (e *ErrorFS) FailOnce(op Op, pathContains string, err error) {
	e.addRule(&rule{op: op, pathContains: pathContains, err: err, remaining: 1})
}

func (e *ErrorFS) addRule(r *rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.rules = append(e.mu.rules, r)
}

// SetHook installs fn (nil removes it) to be called before every
// operation, ahead of the rules; a non-nil error it returns is injected.
// It may call back into the ErrorFS, for example to crash the inner FS at
// the n-th operation.
func (e *ErrorFS) SetHook(fn func(op Op, path string) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.hook = fn
}

// Clear removes every rule, the hook and the write limit.
func (e *ErrorFS) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.rules = nil
	e.mu.hook = nil
	e.mu.writeBudget = -1
}

// Injected returns how many errors the ErrorFS has injected so far,
// counting ENOSPC from the write limit.
func (e *ErrorFS) Injected() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.injected
}

// inject returns the error to fail op on paths with, or nil.
func (e *ErrorFS) inject(op Op, paths ...string) error {
	e.mu.Lock()
	hook := e.mu.hook
	e.mu.Unlock()
	if hook != nil {
		if err := hook(op, paths[0]); err != nil {
			e.mu.Lock()
			e.mu.injected++
			e.mu.Unlock()
			return &os.PathError{Op: op.String(), Path: paths[0], Err: err}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, r := range e.mu.rules {
		if r.op != OpAny && r.op != op {
			continue
		}
		for _, p := range paths {
			if !strings.Contains(p, r.pathContains) {
				continue
			}
			if r.remaining > 0 {
				r.remaining--
				if r.remaining == 0 {
					e.mu.rules = append(e.mu.rules[:i:i], e.mu.rules[i+1:]...)
				}
			}
			e.mu.injected++
			return &os.PathError{Op: op.String(), Path: p, Err: r.err}
		}
	}
	return nil
}

// reserveWrite returns how many of n bytes may be written now.
func (e *ErrorFS) reserveWrite(n int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.writeBudget < 0 {
		return n
	}
	allowed := int(min(int64(n), e.mu.writeBudget))
	e.mu.writeBudget -= int64(allowed)
	if allowed < n {
		e.mu.injected++
	}
	return allowed
}

// unreserveWrite returns budget the inner file did not use.
func (e *ErrorFS) unreserveWrite(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.writeBudget >= 0 {
		e.mu.writeBudget += int64(n)
	}
}

// OpenFile implements FS.
func (e *ErrorFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := e.inject(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	ef := &errorFile{fs: e, inner: f}
	if fd, ok := f.(Fder); ok {
		return &errorFdFile{errorFile: ef, fd: fd}, nil
	}
	return ef, nil
}

// Remove implements FS.
func (e *ErrorFS) Remove(name string) error {
	if err := e.inject(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

// RemoveAll implements FS.
func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.inject(OpRemove, name); err != nil {
		return err
	}
	return e.inner.RemoveAll(name)
}

// Rename implements FS.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.inject(OpRename, oldname, newname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

// MkdirAll implements FS.
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.inject(OpMkdir, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir, perm)
}

// ReadDir implements FS.
func (e *ErrorFS) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := e.inject(OpReadDir, dir); err != nil {
		return nil, err
	}
	return e.inner.ReadDir(dir)
}

// Stat implements FS.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.inject(OpStat, name); err != nil {
		return nil, err
	}
	return e.inner.Stat(name)
}

// SyncDir implements FS.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.inject(OpSyncDir, dir); err != nil {
		return err
	}
	return e.inner.SyncDir(dir)
}

type errorFile struct {
	fs    *ErrorFS
	inner File
}

// errorFdFile is an errorFile whose inner file has a descriptor.
type errorFdFile struct {
	*errorFile
	fd Fder
}

func (f *errorFdFile) Fd() uintptr { return f.fd.Fd() }

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.inject(OpRead, f.inner.Name()); err != nil {
		return 0, err
	}
	return f.inner.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.inject(OpWrite, f.inner.Name()); err != nil {
		return 0, err
	}
	allowed := f.fs.reserveWrite(len(p))
	n, err := f.inner.Write(p[:allowed])
	f.fs.unreserveWrite(allowed - n)
	if err != nil {
		return n, err
	}
	if allowed < len(p) {
		return n, &os.PathError{Op: "write", Path: f.inner.Name(), Err: syscall.ENOSPC}
	}
	return n, nil
}

func (f *errorFile) Sync() error {
	if err := f.fs.inject(OpSync, f.inner.Name()); err != nil {
		return err
	}
	return f.inner.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.inject(OpTruncate, f.inner.Name()); err != nil {
		return err
	}
	return f.inner.Truncate(size)
}

func (f *errorFile) Size() (int64, error) {
	if err := f.fs.inject(OpSize, f.inner.Name()); err != nil {
		return 0, err
	}
	return f.inner.Size()
}

// Close always closes the inner file, so an injected close error does not
// leak a descriptor.
func (f *errorFile) Close() error {
	injected := f.fs.inject(OpClose, f.inner.Name())
	err := f.inner.Close()
	if injected != nil {
		return injected
	}
	return err
}

func (f *errorFile) Name() string { return f.inner.Name() }
