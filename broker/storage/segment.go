package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// File name suffixes in a partition directory (see docs/format.md).
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	snapshotSuffix  = ".snapshot"
	deletedSuffix   = ".deleted"
	tmpSuffix       = ".tmp"

	offsetEntrySize = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
)

// fileBase is the zero-padded base offset that names a segment's files.
func fileBase(base int64) string { return fmt.Sprintf("%020d", base) }

// parseFileBase parses the base offset of a segment or snapshot file name
// with the given suffix; ok is false for other names.
func parseFileBase(name, suffix string) (int64, bool) {
	stem, found := strings.CutSuffix(name, suffix)
	if !found || len(stem) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// offsetEntry is one sparse offset index entry: the batch whose base offset
// is base+rel starts at byte pos of the segment.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry is one time index entry: every record in the batches up to and
// including the batch based at base+rel has a timestamp <= ts.
type timeEntry struct {
	ts  int64
	rel uint32
}

// segment is one .log file and its indexes.
//
// Readers find segments through Log.segs without the log's lock; they hold
// a reference (tryRef/unref) while they use the file. The log holds one
// reference from creation until the segment is deleted or the log closed;
// the files are closed when the last reference goes.
type segment struct {
	base int64
	fs   vfs.FS
	dir  string
	log  vfs.File

	// tail packs the segment's next offset (relative to base) in the high
	// 32 bits and the number of bytes holding complete batches in the low
	// 32 bits. Appends store it after the write; readers never look past it.
	tail atomic.Uint64

	refs    atomic.Int32
	release func() // unref bound once, handed to Chunks without allocating

	idx segIndex

	// Writer state, guarded by Log.mu.
	sinceIndex int64 // bytes appended since the last offset index entry
	rollBase   int64 // unix ms the segment's age is measured from; 0 = unknown

	// cacheDropped is how many bytes from the start of the file have had
	// their cached pages dropped (Config.PageCacheRetainBytes); guarded by
	// Log.flushMu.
	cacheDropped int64
}

// segIndex is the in-memory sparse index of a segment. It is built by
// appends or by recovery; for segments trusted at Open, and for closed
// segments once their index files are written (see unloadIndex), it is
// loaded from the .index and .timeindex files on first use.
type segIndex struct {
	mu       sync.RWMutex
	loaded   bool
	fromFile bool // entries came from index files, not from the log
	offsets  []offsetEntry
	times    []timeEntry
	// maxTs is the largest batch max timestamp in the segment, and
	// maxTsOffset the base offset of the first batch holding it; -1 when
	// the segment is empty.
	maxTs       int64
	maxTsOffset int64
}

func newSegment(fsys vfs.FS, dir string, base int64, f vfs.File, nextRel uint32, size uint32, loaded bool) *segment {
	s := &segment{base: base, fs: fsys, dir: dir, log: f}
	s.tail.Store(packTail(nextRel, size))
	s.refs.Store(1)
	s.release = s.unref
	s.idx.loaded = loaded
	s.idx.maxTs, s.idx.maxTsOffset = -1, -1
	return s
}

func packTail(nextRel, size uint32) uint64 { return uint64(nextRel)<<32 | uint64(size) }

func unpackTail(t uint64) (nextRel, size uint32) { return uint32(t >> 32), uint32(t) }

// end returns the segment's next offset and size in bytes.
func (s *segment) end() (nextOffset int64, size int64) {
	rel, sz := unpackTail(s.tail.Load())
	return s.base + int64(rel), int64(sz)
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, fileBase(s.base)+suffix)
}

// tryRef takes a reference unless the segment's files are already closed.
func (s *segment) tryRef() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// unref drops a reference and closes the file when it was the last one.
func (s *segment) unref() {
	if s.refs.Add(-1) == 0 {
		// Nothing was written through this handle since its last fsync
		// (or the log failed already), so a close error loses nothing.
		_ = s.log.Close()
	}
}

// hdrPool holds header-sized read buffers for the read path.
var hdrPool = sync.Pool{New: func() any { return new([record.HeaderSize]byte) }}

