package storage

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
)

// errSwapCommitted marks a swap that failed after the cleaned segment was
// renamed to .swap: its files must stay for recovery to finish the swap.
var errSwapCommitted = errors.New("swap committed")

// swapCleaned replaces the segments all[i:j] of the plan (based in
// [base, end)) with the cleaned segment out, whose .cleaned files are
// written and fsynced, following Kafka's protocol:
//
//  1. write the cleaner checkpoint naming the swap (base, end), with the
//     gap bound raised to cover the cleaned segment;
//  2. rename the cleaned .index, .timeindex and then .log to .swap and
//     fsync the directory: from here the swap is committed, and recovery
//     finishes it (a .log.swap at open means: delete the segments based in
//     [base, end) and rename the .swap files to their final names);
//  3. rename the replaced segments' files to .deleted (in-flight readers
//     keep their open descriptors, as with retention);
//  4. rename the .swap files to their final names, the .log last, and
//     fsync the directory;
//  5. install the new segment list.
//
// A failure before step 2 leaves the log as it was (the caller removes the
// cleaned files); a failure after it is sticky (ErrStorage, wrapping
// errSwapCommitted): the log keeps serving reads from the old segments'
// open files and must be reopened, which completes the swap.
func (l *Log) swapCleaned(p *cleanPlan, i, j int, out *segment, size int64, intent cleanerState, lastCommitRemoved int64, abortsRemoved []int64) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkPassLocked(p); err != nil {
		return err
	}
	group := p.all[i:j]
	base, end := group[0].base, p.all[j].base
	cur := l.segments()
	at := slices.Index(cur, group[0])
	if at < 0 || at+len(group) >= len(cur) {
		return fmt.Errorf("%w: segment %d is gone", ErrCleanAborted, base)
	}
	for k, s := range group {
		if cur[at+k] != s || s.tail.Load() != p.tails[i+k] {
			return fmt.Errorf("%w: segment %d changed", ErrCleanAborted, s.base)
		}
	}
	if cur[at+len(group)].base != end {
		return fmt.Errorf("%w: segment after %d changed", ErrCleanAborted, base)
	}

	// 1. The intent, and the gap bound that lets recovery accept the
	// cleaned segment's gaps.
	if err := l.writeCleanerState(&intent); err != nil {
		return fmt.Errorf("write cleaner checkpoint: %w", err)
	}
	l.mu.cleaner = intent

	// Producer snapshots that a removed marker's transaction is in go
	// before the commit (a restart without them replays the producers
	// from the log start, where it meets neither the marker nor the
	// transaction's records). Every snapshot lists an abort marker's
	// transaction as aborted: restored from one, the list would have a
	// read_committed reader drop the producer's later records, looking
	// for the marker; they all go, and the next flush writes a new one.
	// A snapshot below a removed commit marker may hold its transaction
	// open, which a replay from it could not close; one above it does
	// not. (The newest snapshot lies past everything the cleaner
	// rewrites: it is at or after the base of the segment active at the
	// last flush.)
	switch {
	case len(abortsRemoved) > 0:
		if err := l.removeSnapshotsLocked(math.MaxInt64); err != nil {
			return err
		}
	case lastCommitRemoved >= 0:
		if err := l.removeSnapshotsLocked(lastCommitRemoved); err != nil {
			return err
		}
	}

	// 2. Commit.
	name := filepath.Join(l.dir, fileBase(base))
	for _, suffix := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
		if err := l.fs.Rename(name+suffix+cleanedSuffix, name+suffix+swapSuffix); err != nil {
			return fmt.Errorf("swap cleaned segment %d: %w", base, err)
		}
	}
	fail := func(op string, err error) error {
		return fmt.Errorf("%w: %w", errSwapCommitted, l.failLocked(op, err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("swap cleaned segment", err)
	}

	// 3. The replaced segments go.
	for _, s := range group {
		if err := l.renameDeleted(s); err != nil {
			return fail("swap cleaned segment", err)
		}
	}
	// 4. The cleaned one takes its place.
	for _, suffix := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
		if err := l.fs.Rename(name+suffix+swapSuffix, name+suffix); err != nil {
			return fail("swap cleaned segment", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("swap cleaned segment", err)
	}

	// 5. Readers see the new list; the old segments' files close when the
	// last reader releases them. The aborted transactions whose markers
	// went leave the list first: a fetch reads the segments, then the
	// list, so one that reads the new segments cannot be told of them.
	if len(abortsRemoved) > 0 {
		l.mu.aborted = slices.DeleteFunc(slices.Clone(l.mu.aborted), func(a AbortedTxn) bool {
			return slices.Contains(abortsRemoved, a.LastOffset)
		})
		l.publishTxnLocked(true)
	}
	out.tail.Store(packTail(uint32(end-base), uint32(size)))
	out.unloadIndex()
	segs := make([]*segment, 0, len(cur)-len(group)+1)
	segs = append(append(append(segs, cur[:at]...), out), cur[at+len(group):]...)
	l.setSegments(segs)
	l.dropSegmentsLocked(group)
	return nil
}

// completeSwaps finishes or rolls back cleaner swaps interrupted by a
// crash, before Open reads the segments. contents is updated to match.
//
//   - A <base>.log.swap means the swap was committed: every segment based
//     in [base, end) is deleted (end from the cleaner checkpoint's swap
//     record; if that is unreadable, the swap's last offset + 1, Kafka's
//     rule) and the .swap files are renamed to their final names.
//   - An .index.swap or .timeindex.swap without a .log.swap is the
//     beginning of a swap that never committed: removed.
//
// (.cleaned files are removed by listDir.)
func (l *Log) completeSwaps(c *dirContents, st *cleanerState, stOK bool) error {
	if len(c.swaps) == 0 {
		return nil
	}
	var committed []int64
	for _, name := range c.swaps {
		if base, ok := parseFileBase(name, logSuffix+swapSuffix); ok {
			committed = append(committed, base)
		}
	}
	for _, name := range c.swaps {
		if base := baseOrMinus1(strings.TrimSuffix(name, swapSuffix)); base >= 0 && slices.Contains(committed, base) {
			continue
		}
		if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !isNotExist(err) {
			return fmt.Errorf("remove uncommitted swap file %s: %w", name, err)
		}
	}
	for _, base := range committed {
		name := filepath.Join(l.dir, fileBase(base))
		end := int64(-1)
		if stOK && st.swapBase == base {
			end = st.swapEnd
		} else {
			last, err := l.lastOffsetIn(name + logSuffix + swapSuffix)
			if err != nil {
				return err
			}
			end = max(last+1, base+1)
			l.logger.Warn("cleaner checkpoint does not name the interrupted swap; replacing the segments its offsets cover",
				zap.Int64("swap_base", base), zap.Int64("end", end))
		}
		var replaced []int64
		for _, old := range c.logs {
			if old > base && old < end {
				replaced = append(replaced, old)
				for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
					if err := l.fs.Remove(filepath.Join(l.dir, fileBase(old)+suffix)); err != nil && !isNotExist(err) {
						return fmt.Errorf("complete cleaner swap: %w", err)
					}
				}
			}
		}
		for _, suffix := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
			if err := l.fs.Rename(name+suffix+swapSuffix, name+suffix); err != nil && !isNotExist(err) {
				return fmt.Errorf("complete cleaner swap: %w", err)
			}
		}
		c.logs = slices.DeleteFunc(c.logs, func(b int64) bool { return slices.Contains(replaced, b) })
		if !slices.Contains(c.logs, base) {
			c.logs = append(c.logs, base)
			slices.Sort(c.logs)
		}
		l.logger.Info("completed an interrupted cleaner swap",
			zap.Int64("base_offset", base), zap.Int64("end_offset", end), zap.Int("segments_replaced", len(replaced)+1))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("complete cleaner swap: %w", err)
	}
	return nil
}

