package storage

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/vfs"
)

// Log is one partition's log: an ordered list of segments, the last of
// which (the active segment) takes appends.
//
// Log is safe for concurrent use. Appends, flushes, retention,
// truncation and the cleaner's segment swaps serialise on the log's mutex
// (a cleaner pass reads and writes its files without it); Read, LogEndOffset,
// LogStartOffset and HighWatermark take no lock, so fetches never wait for
// an append's write to finish.
type Log struct {
	fs         vfs.FS
	dir        string
	dirID      os.FileInfo // dir when the log was opened (nil if not known): see checkPartitionDirs
	topic      string
	partition  int32
	logger     *zap.Logger
	now        func() time.Time
	onAppend   func(int64)
	beforeRoll func() error

	cfg atomic.Pointer[Config]

	// segs is the current segment list, oldest first, never empty. It is
	// replaced (copy on write) under mu and read without a lock.
	segs     atomic.Pointer[[]*segment]
	leo      atomic.Int64
	logStart atomic.Int64
	hwm      atomic.Int64
	size     atomic.Int64 // total bytes in live segments
	// unstable is the first offset of the oldest open transaction
	// (math.MaxInt64 when none), abortedView the aborted transactions;
	// both published under mu for the lock-free read path (txn.go).
	unstable    atomic.Int64
	abortedView atomic.Pointer[[]AbortedTxn]
	// closed is set when the log is closed, for the lock-free read path.
	closed atomic.Bool
	// firstUnflushed is the unix-nano time of the oldest append not yet
	// fsynced, 0 when everything is flushed.
	firstUnflushed atomic.Int64
	// flushingSince is firstUnflushed as a flush under way took it, until
	// its fsyncs are done (see UnflushedSince); 0 when none is.
	flushingSince atomic.Int64
	// flushQueued is set while the manager's flush loop has handed the
	// log to a flush worker that is not done with it.
	flushQueued atomic.Bool
	// werr is mu.werr, for WriteError to read without mu, which an
	// append holds through its write (on a slow disk, for seconds).
	werr atomic.Pointer[error]
	// noSpaceLogged is when a refusal for want of space was last logged
	// (unix nanoseconds), so a full disk costs a line every
	// noSpaceLogEvery, not one per produce retry.
	noSpaceLogged atomic.Int64

	// flushMu serialises Flush, Truncate and Close. Lock order: cleanMu,
	// flushMu, then mu.
	flushMu sync.Mutex
	// cleanMu serialises cleaner passes over the log; a pass holds it
	// throughout and takes flushMu and mu only to plan and to swap.
	cleanMu sync.Mutex

	mu struct {
		sync.Mutex
		closed bool
		// werr is the sticky write error: after a failed write, fsync or
		// truncate every later write fails with it.
		werr      error
		producers producerStates
		aborted   []AbortedTxn // by marker offset
		epochs    epochCache
		// unflushed lists the segments appended to since the last flush.
		unflushed     []*segment
		unflushedMsgs int64
		dirDirty      bool // directory entries created or removed since the last SyncDir
		// noPrealloc: the file system cannot reserve blocks ahead of
		// appends (see prealloc.go); it is not asked again.
		noPrealloc bool
		// recovery is the recovery point last written, at recoveryAt
		// (see checkpointDue); flushed is the point everything is fsynced
		// to, which it trails.
		recovery   recoveryPoint
		recoveryAt time.Time
		// recoveryOnDisk: the recovery-point file holds recovery (false
		// when it was missing or bad at open).
		recoveryOnDisk bool
		flushed        recoveryPoint
		// snapshotOffset is the offset of the newest producer snapshot
		// file; -1 when there is none.
		snapshotOffset int64
		// deleted are segments renamed to .deleted, waiting for
		// FileDeleteDelayMs before their files are removed.
		deleted []deletedSegment
		// cleaner is the cleaner checkpoint's content; cleanerGen counts
		// the changes made to it by anything but the cleaner (Truncate),
		// so a pass in flight notices and aborts.
		cleaner    cleanerState
		cleanerGen uint64
		cleanStats CleanerStats
		// cleanRetryAt is when a log whose cleaning failed may be picked
		// again.
		cleanRetryAt time.Time
	}
}

