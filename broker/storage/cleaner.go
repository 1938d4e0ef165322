package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
)

// Log compaction, Kafka's log cleaner (docs/format.md, "Compaction"). One
// pass over one log:
//
//  1. Plan, under the log's lock: the segments that may be rewritten are
//     those wholly below the first uncleanable offset, the smallest of the
//     active segment's base, the base of the segment that was active at the
//     last flush (so only fsynced data is ever rewritten), the first segment
//     not wholly below the high watermark, and the first dirty segment whose
//     newest record is younger than min.compaction.lag.ms.
//  2. Map: read the dirty section [firstDirty, firstUncleanable) and record
//     each key's latest offset in the offset map; when the map would
//     overflow, the pass ends at that batch (endOffset).
//  3. Rewrite every segment based below endOffset, in groups whose sizes add
//     up to at most segment.bytes, one new segment per group, keeping a
//     record unless a later offset in the map holds its key, its key is
//     null, or it is a tombstone that was first cleaned more than
//     delete.retention.ms ago. Offsets are kept, so batches and segments get
//     gaps. A batch whose records all stay is copied byte for byte; one that
//     loses some is rebuilt with the same codec, producer fields, base offset,
//     last offset delta and leader epoch; one that loses all is dropped,
//     unless it is its producer's last batch, which stays as an empty batch
//     (no records, same offsets and sequences) so the idempotent producer
//     state can always be rebuilt from the log.
//  4. Swap each group in with Kafka's crash-safe protocol (swapCleaned).

// Cleaner compacts logs whose cleanup.policy includes compact. A Manager
// owns one and runs it in one goroutine (Kafka's log.cleaner.threads=1);
// Clean may also be called directly. A Cleaner is not safe for concurrent
// use: its offset map and I/O buffers are reused from pass to pass, which
// bounds the memory compaction uses.
type Cleaner struct {
	cfg      CleanerConfig
	omap     *offsetMap
	builder  *record.Builder
	readBuf  []byte
	writeBuf []byte
	batchBuf []byte
	throttle *throttler
}

// NewCleaner returns a cleaner with cfg (defaults applied).
func NewCleaner(cfg CleanerConfig) *Cleaner {
	cfg = cfg.WithDefaults()
	return &Cleaner{
		cfg:      cfg,
		omap:     newOffsetMap(cfg.DedupeBufferSize),
		builder:  record.NewBuilder(),
		throttle: newThrottler(cfg.IOMaxBytesPerSecond),
	}
}

// CleanResult describes one cleaner pass over one log.
type CleanResult struct {
	FirstDirtyOffset  int64 // the cleaner's progress before the pass
	EndOffset         int64 // and after: offsets below it have been cleaned
	SegmentsRewritten int   // segments rewritten (a lone segment with nothing to drop is left in place)
	SegmentsWritten   int   // cleaned segments swapped in
	BytesRead         int64 // segment bytes read (mapping and rewriting)
	BytesWritten      int64 // cleaned segment bytes written
	RecordsRead       int64 // records examined while rewriting
	RecordsRemoved    int64 // records dropped, of every kind below
	TombstonesRemoved int64 // tombstones dropped after delete.retention.ms
	MarkersRemoved    int64 // transaction markers dropped after delete.retention.ms
	NullKeysRemoved   int64 // records without a key dropped
	Duration          time.Duration
	Throttled         time.Duration // time spent sleeping for the I/O limit
}

// progressed reports whether the pass moved the log forward.
func (r *CleanResult) progressed() bool {
	return r.EndOffset > r.FirstDirtyOffset || r.RecordsRemoved > 0 || r.SegmentsWritten > 0
}

// CleanerStats describes the cleaner's work on one log since it was
// opened, for metrics.
type CleanerStats struct {
	Passes            int64 // passes completed that had something to clean
	Failures          int64 // passes that failed (aborts are not failures)
	BytesRead         int64
	BytesWritten      int64
	RecordsRemoved    int64
	TombstonesRemoved int64
	FirstDirtyOffset  int64         // the cleaner's progress
	LastCleanTime     time.Time     // end of the last completed pass; zero if none
	LastCleanDuration time.Duration // duration of the last completed pass
	LastError         error         // the last failure; nil once a pass completes
}

// CleanerStats returns the log's cleaner statistics.
func (l *Log) CleanerStats() CleanerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.mu.cleanStats
	st.FirstDirtyOffset = l.mu.cleaner.firstDirty
	return st
}

