package agent

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// scanState is what the scan loop keeps between scans; only the scan loop
// goroutine touches it.
type scanState struct {
	watcher *fsnotify.Watcher
	watched map[string]bool   // directories with an fsnotify watch
	noted   map[string]string // path -> last problem logged, to log each once
	copies  map[string]string // path -> the file it was last logged a copy of
}

// candidate is a regular file a glob matched.
type candidate struct {
	path  string
	in    *input
	key   inodeKey
	size  int64
	mtime time.Time
}

// expand globs every input's patterns. A file matched by several inputs
// belongs to the first. It returns the candidates and the directories to
// watch.
func (a *Agent) expand() ([]candidate, map[string]bool) {
	var out []candidate
	dirs := map[string]bool{}
	claimed := map[string]bool{}
	for _, in := range a.inputs {
		for _, pat := range in.patterns {
			if ds, err := filepath.Glob(filepath.Dir(pat)); err == nil {
				for _, d := range ds {
					dirs[d] = true
				}
			}
			matches, err := filepath.Glob(pat)
			if err != nil {
				continue // validated at load; cannot happen
			}
			for _, m := range matches {
				if claimed[m] || in.excluded(m) {
					continue
				}
				fi, err := os.Stat(m)
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						a.noteProblem(m, "stat", err)
					}
					continue
				}
				if !fi.Mode().IsRegular() {
					a.noteProblem(m, "skip", errNotRegular)
					continue
				}
				sys, ok := fi.Sys().(*syscall.Stat_t)
				if !ok {
					continue
				}
				claimed[m] = true
				out = append(out, candidate{path: m, in: in, key: inodeKey{uint64(sys.Dev), sys.Ino}, size: fi.Size(), mtime: fi.ModTime()})
			}
		}
	}
	return out, dirs
}

// errNotRegular is noted for a glob match that is not a regular file.
var errNotRegular = errors.New("not a regular file (a directory, device or socket); skipped")

// excluded applies the input's exclude patterns to path.
func (in *input) excluded(path string) bool {
	base := filepath.Base(path)
	for _, ex := range in.exclude {
		target := base
		if strings.Contains(ex, "/") {
			target = path
		}
		if ok, _ := filepath.Match(ex, target); ok {
			return true
		}
	}
	return false
}

// matches reports whether path matches one of the input's patterns.
func (in *input) matches(path string) bool {
	for _, pat := range in.patterns {
		if ok, _ := filepath.Match(pat, path); ok {
			return !in.excluded(path)
		}
	}
	return false
}

// inputFor returns the first input whose patterns match path, or nil.
func (a *Agent) inputFor(path string) *input {
	for _, in := range a.inputs {
		if in.matches(path) {
			return in
		}
	}
	return nil
}

// noteProblem logs a problem with path once (until it changes or clears).
func (a *Agent) noteProblem(path, op string, err error) {
	if a.scan.noted == nil {
		a.scan.noted = map[string]string{}
	}
	msg := op + ": " + err.Error()
	if a.scan.noted[path] == msg {
		return
	}
	a.scan.noted[path] = msg
	if op == "skip" {
		a.log.Warn("glob matched something that is not a regular file", zap.String("path", path))
		return
	}
	a.metrics.fileErrors.WithLabelValues(op).Inc()
	a.log.Error("cannot read file; retrying on every scan", zap.String("path", path), zap.String("op", op), zap.Error(err))
}

func (a *Agent) clearProblem(path string) { delete(a.scan.noted, path) }

