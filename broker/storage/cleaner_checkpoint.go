package storage

import (
	"encoding/binary"
	"fmt"
	"math"

	"go.uber.org/zap"
)

// cleanerCheckpointFile holds a log's cleaner state (see docs/format.md):
// how far the cleaner has got, below which offset batches may have offset
// gaps, the segment group being swapped in, and where the retained
// tombstones are with the time they were first cleaned.
const cleanerCheckpointFile = "cleaner-checkpoint"

var magicCleaner = [4]byte{'G', 'R', 'C', 'K'}

// maxTombstoneRanges bounds the tombstone ranges a checkpoint keeps;
// beyond it adjacent ranges are merged, keeping the later clean time, so
// tombstones are only ever kept longer, never removed early.
const maxTombstoneRanges = 64

// tombstoneRange says the tombstones at offsets [start, end) were first
// cleaned at cleanedAtMs; they may be removed delete.retention.ms later.
type tombstoneRange struct {
	start, end  int64
	cleanedAtMs int64
}

// cleanerState is the content of cleaner-checkpoint. Guarded by Log.mu;
// written only by the cleaner and by Truncate.
type cleanerState struct {
	// firstDirty is the cleaner's progress: every offset below it has
	// been through a pass (its key is in no later offset map).
	firstDirty int64
	// gapBound: batches below it may have offset gaps (records the
	// cleaner removed); at and above it the log is contiguous, as
	// produced. Recovery checks contiguity only from here on. It is
	// written before any cleaned segment is swapped in.
	gapBound int64
	// swapBase and swapEnd name the segment group being replaced: the
	// cleaned segment at swapBase replaces every segment based in
	// [swapBase, swapEnd). -1 when no swap is under way.
	swapBase, swapEnd int64
	// tombstones are ascending, non-overlapping and below gapBound
	// (normally below firstDirty; a pass interrupted by a crash leaves
	// ranges up to where it had cleaned, which the next pass redoes).
	tombstones []tombstoneRange
}

func newCleanerState() cleanerState {
	return cleanerState{swapBase: -1, swapEnd: -1}
}

const (
	cleanerFixedSize = 8 + 8 + 8 + 8 + 4
	cleanerRangeSize = 8 + 8 + 8
)

// encode returns the checkpoint payload:
//
//	firstDirty int64, gapBound int64, swapBase int64, swapEnd int64,
//	count int32, count x (start int64, end int64, cleanedAtMs int64)
func (st *cleanerState) encode() []byte {
	b := make([]byte, 0, cleanerFixedSize+cleanerRangeSize*len(st.tombstones))
	b = binary.BigEndian.AppendUint64(b, uint64(st.firstDirty))
	b = binary.BigEndian.AppendUint64(b, uint64(st.gapBound))
	b = binary.BigEndian.AppendUint64(b, uint64(st.swapBase))
	b = binary.BigEndian.AppendUint64(b, uint64(st.swapEnd))
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.tombstones)))
	for _, r := range st.tombstones {
		b = binary.BigEndian.AppendUint64(b, uint64(r.start))
		b = binary.BigEndian.AppendUint64(b, uint64(r.end))
		b = binary.BigEndian.AppendUint64(b, uint64(r.cleanedAtMs))
	}
	return b
}

func decodeCleanerState(p []byte) (cleanerState, error) {
	bad := func(format string, args ...any) (cleanerState, error) {
		return cleanerState{}, fmt.Errorf("cleaner checkpoint: "+format+": %w", append(args, ErrCorruptCheckpoint)...)
	}
	if len(p) < cleanerFixedSize {
		return bad("%d bytes", len(p))
	}
	st := cleanerState{
		firstDirty: int64(binary.BigEndian.Uint64(p)),
		gapBound:   int64(binary.BigEndian.Uint64(p[8:])),
		swapBase:   int64(binary.BigEndian.Uint64(p[16:])),
		swapEnd:    int64(binary.BigEndian.Uint64(p[24:])),
	}
	n := int64(binary.BigEndian.Uint32(p[32:]))
	p = p[cleanerFixedSize:]
	if int64(len(p)) != n*cleanerRangeSize {
		return bad("%d ranges in %d bytes", n, len(p))
	}
	switch {
	case st.firstDirty < 0 || st.gapBound < st.firstDirty:
		return bad("first dirty offset %d, gap bound %d", st.firstDirty, st.gapBound)
	case st.swapBase < -1 || (st.swapBase == -1) != (st.swapEnd == -1) || (st.swapBase >= 0 && st.swapEnd <= st.swapBase):
		return bad("swap [%d, %d)", st.swapBase, st.swapEnd)
	}
	prevEnd := int64(math.MinInt64)
	for ; len(p) > 0; p = p[cleanerRangeSize:] {
		r := tombstoneRange{
			start:       int64(binary.BigEndian.Uint64(p)),
			end:         int64(binary.BigEndian.Uint64(p[8:])),
			cleanedAtMs: int64(binary.BigEndian.Uint64(p[16:])),
		}
		if r.start < 0 || r.end <= r.start || r.start < prevEnd || r.end > st.gapBound {
			return bad("tombstone range %+v", r)
		}
		prevEnd = r.end
		st.tombstones = append(st.tombstones, r)
	}
	return st, nil
}