// ErrDedupeBufferTooSmall means the offset map cannot hold the keys of a
// single batch: raise log.cleaner.dedupe.buffer.size.
var ErrDedupeBufferTooSmall = errors.New("cleaner dedupe buffer too small for one batch")

// Suffixes of the cleaner's files: a cleaned segment is written as
// .cleaned, renamed to .swap once complete, and renamed over the final
// name after the segments it replaces are gone.
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"
)

// passState accumulates what a pass learns while it rewrites groups.
type passState struct {
	res           CleanResult
	newFirstDirty int64
	ranges        rangeBuilder
	// committing holds the producers whose committed transaction had a
	// batch in this pass since their last marker: its commit marker
	// stays while any of its batches is in the log.
	committing map[int64]bool
	// aborting holds the producers whose aborted transaction had a batch
	// in this pass since their last marker: its abort marker stays.
	aborting map[int64]bool
	// The markers the group being rewritten removes: the last commit
	// marker's offset (-1 if none), and every abort marker's, whose
	// aborted transactions leave the log's list when it is swapped in.
	lastCommitRemoved int64
	abortsRemoved     []int64
}

// Clean runs one cleaner pass over l, whatever its dirty ratio, and
// returns what it did. A log that is not compacted, or has nothing
// cleanable, is left alone. ctx stops the pass between batches.
//
// Errors: ErrCleanAborted (the log changed under the pass or ctx ended;
// nothing is lost), ErrClosed, ErrStorage (sticky, when a swap failed half
// way: the log must be reopened, which completes the swap), corruption
// found in a segment, and I/O errors writing the cleaned files.
func (c *Cleaner) Clean(ctx context.Context, l *Log) (CleanResult, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	start := time.Now()
	p, err := l.planClean()
	if err != nil || p == nil {
		return CleanResult{}, err
	}
	defer p.release()
	ps := &passState{
		res:        CleanResult{FirstDirtyOffset: p.state.firstDirty, EndOffset: p.state.firstDirty},
		committing: map[int64]bool{},
		aborting:   map[int64]bool{},
	}
	c.throttle.slept = 0
	err = c.clean(ctx, p, ps)
	ps.res.Duration = time.Since(start)
	ps.res.Throttled = c.throttle.slept
	l.recordClean(&ps.res, err)
	return ps.res, err
}