// doScan expands the globs and reconciles what it finds with the registry:
// known inodes keep their state (and closed ones that grew are reopened),
// new inodes are matched against orphans by fingerprint or start at 0, and
// open files whose inode was not found are marked detached (renamed away or
// deleted: they are read to their end and then closed).
//
// It reports whether it started tracking a file it did not know.
func (a *Agent) doScan(ctx context.Context, first bool) bool {
	cands, dirs := a.expand()
	a.updateWatches(dirs)
	now := time.Now()
	r := a.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	idBefore := r.mu.nextID

	found := make(map[inodeKey]bool, len(cands))
	var fresh []candidate
	// Known inodes first: a truncation found here orphans a state that a
	// fresh copy below may then continue.
	for _, c := range cands {
		if found[c.key] {
			continue // the same file under a second path (a symlink, a hard link): read it once
		}
		found[c.key] = true
		st := r.mu.byInode[c.key]
		if st == nil {
			fresh = append(fresh, c)
			continue
		}
		st.seen = now
		r.setPathLocked(st, c.path)
		if st.input == nil {
			st.input = c.in
		}
		if st.tailer != nil {
			// The size for status: a tailer waiting for the broker (the
			// files are the buffer) does not look at its file.
			st.size.Store(max(st.size.Load(), c.size))
			st.tailer.detached.Store(false)
			continue
		}
		if st.idleSize >= 0 && c.size == st.idleSize && c.mtime.Equal(st.idleMod) {
			continue // closed and unchanged
		}
		a.reopenLocked(ctx, st, c, now)
	}
	for _, c := range fresh {
		a.openFreshLocked(ctx, c, found, now, first)
	}
	for key, st := range r.mu.byInode {
		if found[key] {
			continue
		}
		if st.tailer != nil {
			if !st.tailer.detached.Swap(true) {
				st.tailer.poke() // read to its end; finished at once if deleted
			}
		} else if first || now.Sub(st.seen) < copySearchFor {
			// Closed (idle) when it was renamed away, or renamed while
			// the agent was down: lines an app writes into the rotated
			// file before it reopens its log are in it.
			a.recoverRotatedLocked(ctx, st, now)
		}
	}
	// Files truncated under us (orphans) whose copy no glob matches (a
	// copytruncate to app.log.1 with the glob *.log): look for the copy
	// next to where the file was, while the truncation is recent.
	for _, st := range r.mu.states {
		if !st.bound && st.fp.full() && st.readOffset.Load() > 0 && now.Sub(st.seen) < copySearchFor {
			a.recoverCopyLocked(ctx, st, found, now)
		}
	}
	r.forgetLocked(now.Add(-a.cfg.ForgetAfter))
	a.metrics.filesKnown.Set(float64(len(r.mu.states)))
	return r.mu.nextID != idBefore
}

// maxOpenFiles is how many files the tailers may hold open at once: the
// open-file limit less an eighth of it (at least 64), kept for the broker
// connections, checkpoints and the HTTP server. Past it, files wait for a
// later scan: running out, the agent could not ship, checkpoint or answer
// /status (a probe globbed 10,000 files under a limit of 256). Read once,
// by New; a variable for tests.
var maxOpenFiles = func() int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return math.MaxInt64
	}
	cur := int64(lim.Cur)
	return max(1, cur-max(64, cur/8))
}

// roomToOpen reports whether a tailer may open another file, logging (at
// most once a minute) when it may not.
func (a *Agent) roomToOpen() bool {
	limit := a.maxOpen
	if a.openFiles.Load() < limit {
		return true
	}
	now := time.Now().UnixNano()
	if last := a.limitWarned.Load(); now-last >= int64(time.Minute) && a.limitWarned.CompareAndSwap(last, now) {
		a.log.Warn("as many files open as the open-file limit allows; more are read as open ones close (close-inactive), or raise the limit (ulimit -n)",
			zap.Int64("open_files", a.openFiles.Load()), zap.Int64("max_open_files", limit))
	}
	return false
}

// openChecked opens c.path and makes sure it is still the inode the scan
// saw (it may have been replaced in between).
func (a *Agent) openChecked(c candidate) (*os.File, int64, bool) {
	if !a.roomToOpen() {
		return nil, 0, false // a later scan, once tailers closed files
	}
	f, err := os.Open(c.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			a.noteProblem(c.path, "open", err)
		}
		return nil, 0, false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		a.noteProblem(c.path, "stat", err)
		return nil, 0, false
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (inodeKey{uint64(sys.Dev), sys.Ino}) != c.key || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, false // replaced since the glob; the next scan sees the new one
	}
	a.clearProblem(c.path)
	return f, fi.Size(), true
}

// reopenLocked reopens a closed state whose file changed.
func (a *Agent) reopenLocked(ctx context.Context, st *fileState, c candidate, now time.Time) {
	f, size, ok := a.openChecked(c)
	if !ok {
		return
	}
	same, fp, err := checkFingerprint(f, size, st.fp)
	if err != nil {
		f.Close()
		a.noteProblem(c.path, "read", err)
		return
	}
	offset := st.readOffset.Load()
	if !same || (size < offset && !st.fp.full()) {
		// The inode holds other bytes now: truncated (copytruncate while
		// closed) or reused by a new file.
		a.log.Info("file content replaced; reading it from the start", zap.String("path", c.path),
			zap.Int64("old_offset", offset), zap.Int64("size", size))
		a.reg.retireLocked(st, now)
		st = a.reg.newStateLocked(c.key, true, c.path, fp, 0, now)
		st.input = c.in
		offset = 0
	} else if fp.n > st.fp.n {
		st.fp = fp
	}
	a.startTailerLocked(ctx, st, f, offset, false)
}

