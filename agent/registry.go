package agent

import (
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"
)

// inodeKey identifies a file on this machine.
type inodeKey struct{ dev, ino uint64 }

// fileState is one logical file: a stream of bytes the agent ships, with
// its checkpoint. It is normally bound to an inode; a file truncated under
// the agent leaves its old state orphaned (unbound), waiting for a copy of
// its content (copytruncate) to continue in.
type fileState struct {
	// ack turns acknowledgements into the checkpoint; it has its own lock.
	ack *ackTracker

	// readOffset is where the records handed to the producer end (the
	// tailer's read position at a line boundary); size is the file's size
	// when last looked at. Written by the owning tailer, read by anyone.
	readOffset atomic.Int64
	size       atomic.Int64

	// Guarded by registry.mu.
	id       uint64
	key      inodeKey
	bound    bool // key holds this state (else orphan)
	fp       fingerprint
	path     string
	input    *input    // the input that claimed it; nil until a scan matched it
	tailer   *tailer   // the open tailer, or nil when closed
	seen     time.Time // last time a scan found it (or it was orphaned)
	idleSize int64     // size when the tailer closed it idle; -1 unknown
	idleMod  time.Time // modification time then
}

// registry holds every fileState. The scan loop and the tailers change it
// under mu; acknowledgements never need mu.
type registry struct {
	mu struct {
		sync.Mutex
		nextID  uint64
		states  map[uint64]*fileState
		byInode map[inodeKey]*fileState
		byPath  map[string]*fileState
	}
	// ckptMu serialises checkpoint writes; lastCkpt is the last content
	// written.
	ckptMu   sync.Mutex
	lastCkpt []byte
}

func newRegistry() *registry {
	r := &registry{}
	r.mu.states = map[uint64]*fileState{}
	r.mu.byInode = map[inodeKey]*fileState{}
	r.mu.byPath = map[string]*fileState{}
	return r
}

// newStateLocked adds a state for key at offset, bound unless key is zero.
func (r *registry) newStateLocked(key inodeKey, bound bool, path string, fp fingerprint, offset int64, seen time.Time) *fileState {
	r.mu.nextID++
	st := &fileState{ack: newAckTracker(offset), id: r.mu.nextID, key: key, bound: bound, fp: fp, path: path, seen: seen, idleSize: -1}
	st.readOffset.Store(offset)
	st.size.Store(-1)
	r.mu.states[st.id] = st
	if bound {
		r.mu.byInode[key] = st
	}
	if path != "" && bound {
		r.mu.byPath[path] = st
	}
	return st
}

// load adds the states of a checkpoint. Later entries for an inode already
// loaded are dropped (the file format never holds two).
func (r *registry) load(entries []checkpointEntry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		fp, err := e.fingerprint()
		if err != nil {
			continue // decodeCheckpoint already rejected it
		}
		key := inodeKey{e.Dev, e.Ino}
		bound := e.State == entryBound
		if bound && r.mu.byInode[key] != nil {
			continue
		}
		seen := time.UnixMilli(e.Seen)
		if e.Seen == 0 {
			seen = now
		}
		r.newStateLocked(key, bound, e.Path, fp, e.Offset, seen)
	}
}

// bindLocked binds st (an orphan, or a state whose inode vanished) to key.
func (r *registry) bindLocked(st *fileState, key inodeKey, path string) {
	if st.bound && r.mu.byInode[st.key] == st {
		delete(r.mu.byInode, st.key)
	}
	st.key, st.bound = key, true
	r.mu.byInode[key] = st
	r.setPathLocked(st, path)
}

// setPathLocked records that st was found at path.
func (r *registry) setPathLocked(st *fileState, path string) {
	if st.path != path && r.mu.byPath[st.path] == st {
		delete(r.mu.byPath, st.path)
	}
	st.path = path
	r.mu.byPath[path] = st
}

// retireLocked unbinds st from its inode, whose content is no longer st's
// (truncated, or the inode reused). A state whose fingerprint is full stays
// as an orphan that a copy of its content can continue; others are
// forgotten (nothing could identify their content again).
func (r *registry) retireLocked(st *fileState, now time.Time) {
	if r.mu.byInode[st.key] == st {
		delete(r.mu.byInode, st.key)
	}
	if r.mu.byPath[st.path] == st {
		delete(r.mu.byPath, st.path)
	}
	st.bound = false
	st.tailer = nil
	st.seen = now
	if !st.fp.full() || st.readOffset.Load() == 0 {
		delete(r.mu.states, st.id)
	}
}

// dropLocked forgets st entirely.
func (r *registry) dropLocked(st *fileState) {
	if r.mu.byInode[st.key] == st {
		delete(r.mu.byInode, st.key)
	}
	if r.mu.byPath[st.path] == st {
		delete(r.mu.byPath, st.path)
	}
	delete(r.mu.states, st.id)
}

// findOrphanLocked returns an orphan whose full fingerprint is fp, of an
// inode other than key.
func (r *registry) findOrphanLocked(fp fingerprint, key inodeKey) *fileState {
	if !fp.full() {
		return nil
	}
	for _, st := range r.mu.states {
		// An inode is never the copy of its own truncated content: a
		// file truncated and written again with the same head (a
		// banner) is a new file.
		if !st.bound && st.fp == fp && st.key != key {
			return st
		}
	}
	return nil
}

// findBoundByFPLocked returns a bound state other than for key whose full
// fingerprint is fp.
func (r *registry) findBoundByFPLocked(fp fingerprint, key inodeKey) *fileState {
	if !fp.full() {
		return nil
	}
	for k, st := range r.mu.byInode {
		if k != key && st.fp == fp {
			return st
		}
	}
	return nil
}

// tailerForPath returns the open tailer reading path, if any.
func (r *registry) tailerForPath(path string) *tailer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.mu.byPath[path]; st != nil {
		return st.tailer
	}
	return nil
}

// forEachTailer calls fn for every open tailer.
func (r *registry) forEachTailer(fn func(*tailer)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.mu.byInode {
		if st.tailer != nil {
			fn(st.tailer)
		}
	}
}

// snapshot returns the checkpoint entries of every state.
func (r *registry) snapshot() []checkpointEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]checkpointEntry, 0, len(r.mu.states))
	for _, st := range r.mu.states {
		off, _ := st.ack.acked()
		e := checkpointEntry{
			Path:   st.path,
			Dev:    st.key.dev,
			Ino:    st.key.ino,
			FPLen:  st.fp.n,
			Offset: off,
			State:  entryBound,
			Seen:   st.seen.UnixMilli(),
		}
		if st.fp.n > 0 {
			e.FP = hex.EncodeToString(st.fp.sum[:])
		}
		if !st.bound {
			e.State = entryOrphan
		}
		out = append(out, e)
	}
	return out
}

// forgetLocked drops closed and orphaned states not seen since before.
func (r *registry) forgetLocked(before time.Time) {
	for id, st := range r.mu.states {
		if st.tailer == nil && st.seen.Before(before) {
			if st.bound && r.mu.byInode[st.key] == st {
				delete(r.mu.byInode, st.key)
			}
			if r.mu.byPath[st.path] == st {
				delete(r.mu.byPath, st.path)
			}
			delete(r.mu.states, id)
		}
	}
}
