package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

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

	// logger reports index files that fail their checks and damage found
	// in the log. Set by Open for the segments it finds, before they are
	// published; nil (nothing logged) for segments created since, whose
	// files this process wrote.
	logger *zap.Logger

	// Writer state, guarded by Log.mu.
	sinceIndex int64 // bytes appended since the last offset index entry
	rollBase   int64 // unix ms the segment's age is measured from; 0 = unknown
	// firstTs is the max timestamp of the segment's first batch, -1 when
	// it has none (old-format records) or the segment is empty: an append
	// whose records are segment.ms newer than it rolls (Kafka's
	// rollingBasedTimestamp); without it, rollBase's wall-clock age does.
	firstTs  int64
	prealloc int64 // file blocks are reserved up to here (prealloc.go); 0 = none

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
	gone     bool // the segment's files are renamed for deletion: write none
	fromFile bool // entries came from index files, not from the log
	// maxKnown says maxTs and maxTsOffset hold even while the entries are
	// not loaded (they were kept when the index was unloaded).
	maxKnown bool
	// wantEnd is set by Open for a trusted segment whose batches must run
	// up to the next segment's base (no cleaner gap is allowed there); the
	// first load of the index warns if they stop short.
	wantEnd bool
	// damage is where a rebuild from the log found the segment to stop
	// holding whole batches; nil when it found none. Reads stop there.
	// Stored with mu held; read without it on the fetch path.
	damage  atomic.Pointer[segmentDamage]
	offsets []offsetEntry
	times   []timeEntry
	// maxTs is the largest batch max timestamp in the segment, and
	// maxTsOffset the base offset of the first batch holding it; -1 when
	// the segment is empty.
	maxTs       int64
	maxTsOffset int64
}