type deletedSegment struct {
	seg *segment
	at  time.Time
}

// Topic returns the log's topic.
func (l *Log) Topic() string { return l.topic }

// Partition returns the log's partition.
func (l *Log) Partition() int32 { return l.partition }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the log's configuration, with defaults applied.
func (l *Log) Config() Config { return *l.cfg.Load() }

// SetConfig replaces the configuration (defaults applied). Segment size and
// index interval changes apply to the next append; retention to the next
// Maintain.
func (l *Log) SetConfig(c Config) {
	c = c.WithDefaults()
	l.cfg.Store(&c)
}

// LogStartOffset returns the first offset that can be read.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// Closed reports whether the log has been closed (its topic deleted, or
// the broker stopping); a caller that kept the log looks it up again.
func (l *Log) Closed() bool { return l.closed.Load() }

// LogEndOffset returns the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// HighWatermark returns the offset up to which records are committed and
// visible to consumers. It is at most the log end offset.
func (l *Log) HighWatermark() int64 { return l.hwm.Load() }

// SetHighWatermark sets the high watermark, clamped to [LogStartOffset,
// LogEndOffset]. A standalone broker sets it to the log end offset after
// each append; replication advances it as followers catch up.
func (l *Log) SetHighWatermark(off int64) {
	off = min(max(off, l.logStart.Load()), l.leo.Load())
	l.hwm.Store(off)
}

// Size returns the total size in bytes of the log's live segments.
func (l *Log) Size() int64 { return l.size.Load() }

// LatestEpoch returns the newest leader epoch that wrote to the log, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.epochs.latest()
}

// Epochs returns a copy of the leader-epoch cache.
func (l *Log) Epochs() []EpochEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]EpochEntry(nil), l.mu.epochs...)
}

// BecomeLeader records that this broker leads the partition in epoch from
// the log end offset on, unless the log knows that epoch or a newer one,
// and persists the leader-epoch cache if it changed. Kafka does the same
// when a broker becomes leader, so that OffsetForLeaderEpoch answers the
// current epoch with the log end offset even when no record has been
// written in it (a new partition, or one emptied by retention, whose
// epoch entry starting at the end is dropped by recovery).
func (l *Log) BecomeLeader(epoch int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writeErrLocked(); err != nil {
		return err
	}
	if !l.mu.epochs.assign(epoch, l.leo.Load()) {
		return nil
	}
	if err := l.persistEpochsLocked(); err != nil {
		// The cache holds the epoch; an append in it would persist it.
		// Until then a restart asks again.
		return fmt.Errorf("write leader-epoch checkpoint in %s: %w", l.dir, err)
	}
	return nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= epoch
// that wrote to this log and the offset where the next epoch starts (the
// log end offset for the latest epoch); (-1, -1) if unknown.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.epochs.endOffsetFor(epoch, l.leo.Load())
}

// segments returns the current segment list; callers must not modify it.
func (l *Log) segments() []*segment { return *l.segs.Load() }

// activeLocked returns the active segment.
func (l *Log) activeLocked() *segment {
	s := l.segments()
	return s[len(s)-1]
}

// writeErrLocked returns the error a write must fail with, if any.
func (l *Log) writeErrLocked() error {
	if l.mu.closed {
		return ErrClosed
	}
	return l.mu.werr
}

// setWriteErrorLocked makes err the sticky write error, in mu and in the
// atomic WriteError reads.
func (l *Log) setWriteErrorLocked(err error) {
	l.mu.werr = err
	l.werr.Store(&err)
}

// WriteError returns the sticky write error that makes the log refuse
// appends until it is reopened, or nil.
func (l *Log) WriteError() error {
	if p := l.werr.Load(); p != nil {
		return *p
	}
	return nil
}

// Fail makes the log refuse appends until it is reopened, as a failed
// write does: op and err say why.
// Unlike a failed write, it is not logged: the caller says it once for
// every log.
func (l *Log) Fail(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.werr == nil {
		l.setWriteErrorLocked(fmt.Errorf("%s: %w", op, err))
	}
}