// openFreshLocked handles an inode no state is bound to.
func (a *Agent) openFreshLocked(ctx context.Context, c candidate, found map[inodeKey]bool, now time.Time, first bool) {
	f, size, ok := a.openChecked(c)
	if !ok {
		return
	}
	fp, err := readFingerprint(f, size)
	if err != nil {
		f.Close()
		a.noteProblem(c.path, "read", err)
		return
	}
	r := a.reg
	if o := r.findOrphanLocked(fp, c.key); o != nil {
		// The copy of a file truncated under us: continue where it was read.
		a.log.Info("continuing a truncated file in its copy", zap.String("path", c.path),
			zap.String("was", o.path), zap.Int64("offset", o.readOffset.Load()))
		r.bindLocked(o, c.key, c.path)
		o.seen = now
		o.input = c.in
		a.startTailerLocked(ctx, o, f, o.readOffset.Load(), false)
		return
	}
	if b := r.findBoundByFPLocked(fp, c.key); b != nil {
		switch {
		case b.tailer != nil || found[b.key]:
			// Either a copy of a file being read (copytruncate's copy seen
			// before the truncation: once the original is truncated its
			// state is orphaned, which asks for a scan, and that scan
			// continues it here), or another file that starts with the
			// same 1 KiB (a banner every log file of a service begins
			// with). Only a copy holds the original's bytes past the head.
			if a.sameAsOriginal(f, size, b) {
				f.Close()
				if a.scan.copies[c.path] != b.path {
					if a.scan.copies == nil {
						a.scan.copies = map[string]string{}
					}
					a.scan.copies[c.path] = b.path
					a.log.Info("not reading a file that holds the same bytes as one being read (a copy)",
						zap.String("path", c.path), zap.String("copy_of", b.path))
				}
				return
			}
		case first && rotatedPath(b) == "":
			// At start, the file we knew under that head moved to a new
			// inode while we were down (another file system, a restore):
			// continue it. (If its inode is still in its directory under
			// another name, it was rotated away, and this is a new file
			// with the same banner: read from the start, below, while
			// recoverRotatedLocked finishes the rotated one.)
			a.log.Info("file moved to a new inode; continuing it", zap.String("path", c.path), zap.String("was", b.path))
			r.bindLocked(b, c.key, c.path)
			b.seen = now
			b.input = c.in
			a.startTailerLocked(ctx, b, f, b.readOffset.Load(), false)
			return
		}
		// Otherwise, while running, a new inode with a known head whose
		// original is gone is as likely a new file after a rotation
		// (with the same banner) as the old one moved: read it from the
		// start, which at worst sends lines twice.
	}
	delete(a.scan.copies, c.path)
	st := r.newStateLocked(c.key, true, c.path, fp, 0, now)
	st.input = c.in
	a.startTailerLocked(ctx, st, f, 0, false)
}

// compareBytes is how much past the fingerprint sameAsOriginal compares.
const compareBytes = 64 << 10

// sameAsOriginal reports whether f (size bytes) holds the same bytes as the
// file of state b, which starts with the same fingerprint, as far as both
// go within compareBytes: a copy does, another file with the same head
// does not. When the original cannot be read it answers true (the caller
// then waits, as before, for the next scan).
func (a *Agent) sameAsOriginal(f *os.File, size int64, b *fileState) bool {
	var orig *os.File
	if b.tailer != nil {
		orig = b.tailer.f
	} else {
		o, err := os.Open(b.path)
		if err != nil {
			return true
		}
		defer o.Close()
		orig = o
	}
	ofi, err := orig.Stat()
	if err != nil {
		return true
	}
	n := min(size, ofi.Size(), compareBytes)
	if n <= int64(b.fp.n) {
		return true // nothing past the head to tell them apart yet
	}
	x, y := make([]byte, n), make([]byte, n)
	if _, err := f.ReadAt(x, 0); err != nil {
		return true
	}
	if _, err := orig.ReadAt(y, 0); err != nil {
		return true
	}
	return bytes.Equal(x, y)
}

// recoverRotatedLocked looks for a closed file that is no longer matched
// by any glob (renamed by a rotation while the agent was down, or while
// the file was closed for inactivity, within copySearchFor of the last
// scan that matched it) in the directory it was in, and reads it to its
// end if it grew.
func (a *Agent) recoverRotatedLocked(ctx context.Context, st *fileState, now time.Time) {
	in := a.inputFor(st.path)
	if in == nil || st.path == "" {
		return
	}
	p, fi := inodeInDir(filepath.Dir(st.path), st.key)
	if p == "" {
		return
	}
	c := candidate{path: p, in: in, key: st.key, size: fi.Size(), mtime: fi.ModTime()}
	f, size, ok := a.openChecked(c)
	if !ok {
		return
	}
	same, fp, err := checkFingerprint(f, size, st.fp)
	if err != nil || !same || size <= st.readOffset.Load() {
		f.Close()
		return
	}
	a.log.Info("finishing a rotated file that grew after it was closed", zap.String("path", p), zap.String("was", st.path))
	st.fp = fp
	st.input = in
	st.seen = now
	r := a.reg
	r.setPathLocked(st, p)
	a.startTailerLocked(ctx, st, f, st.readOffset.Load(), true)
}