func newSegment(fsys vfs.FS, dir string, base int64, f vfs.File, nextRel uint32, size uint32, loaded bool) *segment {
	s := &segment{base: base, fs: fsys, dir: dir, log: f, firstTs: -1}
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

// readHeader reads and parses the batch header at pos; limit is the end of
// complete data. It returns io.ErrUnexpectedEOF wrapped as corruption when
// the batch does not fit below limit.
func (s *segment) readHeader(pos, limit int64) (record.Header, error) {
	c := s.headerCursor()
	defer c.close()
	return c.header(pos, limit)
}

// headerReadAhead is how much of the log a headerCursor reads at a time
// once batches are small: twice the default index interval, so that
// stepping from an index entry to the batch a fetch wants is one read
// however small the batches.
const headerReadAhead = 2 * DefaultIndexIntervalBytes

// Read buffers of the header walks: one header, or a window.
var (
	hdrPool   = sync.Pool{New: func() any { return new([record.HeaderSize]byte) }}
	aheadPool = sync.Pool{New: func() any { return new([headerReadAhead]byte) }}
)

// headerCursor reads a segment's batch headers walking forward. It reads
// one header at a time until it meets a small batch (at most an eighth of
// headerReadAhead), and from then on, while batches stay small, windows of
// up to headerReadAhead bytes: a walk over small batches (one record each,
// say, from a producer that does not linger) costs one read per few KiB
// instead of one per batch, and one over large batches reads no more than
// it needs. Not safe for concurrent use; close returns its buffers.
type headerCursor struct {
	s      *segment
	hdr    *[record.HeaderSize]byte // from hdrPool, when first needed
	window *[headerReadAhead]byte   // from aheadPool, when first needed
	win    []byte                   // file bytes [start, start+len(win))
	start  int64
	ahead  bool // the last batch was small: read a window, not a header
}

func (s *segment) headerCursor() headerCursor { return headerCursor{s: s} }

func (c *headerCursor) close() {
	if c.hdr != nil {
		hdrPool.Put(c.hdr)
	}
	if c.window != nil {
		aheadPool.Put(c.window)
	}
	*c = headerCursor{}
}

// header reads and parses the batch header at pos; limit is the end of
// complete data (see readHeader).
func (c *headerCursor) header(pos, limit int64) (record.Header, error) {
	if limit-pos < record.HeaderSize {
		return record.Header{}, &CorruptionError{Segment: c.s.path(logSuffix), Pos: pos, Err: fmt.Errorf("%d bytes left for a batch header: %w", limit-pos, record.ErrShort)}
	}
	if pos < c.start || pos+record.HeaderSize > c.start+int64(len(c.win)) {
		if c.ahead {
			if c.window == nil {
				c.window = aheadPool.Get().(*[headerReadAhead]byte)
			}
			c.win = c.window[:min(headerReadAhead, limit-pos)]
		} else {
			if c.hdr == nil {
				c.hdr = hdrPool.Get().(*[record.HeaderSize]byte)
			}
			c.win = c.hdr[:]
		}
		c.start = pos
		if err := readFull(c.s.log, c.win, pos); err != nil {
			c.win = nil
			return record.Header{}, fmt.Errorf("read batch header at %s:%d: %w", c.s.path(logSuffix), pos, err)
		}
	}
	h, err := record.ParseHeader(c.win[pos-c.start:])
	if err != nil {
		return h, &CorruptionError{Segment: c.s.path(logSuffix), Pos: pos, Err: err}
	}
	if pos+h.Size() > limit {
		return h, &CorruptionError{Segment: c.s.path(logSuffix), Pos: pos, Err: fmt.Errorf("batch of %d bytes with %d left: %w", h.Size(), limit-pos, record.ErrShort)}
	}
	c.ahead = h.Size() <= headerReadAhead/8
	return h, nil
}

// CorruptionError says where a segment holds bytes that are not a valid
// batch. Recovery truncates the tail segments at Pos; a segment below the
// recovery point is never truncated, and is served up to Pos.
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
// a file that turns out wrong, or that leads to a bad batch, is rebuilt
// from the log and the lookup retried. In a damaged segment (see
// segmentDamage) a target that no whole batch before the damage holds is
// a CorruptionError.
func (s *segment) lookup(target, limit int64) (pos, size int64, err error) {
	pos, size, err = s.lookupOnce(target, limit)
	if errors.Is(err, ErrCorruptBatch) && s.rebuildLoadedIndex(err) {
		pos, size, err = s.lookupOnce(target, limit)
	}
	return pos, size, err
}

func (s *segment) lookupOnce(target, limit int64) (pos, size int64, err error) {
	if err := s.ensureIndex(); err != nil {
		return 0, 0, err
	}
	damage := s.damaged()
	if damage != nil && damage.cause.Pos < limit {
		limit = damage.cause.Pos
	} else {
		damage = nil
	}
	start, want, upto := s.indexFloor(target)
	pos = start
	c := s.headerCursor()
	defer c.close()
	// Where the next index entry (or the data) ends is near: the batch
	// wanted starts within one window.
	if upto < 0 || upto > limit {
		upto = limit
	}
	c.ahead = upto-start <= headerReadAhead
	for pos < limit {
		h, err := c.header(pos, limit)
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
	if damage != nil {
		return 0, 0, damage.errFor(target)
	}
	return limit, 0, nil
}

// rebuildLoadedIndex throws away an index that was read from files, after
// a lookup through it failed with reason, and rebuilds it from the log. It
// reports whether it did; indexes built in memory by appends, recovery or
// an earlier rebuild are never replaced.
func (s *segment) rebuildLoadedIndex(reason error) bool {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if !s.idx.fromFile {
		return false
	}
	next, size := s.end()
	s.logw().Warn("a lookup through the segment's index files found a bad batch; rebuilding the index from the log",
		zap.String("segment", s.path(logSuffix)), zap.Error(reason))
	return s.rebuildLocked(next, size) == nil
}

// segmentDamage describes a segment whose log stops holding whole batches
// at some byte: what is before it is served, offsets from the first one
// after the last whole batch to the segment's end are not (CORRUPT_MESSAGE
// for a fetch). Only segments below the recovery point, which are never
// verified at open, can be found damaged: nothing there is truncated or
// deleted automatically, so the damage stays visible to the operator.
type segmentDamage struct {
	cause *CorruptionError // the segment's .log and the first bad byte
	from  int64            // first offset that cannot be served
	to    int64            // the segment's end offset (exclusive)
}

// errFor is the error a read of offset in the damaged range returns.
func (d *segmentDamage) errFor(offset int64) error {
	return &CorruptionError{Segment: d.cause.Segment, Pos: d.cause.Pos,
		Err: fmt.Errorf("offset %d is in [%d, %d], which the damaged segment cannot serve: %w", offset, d.from, d.to-1, d.cause.Err)}
}

// damaged returns the damage a rebuild found in the segment, or nil.
func (s *segment) damaged() *segmentDamage {
	return s.idx.damage.Load()
}

// logw returns the segment's logger (a no-op one when it has none).
func (s *segment) logw() *zap.Logger {
	if s.logger == nil {
		return zap.NewNop()
	}
	return s.logger
}

// indexFloor returns the position and base offset of the last indexed
// batch based at or below target, or (0, -1), and the position of the
// index entry after it (-1 if there is none): the batch holding target
// starts before that.
func (s *segment) indexFloor(target int64) (pos, base, nextPos int64) {
	rel := target - s.base
	if rel > 0xffffffff {
		rel = 0xffffffff
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	offs := s.idx.offsets
	i := 0
	if rel > 0 {
		i = sort.Search(len(offs), func(i int) bool { return int64(offs[i].rel) > rel })
	}
	nextPos = -1
	if i < len(offs) {
		nextPos = int64(offs[i].pos)
	}
	if i == 0 {
		return 0, -1, nextPos
	}
	return int64(offs[i-1].pos), s.base + int64(offs[i-1].rel), nextPos
}

// indexedStartIn returns the position (and base offset) of the last batch start the offset
// index holds in [from, to], or -1 if it holds none there (or is not
// loaded).
func (s *segment) indexedStartIn(from, to int64) (pos, offset int64) {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	offs := s.idx.offsets
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i].pos) > to })
	if i == 0 || int64(offs[i-1].pos) < from {
		return -1, -1
	}
	return int64(offs[i-1].pos), s.base + int64(offs[i-1].rel)
}

