package storage

import (
	"errors"
	"fmt"

	"github.com/gregor-log/gregor/broker/record"
)

// errStopRecords ends a record iteration early.
var errStopRecords = errors.New("stop")

// Read returns the record batches from the batch holding offset up to the
// last whole batch below maxOffset (typically the high watermark; values
// beyond the log end offset or negative mean the log end offset), limited
// to maxBytes, but always at least one whole batch even if it is larger
// (KIP-74). A read cut by maxBytes ends at the last batch boundary the
// offset index knows within the limit; only without one there may it end
// in a partial batch, which clients skip. A read stays within one segment.
//
// A segment found damaged (see segmentDamage) is read up to its last whole
// batch before the damage; a read of an offset after that is a
// CorruptionError (ErrCorruptBatch).
//
// offset below the log start or above the log end offset is
// ErrOffsetOutOfRange; offset at or past maxOffset returns an empty Chunk.
// Read takes no lock and never returns bytes an append has not finished
// writing. The caller must Release the Chunk.
func (l *Log) Read(offset, maxOffset int64, maxBytes int32) (Chunk, error) {
	for {
		leo := l.leo.Load()
		start := l.logStart.Load()
		if offset < start || offset > leo {
			return Chunk{}, fmt.Errorf("read offset %d, log has [%d, %d): %w", offset, start, leo, ErrOffsetOutOfRange)
		}
		if maxOffset < 0 || maxOffset > leo {
			maxOffset = leo
		}
		if offset >= maxOffset {
			return Chunk{}, nil
		}
		c, retry, err := l.readSegments(l.segments(), offset, maxOffset, maxBytes)
		if !retry {
			return c, err
		}
		// A segment was deleted under us (the list we read is already
		// replaced), or the log was closed.
		if l.closed.Load() {
			return Chunk{}, ErrClosed
		}
	}
}

func (l *Log) readSegments(segs []*segment, offset, maxOffset int64, maxBytes int32) (c Chunk, retry bool, err error) {
	i := segmentFor(segs, offset)
	if i < 0 {
		return Chunk{}, true, nil
	}
	for ; i < len(segs); i++ {
		s := segs[i]
		if !s.tryRef() {
			return Chunk{}, true, nil
		}
		next, size := s.end()
		if offset >= next {
			s.unref()
			continue
		}
		pos, first, err := s.lookup(offset, size)
		if err != nil || pos >= size {
			s.unref()
			if err != nil {
				return Chunk{}, false, fmt.Errorf("read offset %d: %w", offset, err)
			}
			continue
		}
		end, readable := size, next
		if d := s.damaged(); d != nil {
			end, readable = d.cause.Pos, d.from
		}
		below := readable // the chunk's records are below this offset
		if maxOffset < readable {
			if end, _, err = s.lookup(maxOffset, size); err != nil {
				s.unref()
				return Chunk{}, false, fmt.Errorf("read up to offset %d: %w", maxOffset, err)
			}
			below = maxOffset
		}
		if end <= pos {
			s.unref()
			return Chunk{}, false, nil
		}
		n := end - pos
		if n > int64(maxBytes) {
			n = min(max(int64(maxBytes), first), n)
			// End at a batch boundary the index knows, when there is one
			// past the first batch: a partial batch at the end is bytes
			// the client reads and throws away, and fetches again next
			// time (~40% more bytes for a consumer of 700 KB batches
			// with a 1 MiB partition limit).
			if cut, at := s.indexedStartIn(pos+first, pos+n); cut > 0 {
				n, below = cut-pos, at
			} else if at := s.indexedOffsetFrom(pos + n); at >= 0 {
				below = min(below, at)
			}
		}
		return Chunk{File: s.log, Pos: pos, Size: n, Below: below, release: s.release}, false, nil
	}
	return Chunk{}, false, nil
}

// OffsetForTimestamp returns the offset and timestamp of the first record
// (in offset order, below the high watermark and at or above the log
// start) whose timestamp is at least ts, reading the records of the
// candidate batch to be exact; (-1, -1, nil) if there is none. Only the
// batches Read can serve are searched: the damaged part of a segment (see
// segmentDamage) is passed over, so that a consumer resetting by time
// lands where it can read.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, err error) {
	segs, release := l.refSegments()
	defer release()
	if segs == nil {
		return -1, -1, ErrClosed
	}
	logStart, hwm := l.logStart.Load(), l.hwm.Load()
	for _, s := range segs {
		next, size := s.end()
		if next <= logStart || s.base >= hwm {
			continue
		}
		maxTs, _, err := s.maxTimestamp()
		if err != nil {
			return -1, -1, err
		}
		if maxTs < ts {
			continue
		}
		from := max(s.timeFloor(ts), logStart)
		pos, _, err := s.lookup(from, size)
		if err != nil {
			return -1, -1, err
		}
		limit := size
		if d := s.damaged(); d != nil {
			limit = d.cause.Pos // only the readable batches are searched
		}
		off, t, err := s.firstAtOrAfter(pos, limit, ts, logStart, hwm)
		if err != nil || off >= 0 {
			return off, t, err
		}
	}
	return -1, -1, nil
}