// copySearchFor is how long after a truncation recoverCopyLocked looks
// for the file's copy.
const copySearchFor = time.Minute

// recoverCopyLocked looks, in the directory of st (orphaned: its file was
// truncated), for a copy of its content that no glob matches and no state
// holds: a file starting with st's head and longer than what was read of
// it, the most recently modified if several are (older rotations may
// share a banner). It continues st there, to the copy's end: the lines
// the agent had not read when the file was truncated (while the broker
// was down, say) are in it.
func (a *Agent) recoverCopyLocked(ctx context.Context, st *fileState, found map[inodeKey]bool, now time.Time) {
	in := st.input
	if in == nil {
		in = a.inputFor(st.path)
	}
	if in == nil || st.path == "" {
		return
	}
	var (
		best  *candidate
		bestF *os.File
		bestP fingerprint
	)
	off := st.readOffset.Load()
	dirFiles(filepath.Dir(st.path), func(p string, fi os.FileInfo, key inodeKey) bool {
		if fi.Size() <= off || key == st.key || found[key] || a.reg.mu.byInode[key] != nil ||
			best != nil && !fi.ModTime().After(best.mtime) {
			return true
		}
		if !a.roomToOpen() {
			return false
		}
		f, err := os.Open(p)
		if err != nil {
			return true
		}
		ofi, err := f.Stat()
		if k, ok := inodeKeyOf(ofi); err != nil || !ok || k != key { // replaced since the listing
			f.Close()
			return true
		}
		same, fp, err := checkFingerprint(f, fi.Size(), st.fp)
		if err != nil || !same {
			f.Close()
			return true
		}
		if bestF != nil {
			bestF.Close()
		}
		best, bestF, bestP = &candidate{path: p, in: in, key: key, size: fi.Size(), mtime: fi.ModTime()}, f, fp
		return true
	})
	if best == nil {
		return
	}
	a.log.Info("continuing a truncated file in its copy, which no glob matches", zap.String("path", best.path),
		zap.String("was", st.path), zap.Int64("offset", off))
	a.reg.bindLocked(st, best.key, best.path)
	st.fp, st.input, st.seen = bestP, in, now
	a.startTailerLocked(ctx, st, bestF, off, true)
}

// rotatedPath returns where st's inode is now in the directory it was
// in, under another name ("" if it is not there): rotated away.
func rotatedPath(st *fileState) string {
	if st.path == "" {
		return ""
	}
	p, _ := inodeInDir(filepath.Dir(st.path), st.key)
	if p == st.path {
		return ""
	}
	return p
}

// inodeInDir finds the regular file of inode key in dir.
func inodeInDir(dir string, key inodeKey) (path string, fi os.FileInfo) {
	dirFiles(dir, func(p string, f os.FileInfo, k inodeKey) bool {
		if k != key {
			return true
		}
		path, fi = p, f
		return false
	})
	return path, fi
}

// dirFiles calls fn with each regular file of dir, its stat and inode,
// until fn returns false.
func dirFiles(dir string, fn func(path string, fi os.FileInfo, key inodeKey) bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if key, ok := inodeKeyOf(fi); ok && !fn(p, fi, key) {
			return
		}
	}
}

// inodeKeyOf returns the device and inode of fi.
func inodeKeyOf(fi os.FileInfo) (inodeKey, bool) {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inodeKey{}, false
	}
	return inodeKey{uint64(sys.Dev), sys.Ino}, true
}

// updateWatches makes the fsnotify watches cover exactly dirs.
func (a *Agent) updateWatches(dirs map[string]bool) {
	w := a.scan.watcher
	if w == nil {
		return
	}
	if a.scan.watched == nil {
		a.scan.watched = map[string]bool{}
	}
	for d := range dirs {
		if a.scan.watched[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			a.noteProblem(d, "watch", err)
			continue
		}
		a.scan.watched[d] = true
	}
	for d := range a.scan.watched {
		if !dirs[d] {
			_ = w.Remove(d) // fails harmlessly when the directory is gone
			delete(a.scan.watched, d)
		}
	}
}

// watchLoop turns file-system events into tailer wake-ups and rescans.
func (a *Agent) watchLoop(ctx context.Context, w *fsnotify.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Write) {
				if t := a.reg.tailerForPath(ev.Name); t != nil {
					t.poke()
					continue
				}
				if a.inputFor(ev.Name) == nil {
					continue // a file no input wants
				}
			}
			a.requestScan()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				a.metrics.eventOverflows.Inc()
				a.log.Warn("file-system event queue overflowed; rescanning")
				a.requestScan()
				a.reg.forEachTailer((*tailer).poke)
				continue
			}
			a.log.Warn("file-system watcher", zap.Error(err))
		}
	}
}