// indexedOffsetFrom returns the base offset of the first batch the offset
// index knows at or after position pos, or -1: an upper bound on the
// offsets of the records before pos (Kafka's fetchUpperBoundOffset).
func (s *segment) indexedOffsetFrom(pos int64) int64 {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	offs := s.idx.offsets
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i].pos) >= pos })
	if i == len(offs) {
		return -1
	}
	return s.base + int64(offs[i].rel)
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
// offset of the batch holding it, loading the index if needed (a segment
// whose index was unloaded knows them without).
func (s *segment) maxTimestamp() (ts, offset int64, err error) {
	s.idx.mu.RLock()
	if s.idx.loaded || s.idx.maxKnown {
		ts, offset = s.idx.maxTs, s.idx.maxTsOffset
		s.idx.mu.RUnlock()
		return ts, offset, nil
	}
	s.idx.mu.RUnlock()
	if err := s.ensureIndex(); err != nil {
		return -1, -1, err
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return s.idx.maxTs, s.idx.maxTsOffset, nil
}

// ensureIndex loads a trusted segment's index files on first use and
// checks them: every entry (readIndexFiles), and the last entries against
// the log (checkIndex). If they are missing or fail, it logs why and
// rebuilds the index by scanning the segment's batch headers (the .log is
// the source of truth) and, when the segment is whole, writes the files
// again from it (rebuildLocked).
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
	if s.idx.gone {
		// Renamed for deletion (retention, or replaced by the cleaner),
		// and still read by a fetch that held it: its index files are
		// gone, or by now another segment's under the same name. The
		// index is built from its open log file, and no file is written.
		return s.rebuildLocked(nextOffset, size)
	}
	offs, times, err := s.readIndexFiles(nextOffset, size)
	end := int64(-1)
	if err == nil {
		end, err = s.checkIndex(offs, times, nextOffset, size)
	}
	if err == nil {
		s.idx.setLocked(s.base, offs, times)
		s.idx.fromFile = true
		s.idx.loaded = true
		s.checkEndLocked(end, nextOffset)
		return nil
	}
	msg := "segment index files fail their checks; rebuilding the index from the log"
	if vfs.IsOutOfFiles(err) {
		// The files may be fine; the log file is open, so the index
		// can still be rebuilt from it and reads served.
		msg = "out of file descriptors to read the segment index files; rebuilding the index from the log (raise ulimit -n)"
	}
	s.logw().Warn(msg, zap.String("segment", s.path(logSuffix)), zap.Error(err))
	return s.rebuildLocked(nextOffset, size)
}

