package storage

import (
	"errors"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
)

// loadProducers rebuilds producer state as of the log end offset: the
// newest readable snapshot at or below it, then every batch after the
// snapshot. Batches at or after verifiedFrom are taken from verified (the
// headers recovery already read); earlier ones are read from the segments.
// Snapshots above the log end offset (a power loss cost the log their
// offsets) are deleted.
//
// markers says what each transaction marker among verified is (see
// recoveryScan.markers). The aborted transactions come back with the
// producers.
func (l *Log) loadProducers(snapshots []int64, verifiedFrom int64, verified []record.Header, markers map[int64]bool) (producerStates, []AbortedTxn, int64, error) {
	leo := l.leo.Load()
	ps := producerStates{}
	var aborted []AbortedTxn
	from := l.segments()[0].base
	snapOff := int64(-1)
	for i := len(snapshots) - 1; i >= 0; i-- {
		off := snapshots[i]
		if off > leo {
			if err := l.fs.Remove(l.snapshotPath(off)); err != nil && !isNotExist(err) {
				return nil, nil, 0, err
			}
			continue
		}
		payload, err := readCheckpoint(l.fs, l.snapshotPath(off), magicProducers)
		if err == nil && payload == nil {
			continue
		}
		var (
			st producerStates
			ab []AbortedTxn
		)
		if err == nil {
			st, ab, err = decodeSnapshot(payload)
		}
		if err != nil {
			l.logger.Warn("ignoring unreadable producer snapshot", zap.Int64("offset", off), zap.Error(err))
			continue
		}
		ps, aborted, snapOff = st, ab, off
		from = max(from, off)
		break
	}
	if from < verifiedFrom {
		if err := l.replayProducers(ps, &aborted, from, verifiedFrom); err != nil {
			return nil, nil, 0, err
		}
	}
	for i := range verified {
		h := &verified[i]
		if h.BaseOffset < from {
			continue
		}
		if commit, ok := markers[h.BaseOffset]; ok && h.Control() {
			ps.applyMarker(h, commit, &aborted)
		}
		ps.apply(h)
	}
	logStart := l.logStart.Load()
	for len(aborted) > 0 && aborted[0].LastOffset < logStart {
		aborted = aborted[1:]
	}
	return ps, aborted, snapOff, nil
}

// recoverProducers installs the producer state rebuilt by loadProducers.
func (l *Log) recoverProducers(snapshots []int64, verifiedFrom int64, verified []record.Header, markers map[int64]bool) error {
	if verifiedFrom < 0 {
		verifiedFrom = l.leo.Load()
	}
	ps, aborted, snapOff, err := l.loadProducers(snapshots, verifiedFrom, verified, markers)
	if err != nil {
		return err
	}
	l.mu.producers, l.mu.aborted = ps, aborted
	l.mu.snapshotOffset = snapOff
	l.publishTxnLocked(true)
	return nil
}

// replayProducers applies the producer batches in [from, to) to ps,
// reading only batch headers. A segment damaged below the recovery point
// (ErrCorruptBatch) is replayed up to the damage, with a warning: its
// later batches cannot be read by anyone, and the producers' state goes
// on from the next segment (a retry of a batch lost in the damage is
// taken as new, as it would be once the producer's entry expired).
func (l *Log) replayProducers(ps producerStates, aborted *[]AbortedTxn, from, to int64) error {
	for _, s := range l.segments() {
		next, size := s.end()
		if next <= from || s.base >= to {
			continue
		}
		pos, _, err := s.lookup(from, size)
		c := s.headerCursor()
		for err == nil && pos < size {
			var h record.Header
			if h, err = c.header(pos, size); err != nil {
				break
			}
			if h.BaseOffset >= to {
				break
			}
			if h.Control() && h.ProducerID >= 0 {
				var commit, ok bool
				if commit, ok, err = readMarker(s, pos, &h); err != nil {
					break
				}
				if ok {
					ps.applyMarker(&h, commit, aborted)
				}
			}
			ps.apply(&h)
			pos += h.Size()
		}
		c.close()
		if errors.Is(err, ErrCorruptBatch) {
			l.logger.Warn("producer state: skipping the damaged rest of a segment",
				zap.String("segment", s.path(logSuffix)), zap.Int64("position", pos), zap.Error(err))
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
