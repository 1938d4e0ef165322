package storage

import (
	"fmt"

	"go.uber.org/zap"
)

// Truncate removes every record at or after offset, so the log end offset
// becomes offset (or the start of the batch holding offset, since batches
// are never split). Used by replication when a follower's log diverged
// from the leader's. Truncating at or below the log start empties the log
// and restarts it at offset. The high watermark, leader-epoch cache,
// producer state and recovery point follow the new end.
//
// Chunks already handed out for the truncated region may come up short.
func (l *Log) Truncate(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("truncate to %d: %w", offset, ErrOffsetOutOfRange)
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writeErrLocked(); err != nil {
		return err
	}
	if offset >= l.leo.Load() {
		return nil
	}
	segs := l.segments()
	var (
		kept    []*segment
		dropped []*segment
		active  *segment
		newEnd  int64
		pos     int64
	)
	if offset <= l.logStart.Load() || offset <= segs[0].base {
		// Start over at offset, with no producer state.
		for _, old := range segs {
			if err := l.renameDeleted(old); err != nil {
				return l.failLocked("truncate", err)
			}
		}
		s, err := l.createSegment(offset)
		if err != nil {
			return l.failLocked("truncate", err)
		}
		dropped = segs
		if len(l.mu.epochs) > 0 {
			l.mu.epochs = nil
			if err := l.persistEpochsLocked(); err != nil {
				return l.failLocked("truncate", err)
			}
		}
		snapshots, err := l.listSnapshots()
		if err != nil {
			return l.failLocked("truncate", err)
		}
		for _, off := range snapshots {
			if err := l.fs.Remove(l.snapshotPath(off)); err != nil && !isNotExist(err) {
				return l.failLocked("truncate", err)
			}
		}
		kept, active, newEnd = []*segment{s}, s, offset
		l.logStart.Store(offset)
		if err := writeCheckpoint(l.fs, checkpointPath(l.dir, logStartOffsetFile), magicLogStart, encodeOffset(offset)); err != nil {
			return l.failLocked("truncate", err)
		}
	} else {
		k := segmentFor(segs, offset)
		active = segs[k]
		_, size := active.end()
		var err error
		if pos, _, err = active.lookup(offset, size); err != nil {
			return l.failLocked("truncate", err)
		}
		newEnd = offset
		if pos < size {
			h, err := active.readHeader(pos, size)
			if err != nil {
				return l.failLocked("truncate", err)
			}
			// The batch holding offset, or in a cleaned segment
			// possibly the first batch after the gap holding it.
			newEnd = min(h.BaseOffset, offset)
		}
		for _, later := range segs[k+1:] {
			if err := l.renameDeleted(later); err != nil {
				return l.failLocked("truncate", err)
			}
		}
		active.prealloc = 0 // Truncate gives the reservation back
		if err := active.log.Truncate(pos); err != nil {
			return l.failLocked("truncate", err)
		}
		// Its index files describe what was cut; they are written again
		// once the segment stops being active.
		if err := active.removeIndexFiles(); err != nil {
			return l.failLocked("truncate", err)
		}
		if err := active.log.Sync(); err != nil {
			return l.failLocked("truncate", err)
		}
		offs, times, err := active.rebuildIndex(pos)
		if err != nil {
			return l.failLocked("truncate", err)
		}
		active.idx.mu.Lock()
		active.idx.setLocked(active.base, offs, times)
		active.idx.loaded, active.idx.fromFile = true, false
		active.idx.mu.Unlock()
		active.sinceIndex = pos
		if n := len(offs); n > 0 {
			active.sinceIndex = pos - int64(offs[n-1].pos)
		}
		active.tail.Store(packTail(uint32(newEnd-active.base), uint32(pos)))
		if pos == 0 {
			active.rollBase, active.firstTs = 0, -1
		}
		kept = append([]*segment(nil), segs[:k+1]...)
		dropped = segs[k+1:]
	}
	// Publish the new list before the old segments' files can close, so
	// a reader never retries against a list of closed segments.
	l.setSegments(kept)
	l.dropSegmentsLocked(dropped)
	l.leo.Store(newEnd)
	if newEnd < l.logStart.Load() {
		// The batch holding offset began below the log start.
		if err := writeCheckpoint(l.fs, checkpointPath(l.dir, logStartOffsetFile), magicLogStart, encodeOffset(newEnd)); err != nil {
			return l.failLocked("truncate", err)
		}
		l.logStart.Store(newEnd)
	}
	if l.hwm.Load() > newEnd {
		l.hwm.Store(newEnd)
	}
	if n := len(l.mu.unflushed); n == 0 || l.mu.unflushed[n-1] != active {
		l.mu.unflushed = append(l.mu.unflushed, active)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.failLocked("truncate", err)
	}
	// The recovery point must not promise data that is gone: appends
	// after the truncation would otherwise be trusted unverified.
	rp := recoveryPoint{Offset: newEnd, SegmentBase: active.base, Position: pos}
	if l.mu.recovery.Offset > newEnd {
		if err := l.lowerRecoveryPointLocked(rp); err != nil {
			return l.failLocked("truncate", err)
		}
	}
	if l.mu.flushed.Offset > newEnd {
		l.mu.flushed = rp
	}
	// The cleaner's progress, gap bound and tombstone ranges follow the
	// new end; a pass in flight aborts.
	l.mu.cleanerGen++
	if l.mu.cleaner.truncate(newEnd) {
		if err := l.writeCleanerState(&l.mu.cleaner); err != nil {
			return l.failLocked("truncate", err)
		}
	}
	if l.mu.epochs.truncateFromEnd(newEnd) {
		if err := l.persistEpochsLocked(); err != nil {
			return l.failLocked("truncate", err)
		}
	}
	snapshots, err := l.listSnapshots()
	if err != nil {
		return l.failLocked("truncate", err)
	}
	ps, aborted, snapOff, err := l.loadProducers(snapshots, newEnd, nil, nil)
	if err != nil {
		return l.failLocked("truncate", err)
	}
	l.mu.producers, l.mu.aborted, l.mu.snapshotOffset = ps, aborted, snapOff
	l.publishTxnLocked(true)
	l.logger.Info("truncated log", zap.Int64("requested_offset", offset), zap.Int64("log_end_offset", newEnd))
	return nil
}

// lowerRecoveryPointLocked writes rp, below the recovery point on disk, as
// the recovery point, so that it promises nothing that is gone, and makes
// it the flushed point too if that was above it. l.mu is held (or the log
// is being opened).
func (l *Log) lowerRecoveryPointLocked(rp recoveryPoint) error {
	if err := writeCheckpoint(l.fs, checkpointPath(l.dir, recoveryPointFile), magicRecoveryPoint, rp.encode()); err != nil {
		return err
	}
	l.mu.recovery, l.mu.recoveryAt, l.mu.recoveryOnDisk = rp, l.now(), true
	if l.mu.flushed.Offset > rp.Offset {
		l.mu.flushed = rp
	}
	return nil
}