// checkEndLocked warns, once, if a segment that Open expected to run up
// to the next segment's base (segIndex.wantEnd) ends at offset end before
// it.
func (s *segment) checkEndLocked(end, next int64) {
	if !s.idx.wantEnd || end < 0 || end >= next {
		return
	}
	s.idx.wantEnd = false
	s.logw().Warn("offsets missing after a segment: a segment file was probably deleted; consumers skip them",
		zap.String("segment", s.path(logSuffix)), zap.Int64("missing_base_offset", end),
		zap.Int64("first_lost_offset", end), zap.Int64("last_lost_offset", next-1))
}

// rebuildLocked installs an index rebuilt from the segment's first size
// bytes (ending at offset next), recording and logging any damage found.
// On error (an I/O error) the index is left as it was.
func (s *segment) rebuildLocked(next, size int64) error {
	offs, times, end, damage, err := s.scanIndex(size, next)
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	s.idx.setLocked(s.base, offs, times)
	s.idx.fromFile = false
	s.idx.loaded = true
	if damage == nil {
		s.checkEndLocked(end, next)
		// Replace the files that failed, so the next open trusts them
		// instead of rebuilding (and warning) again. Written whole and
		// fsynced; if they cannot be written the index in memory serves
		// and the next open rebuilds again.
		// Not for a segment deleted or replaced by the cleaner meanwhile:
		// its names may belong to another segment now.
		if !s.idx.gone {
			if err := s.writeIndexFilesLocked(); err != nil {
				s.logw().Warn("could not write the rebuilt index files; they will be rebuilt again at the next start",
					zap.String("segment", s.path(logSuffix)), zap.Error(err))
			}
		}
	}
	if prev := s.idx.damage.Load(); damage != nil && (prev == nil || prev.cause.Pos != damage.cause.Pos) {
		s.logw().Error("segment is damaged: serving its batches before the damage; the rest cannot be read",
			zap.String("segment", damage.cause.Segment), zap.Int64("position", damage.cause.Pos),
			zap.Int64("first_unreadable_offset", damage.from), zap.Int64("last_unreadable_offset", damage.to-1),
			zap.Error(damage.cause.Err))
	}
	s.idx.damage.Store(damage)
	return nil
}

// unloadIndex forgets the in-memory index of a segment that no longer
// takes appends and whose index files are written; it is loaded again
// from the files on next use. The max timestamp stays known.
func (s *segment) unloadIndex() {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.loaded {
		s.idx.maxKnown = true
	}
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
	x.maxKnown = true
}

