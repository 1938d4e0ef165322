package storage

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Maintain does the periodic work of a log: it rolls the active segment
// when it is older than segment.ms, deletes segments past retention.ms or
// retention.bytes or wholly below the log start offset, removes the files
// of deleted segments once file.delete.delay.ms has passed, and flushes
// when flush.ms is due.
//
// Retention follows Kafka: only segments wholly below the high watermark
// go, oldest first, stopping at the first segment to keep; when every
// segment is to go, an empty active segment is rolled first so the log is
// never without one.
func (l *Log) Maintain() error {
	cfg := l.cfg.Load()
	now := l.now()
	var errs []error

	// Holding flushMu keeps a concurrent flush from writing index files of
	// a segment this deletes.
	l.flushMu.Lock()
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		l.flushMu.Unlock()
		return ErrClosed
	}
	if l.mu.werr == nil {
		active := l.activeLocked()
		if _, size := active.end(); size > 0 && active.rollBase > 0 && now.UnixMilli()-active.rollBase >= cfg.rollMs() {
			if _, err := l.rollLocked(l.leo.Load()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if cfg.ProducerIDExpirationMs > 0 {
		if n := l.mu.producers.expire(now.UnixMilli() - cfg.ProducerIDExpirationMs); n > 0 {
			l.logger.Debug("expired idle producer ids", zap.Int("producers", n), zap.Int("remaining", len(l.mu.producers)))
		}
	}
	n, err := l.retentionCountLocked(cfg, now)
	if err != nil {
		errs = append(errs, err)
	}
	if n > 0 {
		if err := l.deleteOldestLocked(n, "retention"); err != nil {
			errs = append(errs, err)
		}
	}
	l.pruneAbortedLocked(l.logStart.Load())
	expired := l.expiredDeletedLocked(now, cfg)
	l.mu.Unlock()

	for _, s := range expired {
		l.removeDeletedFiles(s)
	}
	if first := l.firstUnflushed.Load(); first != 0 && flushDue(first, now, cfg) {
		if err := l.flushLocked(false); err != nil {
			errs = append(errs, err)
		}
	}
	l.flushMu.Unlock()
	return errors.Join(errs...)
}

// retentionCountLocked returns how many of the oldest segments retention
// deletes.
func (l *Log) retentionCountLocked(cfg *Config, now time.Time) (int, error) {
	segs := l.segments()
	hwm := l.hwm.Load()
	logStart := l.logStart.Load()
	total := l.size.Load()
	nowMs := now.UnixMilli()
	n := 0
	// empties counts the segments the cleaner emptied just before the
	// one being decided: by time they go with it or stay with it. Aged
	// on their own by their file time, the cleaning's, they would hold
	// up the segments after them; deleted at once they would move the
	// log start over offsets a consumer may be at, whose next records
	// are still there (it would get OFFSET_OUT_OF_RANGE where Kafka,
	// which ages them by their original data's time, answers with those
	// records). By size they go as in Kafka: while the log is at least
	// retention.bytes.
	empties := 0
	for i, s := range segs {
		next, size := s.end()
		if size == 0 && i == len(segs)-1 {
			break
		}
		if next > hwm {
			break // never delete what consumers cannot have read
		}
		del := next <= logStart
		if !cfg.CleanupPolicy.Delete() {
			// cleanup.policy=compact alone, or empty: only the log
			// start offset removes segments.
			if !del {
				break
			}
		} else if size == 0 && !del {
			if retentionBytes, limited := cfg.retentionBytes(); !limited || total < retentionBytes {
				empties++
				continue
			}
			del = true
		} else if retentionMs, limited := cfg.retentionMs(); !del && limited {
			ts, _, err := s.maxTimestamp()
			if err != nil {
				return n, fmt.Errorf("retention: %w", err)
			}
			if ts < 0 {
				// No timestamps: age by the file's modification time.
				if fi, err := l.fs.Stat(s.path(logSuffix)); err == nil {
					ts = fi.ModTime().UnixMilli()
				}
			}
			del = nowMs-ts > retentionMs
		}
		if retentionBytes, limited := cfg.retentionBytes(); !del && limited && cfg.CleanupPolicy.Delete() {
			del = total-size >= retentionBytes
		}
		if !del {
			break
		}
		total -= size
		n += empties + 1
		empties = 0
	}
	return n, nil
}

// deleteOldestLocked deletes the n oldest segments. If that is all of them
// it first rolls an empty active segment at the log end offset.
func (l *Log) deleteOldestLocked(n int, reason string) error {
	if n <= 0 {
		return nil
	}
	if _, size := l.activeLocked().end(); size == 0 {
		n = min(n, len(l.segments())-1) // an empty active segment stays
	}
	if n >= len(l.segments()) {
		if l.mu.werr != nil {
			n = len(l.segments()) - 1
		} else if _, err := l.rollLocked(l.leo.Load()); err != nil {
			return err
		}
	}
	if n <= 0 {
		return nil
	}
	segs := l.segments()
	victims := segs[:n]
	rest := append([]*segment(nil), segs[n:]...)
	var err error
	for i, s := range victims {
		if err = l.renameDeleted(s); err != nil {
			// Keep the segments not yet renamed.
			victims = victims[:i]
			rest = append(append([]*segment(nil), segs[i:n]...), rest...)
			break
		}
	}
	if len(victims) == 0 {
		return err
	}
	l.setSegments(rest)
	if first := rest[0].base; first > l.logStart.Load() {
		l.logStart.Store(first)
		if h := l.hwm.Load(); h < first {
			l.hwm.Store(first)
		}
	}
	if l.mu.epochs.truncateFromStart(l.logStart.Load()) {
		if perr := l.persistTrimmedEpochsLocked(); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	l.dropSegmentsLocked(victims)
	l.logger.Info("deleted segments", zap.String("reason", reason), zap.Int("segments", len(victims)),
		zap.Int64("from_offset", victims[0].base), zap.Int64("log_start_offset", l.logStart.Load()))
	return err
}

// renameDeleted renames a segment's files to *.deleted. Index files may be
// missing.
func (l *Log) renameDeleted(s *segment) error {
	// An index rebuild writing the files again (rebuildLocked) holds the
	// lock: it finishes first, or sees the segment gone and writes none.
	s.idx.mu.Lock()
	s.idx.gone = true
	s.idx.mu.Unlock()
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		p := s.path(suffix)
		if err := l.fs.Rename(p, p+deletedSuffix); err != nil {
			if suffix != logSuffix && isNotExist(err) {
				continue
			}
			return fmt.Errorf("delete segment %s: %w", p, err)
		}
	}
	return nil
}

// dropSegmentsLocked hands renamed segments to the deleted list and drops
// the log's references; their files close when the last reader releases.
func (l *Log) dropSegmentsLocked(victims []*segment) {
	now := l.now()
	for _, s := range victims {
		l.mu.deleted = append(l.mu.deleted, deletedSegment{seg: s, at: now})
		for i, u := range l.mu.unflushed {
			if u == s {
				l.mu.unflushed = append(l.mu.unflushed[:i], l.mu.unflushed[i+1:]...)
				break
			}
		}
		s.unref()
	}
	l.mu.dirDirty = true
}

// expiredDeletedLocked takes the deleted segments whose delay has passed.
func (l *Log) expiredDeletedLocked(now time.Time, cfg *Config) []*segment {
	var expired []*segment
	keep := l.mu.deleted[:0]
	for _, d := range l.mu.deleted {
		if now.Sub(d.at).Milliseconds() >= cfg.FileDeleteDelayMs { // in ms: the delay may be Long.MAX_VALUE
			expired = append(expired, d.seg)
		} else {
			keep = append(keep, d)
		}
	}
	clear(l.mu.deleted[len(keep):])
	l.mu.deleted = keep
	return expired
}

// removeDeletedFiles unlinks a deleted segment's files. A reader still
// holding the segment keeps reading through its open descriptor.
func (l *Log) removeDeletedFiles(s *segment) {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(s.path(suffix) + deletedSuffix); err != nil && !isNotExist(err) {
			l.logger.Warn("remove deleted segment file", zap.String("file", s.path(suffix)+deletedSuffix), zap.Error(err))
		}
	}
}

// DeleteRecordsBefore advances the log start offset to offset (records
// below it can no longer be read) and deletes the segments wholly below it.
// The new log start is persisted before it takes effect. offset beyond the
// high watermark is ErrOffsetOutOfRange; an offset at or below the current
// log start changes nothing. It returns the log start offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	logStart := l.logStart.Load()
	if hwm := l.hwm.Load(); offset < 0 || offset > hwm {
		return logStart, fmt.Errorf("delete records before %d, high watermark %d: %w", offset, hwm, ErrOffsetOutOfRange)
	}
	if offset <= logStart {
		return logStart, nil
	}
	if err := writeCheckpoint(l.fs, checkpointPath(l.dir, logStartOffsetFile), magicLogStart, encodeOffset(offset)); err != nil {
		return logStart, storageErr("write log start offset", l.dir, err)
	}
	l.logStart.Store(offset)
	var errs []error
	if l.mu.epochs.truncateFromStart(offset) {
		if err := l.persistTrimmedEpochsLocked(); err != nil {
			errs = append(errs, err)
		}
	}
	n := 0
	for _, s := range l.segments() {
		if next, _ := s.end(); next > offset {
			break
		}
		n++
	}
	if err := l.deleteOldestLocked(n, "log start offset"); err != nil {
		errs = append(errs, err)
	}
	return offset, errors.Join(errs...)
}