// baseOrMinus1 parses the base offset of a segment file name with any of
// the segment suffixes, or returns -1.
func baseOrMinus1(stem string) int64 {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if base, ok := parseFileBase(stem, suffix); ok {
			return base
		}
	}
	return -1
}

// lastOffsetIn returns the last offset of the last whole batch in a
// segment file (by its headers), or -1.
func (l *Log) lastOffsetIn(path string) (int64, error) {
	f, err := l.fs.OpenFile(path, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, fmt.Errorf("size %s: %w", path, err)
	}
	last := int64(-1)
	var hdr [record.HeaderSize]byte
	for pos := int64(0); pos+record.HeaderSize <= size; {
		if err := readFull(f, hdr[:], pos); err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
		h, err := record.ParseHeader(hdr[:])
		if err != nil || pos+h.Size() > size {
			break
		}
		last = h.LastOffset()
		pos += h.Size()
	}
	return last, nil
}

// removeSnapshotsLocked deletes the producer snapshots at or below
// through; when that takes the newest, it makes the next flush due and
// write one. Called with flushMu and mu held.
func (l *Log) removeSnapshotsLocked(through int64) error {
	offsets, err := l.listSnapshots()
	if err != nil {
		return err
	}
	for _, off := range offsets {
		if off > through {
			continue
		}
		if err := l.fs.Remove(l.snapshotPath(off)); err != nil && !isNotExist(err) {
			return fmt.Errorf("remove producer snapshot: %w", err)
		}
	}
	if l.mu.snapshotOffset <= through {
		l.mu.snapshotOffset = -1
		l.firstUnflushed.CompareAndSwap(0, l.now().UnixNano())
	}
	return nil
}