func (c *Cleaner) clean(ctx context.Context, p *cleanPlan, ps *passState) error {
	if p.n == 0 {
		return nil
	}
	l := p.l
	if cap(c.readBuf) < c.cfg.IOBufferSize {
		c.readBuf = make([]byte, c.cfg.IOBufferSize)
		c.writeBuf = make([]byte, 0, c.cfg.IOBufferSize)
	}
	endOffset, err := c.buildOffsetMap(ctx, p, &ps.res)
	if err != nil {
		return err
	}
	ps.newFirstDirty = max(p.state.firstDirty, endOffset)

	// Group the segments based below endOffset.
	k := 0
	for k < p.n && p.all[k].base < endOffset {
		k++
	}
	var groups [][2]int
	for i := 0; i < k; {
		j, size := i+1, p.size(i)
		for j < k && size+p.size(j) <= p.cfg.SegmentBytes && p.all[j+1].base-p.all[i].base <= math.MaxUint32 {
			size += p.size(j)
			j++
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	if len(groups) == 0 {
		return nil
	}
	for _, g := range groups {
		if err := c.cleanGroup(ctx, p, ps, g[0], g[1]); err != nil {
			return err
		}
	}
	ps.res.EndOffset = ps.newFirstDirty

	// The pass is complete: record the new progress and ranges.
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkPassLocked(p); err != nil {
		return err
	}
	last := p.all[groups[len(groups)-1][1]].base
	st := cleanerState{
		firstDirty: ps.newFirstDirty,
		gapBound:   max(p.state.gapBound, ps.newFirstDirty),
		swapBase:   -1,
		swapEnd:    -1,
		tombstones: mergeTombstoneRanges(append(append([]tombstoneRange(nil), ps.ranges.ranges...), rangesFrom(p.state.tombstones, last)...)),
	}
	if err := l.writeCleanerState(&st); err != nil {
		return fmt.Errorf("write cleaner checkpoint: %w", err)
	}
	l.mu.cleaner = st
	return nil
}

// rangesFrom returns the parts of ranges at or above offset.
func rangesFrom(ranges []tombstoneRange, offset int64) []tombstoneRange {
	var out []tombstoneRange
	for _, r := range ranges {
		if r.end <= offset {
			continue
		}
		r.start = max(r.start, offset)
		out = append(out, r)
	}
	return out
}

// checkPassLocked fails with ErrCleanAborted when the log changed in a way
// the pass cannot carry over: closed, failed, or truncated.
func (l *Log) checkPassLocked(p *cleanPlan) error {
	switch {
	case l.mu.closed:
		return fmt.Errorf("%w: %w", ErrCleanAborted, ErrClosed)
	case l.mu.werr != nil:
		return l.mu.werr
	case l.mu.cleanerGen != p.gen:
		return fmt.Errorf("%w: log truncated during the pass", ErrCleanAborted)
	}
	return nil
}

// recordClean updates the log's cleaner statistics and logs the pass.
func (l *Log) recordClean(res *CleanResult, err error) {
	l.mu.Lock()
	st := &l.mu.cleanStats
	st.BytesRead += res.BytesRead
	st.BytesWritten += res.BytesWritten
	switch {
	case err == nil && res.SegmentsRewritten == 0 && !res.progressed():
		// Nothing was cleanable.
	case err == nil:
		st.Passes++
		st.RecordsRemoved += res.RecordsRemoved
		st.TombstonesRemoved += res.TombstonesRemoved
		st.LastCleanTime = l.now()
		st.LastCleanDuration = res.Duration
		st.LastError = nil
	case !errors.Is(err, ErrCleanAborted) && !errors.Is(err, ErrClosed):
		st.Failures++
		st.LastError = err
	}
	l.mu.Unlock()
	fields := []zap.Field{
		zap.Int64("first_dirty_offset", res.FirstDirtyOffset), zap.Int64("end_offset", res.EndOffset),
		zap.Int("segments_rewritten", res.SegmentsRewritten), zap.Int("segments_written", res.SegmentsWritten),
		zap.Int64("bytes_read", res.BytesRead), zap.Int64("bytes_written", res.BytesWritten),
		zap.Int64("records_read", res.RecordsRead), zap.Int64("records_removed", res.RecordsRemoved),
		zap.Int64("tombstones_removed", res.TombstonesRemoved), zap.Int64("markers_removed", res.MarkersRemoved), zap.Int64("null_keys_removed", res.NullKeysRemoved),
		zap.Duration("took", res.Duration), zap.Duration("throttled", res.Throttled),
	}
	switch {
	case err == nil:
		if res.SegmentsRewritten > 0 {
			l.logger.Info("cleaned log", fields...)
		}
	case errors.Is(err, ErrCleanAborted) || errors.Is(err, ErrClosed):
		l.logger.Info("log cleaning aborted", append(fields, zap.Error(err))...)
	default:
		l.logger.Warn("log cleaning failed", append(fields, zap.Error(err))...)
	}
}

// buildOffsetMap maps each key of the dirty section to its latest offset
// and returns where the mapped section ends.
func (c *Cleaner) buildOffsetMap(ctx context.Context, p *cleanPlan, res *CleanResult) (int64, error) {
	c.omap.reset()
	from, to := p.firstDirty, p.firstUncleanable
	if from >= to {
		return from, nil
	}
	capacity := c.omap.capacity()
	for i := range p.n {
		s := p.all[i]
		if p.all[i+1].base <= from {
			continue
		}
		if s.base >= to {
			break
		}
		sc := c.scanner(ctx, s, p.size(i), res)
		if s.base < from {
			pos, _, err := s.lookup(from, p.size(i))
			if err != nil {
				return 0, fmt.Errorf("map %s: %w", s.path(logSuffix), err)
			}
			sc.pos = pos
		}
		for {
			h, batch, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, err
			}
			if h.LastOffset() < from || h.Control() || p.abortedBatch(&h) {
				continue // markers have no key to keep; aborted records lose to any
			}
			if c.omap.size+int(h.NumRecords) > capacity {
				if c.omap.size == 0 {
					return 0, fmt.Errorf("batch at offset %d holds %d records, the map %d: %w", h.BaseOffset, h.NumRecords, capacity, ErrDedupeBufferTooSmall)
				}
				return max(h.BaseOffset, from), nil
			}
			err = record.Records(h, batch, func(r *record.Record) error {
				off := h.BaseOffset + int64(r.OffsetDelta)
				if off >= from && r.Key != nil {
					c.omap.put(r.Key, off)
				}
				return nil
			})
			if err != nil {
				return 0, &CorruptionError{Segment: s.path(logSuffix), Pos: sc.pos - h.Size(), Err: err}
			}
		}
	}
	return to, nil
}

// cleanGroup rewrites all[i:j] into one cleaned segment and swaps it in.
func (c *Cleaner) cleanGroup(ctx context.Context, p *cleanPlan, ps *passState, i, j int) (err error) {
	l := p.l
	group := p.all[i:j]
	base, end := group[0].base, p.all[j].base
	name := filepath.Join(l.dir, fileBase(base))
	f, err := l.fs.OpenFile(name+logSuffix+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create cleaned segment: %w", err)
	}
	out := newSegment(l.fs, l.dir, base, f, 0, 0, true)
	out.logger = l.logger
	swapped := false
	defer func() {
		if swapped {
			return
		}
		_ = f.Close()
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			for _, state := range []string{cleanedSuffix, swapSuffix} {
				if rerr := l.fs.Remove(name + suffix + state); rerr != nil && !isNotExist(rerr) {
					l.logger.Warn("remove cleaner file", zap.String("file", name+suffix+state), zap.Error(rerr))
				}
			}
		}
	}()

	ps.lastCommitRemoved, ps.abortsRemoved = -1, ps.abortsRemoved[:0]
	w := cleanWriter{c: c, ctx: ctx, f: f, seg: out, interval: p.cfg.IndexIntervalBytes, res: &ps.res}
	changed := len(group) > 1
	for k, s := range group {
		sc := c.scanner(ctx, s, p.size(i+k), &ps.res)
		for {
			h, batch, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if l.closed.Load() {
				return fmt.Errorf("%w: %w", ErrCleanAborted, ErrClosed)
			}
			kept, kh, batchChanged, err := c.filterBatch(p, ps, h, batch)
			if err != nil {
				return &CorruptionError{Segment: s.path(logSuffix), Pos: sc.pos - h.Size(), Err: err}
			}
			changed = changed || batchChanged
			if kept != nil {
				if err := w.write(kept, &kh); err != nil {
					return err
				}
			}
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	ps.res.SegmentsRewritten += len(group)
	if !changed {
		// One segment, every batch kept as it was: nothing to swap.
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync cleaned segment %s: %w", f.Name(), err)
	}
	out.sealTimeIndex()
	offs, times := out.encodeIndexes()
	if err := writeAndSync(l.fs, name+indexSuffix+cleanedSuffix, offs); err != nil {
		return err
	}
	if err := writeAndSync(l.fs, name+timeIndexSuffix+cleanedSuffix, times); err != nil {
		return err
	}
	intent := cleanerState{
		firstDirty: p.state.firstDirty,
		gapBound:   max(p.state.gapBound, ps.newFirstDirty),
		swapBase:   base,
		swapEnd:    end,
		tombstones: mergeTombstoneRanges(append(append([]tombstoneRange(nil), ps.ranges.ranges...), rangesFrom(p.state.tombstones, end)...)),
	}
	if err := l.swapCleaned(p, i, j, out, w.pos, intent, ps.lastCommitRemoved, ps.abortsRemoved); err != nil {
		if errors.Is(err, errSwapCommitted) {
			swapped = true // the files belong to the log now, for recovery to finish
		}
		return err
	}
	swapped = true
	ps.res.SegmentsWritten++
	return nil
}

// filterBatch decides what of one batch stays. It returns the batch to
// write (nil to drop it) and its header, and whether it differs from the
// original. The returned slice is valid until the next call.
func (c *Cleaner) filterBatch(p *cleanPlan, ps *passState, h record.Header, batch []byte) ([]byte, record.Header, bool, error) {
	ps.res.RecordsRead += int64(h.NumRecords)
	producerLast := h.ProducerID >= 0 && p.lastBatch[h.ProducerID] == h.BaseOffset
	if h.Control() {
		return c.filterMarker(p, ps, h, batch, producerLast)
	}
	aborted := p.abortedBatch(&h)
	if h.Transactional() && !aborted {
		ps.committing[h.ProducerID] = true
	}
	if aborted {
		ps.aborting[h.ProducerID] = true
		ps.res.RecordsRemoved += int64(h.NumRecords)
		if !producerLast {
			return nil, h, true, nil
		}
		c.batchBuf = appendEmptyBatch(c.batchBuf[:0], &h)
		nh, err := record.ParseHeader(c.batchBuf)
		return c.batchBuf, nh, true, err
	}
	if h.NumRecords == 0 {
		if producerLast {
			return batch, h, false, nil
		}
		return nil, h, true, nil
	}
	b := c.builder
	b.Reset()
	if err := b.SetCodec(h.Codec()); err != nil {
		return nil, h, false, err
	}
	b.SetProducer(h.ProducerID, h.ProducerEpoch, h.BaseSequence).
		SetBaseOffset(h.BaseOffset).
		SetPartitionLeaderEpoch(h.PartitionLeaderEpoch).
		SetLogAppendTime(h.LogAppendTime()).
		SetTransactional(h.Transactional()).
		SetControl(h.Control())
	kept := 0
	err := record.Records(h, batch, func(r *record.Record) error {
		off := h.BaseOffset + int64(r.OffsetDelta)
		if !c.retain(p, ps, off, r) {
			ps.res.RecordsRemoved++
			return nil
		}
		kept++
		ts := h.BaseTimestamp + r.TimestampDelta
		if h.LogAppendTime() {
			ts = h.MaxTimestamp
		}
		return b.AddWithOffsetDelta(r.OffsetDelta, r.Key, r.Value, r.Headers, ts)
	})
	if err != nil {
		return nil, h, false, err
	}
	switch kept {
	case int(h.NumRecords):
		return batch, h, false, nil
	case 0:
		if !producerLast {
			return nil, h, true, nil
		}
		c.batchBuf = appendEmptyBatch(c.batchBuf[:0], &h)
	default:
		b.SetLastOffsetDelta(h.LastOffsetDelta)
		c.batchBuf = b.AppendTo(c.batchBuf[:0])
	}
	nh, err := record.ParseHeader(c.batchBuf)
	return c.batchBuf, nh, true, err
}

// filterMarker decides whether a transaction marker stays. As in Kafka,
// a marker goes once none of its transaction's batches is left in the log
// (this pass met none since the producer's previous marker, the passes
// before having removed them: an aborted transaction's at the first pass
// over them, a committed one's as later records of their keys supersede
// them) and delete.retention.ms has passed since a pass first found it so,
// which the tombstone ranges record as they do for tombstones. The
// producer's last batch stays, as for data: it holds the producer's latest
// epoch. An abort marker's transaction leaves the log's aborted list when
// the group is swapped in (see swapCleaned): a read_committed reader told
// of an aborted transaction drops its producer's records until it meets
// the marker.
func (c *Cleaner) filterMarker(p *cleanPlan, ps *passState, h record.Header, batch []byte, producerLast bool) ([]byte, record.Header, bool, error) {
	commit, ok, err := markerType(&h, batch)
	if err != nil || !ok {
		return batch, h, false, err
	}
	txn := ps.aborting
	if commit {
		txn = ps.committing
	}
	hadBatches := txn[h.ProducerID]
	delete(txn, h.ProducerID)
	if hadBatches || producerLast {
		return batch, h, false, nil
	}
	off := h.BaseOffset
	cleanedAt, known := p.state.cleanedAt(off)
	if known && off < p.state.firstDirty && tombstoneExpiry(cleanedAt, p.cfg.deleteRetention()) <= p.nowMs {
		ps.res.MarkersRemoved++
		ps.res.RecordsRemoved += int64(h.NumRecords)
		if commit {
			ps.lastCommitRemoved = off
		} else {
			ps.abortsRemoved = append(ps.abortsRemoved, off)
		}
		return nil, h, true, nil
	}
	if off < ps.newFirstDirty {
		if !known {
			cleanedAt = p.nowMs
		}
		ps.ranges.add(off, cleanedAt)
	}
	return batch, h, false, nil
}

// retain decides whether the record at off stays, and notes the
// tombstones that do.
func (c *Cleaner) retain(p *cleanPlan, ps *passState, off int64, r *record.Record) bool {
	if r.Key == nil {
		// A compacted topic refuses such records; they can only come
		// from before the topic was compacted. Kafka's cleaner drops
		// them too.
		ps.res.NullKeysRemoved++
		return false
	}
	if latest, ok := c.omap.get(r.Key); ok && latest > off {
		return false
	}
	if r.Value == nil {
		cleanedAt, known := p.state.cleanedAt(off)
		if known && off < p.state.firstDirty && tombstoneExpiry(cleanedAt, p.cfg.deleteRetention()) <= p.nowMs {
			ps.res.TombstonesRemoved++
			return false
		}
		if off < ps.newFirstDirty {
			if !known {
				cleanedAt = p.nowMs
			}
			ps.ranges.add(off, cleanedAt)
		}
	}
	return true
}
