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
func (l *Log) loadProducers(snapshots []int64, verifiedFrom int64, verified []record.Header) (producerStates, int64, error) {
	leo := l.leo.Load()
	ps := producerStates{}
	from := l.segments()[0].base
	snapOff := int64(-1)
	for i := len(snapshots) - 1; i >= 0; i-- {
		off := snapshots[i]
		if off > leo {
			if err := l.fs.Remove(l.snapshotPath(off)); err != nil && !isNotExist(err) {
				return nil, 0, err
			}
			continue
		}
		payload, err := readCheckpoint(l.fs, l.snapshotPath(off), magicProducers)
		if err == nil && payload == nil {
			continue
		}
		var st producerStates
		if err == nil {
			st, err = decodeProducerStates(payload)
		}
		if err != nil {
			l.logger.Warn("ignoring unreadable producer snapshot", zap.Int64("offset", off), zap.Error(err))
			continue
		}
		ps, snapOff = st, off
		from = max(from, off)
		break
	}
	if from < verifiedFrom {
		if err := l.replayProducers(ps, from, verifiedFrom); err != nil {
			return nil, 0, err
		}
	}
	for i := range verified {
		if verified[i].BaseOffset >= from {
			ps.apply(&verified[i])
		}
	}
	return ps, snapOff, nil
}

// recoverProducers installs the producer state rebuilt by loadProducers.
func (l *Log) recoverProducers(snapshots []int64, verifiedFrom int64, verified []record.Header) error {
	if verifiedFrom < 0 {
		verifiedFrom = l.leo.Load()
	}
	ps, snapOff, err := l.loadProducers(snapshots, verifiedFrom, verified)
	if err != nil {
		return err
	}
	l.mu.producers = ps
	l.mu.snapshotOffset = snapOff
	return nil
}

// replayProducers applies the producer batches in [from, to) to ps,
// reading only batch headers. A segment damaged below the recovery point
// (ErrCorruptBatch) is replayed up to the damage, with a warning: its
// later batches cannot be read by anyone, and the producers' state goes
// on from the next segment (a retry of a batch lost in the damage is
// taken as new, as it would be once the producer's entry expired).
func (l *Log) replayProducers(ps producerStates, from, to int64) error {
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
