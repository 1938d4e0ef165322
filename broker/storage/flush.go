package storage

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/vfs"
)

// snapshotsKept is how many producer snapshots stay on disk; an older one
// is the fallback when a power loss cost the log the newest one's offset.
const snapshotsKept = 2

// Flush makes everything appended so far durable: it fsyncs the segments
// appended to since the last flush, writes and fsyncs the index files of
// segments that are no longer active, syncs the directory if segments were
// created, writes a producer snapshot when the active segment has none yet,
// and then moves the recovery point to the log end offset (in memory; the
// file follows as checkpointDue says).
//
// The log's lock is held only to take a consistent picture, so appends
// continue while the fsyncs run. A failed fsync is sticky: the write side
// fails with ErrStorage from then on and Flush is never retried on the same
// data. A full disk while writing an index file, the producer snapshot or
// the recovery point is not: those files are written whole or not at all,
// so the flush fails with ErrStorage and stays due, and the next one
// writes them again.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	return l.flushLocked(false)
}

// UnflushedSince returns when the oldest append not yet durable was made
// (not yet fsynced, or being fsynced now), or the zero time when
// everything is flushed.
func (l *Log) UnflushedSince() time.Time {
	first := l.flushingSince.Load() // older than any append since
	if first == 0 {
		first = l.firstUnflushed.Load()
	}
	if first != 0 {
		return time.Unix(0, first)
	}
	return time.Time{}
}

// FlushIfDue flushes when the oldest unflushed append is older than
// flush.ms. It is cheap when nothing is due.
func (l *Log) FlushIfDue() error {
	if !l.flushDueAt(l.now()) {
		return nil
	}
	return l.Flush()
}

// flushDueAt reports whether the oldest unflushed append is older than
// flush.ms at now.
func (l *Log) flushDueAt(now time.Time) bool {
	first := l.firstUnflushed.Load()
	return first != 0 && flushDue(first, now, l.cfg.Load())
}

// flushDue reports whether unflushed data first appended at first (Unix
// nanoseconds) is due for an fsync at now under cfg's flush.ms. It
// compares milliseconds: flush.ms may be as large as Kafka's default,
// Long.MAX_VALUE, which overflows when turned into nanoseconds.
func flushDue(first int64, now time.Time, cfg *Config) bool {
	return (now.UnixNano()-first)/int64(time.Millisecond) >= cfg.FlushMs
}

// flushLocked is Flush with flushMu held. With closing it also writes the
// active segment's index files and a producer snapshot, so the directory is
// complete after a clean shutdown.
func (l *Log) flushLocked(closing bool) error {
	l.mu.Lock()
	if err := l.writeErrLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	active := l.activeLocked()
	rel, size := unpackTail(active.tail.Load())
	rp := recoveryPoint{Offset: active.base + int64(rel), SegmentBase: active.base, Position: int64(size)}
	dirSync := l.mu.dirDirty
	if closing && l.pristineLocked(rp) {
		// Nothing was ever written to this log (a new partition): there
		// is nothing a crash could lose, since an open that finds its
		// directory without its files starts it empty again. Syncing
		// its empty segment and writing its index files, producer
		// snapshot and recovery point cost about ten fsyncs a partition
		// at every close of a broker with new partitions.
		l.mu.unflushed = nil
		l.firstUnflushed.Store(0)
		l.mu.Unlock()
		return nil
	}
	if len(l.mu.unflushed) == 0 && !dirSync && !closing && rp == l.mu.flushed && l.mu.snapshotOffset >= active.base {
		l.firstUnflushed.Store(0)
		l.mu.Unlock()
		return nil
	}
	// A segment deleted since it was listed is skipped; one deleted while
	// we sync keeps its file open until we are done.
	dirty := l.mu.unflushed[:0:0]
	for _, s := range l.mu.unflushed {
		if s.tryRef() {
			dirty = append(dirty, s)
		}
	}
	l.mu.unflushed = nil
	l.mu.dirDirty = false
	msgs, first := l.mu.unflushedMsgs, l.firstUnflushed.Load()
	l.mu.unflushedMsgs = 0
	l.firstUnflushed.Store(0)
	// Not durable until the fsyncs below are done (on a slow disk, long).
	l.flushingSince.Store(first)
	defer l.flushingSince.Store(0)
	var snapshot []byte
	if closing || l.mu.snapshotOffset < active.base {
		snapshot = encodeSnapshot(l.mu.producers, l.mu.aborted)
	}
	prevSnapshot := l.mu.snapshotOffset
	now := l.now()
	// The recovery point is written at close and when due, unless the
	// file already holds it (an idle log: thousands of them made a slow
	// shutdown), and at the first flush of a log that has none: without
	// it a crash has the whole log verified, with a warning, which a
	// kill -9 of a broker with 10,000 young partitions gave 6,716 times.
	checkpoint := (rp != l.mu.recovery || !l.mu.recoveryOnDisk) &&
		(closing || !l.mu.recoveryOnDisk || checkpointDue(l.mu.recovery, l.mu.recoveryAt, rp, now))
	l.mu.Unlock()

	done, err := l.syncSegments(dirty, active, closing)
	if err == nil && dirSync {
		if err = l.fs.SyncDir(l.dir); vfs.IsOutOfFiles(err) {
			err = retryable{err} // the directory could not be opened to sync it
		}
	}
	if err == nil && snapshot != nil && rp.Offset != prevSnapshot {
		if err = l.writeSnapshot(rp.Offset, snapshot); vfs.IsShortage(err) {
			err = retryable{err}
		}
	}
	if err == nil && checkpoint {
		err = writeCheckpoint(l.fs, checkpointPath(l.dir, recoveryPointFile), magicRecoveryPoint, rp.encode())
		if vfs.IsShortage(err) {
			err = retryable{err}
		}
	}
	if err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		defer unrefAll(dirty)
		if r, ok := err.(retryable); ok {
			// Only a file written whole or not at all is missing (an
			// index file, the producer snapshot, the recovery point), for
			// want of space or of file descriptors, or the directory was
			// not synced for want of a descriptor; every data fsync done
			// succeeded. Leave what is not done due, so the next flush
			// writes it again.
			l.requeueLocked(dirty[done:], dirSync, msgs, first)
			return l.noSpace("flush", r.err)
		}
		return l.failLocked("flush", err)
	}
	unrefAll(dirty)
	l.mu.Lock()
	l.mu.flushed = rp
	if checkpoint {
		l.mu.recovery, l.mu.recoveryAt, l.mu.recoveryOnDisk = rp, now, true
	}
	if snapshot != nil {
		l.mu.snapshotOffset = rp.Offset
	}
	l.mu.Unlock()
	if snapshot != nil {
		l.removeOldSnapshots(rp.Offset)
	}
	l.dropFlushedCache(rp)
	return nil
}