// readHeader reads and parses the batch header at pos; limit is the end of
// complete data. It returns io.ErrUnexpectedEOF wrapped as corruption when
// the batch does not fit below limit.
func (s *segment) readHeader(pos, limit int64) (record.Header, error) {
	if limit-pos < record.HeaderSize {
		return record.Header{}, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: fmt.Errorf("%d bytes left for a batch header: %w", limit-pos, record.ErrShort)}
	}
	buf := hdrPool.Get().(*[record.HeaderSize]byte)
	defer hdrPool.Put(buf)
	if _, err := s.log.ReadAt(buf[:], pos); err != nil {
		return record.Header{}, fmt.Errorf("read batch header at %s:%d: %w", s.path(logSuffix), pos, err)
	}
	h, err := record.ParseHeader(buf[:])
	if err != nil {
		return h, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: err}
	}
	if pos+h.Size() > limit {
		return h, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: fmt.Errorf("batch of %d bytes with %d left: %w", h.Size(), limit-pos, record.ErrShort)}
	}
	return h, nil
}

// CorruptionError says where a segment holds bytes that are not a valid
// batch. Recovery truncates the segment at Pos.
type CorruptionError struct {
	Segment string // path of the .log file
	Pos     int64  // byte position of the first bad batch
	Err     error
}

// Error describes the corruption and where it is.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("corrupt segment %s at byte %d: %v", e.Segment, e.Pos, e.Err)
}

// Unwrap returns ErrCorruptBatch and the underlying cause.
func (e *CorruptionError) Unwrap() []error { return []error{ErrCorruptBatch, e.Err} }

// errBadIndex marks a lookup that found the sparse index pointing at the
// wrong batch.
var errBadIndex = errors.New("index entry points at the wrong batch")

// lookup returns the start of the batch holding offset target (or the first
// batch after it) and that batch's size, scanning headers from the nearest
// index entry. limit is the segment's complete size; when no batch at or
// after target lies below limit it returns (limit, 0). An index loaded from
// a file that turns out wrong is rebuilt from the log and the lookup
// retried.
func (s *segment) lookup(target, limit int64) (pos, size int64, err error) {
	pos, size, err = s.lookupOnce(target, limit)
	if errors.Is(err, errBadIndex) && s.rebuildLoadedIndex() {
		pos, size, err = s.lookupOnce(target, limit)
	}
	return pos, size, err
}

func (s *segment) lookupOnce(target, limit int64) (pos, size int64, err error) {
	if err := s.ensureIndex(); err != nil {
		return 0, 0, err
	}
	start, want := s.indexFloor(target)
	pos = start
	for pos < limit {
		h, err := s.readHeader(pos, limit)
		if err != nil {
			if pos == start && want >= 0 && errors.Is(err, ErrCorruptBatch) {
				// No batch where the index points.
				return 0, 0, &CorruptionError{Segment: s.path(indexSuffix), Pos: pos,
					Err: fmt.Errorf("entry for offset %d: %w: %w", want, errBadIndex, err)}
			}
			return 0, 0, err
		}
		if pos == start && want >= 0 && h.BaseOffset != want {
			return 0, 0, &CorruptionError{Segment: s.path(indexSuffix), Pos: pos,
				Err: fmt.Errorf("entry for offset %d finds batch %d: %w", want, h.BaseOffset, errBadIndex)}
		}
		if h.LastOffset() >= target {
			return pos, h.Size(), nil
		}
		pos += h.Size()
	}
	return limit, 0, nil
}

// rebuildLoadedIndex throws away an index that was read from files and
// rebuilds it from the log. It reports whether it did; indexes built in
// memory by appends or recovery are never replaced.
func (s *segment) rebuildLoadedIndex() bool {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if !s.idx.fromFile {
		return false
	}
	_, size := s.end()
	offs, times, err := s.rebuildIndex(size)
	if err != nil {
		return false
	}
	s.idx.setLocked(s.base, offs, times)
	s.idx.fromFile = false
	return true
}

// indexFloor returns the position and base offset of the last indexed
// batch based at or below target, or (0, -1).
func (s *segment) indexFloor(target int64) (pos, base int64) {
	rel := target - s.base
	if rel <= 0 {
		return 0, -1
	}
	if rel > 0xffffffff {
		rel = 0xffffffff
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	offs := s.idx.offsets
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i].rel) > rel })
	if i == 0 {
		return 0, -1
	}
	return int64(offs[i-1].pos), s.base + int64(offs[i-1].rel)
}