// firstAtOrAfter walks the batches from pos to limit for
// OffsetForTimestamp: the offset and timestamp of the first record in
// [logStart, hwm) with a timestamp of at least ts, or (-1, -1) if there is
// none here (later segments start at or above hwm once a batch here does).
func (s *segment) firstAtOrAfter(pos, limit, ts, logStart, hwm int64) (offset, timestamp int64, err error) {
	c := s.headerCursor()
	defer c.close()
	for pos < limit {
		h, err := c.header(pos, limit)
		if err != nil {
			return -1, -1, err
		}
		if h.BaseOffset >= hwm {
			return -1, -1, nil
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= logStart {
			off, t, err := s.findRecord(pos, &h, func(off, t int64) bool { return off >= logStart && off < hwm && t >= ts })
			if err != nil || off >= 0 {
				return off, t, err
			}
		}
		pos += h.Size()
	}
	return -1, -1, nil
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp (the first such in offset order), for ListOffsets
// timestamp -3; (-1, -1) when the log is empty.
func (l *Log) MaxTimestamp() (offset, timestamp int64) {
	segs, release := l.refSegments()
	defer release()
	var (
		best             *segment
		bestTs, bestBase int64 = -1, -1
	)
	logStart := l.logStart.Load()
	for _, s := range segs {
		if next, _ := s.end(); next <= logStart {
			continue
		}
		ts, base, err := s.maxTimestamp()
		if err != nil || base < 0 {
			continue
		}
		if best == nil || ts > bestTs {
			best, bestTs, bestBase = s, ts, base
		}
	}
	if best == nil {
		return -1, -1
	}
	_, size := best.end()
	pos, _, err := best.lookup(bestBase, size)
	if err != nil || pos >= size {
		return -1, -1
	}
	h, err := best.readHeader(pos, size)
	if err != nil {
		return -1, -1
	}
	off, t, err := best.findRecord(pos, &h, func(_, t int64) bool { return t == bestTs })
	if err != nil || off < 0 {
		return bestBase, bestTs
	}
	return off, t
}

// findRecord reads the batch at pos and returns the offset and timestamp of
// its first record for which match is true, or (-1, -1).
func (s *segment) findRecord(pos int64, h *record.Header, match func(offset, ts int64) bool) (int64, int64, error) {
	batch := make([]byte, h.Size())
	if err := readFull(s.log, batch, pos); err != nil {
		return -1, -1, fmt.Errorf("read batch at %s:%d: %w", s.path(logSuffix), pos, err)
	}
	foundOff, foundTs := int64(-1), int64(-1)
	err := record.Records(*h, batch, func(r *record.Record) error {
		off := h.BaseOffset + int64(r.OffsetDelta)
		t := h.BaseTimestamp + r.TimestampDelta
		if h.LogAppendTime() {
			t = h.MaxTimestamp
		}
		if match(off, t) {
			foundOff, foundTs = off, t
			return errStopRecords
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopRecords) {
		return -1, -1, fmt.Errorf("read records at %s:%d: %w", s.path(logSuffix), pos, err)
	}
	return foundOff, foundTs, nil
}

// refSegments takes a reference on every live segment; release drops them.
// It returns nil when the log is closed.
func (l *Log) refSegments() (segs []*segment, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, func() {}
	}
	segs = l.segments()
	for _, s := range segs {
		s.tryRef() // cannot fail: the log holds a reference on live segments
	}
	return segs, func() {
		for _, s := range segs {
			s.unref()
		}
	}
}

// OffsetsBefore answers ListOffsets v0 (Kafka's legacy offsets-before
// request): up to maxOffsets offsets, in descending order, of the starts of the
// segments whose records are all timestamped at or before ts, with the high
// watermark counted as the start of what is not yet written (timestamped
// now). ts -1 (latest) is that high watermark and the segment starts
// below it; -2 (earliest) is the log start offset. Kafka compares segment
// files' modification times; this compares the largest record timestamp
// of each segment, which a log with CreateTime records keeps close to it.
func (l *Log) OffsetsBefore(ts int64, maxOffsets int32, nowMs int64) ([]int64, error) {
	if maxOffsets <= 0 {
		return []int64{}, nil
	}
	logStart, hwm := l.logStart.Load(), l.hwm.Load()
	if ts == -2 {
		return []int64{logStart}, nil
	}
	segs, release := l.refSegments()
	defer release()
	if segs == nil {
		return nil, ErrClosed
	}
	type start struct{ offset, ts int64 }
	var starts []start
	for _, s := range segs {
		next, _ := s.end()
		if s.base >= hwm || next <= logStart {
			continue
		}
		maxTs, _, err := s.maxTimestamp()
		if err != nil {
			return nil, err
		}
		starts = append(starts, start{max(s.base, logStart), maxTs})
	}
	starts = append(starts, start{hwm, nowMs}) // the segments start below it
	i := len(starts) - 1
	if ts != -1 {
		for i >= 0 && starts[i].ts > ts {
			i--
		}
	}
	out := make([]int64, 0, min(int(maxOffsets), i+1))
	for ; i >= 0 && len(out) < int(maxOffsets); i-- {
		out = append(out, starts[i].offset)
	}
	return out, nil
}