// cleanedAt returns when the tombstone at offset was first cleaned, and
// false when no range holds it (it has not been through a pass, or the
// checkpoint was lost): such a tombstone counts as cleaned now.
func (st *cleanerState) cleanedAt(offset int64) (int64, bool) {
	rs := st.tombstones
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi) / 2
		if rs[mid].end <= offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(rs) && rs[lo].start <= offset {
		return rs[lo].cleanedAtMs, true
	}
	return 0, false
}

// tombstoneDeadline is the earliest time (unix ms) a retained tombstone
// may be removed, or math.MaxInt64 when there is none.
func (st *cleanerState) tombstoneDeadline(retentionMs int64) int64 {
	d := int64(math.MaxInt64)
	for _, r := range st.tombstones {
		d = min(d, tombstoneExpiry(r.cleanedAtMs, retentionMs))
	}
	return d
}

// truncate drops what the state says about offsets at or after end.
func (st *cleanerState) truncate(end int64) bool {
	changed := false
	if st.firstDirty > end {
		st.firstDirty, changed = end, true
	}
	if st.gapBound > end {
		st.gapBound, changed = end, true
	}
	kept := st.tombstones[:0]
	for _, r := range st.tombstones {
		if r.start >= end {
			changed = true
			continue
		}
		if r.end > end {
			r.end, changed = end, true
		}
		kept = append(kept, r)
	}
	st.tombstones = kept
	return changed
}

// rangeBuilder collects the tombstones a pass retains, in offset order,
// into ranges by first-clean time.
type rangeBuilder struct {
	ranges []tombstoneRange
}

func (b *rangeBuilder) add(offset, cleanedAtMs int64) {
	if n := len(b.ranges); n > 0 && b.ranges[n-1].cleanedAtMs == cleanedAtMs && b.ranges[n-1].end <= offset {
		b.ranges[n-1].end = offset + 1
		return
	}
	b.ranges = append(b.ranges, tombstoneRange{start: offset, end: offset + 1, cleanedAtMs: cleanedAtMs})
}

// mergeTombstoneRanges returns ranges with adjacent entries merged until
// at most maxTombstoneRanges remain. A merged range keeps the later time,
// so no tombstone becomes removable sooner than it would have.
func mergeTombstoneRanges(ranges []tombstoneRange) []tombstoneRange {
	for len(ranges) > maxTombstoneRanges {
		// Merge the pair whose times are closest: it delays the fewest
		// removals the least.
		best, bestDiff := 0, int64(math.MaxInt64)
		for i := 0; i+1 < len(ranges); i++ {
			diff := ranges[i+1].cleanedAtMs - ranges[i].cleanedAtMs
			if diff < 0 {
				diff = -diff
			}
			if diff < bestDiff {
				best, bestDiff = i, diff
			}
		}
		a, b := ranges[best], ranges[best+1]
		ranges[best] = tombstoneRange{start: a.start, end: b.end, cleanedAtMs: max(a.cleanedAtMs, b.cleanedAtMs)}
		ranges = append(ranges[:best+1], ranges[best+2:]...)
	}
	return ranges
}

// readCleanerState reads cleaner-checkpoint. ok is false when the file
// exists but cannot be trusted; a missing file is a log never cleaned.
func (l *Log) readCleanerState() (st cleanerState, ok bool) {
	p, err := readCheckpoint(l.fs, checkpointPath(l.dir, cleanerCheckpointFile), magicCleaner)
	if err == nil && p == nil {
		return newCleanerState(), true
	}
	if err == nil {
		if st, err = decodeCleanerState(p); err == nil {
			return st, true
		}
	}
	l.logger.Warn("ignoring unreadable cleaner checkpoint; offset gaps are accepted anywhere in the log at this open and the log is cleaned again from its start", zap.Error(err))
	return newCleanerState(), false
}

func (l *Log) writeCleanerState(st *cleanerState) error {
	return writeCheckpoint(l.fs, checkpointPath(l.dir, cleanerCheckpointFile), magicCleaner, st.encode())
}