// timeFloor returns the base offset of the batch named by the last time
// index entry with a timestamp below ts, or the segment's base.
func (s *segment) timeFloor(ts int64) int64 {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	times := s.idx.times
	i := sort.Search(len(times), func(i int) bool { return times[i].ts >= ts })
	if i == 0 {
		return s.base
	}
	return s.base + int64(times[i-1].rel)
}

// addBatchLocked records an appended (or recovered) batch in the in-memory
// indexes. pos is the batch's position. Called with Log.mu held (or during
// Open), and takes idx.mu for the readers' sake.
func (s *segment) addBatchLocked(h *record.Header, pos int64, interval int32) {
	index := pos > 0 && s.sinceIndex >= int64(interval)
	newMax := h.MaxTimestamp > s.idx.maxTs || s.idx.maxTsOffset < 0
	if index || newMax {
		s.idx.mu.Lock()
		if newMax {
			s.idx.maxTs, s.idx.maxTsOffset = h.MaxTimestamp, h.BaseOffset
		}
		if index {
			rel := uint32(h.BaseOffset - s.base)
			s.idx.offsets = append(s.idx.offsets, offsetEntry{rel: rel, pos: uint32(pos)})
			if n := len(s.idx.times); n == 0 || s.idx.maxTs > s.idx.times[n-1].ts {
				s.idx.times = append(s.idx.times, timeEntry{ts: s.idx.maxTs, rel: uint32(s.idx.maxTsOffset - s.base)})
			}
		}
		s.idx.mu.Unlock()
	}
	if index {
		s.sinceIndex = 0
	}
	s.sinceIndex += h.Size()
}

// sealTimeIndex adds a final time index entry for the segment's largest
// timestamp, so that the last entry of a closed segment's time index is
// its max timestamp.
func (s *segment) sealTimeIndex() {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.maxTsOffset < 0 {
		return
	}
	if n := len(s.idx.times); n == 0 || s.idx.maxTs > s.idx.times[n-1].ts {
		s.idx.times = append(s.idx.times, timeEntry{ts: s.idx.maxTs, rel: uint32(s.idx.maxTsOffset - s.base)})
	}
}