// failLocked makes err the sticky write error and returns it wrapped in
// ErrStorage. Only the first failure is kept.
func (l *Log) failLocked(op string, err error) error {
	if l.mu.werr == nil {
		l.setWriteErrorLocked(fmt.Errorf("%w: %s %s: %w", ErrStorage, op, l.dir, err))
		l.logger.Error("log write side failed; appends are refused until the log is reopened",
			zap.String("op", op), zap.Error(err))
	}
	return l.mu.werr
}

// noSpaceLogEvery is how often a log says it refused work for want of
// space.
const noSpaceLogEvery = 10 * time.Second

// noSpace returns err, a failure for want of space or of file descriptors
// (vfs.IsShortage) that left the log as it was, wrapped in ErrStorage but
// not sticky: the log stays writable and the next append or flush tries
// again. It logs at most every noSpaceLogEvery.
func (l *Log) noSpace(op string, err error) error {
	now := l.now().UnixNano()
	if last := l.noSpaceLogged.Load(); now-last >= int64(noSpaceLogEvery) && l.noSpaceLogged.CompareAndSwap(last, now) {
		msg := "no space for the log; what needs it fails until space is freed"
		if vfs.IsOutOfFiles(err) {
			msg = "out of file descriptors; what needs one fails until some are free (raise ulimit -n)"
		}
		l.logger.Warn(msg, zap.String("op", op), zap.Error(err))
	}
	return storageErr(op, l.dir, err)
}

// storageErr wraps err in ErrStorage unless it already is one.
func storageErr(op, path string, err error) error {
	if errors.Is(err, ErrStorage) {
		return err
	}
	return fmt.Errorf("%w: %s %s: %w", ErrStorage, op, path, err)
}

func (l *Log) setSegments(segs []*segment) {
	l.segs.Store(&segs)
	var size int64
	for _, s := range segs {
		_, sz := s.end()
		size += sz
	}
	l.size.Store(size)
}

// Close flushes the log, writes its checkpoints and a clean-shutdown marker,
// and closes its files. Files stay open until outstanding Chunks are
// released. Close is idempotent.
func (l *Log) Close() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	closed := l.mu.closed
	werr := l.mu.werr
	l.mu.Unlock()
	if closed {
		return nil
	}
	var errs []error
	if werr == nil {
		if err := l.flushLocked(true); err != nil {
			errs = append(errs, err)
		} else if err := writeMarker(l.fs, checkpointPath(l.dir, cleanShutdownFile), magicCleanShutdown, encodeOffset(l.leo.Load())); err != nil {
			// Everything is durable; only the next open's message and
			// its check of the tail depend on the marker.
			errs = append(errs, &markerError{storageErr("write clean-shutdown marker", l.dir, err)})
		}
		l.mu.Lock()
		if segs := l.segments(); len(segs) > 0 {
			active := segs[len(segs)-1]
			_, size := active.end()
			l.trimPreallocated(active, size)
		}
		l.mu.Unlock()
	}
	l.closeFiles(true)
	return errors.Join(errs...)
}

// markerError is Close's error when only the clean-shutdown marker could
// not be written (a full disk, say): the log is flushed and whole, and its
// next open checks its tail as after a crash.
type markerError struct{ err error }

func (e *markerError) Error() string { return e.err.Error() }
func (e *markerError) Unwrap() error { return e.err }

// closeFiles marks the log closed and drops its references on all
// segments, live and deleted. With removeDeleted it also removes the files
// of deleted segments.
func (l *Log) closeFiles(removeDeleted bool) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return
	}
	l.mu.closed = true
	l.closed.Store(true)
	deleted := l.mu.deleted
	l.mu.deleted = nil
	l.mu.unflushed = nil
	l.mu.Unlock()
	for _, d := range deleted {
		if removeDeleted {
			l.removeDeletedFiles(d.seg)
		}
	}
	for _, s := range l.segments() {
		s.unref()
	}
}

// Delete closes the log without flushing and removes its directory.
func (l *Log) Delete() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.closeFiles(false)
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}