// The recovery-point file need not follow every flush: data between it and
// the flushed point is durable and merely verified again after a crash.
// Writing it (a file, an fsync, a rename and a directory fsync) at every
// flush of every partition cost a broker with a thousand lightly written
// partitions three fsyncs a partition a second. It is written when the
// flushed point reaches another segment (so closed segments' index files
// are trusted at the next start), is checkpointBytes past the file's, or
// checkpointInterval after the file was last written, and at a clean close.
const (
	checkpointBytes    = 64 << 20
	checkpointInterval = 30 * time.Second
)

// checkpointDue reports whether a flush to rp, at now, writes the
// recovery-point file, last written with written at writtenAt.
func checkpointDue(written recoveryPoint, writtenAt time.Time, rp recoveryPoint, now time.Time) bool {
	return rp.SegmentBase != written.SegmentBase || rp.Position-written.Position >= checkpointBytes ||
		now.Sub(writtenAt) >= checkpointInterval
}

// dropFlushedCache drops the cached pages of flushed data lying more than
// Config.PageCacheRetainBytes behind the recovery point rp (see there).
// Segments are dropped oldest first, so the walk back from rp stops at the
// first segment already dropped to its end. Called with flushMu held.
func (l *Log) dropFlushedCache(rp recoveryPoint) {
	keep := l.cfg.Load().PageCacheRetainBytes
	if keep <= 0 {
		return
	}
	segs := l.segments()
	behind := int64(0) // flushed bytes in the segments after s
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.base > rp.SegmentBase {
			continue // not flushed yet
		}
		flushed := rp.Position
		if s.base != rp.SegmentBase {
			_, flushed = s.end()
		}
		if flushed > 0 && s.cacheDropped >= flushed {
			break
		}
		limit := flushed - max(keep-behind, 0) // drop [0, limit)
		behind += flushed
		if limit <= s.cacheDropped {
			continue
		}
		d, ok := s.log.(vfs.CacheDropper)
		if !ok {
			return
		}
		if !s.tryRef() {
			continue // deleted meanwhile
		}
		err := d.DropCache(s.cacheDropped, limit-s.cacheDropped)
		s.unref()
		if err != nil {
			l.logger.Debug("drop page cache", zap.String("segment", s.path(logSuffix)), zap.Error(err))
			return
		}
		s.cacheDropped = limit
	}
}