// readIndexFiles reads and checks the .index and .timeindex files: whole
// entries; offsets and positions strictly increasing, timestamps and
// their offsets too; every entry inside the segment (offsets below
// nextOffset, positions inside its size bytes, never position 0); a time
// index for a non-empty segment.
func (s *segment) readIndexFiles(nextOffset, size int64) ([]offsetEntry, []timeEntry, error) {
	ib, err := vfs.ReadFile(s.fs, s.path(indexSuffix))
	if err != nil {
		return nil, nil, err
	}
	tb, err := vfs.ReadFile(s.fs, s.path(timeIndexSuffix))
	if err != nil {
		return nil, nil, err
	}
	if len(ib)%offsetEntrySize != 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes are not whole entries", s.path(indexSuffix), len(ib))
	}
	if len(tb)%timeEntrySize != 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes are not whole entries", s.path(timeIndexSuffix), len(tb))
	}
	if size > 0 && len(tb) == 0 {
		return nil, nil, fmt.Errorf("%s: empty for a segment of %d bytes", s.path(timeIndexSuffix), size)
	}
	maxRel := nextOffset - s.base
	offs := make([]offsetEntry, 0, len(ib)/offsetEntrySize)
	for b := ib; len(b) > 0; b = b[offsetEntrySize:] {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
		if int64(e.rel) >= maxRel || int64(e.pos) >= size || e.pos == 0 {
			return nil, nil, fmt.Errorf("%s: entry %d (offset +%d at byte %d) outside the segment", s.path(indexSuffix), len(offs), e.rel, e.pos)
		}
		if n := len(offs); n > 0 && (e.rel <= offs[n-1].rel || e.pos <= offs[n-1].pos) {
			return nil, nil, fmt.Errorf("%s: entry %d (offset +%d at byte %d) after (offset +%d at byte %d)", s.path(indexSuffix), n, e.rel, e.pos, offs[n-1].rel, offs[n-1].pos)
		}
		offs = append(offs, e)
	}
	times := make([]timeEntry, 0, len(tb)/timeEntrySize)
	for b := tb; len(b) > 0; b = b[timeEntrySize:] {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b)), rel: binary.BigEndian.Uint32(b[8:])}
		if int64(e.rel) >= maxRel {
			return nil, nil, fmt.Errorf("%s: entry %d (offset +%d) outside the segment", s.path(timeIndexSuffix), len(times), e.rel)
		}
		if n := len(times); n > 0 && (e.ts <= times[n-1].ts || e.rel <= times[n-1].rel) {
			return nil, nil, fmt.Errorf("%s: entry %d (%d at offset +%d) after (%d at offset +%d)", s.path(timeIndexSuffix), n, e.ts, e.rel, times[n-1].ts, times[n-1].rel)
		}
		times = append(times, e)
	}
	return offs, times, nil
}

// rebuildIndex scans the batch headers of the segment's first size bytes
// and fails if they do not all hold whole batches.
func (s *segment) rebuildIndex(size int64) ([]offsetEntry, []timeEntry, error) {
	offs, times, _, damage, err := s.scanIndex(size, math.MaxInt64)
	if err == nil && damage != nil {
		err = damage.cause
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rebuild index: %w", err)
	}
	return offs, times, nil
}

