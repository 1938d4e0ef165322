package vfs

import (
	"errors"
	"io"
	iofs "io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrCrashed is returned by every operation on a MemFS file handle opened
// before the last simulated crash: the process that held it is "dead".
// Close on such a handle succeeds.
var ErrCrashed = errors.New("vfs: file handle predates a simulated crash")

// MemFS is an in-memory FS, safe for concurrent use. Paths are cleaned and
// rooted at "/" ("a/b" and "/a/b" name the same file). Opening a directory
// fails with EISDIR; use ReadDir, Stat and SyncDir on directories.
//
// Every MemFS also records what is durable, as a disk with a volatile
// write cache would: for each file its content as of its last Sync, and for
// each directory its entries as of its last SyncDir. Crash throws away
// everything else. As on POSIX, syncing a file does not make its name
// durable, and a directory created by MkdirAll vanishes in a crash until
// its parent is synced (see MkdirAllDurable). A rename between two
// directories needs both synced.
type MemFS struct {
	// mu guards the whole tree, every node's content and every handle's
	// position: writers hold it exclusively, readers shared.
	mu   sync.RWMutex
	root *memNode
	// gen counts crashes; handles opened in an earlier generation are dead.
	gen uint64
}

// CrashableFS is a MemFS used for crash testing. Every MemFS tracks synced
// state, so the two are the same type; the name documents intent.
type CrashableFS = MemFS

// NewMem returns an empty in-memory file system holding only "/".
func NewMem() *MemFS {
	return &MemFS{root: newDirNode(0o755)}
}

// NewCrashable returns an empty in-memory file system for crash tests: write
// through it, call Crash, and reopen the code under test on the same FS.
func NewCrashable() *CrashableFS { return NewMem() }

type memNode struct {
	isDir   bool
	perm    os.FileMode
	modTime time.Time

	// Files. The durable content is data[:syncedLen] while the bytes
	// below syncedLen are untouched since the last Sync (the common
	// append-only case, which makes Sync O(1)); once they are overwritten
	// or truncated away, syncedCopy holds the durable content instead.
	data       []byte
	syncedLen  int
	syncedCopy []byte

	// Directories.
	children       map[string]*memNode
	syncedChildren map[string]*memNode
}

func newDirNode(perm os.FileMode) *memNode {
	return &memNode{
		isDir:          true,
		perm:           perm.Perm(),
		modTime:        time.Now(),
		children:       map[string]*memNode{},
		syncedChildren: map[string]*memNode{},
	}
}

// cleanPath returns name as an absolute, cleaned path.
func cleanPath(name string) string { return filepath.Clean("/" + name) }

func splitPath(name string) []string {
	p := cleanPath(name)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// lookupLocked returns the node at name.
func (m *MemFS) lookupLocked(name string) (*memNode, error) {
	n := m.root
	for _, part := range splitPath(name) {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.children[part]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = c
	}
	return n, nil
}

// parentLocked returns the directory holding name and name's last element.
// For the root it returns the root and "".
func (m *MemFS) parentLocked(name string) (*memNode, string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return m.root, "", nil
	}
	dir, err := m.lookupLocked(strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !dir.isDir {
		return nil, "", syscall.ENOTDIR
	}
	return dir, parts[len(parts)-1], nil
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n := m.root
	if base != "" {
		n = dir.children[base]
	}
	access := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable := access == os.O_WRONLY || access == os.O_RDWR
	switch {
	case n == nil:
		if flag&os.O_CREATE == 0 {
			return nil, pathErr("open", name, syscall.ENOENT)
		}
		n = &memNode{perm: perm.Perm(), modTime: time.Now()}
		dir.children[base] = n
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, syscall.EEXIST)
	case n.isDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	case flag&os.O_TRUNC != 0 && writable:
		n.truncateLocked(0)
	}
	return &memFile{
		fs:         m,
		node:       n,
		name:       name,
		gen:        m.gen,
		readable:   access != os.O_WRONLY,
		writable:   writable,
		appendMode: flag&os.O_APPEND != 0,
		syncMode:   flag&os.O_SYNC != 0,
	}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	if base == "" {
		return pathErr("remove", name, syscall.EINVAL)
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements FS. A missing path is not an error.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked(name)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return pathErr("removeall", name, err)
	}
	if base == "" {
		return pathErr("removeall", name, syscall.EINVAL)
	}
	delete(dir.children, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	oldDir, oldBase, err := m.parentLocked(oldname)
	if err != nil {
		return linkErr(err)
	}
	newDir, newBase, err := m.parentLocked(newname)
	if err != nil {
		return linkErr(err)
	}
	if oldBase == "" || newBase == "" {
		return linkErr(syscall.EINVAL)
	}
	n, ok := oldDir.children[oldBase]
	if !ok {
		return linkErr(syscall.ENOENT)
	}
	oldClean, newClean := cleanPath(oldname), cleanPath(newname)
	if oldClean == newClean {
		return nil
	}
	if n.isDir && strings.HasPrefix(newClean, oldClean+"/") {
		return linkErr(syscall.EINVAL)
	}
	if existing, ok := newDir.children[newBase]; ok {
		switch {
		case !n.isDir && existing.isDir:
			return linkErr(syscall.EISDIR)
		case n.isDir && !existing.isDir:
			return linkErr(syscall.ENOTDIR)
		case existing.isDir && len(existing.children) > 0:
			return linkErr(syscall.ENOTEMPTY)
		}
	}
	delete(oldDir.children, oldBase)
	newDir.children[newBase] = n
	return nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, part := range splitPath(dir) {
		c, ok := n.children[part]
		if !ok {
			c = newDirNode(perm)
			n.children[part] = c
		} else if !c.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		n = c
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]os.DirEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.lookupLocked(dir)
	if err != nil {
		return nil, pathErr("readdir", dir, err)
	}
	if !n.isDir {
		return nil, pathErr("readdir", dir, syscall.ENOTDIR)
	}
	names := slices.Sorted(maps.Keys(n.children))
	entries := make([]os.DirEntry, len(names))
	for i, name := range names {
		entries[i] = iofs.FileInfoToDirEntry(n.children[name].infoLocked(name))
	}
	return entries, nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.lookupLocked(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.infoLocked(filepath.Base(cleanPath(name))), nil
}

// SyncDir implements FS: it makes dir's current entries durable.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(dir)
	if err != nil {
		return pathErr("syncdir", dir, err)
	}
	if !n.isDir {
		return pathErr("syncdir", dir, syscall.ENOTDIR)
	}
	n.syncedChildren = maps.Clone(n.children)
	return nil
}

// Crash simulates power loss: every write since a file's last Sync and
// every directory change since the directory's last SyncDir is lost.
// Handles opened before the crash fail with ErrCrashed from then on.
func (m *MemFS) Crash() { m.crash(nil) }

// CrashTorn is Crash, except that a file whose only unsynced changes are
// appends keeps a random prefix of them, as when some pages of a write
// reached the disk and others did not. The same seed and the same history
// give the same result.
func (m *MemFS) CrashTorn(seed uint64) { m.crash(rand.New(rand.NewPCG(seed, 0))) }

func (m *MemFS) crash(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.root.crashLocked(rng)
}

func (n *memNode) crashLocked(rng *rand.Rand) {
	if n.isDir {
		n.children = maps.Clone(n.syncedChildren)
		// Sorted, so a seeded torn crash is reproducible.
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			n.children[name].crashLocked(rng)
		}
		return
	}
	switch {
	case n.syncedCopy != nil:
		n.data = n.syncedCopy
	case rng != nil && len(n.data) > n.syncedLen:
		n.data = n.data[:n.syncedLen+rng.IntN(len(n.data)-n.syncedLen+1)]
	default:
		n.data = n.data[:n.syncedLen]
	}
	n.syncLocked()
}

func (n *memNode) infoLocked(name string) os.FileInfo {
	mode := n.perm
	if n.isDir {
		mode |= os.ModeDir
	}
	return &memInfo{name: name, size: int64(len(n.data)), mode: mode, modTime: n.modTime}
}

func (n *memNode) syncLocked() {
	n.syncedLen = len(n.data)
	n.syncedCopy = nil
}

// preserveSyncedLocked must be called before changing data below syncedLen.
func (n *memNode) preserveSyncedLocked() {
	if n.syncedCopy == nil && n.syncedLen > 0 {
		n.syncedCopy = slices.Clone(n.data[:n.syncedLen])
	}
}

// growLocked extends data with zeros to size. Appending a zeroed slice
// (rather than reslicing) clears bytes left in the array by a truncation.
func (n *memNode) growLocked(size int64) {
	if extra := size - int64(len(n.data)); extra > 0 {
		n.data = append(n.data, make([]byte, extra)...)
	}
}

func (n *memNode) writeAtLocked(p []byte, off int64) {
	if off < int64(n.syncedLen) {
		n.preserveSyncedLocked()
	}
	n.growLocked(off + int64(len(p)))
	copy(n.data[off:], p)
	n.modTime = time.Now()
}

func (n *memNode) truncateLocked(size int64) {
	if size < int64(n.syncedLen) {
		n.preserveSyncedLocked()
	}
	if size <= int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.growLocked(size)
	}
	n.modTime = time.Now()
}

type memInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (i *memInfo) Name() string       { return i.name }
func (i *memInfo) Size() int64        { return i.size }
func (i *memInfo) Mode() os.FileMode  { return i.mode }
func (i *memInfo) ModTime() time.Time { return i.modTime }
func (i *memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *memInfo) Sys() any           { return nil }

// memFile is a handle on a memNode. All its fields after name are guarded
// by fs.mu.
type memFile struct {
	fs   *MemFS
	node *memNode
	name string

	gen        uint64
	readable   bool
	writable   bool
	appendMode bool
	syncMode   bool
	pos        int64
	closed     bool
}

func (f *memFile) checkLocked(op string, needWrite bool) error {
	switch {
	case f.closed:
		return pathErr(op, f.name, os.ErrClosed)
	case f.gen != f.fs.gen:
		return pathErr(op, f.name, ErrCrashed)
	case needWrite && !f.writable:
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if err := f.checkLocked("read", false); err != nil {
		return 0, err
	}
	if !f.readable {
		return 0, pathErr("read", f.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.node.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("write", true); err != nil {
		return 0, err
	}
	if f.appendMode {
		f.pos = int64(len(f.node.data))
	}
	f.node.writeAtLocked(p, f.pos)
	f.pos += int64(len(p))
	if f.syncMode {
		f.node.syncLocked()
	}
	return len(p), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.node.truncateLocked(size)
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("sync", false); err != nil {
		return err
	}
	f.node.syncLocked()
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if err := f.checkLocked("stat", false); err != nil {
		return 0, err
	}
	return int64(len(f.node.data)), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *memFile) Name() string { return f.name }
