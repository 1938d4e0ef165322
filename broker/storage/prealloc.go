package storage

import (
	"errors"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/vfs"
)

// Block reservation ahead of appends (vfs.Preallocator, fallocate with
// FALLOC_FL_KEEP_SIZE on Linux). A write into reserved blocks skips the
// file system's per-block delayed allocation, which cost about a fifth of
// the kernel's share of an append (see docs/benchmarks.md). The file's
// size, and so everything that reads it, is unchanged; the reservation is
// given back when the segment stops being active (roll, close) and, after
// a crash, when the log is opened.
//
// Only busy segments reserve: from preallocMinBytes written, the next
// reservation is as large as what the segment already holds, at most
// preallocMaxBytes, and never past segment.bytes. So an active segment
// holds at most min(its size, preallocMaxBytes) of blocks past its end,
// and a quiet partition none.
const (
	preallocMinBytes = 1 << 20
	preallocMaxBytes = 16 << 20
)

// preallocateLocked reserves blocks for an append of n bytes to s, which
// holds size bytes, when the append would pass the reserved range.
// Failures are not the append's: a full disk answers the write itself, and
// a file system that cannot reserve is not asked again. Called with l.mu
// held.
func (l *Log) preallocateLocked(s *segment, size, n int64, cfg *Config) {
	end := size + n
	if end <= s.prealloc || size < preallocMinBytes || l.mu.noPrealloc {
		return
	}
	p, ok := s.log.(vfs.Preallocator)
	if !ok {
		l.mu.noPrealloc = true
		return
	}
	target := end + min(size, preallocMaxBytes)
	if end <= cfg.SegmentBytes {
		target = min(target, cfg.SegmentBytes)
	}
	from := max(s.prealloc, size)
	s.prealloc = target // on failure too: one attempt per range
	if target <= from {
		return
	}
	if err := p.Preallocate(from, target-from); err != nil && errors.Is(err, errors.ErrUnsupported) {
		l.mu.noPrealloc = true
	}
}

// trimPreallocated gives back the blocks reserved past the end of s, which
// holds size bytes. Called with l.mu held, or before the log is published.
func (l *Log) trimPreallocated(s *segment, size int64) {
	if s.prealloc <= size {
		return
	}
	s.prealloc = 0
	if err := s.log.Truncate(size); err != nil {
		// The file is as it was (Truncate to its own size changes no
		// data); only the reserved blocks stay until the segment goes.
		l.logger.Warn("could not give back blocks reserved past the end of a segment",
			zap.String("segment", s.path(logSuffix)), zap.Error(err))
	}
}

// trimPreallocatedAtOpen gives back blocks that a crash left reserved past
// the end of the active segment s (size bytes), found by comparing its
// allocation with its size.
func (l *Log) trimPreallocatedAtOpen(s *segment, size int64) {
	p, ok := s.log.(vfs.Preallocator)
	if !ok {
		return
	}
	alloc, err := p.Allocated()
	// Slack for the file system's own metadata blocks and rounding.
	if err != nil || alloc <= size+preallocMinBytes/4 {
		return
	}
	s.prealloc = alloc
	l.trimPreallocated(s, size)
}