// scanIndex builds the index of the segment's first size bytes, whose
// offsets end before next, from its batch headers. It stops at the first
// bytes that are not a whole batch with offsets above the previous
// batch's and below next, and returns the index of the batches before it,
// the offset after the last of them (-1 if there is none) and the damage;
// err is an I/O error.
func (s *segment) scanIndex(size, next int64) (offs []offsetEntry, times []timeEntry, end int64, damage *segmentDamage, err error) {
	var (
		since    int64
		maxTs    int64 = -1
		maxTsOff int64 = -1
		interval       = int64(DefaultIndexIntervalBytes)
		pos      int64
		want     = s.base // offsets below it are taken
	)
	c := s.headerCursor()
	defer c.close()
	for pos < size {
		h, err := c.header(pos, size)
		if err == nil && (h.BaseOffset < want || h.LastOffsetDelta < 0 || h.LastOffset() >= next || h.LastOffset()-s.base > math.MaxUint32) {
			err = &CorruptionError{Segment: s.path(logSuffix), Pos: pos,
				Err: fmt.Errorf("batch holds offsets [%d, %d], expected within [%d, %d): %w", h.BaseOffset, h.LastOffset(), want, next, record.ErrCorrupt)}
		}
		var cerr *CorruptionError
		if errors.As(err, &cerr) {
			damage = &segmentDamage{cause: cerr, from: want, to: next}
			if next == math.MaxInt64 {
				damage.to, _ = s.end()
			}
			break
		}
		if err != nil {
			return nil, nil, -1, nil, err
		}
		want = h.LastOffset() + 1
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
	end = -1
	if pos > 0 {
		end = want
	}
	return offs, times, end, damage, nil
}

// checkIndex checks index entries read from a segment's files against its
// log, cheaply: the last offset index entry must name a batch boundary
// with the offset it gives; the batches from there to the end of the
// segment must be whole, with ascending offsets below next; and the last
// time index entry must give the largest timestamp of those batches and
// exactly the max timestamp of the batch holding its offset (found from
// the offset index entry at or below it). It reads the headers from the
// last offset index entry to the end (index.interval.bytes and a batch or
// two) and, when the time index names an earlier batch, from the entry
// before that batch, checkTailWindow bytes at a time and at most
// checkMaxReads times. It returns the offset after the segment's last
// batch (-1 when it is empty).
//
// A time index cut short by whole entries, or with its last entry zeroed,
// passes readIndexFiles; this is what catches it, before its last entry
// (the segment's max timestamp) feeds retention.ms or ListOffsets.
func (s *segment) checkIndex(offs []offsetEntry, times []timeEntry, next, size int64) (end int64, err error) {
	if size == 0 {
		return -1, nil
	}
	last := times[len(times)-1] // readIndexFiles: not empty for a non-empty segment
	maxTs, maxTsOff := last.ts, s.base+int64(last.rel)
	pos, want := int64(0), int64(-1)
	if n := len(offs); n > 0 {
		pos, want = int64(offs[n-1].pos), s.base+int64(offs[n-1].rel)
	}
	// Where to look for the batch the time index names if it is not in
	// the tail: from the offset index entry at or below it. The first
	// read starts there when that is close enough for one read to cover
	// both.
	i := sort.Search(len(offs), func(i int) bool { return offs[i].rel > last.rel })
	from := int64(0)
	if i > 0 {
		from = int64(offs[i-1].pos)
	}
	w := headerWindow{s: s, size: size, buf: windowPool.Get().(*[checkTailWindow]byte)[:]}
	defer windowPool.Put((*[checkTailWindow]byte)(w.buf))
	if from < pos && size-from <= checkTailWindow {
		if err := w.fill(from); err != nil {
			return -1, err
		}
	}
	var (
		tailMax   int64 = -1
		tailMaxAt int64
		named     *record.Header // the batch holding maxTsOff
		prevEnd   = s.base
	)
	for first := true; pos < size; first = false {
		h, err := w.header(pos)
		if err != nil && first && want >= 0 {
			return -1, fmt.Errorf("%s: last entry (offset %d at byte %d) names no batch: %w", s.path(indexSuffix), want, pos, err)
		}
		if err != nil {
			return -1, err
		}
		if first && want >= 0 && h.BaseOffset != want {
			return -1, fmt.Errorf("%s: last entry names offset %d at byte %d, the batch there starts at offset %d", s.path(indexSuffix), want, pos, h.BaseOffset)
		}
		if h.BaseOffset < prevEnd || h.LastOffsetDelta < 0 || h.LastOffset() >= next {
			return -1, fmt.Errorf("%s: batch at byte %d holds offsets [%d, %d], expected within [%d, %d)", s.path(logSuffix), pos, h.BaseOffset, h.LastOffset(), prevEnd, next)
		}
		if h.MaxTimestamp > tailMax {
			tailMax, tailMaxAt = h.MaxTimestamp, h.BaseOffset
		}
		if h.BaseOffset <= maxTsOff && maxTsOff <= h.LastOffset() {
			named = &h
		}
		prevEnd = h.LastOffset() + 1
		pos += h.Size()
	}
	if maxTs < tailMax {
		return -1, fmt.Errorf("%s: last entry has timestamp %d, the batch at offset %d has %d: entries are missing", s.path(timeIndexSuffix), maxTs, tailMaxAt, tailMax)
	}
	if named == nil {
		// The largest timestamp is in an earlier batch.
		if named, err = w.find(from, maxTsOff); err != nil {
			return -1, fmt.Errorf("%s: last entry names offset %d: %w", s.path(timeIndexSuffix), maxTsOff, err)
		}
	}
	if named.MaxTimestamp != maxTs {
		return -1, fmt.Errorf("%s: last entry has timestamp %d, the batch holding offset %d has %d", s.path(timeIndexSuffix), maxTs, maxTsOff, named.MaxTimestamp)
	}
	return prevEnd, nil
}

// checkTailWindow is how much of the log checkIndex reads at a time;
// checkMaxReads bounds its reads per segment, so that an offset index
// missing most of its entries costs a rebuild rather than a long check.
const (
	checkTailWindow = 64 << 10
	checkMaxReads   = 32
)

// windowPool holds headerWindow buffers.
var windowPool = sync.Pool{New: func() any { return new([checkTailWindow]byte) }}

// headerWindow reads a segment's batch headers forward, up to
// checkTailWindow bytes at a time, at most checkMaxReads times.
type headerWindow struct {
	s     *segment
	size  int64
	buf   []byte
	win   []byte // file bytes [start, start+len(win))
	start int64
	reads int
}

// header returns the header of the batch at pos, which must lie whole
// within the segment.
func (w *headerWindow) header(pos int64) (record.Header, error) {
	if w.size-pos < record.HeaderSize {
		return record.Header{}, fmt.Errorf("%s: %d bytes at byte %d, too few for a batch header", w.s.path(logSuffix), w.size-pos, pos)
	}
	if pos < w.start || pos+record.HeaderSize > w.start+int64(len(w.win)) {
		if err := w.fill(pos); err != nil {
			return record.Header{}, err
		}
	}
	h, err := record.ParseHeader(w.win[pos-w.start:])
	if err != nil {
		return h, fmt.Errorf("%s: batch header at byte %d: %w", w.s.path(logSuffix), pos, err)
	}
	if pos+h.Size() > w.size {
		return h, fmt.Errorf("%s: batch of %d bytes at byte %d runs past the end (%d bytes)", w.s.path(logSuffix), h.Size(), pos, w.size)
	}
	return h, nil
}

// fill reads the window from pos.
func (w *headerWindow) fill(pos int64) error {
	if w.reads == checkMaxReads {
		return fmt.Errorf("%s: more than %d reads to reach byte %d from an index entry: the offset index is missing entries", w.s.path(logSuffix), checkMaxReads, pos)
	}
	w.reads++
	w.win, w.start = w.buf[:min(int64(len(w.buf)), w.size-pos)], pos
	if err := readFull(w.s.log, w.win, pos); err != nil {
		return fmt.Errorf("read %s at %d: %w", w.s.path(logSuffix), pos, err)
	}
	return nil
}

// find returns the header of the batch holding offset, reading headers
// from pos.
func (w *headerWindow) find(pos, offset int64) (*record.Header, error) {
	for pos < w.size {
		h, err := w.header(pos)
		if err != nil {
			return nil, err
		}
		if h.BaseOffset > offset {
			break
		}
		if h.LastOffset() >= offset {
			return &h, nil
		}
		pos += h.Size()
	}
	return nil, fmt.Errorf("%s: no batch holds offset %d", w.s.path(logSuffix), offset)
}

// encodeIndexes returns the .index and .timeindex file contents.
func (s *segment) encodeIndexes() (offs, times []byte) {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return s.encodeIndexesLocked()
}

// encodeIndexesLocked is encodeIndexes with s.idx.mu held.
func (s *segment) encodeIndexesLocked() (offs, times []byte) {
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