// maxTimestamp returns the segment's largest batch timestamp and the base
// offset of the batch holding it, loading the index if needed.
func (s *segment) maxTimestamp() (ts, offset int64, err error) {
	if err := s.ensureIndex(); err != nil {
		return -1, -1, err
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return s.idx.maxTs, s.idx.maxTsOffset, nil
}

// ensureIndex loads a trusted segment's index files on first use. If they
// are missing or implausible it rebuilds the index by scanning the
// segment's batch headers (the .log is trusted; the files are rewritten at
// the next open that finds them bad, never served from while wrong).
func (s *segment) ensureIndex() error {
	s.idx.mu.RLock()
	loaded := s.idx.loaded
	s.idx.mu.RUnlock()
	if loaded {
		return nil
	}
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.loaded {
		return nil
	}
	nextOffset, size := s.end()
	offs, times, err := s.readIndexFiles(nextOffset, size)
	if err == nil && size > 0 && len(times) == 0 {
		err = errors.New("empty time index for a non-empty segment")
	}
	fromFile := err == nil
	if !fromFile {
		if offs, times, err = s.rebuildIndex(size); err != nil {
			return err
		}
	}
	s.idx.setLocked(s.base, offs, times)
	s.idx.fromFile = fromFile
	s.idx.loaded = true
	return nil
}

// unloadIndex forgets the in-memory index of a segment that no longer
// takes appends and whose index files are written; it is loaded again
// from the files on next use.
func (s *segment) unloadIndex() {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	s.idx.loaded, s.idx.fromFile = false, false
	s.idx.offsets, s.idx.times = nil, nil
}

// setLocked installs entries and derives the max timestamp from the last
// time index entry.
func (x *segIndex) setLocked(base int64, offs []offsetEntry, times []timeEntry) {
	x.offsets, x.times = offs, times
	x.maxTs, x.maxTsOffset = -1, -1
	if n := len(times); n > 0 {
		x.maxTs, x.maxTsOffset = times[n-1].ts, base+int64(times[n-1].rel)
	}
}

// readIndexFiles reads and checks the .index and .timeindex files: entry
// sizes, strictly increasing offsets, positions and timestamps, and every
// entry inside the segment.
func (s *segment) readIndexFiles(nextOffset, size int64) ([]offsetEntry, []timeEntry, error) {
	ib, err := vfs.ReadFile(s.fs, s.path(indexSuffix))
	if err != nil {
		return nil, nil, err
	}
	tb, err := vfs.ReadFile(s.fs, s.path(timeIndexSuffix))
	if err != nil {
		return nil, nil, err
	}
	if len(ib)%offsetEntrySize != 0 || len(tb)%timeEntrySize != 0 {
		return nil, nil, fmt.Errorf("index sizes %d and %d are not whole entries", len(ib), len(tb))
	}
	maxRel := nextOffset - s.base
	offs := make([]offsetEntry, 0, len(ib)/offsetEntrySize)
	for b := ib; len(b) > 0; b = b[offsetEntrySize:] {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
		if int64(e.rel) >= maxRel || int64(e.pos) >= size || e.pos == 0 {
			return nil, nil, fmt.Errorf("offset index entry %+v outside segment", e)
		}
		if n := len(offs); n > 0 && (e.rel <= offs[n-1].rel || e.pos <= offs[n-1].pos) {
			return nil, nil, fmt.Errorf("offset index entry %+v after %+v", e, offs[n-1])
		}
		offs = append(offs, e)
	}
	times := make([]timeEntry, 0, len(tb)/timeEntrySize)
	for b := tb; len(b) > 0; b = b[timeEntrySize:] {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b)), rel: binary.BigEndian.Uint32(b[8:])}
		if int64(e.rel) >= maxRel {
			return nil, nil, fmt.Errorf("time index entry %+v outside segment", e)
		}
		if n := len(times); n > 0 && e.ts <= times[n-1].ts {
			return nil, nil, fmt.Errorf("time index entry %+v after %+v", e, times[n-1])
		}
		times = append(times, e)
	}
	return offs, times, nil
}

// rebuildIndex scans the batch headers of the segment's first size bytes.
func (s *segment) rebuildIndex(size int64) ([]offsetEntry, []timeEntry, error) {
	var (
		offs     []offsetEntry
		times    []timeEntry
		since    int64
		maxTs    int64 = -1
		maxTsOff int64 = -1
		interval       = int64(DefaultIndexIntervalBytes)
		pos      int64
	)
	for pos < size {
		h, err := s.readHeader(pos, size)
		if err != nil {
			return nil, nil, fmt.Errorf("rebuild index: %w", err)
		}
		if h.MaxTimestamp > maxTs || maxTsOff < 0 {
			maxTs, maxTsOff = h.MaxTimestamp, h.BaseOffset
		}
		if pos > 0 && since >= interval {
			offs = append(offs, offsetEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
			if n := len(times); n == 0 || maxTs > times[n-1].ts {
				times = append(times, timeEntry{ts: maxTs, rel: uint32(maxTsOff - s.base)})
			}
			since = 0
		}
		since += h.Size()
		pos += h.Size()
	}
	if n := len(times); maxTsOff >= 0 && (n == 0 || maxTs > times[n-1].ts) {
		times = append(times, timeEntry{ts: maxTs, rel: uint32(maxTsOff - s.base)})
	}
	return offs, times, nil
}

// encodeIndexes returns the .index and .timeindex file contents.
func (s *segment) encodeIndexes() (offs, times []byte) {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	offs = make([]byte, 0, len(s.idx.offsets)*offsetEntrySize)
	for _, e := range s.idx.offsets {
		offs = binary.BigEndian.AppendUint32(offs, e.rel)
		offs = binary.BigEndian.AppendUint32(offs, e.pos)
	}
	times = make([]byte, 0, len(s.idx.times)*timeEntrySize)
	for _, e := range s.idx.times {
		times = binary.BigEndian.AppendUint64(times, uint64(e.ts))
		times = binary.BigEndian.AppendUint32(times, e.rel)
	}
	return offs, times
}

// readFull reads len(p) bytes at off, treating a short read as an error.
func readFull(f vfs.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
