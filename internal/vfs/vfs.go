// Package vfs is the file-system seam for everything gregor writes to disk.
//
// All storage code opens, writes, syncs, renames and removes files through
// FS so tests can substitute an in-memory file system (NewMem), one that
// forgets unsynced data on a simulated crash (NewCrashable), and one that
// injects errors such as a full disk (NewErrorFS). The package owns only the
// abstraction and its implementations; it knows nothing of logs or segments.
package vfs

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// IsNoSpace reports whether err is a file system out of space or over
// quota (ENOSPC, EDQUOT): a failure that clears once space is freed, and
// that leaves nothing half done once a partial write is cut back.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// IsOutOfFiles reports whether err is the process or the system out of
// file descriptors (EMFILE, ENFILE): nothing was opened, and the same call
// succeeds once descriptors are free. Idle client connections alone can
// cause it.
func IsOutOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// IsShortage reports whether err is a want of space or of file
// descriptors (IsNoSpace or IsOutOfFiles): a failure to retry later, not
// a broken disk.
func IsShortage(err error) bool { return IsNoSpace(err) || IsOutOfFiles(err) }

// File is an open file. Implementations must be safe for concurrent ReadAt
// calls, and Sync may run concurrently with Write (a flusher fsyncs while
// appends continue; the sync covers at least what was written before it
// started). Write and Truncate must not be called concurrently with each
// other (the owner of a file serialises its writers).
type File interface {
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync flushes written data to stable storage.
	Sync() error
	// Truncate changes the file's size. The write position of a file opened
	// for append is always the end of the file.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	// Name returns the name the file was opened with.
	Name() string
}

// Fder is implemented by files backed by an operating-system descriptor, so
// callers can use zero-copy system calls such as sendfile(2) on them. The
// descriptor stays owned by the File; callers must not close it.
type Fder interface {
	Fd() uintptr
}

// FS is the set of file-system operations gregor's storage needs.
type FS interface {
	// OpenFile opens name with os.OpenFile semantics (O_CREATE, O_TRUNC,
	// O_APPEND, O_RDWR, O_RDONLY, O_EXCL are honoured).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a path and everything under it.
	RemoveAll(name string) error
	// Rename atomically renames oldname to newname, replacing newname.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir returns the names of the entries of dir, sorted.
	ReadDir(dir string) ([]os.DirEntry, error)
	// Stat describes the named file.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// Open opens name read-only.
func Open(fs FS, name string) (File, error) { return fs.OpenFile(name, os.O_RDONLY, 0) }

// Create creates or truncates name for reading and writing.
func Create(fs FS, name string) (File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

// CacheDropper is implemented by files whose cached pages can be dropped
// (the OS file system's, with posix_fadvise POSIX_FADV_DONTNEED). Dirty
// pages are not dropped, so callers drop only data they have synced.
type CacheDropper interface {
	// DropCache advises the kernel that the n bytes from off will not be
	// needed soon.
	DropCache(off, n int64) error
}

// SpaceReporter is implemented by file systems that can tell how large the
// volume holding a directory is and how much of it is free (DescribeLogDirs
// reports both).
type SpaceReporter interface {
	// Space returns the total and the available bytes of the volume
	// holding dir.
	Space(dir string) (total, available int64, err error)
}

// Preallocator is implemented by files whose blocks can be reserved ahead
// of the writes that fill them (the OS file system's, with fallocate(2)
// FALLOC_FL_KEEP_SIZE). The file's size does not change; writes into the
// reserved range skip the file system's per-block allocation, and cannot
// fail for want of space. Truncate to the current size gives the reserved
// blocks past the end back.
type Preallocator interface {
	// Preallocate reserves the blocks of the n bytes from off. An error
	// wrapping errors.ErrUnsupported says the file system cannot.
	Preallocate(off, n int64) error
	// Allocated returns how many bytes of blocks the file holds, the
	// reserved ones past its end included.
	Allocated() (int64, error)
}