// syncSegments fsyncs the segments' logs, writing the index files of those
// that are no longer active (and of the active one when closing).
//
// done is how many segments were finished before an error. A failure to
// write an index file for want of space or of file descriptors is
// retryable: the segment's data is fsynced and its index is still in
// memory, so writing the files again later is safe.
func (l *Log) syncSegments(segs []*segment, active *segment, closing bool) (done int, err error) {
	for i, s := range segs {
		if err := s.log.Sync(); err != nil {
			return i, fmt.Errorf("sync %s: %w", s.path(logSuffix), err)
		}
		if s != active || closing {
			if err := s.writeIndexFiles(); err != nil {
				if vfs.IsShortage(err) {
					return i, retryable{err}
				}
				return i, err
			}
		}
		if s != active {
			// The files now hold the index; drop the memory copy so a
			// long log costs memory only for the segments being read.
			s.unloadIndex()
		}
	}
	return len(segs), nil
}

// retryable marks a flush failure that left nothing half done: a file that
// is written whole or not at all could not be written for want of space or
// of file descriptors.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// requeueLocked makes a flush that failed retryably due again: segs (not
// finished) go back ahead of the segments appended to since, with the
// directory sync, the message count and the time of the oldest unflushed
// append the flush took over.
func (l *Log) requeueLocked(segs []*segment, dirSync bool, msgs, first int64) {
	if len(segs) > 0 {
		rest := make([]*segment, 0, len(segs)+len(l.mu.unflushed))
		rest = append(rest, segs...)
		for _, s := range l.mu.unflushed {
			if !slices.Contains(segs, s) {
				rest = append(rest, s)
			}
		}
		l.mu.unflushed = rest
	}
	l.mu.dirDirty = l.mu.dirDirty || dirSync
	l.mu.unflushedMsgs += msgs
	if first == 0 {
		first = l.now().UnixNano()
	}
	if cur := l.firstUnflushed.Load(); cur == 0 || first < cur {
		l.firstUnflushed.Store(first)
	}
}

func unrefAll(segs []*segment) {
	for _, s := range segs {
		s.unref()
	}
}

// writeIndexFiles writes and fsyncs the segment's .index and .timeindex
// from the in-memory index. Only for segments no longer appended to (or a
// closing log), so the files are complete.
func (s *segment) writeIndexFiles() error {
	offs, times := s.encodeIndexes()
	return s.writeIndexData(offs, times)
}

// writeIndexFilesLocked is writeIndexFiles with s.idx.mu held.
func (s *segment) writeIndexFilesLocked() error {
	offs, times := s.encodeIndexesLocked()
	return s.writeIndexData(offs, times)
}

func (s *segment) writeIndexData(offs, times []byte) error {
	for _, f := range []struct {
		suffix string
		data   []byte
	}{{indexSuffix, offs}, {timeIndexSuffix, times}} {
		// Not WriteFileAtomic: a torn index file fails its checks on load
		// and is rebuilt from the log, and the recovery point, written
		// after this, is what makes it trusted.
		if err := writeAndSync(s.fs, s.path(f.suffix), f.data); err != nil {
			return err
		}
	}
	return nil
}

// removeIndexFiles removes the segment's index files, if any.
func (s *segment) removeIndexFiles() error {
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := s.fs.Remove(s.path(suffix)); err != nil && !isNotExist(err) {
			return fmt.Errorf("remove %s: %w", s.path(suffix), err)
		}
	}
	return nil
}

func writeAndSync(fsys vfs.FS, path string, data []byte) error {
	f, err := vfs.Create(fsys, path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (l *Log) snapshotPath(offset int64) string {
	return filepath.Join(l.dir, fileBase(offset)+snapshotSuffix)
}

func (l *Log) writeSnapshot(offset int64, payload []byte) error {
	return writeCheckpoint(l.fs, l.snapshotPath(offset), magicProducers, payload)
}

// removeOldSnapshots deletes all but the newest snapshotsKept snapshots at
// or below newest, and any above it.
func (l *Log) removeOldSnapshots(newest int64) {
	offsets, err := l.listSnapshots()
	if err != nil {
		return
	}
	kept := 0
	for i := len(offsets) - 1; i >= 0; i-- {
		off := offsets[i]
		if off <= newest && kept < snapshotsKept {
			kept++
			continue
		}
		if err := l.fs.Remove(l.snapshotPath(off)); err != nil && !isNotExist(err) {
			l.logger.Warn("remove old producer snapshot failed")
		}
	}
}

func (l *Log) listSnapshots() ([]int64, error) {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var offs []int64
	for _, e := range entries {
		if off, ok := parseFileBase(e.Name(), snapshotSuffix); ok {
			offs = append(offs, off)
		}
	}
	return offs, nil
}

// pristineLocked reports whether nothing was ever written to the log: one
// empty segment at offset 0, the log start at 0 and no producer or
// transaction state, rp being its end. Called with mu held.
func (l *Log) pristineLocked(rp recoveryPoint) bool {
	return rp.Offset == 0 && rp.SegmentBase == 0 && rp.Position == 0 && len(l.segments()) == 1 &&
		l.logStart.Load() == 0 && len(l.mu.producers) == 0 && len(l.mu.aborted) == 0
}
