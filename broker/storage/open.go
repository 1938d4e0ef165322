package storage

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// Open opens the partition log in opts.Dir, creating the directory if
// missing, and recovers it:
//
//   - segments before the one that was active at the last flush (named in
//     the recovery point) were fsynced with their indexes and are trusted;
//     their indexes are loaded on first use, checked against the log
//     (segment.checkIndex: a few small reads), and rebuilt from the log if
//     the check fails;
//   - that segment, every later one, and always the active segment, are
//     verified batch by batch (length, magic,
//     CRC-32C, contiguous offsets, leader epochs); the log is truncated at
//     the first bad byte and later segments are deleted;
//   - producer state is the newest snapshot at or below the recovered end
//     plus the batches after it; the leader-epoch cache is trimmed to the
//     log.
//
// A cleaner swap interrupted by a crash is completed first (see
// swapCleaned); below the cleaner's gap bound batches may follow offset
// gaps. Leftover temporary, deleted and unfinished cleaned files are
// removed.
func Open(opts Options) (*Log, error) {
	if opts.FS == nil || opts.Dir == "" {
		return nil, errors.New("open log: Options.FS and Options.Dir are required")
	}
	l := &Log{
		fs:         opts.FS,
		dir:        opts.Dir,
		topic:      opts.Topic,
		partition:  opts.Partition,
		logger:     opts.Logger,
		now:        opts.Now,
		onAppend:   opts.OnAppend,
		beforeRoll: opts.BeforeRoll,
	}
	if l.logger == nil {
		l.logger = zap.NewNop()
	}
	l.logger = l.logger.With(zap.String("topic", opts.Topic), zap.Int32("partition", opts.Partition))
	if l.now == nil {
		l.now = time.Now
	}
	l.SetConfig(opts.Config)
	l.mu.producers = producerStates{}
	l.unstable.Store(math.MaxInt64)
	l.mu.cleaner = newCleanerState()
	l.mu.snapshotOffset = -1
	if err := l.open(); err != nil {
		for _, s := range *l.segs.Load() {
			s.unref()
		}
		return nil, fmt.Errorf("open log %s: %w", l.dir, err)
	}
	return l, nil
}

// dirContents is what Open finds in a partition directory.
type dirContents struct {
	logs      []int64
	snapshots []int64
	indexes   []string // .index and .timeindex names
	swaps     []string // cleaner .swap files
}

func (l *Log) listDir() (dirContents, error) {
	var c dirContents
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return c, fmt.Errorf("list: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			_, isLog := parseFileBase(name, logSuffix)
			_, isSnap := parseFileBase(name, snapshotSuffix)
			if isLog || isSnap {
				// Skipping it would leave the name taken: the write
				// that needs it (a roll, a snapshot) would fail, at
				// every start.
				return c, fmt.Errorf("%s is a directory where a log file belongs: move it out of the partition directory", filepath.Join(l.dir, name))
			}
			continue
		}
		if strings.HasSuffix(name, swapSuffix) {
			c.swaps = append(c.swaps, name)
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, deletedSuffix) || strings.HasSuffix(name, cleanedSuffix) {
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return c, fmt.Errorf("remove leftover %s: %w", name, err)
			}
			continue
		}
		if base, ok := parseFileBase(name, logSuffix); ok {
			c.logs = append(c.logs, base)
		} else if base, ok := parseFileBase(name, snapshotSuffix); ok {
			c.snapshots = append(c.snapshots, base)
		} else if strings.HasSuffix(name, indexSuffix) || strings.HasSuffix(name, timeIndexSuffix) {
			c.indexes = append(c.indexes, name)
		}
	}
	slices.Sort(c.logs)
	slices.Sort(c.snapshots)
	return c, nil
}

func (l *Log) open() error {
	start := time.Now()
	empty := []*segment{}
	l.segs.Store(&empty)
	if err := vfs.MkdirAllDurable(l.fs, l.dir, 0o755); err != nil {
		return err
	}
	if fi, err := l.fs.Stat(l.dir); err == nil {
		l.dirID = fi
	}
	contents, err := l.listDir()
	if err != nil {
		return err
	}
	// A cleaner swap interrupted by a crash is finished first: until then
	// the directory may hold both a cleaned segment and the ones it
	// replaces.
	cleaner, cleanerOK := l.readCleanerState()
	if err := l.completeSwaps(&contents, &cleaner, cleanerOK); err != nil {
		return err
	}
	rp, haveRP, err := l.readRecoveryPoint()
	if err != nil {
		return err
	}
	missing, err := l.removeOrphanIndexes(&contents, rp, haveRP, cleaner, cleanerOK)
	if err != nil {
		return err
	}

	l.mu.recovery, l.mu.flushed, l.mu.recoveryAt, l.mu.recoveryOnDisk = rp, rp, l.now(), haveRP
	// A checkpoint that cannot be read at all fails the open: taken as
	// absent, a lost log start would bring deleted records back, and a
	// clean-shutdown marker of unknown existence would skip recovery.
	logStartCkpt, err := l.readLogStart()
	if err != nil {
		return err
	}
	epochs, haveEpochs, err := l.readEpochs()
	if err != nil {
		return err
	}
	clean, cleanEnd, err := l.readCleanShutdown()
	if err != nil {
		return err
	}

	// Open every segment; none is read yet.
	segs := make([]*segment, 0, len(contents.logs)+1)
	defer func() { l.setSegments(segs) }()
	sizes := make([]int64, 0, len(contents.logs))
	for _, base := range contents.logs {
		name := filepath.Join(l.dir, fileBase(base)+logSuffix)
		f, err := l.fs.OpenFile(name, os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", name, err)
		}
		size, err := f.Size()
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("open segment %s: %w", name, err)
		}
		if size > maxSegmentFileSize {
			_ = f.Close()
			return fmt.Errorf("open segment %s: %d bytes is more than a segment can hold", name, size)
		}
		s := newSegment(l.fs, l.dir, base, f, 0, uint32(size), false)
		s.logger = l.logger
		segs = append(segs, s)
		sizes = append(sizes, size)
	}

	// Trusted prefix: the segments before the one that was active when
	// the recovery point was written. Their data and index files were
	// fsynced by that flush or an earlier one; the segment that was
	// active had no index files written yet.
	scanFrom := 0
	if haveRP && len(segs) > 0 {
		scanFrom = max(0, segmentFor(segs, rp.SegmentBase))
	}
	if len(segs) > 0 {
		scanFrom = min(scanFrom, len(segs)-1)
	}
	if !haveRP && slices.ContainsFunc(sizes, func(n int64) bool { return n > 0 }) {
		// A log that crashed before its first flush (written within
		// flush.ms of its creation) is ordinary crash recovery; a log of
		// several segments without one lost its recovery-point file, and
		// its whole verification may slow the start.
		lvl := zap.InfoLevel
		if len(segs) > 1 {
			lvl = zap.WarnLevel
		}
		l.logger.Log(lvl, "no recovery point; verifying the whole log", zap.Int("segments", len(segs)))
	}
	gapBound := cleaner.gapBound
	if !cleanerOK {
		gapBound = math.MaxInt64 // where the cleaner left gaps is unknown
	}
	for i := 0; i < scanFrom; i++ {
		s, next := segs[i], segs[i+1].base
		rel := next - s.base
		if rel < 0 || rel > 0xffffffff {
			return fmt.Errorf("segments %d and %d overlap or are too far apart", s.base, next)
		}
		s.tail.Store(packTail(uint32(rel), uint32(sizes[i])))
		// Where the cleaner cannot have left a gap, the segment's batches
		// must run up to the next segment; its index load checks that
		// (unless an orphan index file already reported the gap).
		s.idx.wantEnd = next > gapBound &&
			!slices.ContainsFunc(missing, func(b int64) bool { return b > s.base && b < next })
	}

	// Verify the tail.
	rs := recoveryScan{
		epochs:     epochs,
		epochBound: -1,
		prevEpoch:  -1,
		interval:   l.Config().IndexIntervalBytes,
		now:        l.now().UnixMilli(),
		gapBound:   gapBound,
	}
	defer rs.release()
	if haveEpochs {
		rs.epochBound = epochs.latest()
	}
	if haveEpochs && len(segs) > 0 {
		// The first verified batch cannot be older than the epoch the
		// cache says was current at its offset.
		for _, e := range epochs {
			if e.StartOffset <= segs[scanFrom].base {
				rs.prevEpoch = e.Epoch
			}
		}
	}
	var verified int64
	truncated := false
	for i := scanFrom; i < len(segs); i++ {
		s := segs[i]
		end, cerr, err := rs.scan(s, sizes[i])
		if err != nil {
			return err
		}
		verified += end
		if cerr == nil {
			continue
		}
		truncated = true
		// Truncate at the first bad byte and drop everything after.
		dropped := sizes[i] - end
		for _, later := range segs[i+1:] {
			_, sz := later.end()
			dropped += sz
		}
		l.logger.Warn("truncating corrupt log tail",
			zap.String("segment", s.path(logSuffix)), zap.Int64("position", end),
			zap.Int64("next_offset", rs.next), zap.Int64("bytes_dropped", dropped),
			zap.Int("later_segments_deleted", len(segs)-i-1), zap.Error(cerr))
		// Not fsynced here: the segment is verified, so the next flush
		// syncs it, the truncation with it, before the recovery point
		// passes it; a power loss before then has the tail verified and
		// cut again. (Syncing here wrote back everything the crashed
		// broker had left unflushed before the partition served: on a
		// slow disk, seconds.)
		if err := s.log.Truncate(end); err != nil {
			return fmt.Errorf("truncate segment %s: %w", s.path(logSuffix), err)
		}
		if err := s.removeIndexFiles(); err != nil {
			return err
		}
		keep := i + 1
		if end == 0 && s.base != rs.next {
			keep = i // nothing of s fits after the previous segment
		}
		for _, later := range segs[keep:] {
			later.unref()
			for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				if err := l.fs.Remove(later.path(suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("delete segment after corruption: %w", err)
				}
			}
		}
		segs = segs[:keep]
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
		break
	}

	// An empty directory (or one whose segments all went) gets a first
	// segment at the log start offset.
	if len(segs) == 0 {
		base := max(logStartCkpt, 0)
		s, err := l.createSegment(base)
		if err != nil {
			return err
		}
		segs = append(segs, s)
		l.mu.dirDirty = true
	}
	// segment.ms counts from the active segment's first batch (its
	// timestamp, capped at now); an empty segment starts counting at its
	// first append.
	active := segs[len(segs)-1]
	// Verified segments before the active one are closed: their time
	// indexes get the final entry a roll gives (the recovery scan added
	// entries as appends do), before the next flush writes their files.
	for _, s := range segs[min(scanFrom, len(segs)-1) : len(segs)-1] {
		s.sealTimeIndex()
	}
	if _, size := active.end(); size > 0 {
		l.trimPreallocatedAtOpen(active, size)
		active.rollBase = min(max(rs.firstTs, 1), rs.now)
		active.firstTs = max(rs.firstTs, -1)
	}
	leo, _ := active.end()
	l.leo.Store(leo)
	if haveRP && leo < rp.Offset {
		// The recovery point says these were fsynced: a segment file
		// was deleted, replaced or cut short behind the broker's back.
		l.logger.Error("log ends before its recovery point: records that had been flushed to disk are lost",
			zap.Int64("log_end_offset", leo), zap.Int64("recovery_point", rp.Offset),
			zap.Int64("first_lost_offset", leo), zap.Int64("last_lost_offset", rp.Offset-1),
			zap.String("segment", filepath.Join(l.dir, fileBase(rp.SegmentBase)+logSuffix)))
		// The recovery point must not go on promising what is gone (as
		// Truncate sees to at runtime): until the next checkpoint, a
		// crash would report the loss again, and records appended now
		// in segments before the stale point would be trusted without
		// being verified. It goes back to where this open's
		// verification began; the next flushes move it up.
		trusted := segs[min(scanFrom, len(segs)-1)].base
		rp = recoveryPoint{Offset: trusted, SegmentBase: trusted}
		if err := l.lowerRecoveryPointLocked(rp); err != nil {
			return fmt.Errorf("lower the recovery point to the recovered log: %w", err)
		}
	}
	if logStartCkpt > leo {
		l.logger.Warn("log start offset checkpoint is beyond the log end: every record of the log is below the log start and unreadable",
			zap.Int64("log_start_checkpoint", logStartCkpt), zap.Int64("log_end_offset", leo))
	}
	logStart := min(max(logStartCkpt, segs[0].base), leo)
	l.logStart.Store(logStart)
	l.hwm.Store(leo)
	l.segs.Store(&segs)

	// Leader epochs: trim to the recovered log, persist if changed. An
	// epoch starting at the log end itself stays: BecomeLeader put it there
	// (the broker leads in it and has written nothing in it yet), or the
	// records written in it were torn away; either way it began there.
	epochsChanged := rs.epochs.truncateFromEnd(leo+1) || rs.epochsChanged
	epochsChanged = rs.epochs.truncateFromStart(logStart) || epochsChanged
	l.mu.epochs = rs.epochs
	if epochsChanged {
		if err := l.persistEpochsLocked(); err != nil {
			return err
		}
	}

	// Producer state.
	verifiedFrom := int64(-1)
	if rs.started {
		verifiedFrom = rs.firstOffset
	}
	if err := l.recoverProducers(contents.snapshots, verifiedFrom, rs.producerBatches, rs.markers); err != nil {
		return err
	}

	// Cleaner state: an unreadable checkpoint is replaced by one that
	// accepts gaps anywhere in today's log and has everything cleaned
	// again; a checkpoint beyond the recovered end is cut to it.
	if !cleanerOK {
		cleaner = newCleanerState()
		cleaner.gapBound = leo
		if err := l.writeCleanerState(&cleaner); err != nil {
			return err
		}
	} else if cleaner.truncate(leo) {
		if err := l.writeCleanerState(&cleaner); err != nil {
			return err
		}
	}
	cleaner.swapBase, cleaner.swapEnd = -1, -1
	l.mu.cleaner = cleaner

	// The verified segments were read back but not necessarily fsynced;
	// the next flush syncs them, writes their indexes and moves the
	// recovery point. Not after a clean close that left the log as it is
	// now: that close fsynced the active segment and wrote its index
	// files before its marker, and its recovery point is the log end.
	// (Queued anyway, every partition's active segment was fsynced and
	// its index files rewritten at the first flush after each start and
	// at each close, idle or not: three fsyncs a partition.)
	if _, size := active.end(); truncated || !(cleanEnd == leo && haveRP && rp.Offset == leo &&
		rp.SegmentBase == active.base && rp.Position == size) {
		for _, s := range segs[scanFrom:] {
			l.mu.unflushed = append(l.mu.unflushed, s)
		}
		if verified > 0 {
			l.firstUnflushed.Store(l.now().UnixNano())
		}
	}
	if clean {
		if err := l.fs.Remove(checkpointPath(l.dir, cleanShutdownFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove clean-shutdown marker: %w", err)
		}
	}
	// Info only when a log with records was not shut down cleanly (it says what
	// recovery verified); a clean open is debug, so that a broker with
	// thousands of partitions starts with a readable log (the broker logs
	// one "logs loaded" line). Truncations log a warning of their own.
	logOpened := l.logger.Debug
	if !clean && leo > 0 {
		logOpened = l.logger.Info
	}
	logOpened("log opened",
		zap.Bool("clean_shutdown", clean), zap.Int("segments", len(segs)),
		zap.Int("verified_segments", len(segs)-scanFrom), zap.Int64("verified_bytes", verified),
		zap.Int64("log_start_offset", logStart), zap.Int64("log_end_offset", leo),
		zap.Duration("took", time.Since(start)))
	return nil
}

// removeOrphanIndexes removes the index files whose .log is missing, as
// Kafka does, and logs each (once per base offset). Below the first
// segment or above the last one they are what an interrupted deletion
// leaves (retention, truncation, recovery), and so are those at or below
// the cleaner's gap bound (a cleaner swap) or in the tail that recovery
// verifies (whose own checks report a gap); that is logged at info. One
// between two trusted segments means the .log was deleted behind the
// broker's back and its offsets are lost: a warning names the segment and
// the offsets, and the base offsets are returned so that the index check
// of the segment before does not report the gap again.
func (l *Log) removeOrphanIndexes(c *dirContents, rp recoveryPoint, haveRP bool, cleaner cleanerState, cleanerOK bool) (missing []int64, err error) {
	orphans := map[int64][]string{}
	var bases []int64
	for _, name := range c.indexes {
		base := baseOrMinus1(name)
		if base >= 0 {
			if _, found := slices.BinarySearch(c.logs, base); found {
				continue
			}
		}
		if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove orphan index %s: %w", name, err)
		}
		if _, seen := orphans[base]; !seen {
			bases = append(bases, base)
		}
		orphans[base] = append(orphans[base], name)
	}
	slices.Sort(bases)
	for i, base := range bases {
		next, _ := slices.BinarySearch(c.logs, base) // first segment above base
		trustedGap := base >= 0 && next > 0 && next < len(c.logs) &&
			haveRP && base < rp.SegmentBase && !(cleanerOK && base <= cleaner.gapBound)
		if !trustedGap {
			l.logger.Info("removed index files without a segment, left by an interrupted deletion or cleaner swap",
				zap.Strings("files", orphans[base]))
			continue
		}
		end := c.logs[next]
		if i+1 < len(bases) {
			end = min(end, bases[i+1])
		}
		missing = append(missing, base)
		l.logger.Warn("segment file missing: its offsets are lost and consumers skip them; removed its orphan index files",
			zap.String("segment", filepath.Join(l.dir, fileBase(base)+logSuffix)),
			zap.Int64("missing_base_offset", base), zap.Int64("first_lost_offset", base),
			zap.Int64("last_lost_offset", end-1), zap.Strings("removed", orphans[base]))
	}
	return missing, nil
}

// maxSegmentFileSize is the largest segment file positions can address.
const maxSegmentFileSize = 0xffffffff

// segmentFor returns the index of the last segment based at or
// below offset, or -1.
func segmentFor(segs []*segment, offset int64) int {
	i, found := slices.BinarySearchFunc(segs, offset, func(s *segment, off int64) int {
		switch {
		case s.base < off:
			return -1
		case s.base > off:
			return 1
		}
		return 0
	})
	if found {
		return i
	}
	return i - 1
}

// The checkpoint readers below return an error only for a file that could
// not be read at all (see checkpointReadError); a bad one is logged and
// ignored, as if absent, and Open recovers what it held.

func (l *Log) readRecoveryPoint() (recoveryPoint, bool, error) {
	p, err := readCheckpoint(l.fs, checkpointPath(l.dir, recoveryPointFile), magicRecoveryPoint)
	if unreadable(err) {
		return recoveryPoint{}, false, err
	}
	if err == nil && p != nil {
		var rp recoveryPoint
		if rp, err = decodeRecoveryPoint(p); err == nil {
			return rp, true, nil
		}
	}
	if err != nil {
		l.logger.Warn("ignoring a bad recovery point", zap.Error(err))
	}
	return recoveryPoint{}, false, nil
}

func (l *Log) readLogStart() (int64, error) {
	p, err := readCheckpoint(l.fs, checkpointPath(l.dir, logStartOffsetFile), magicLogStart)
	if unreadable(err) {
		return 0, err
	}
	if err == nil && p != nil {
		var off int64
		if off, err = decodeOffset(p); err == nil {
			return off, nil
		}
	}
	if err != nil {
		l.logger.Warn("ignoring a bad log start offset", zap.Error(err))
	}
	return 0, nil
}

func (l *Log) readEpochs() (epochCache, bool, error) {
	p, err := readCheckpoint(l.fs, checkpointPath(l.dir, epochCheckpoint), magicEpochs)
	if unreadable(err) {
		return nil, false, err
	}
	if err == nil && p != nil {
		var entries []EpochEntry
		if entries, err = decodeEpochs(p); err == nil {
			return entries, true, nil
		}
	}
	if err != nil {
		l.logger.Warn("ignoring a bad leader-epoch checkpoint; rebuilding from the verified tail", zap.Error(err))
	}
	return nil, false, nil
}

// readCleanShutdown reports whether the clean-shutdown marker is there
// and the log end offset it holds (-1 if none, or torn).
func (l *Log) readCleanShutdown() (bool, int64, error) {
	p, err := readCheckpoint(l.fs, checkpointPath(l.dir, cleanShutdownFile), magicCleanShutdown)
	if unreadable(err) {
		return false, -1, err
	}
	if err == nil && p != nil {
		var end int64
		if end, err = decodeOffset(p); err == nil {
			return true, end, nil
		}
	}
	if err != nil {
		// Written in place without an fsync, the marker is torn (often
		// empty) when the broker is killed or the power fails while it
		// closes: the open is then a crash recovery like any other.
		l.logger.Info("ignoring a torn clean-shutdown marker: recovering as after a crash", zap.Error(err))
		return true, -1, nil // it exists; remove it
	}
	return false, -1, nil
}

// recoveryScan verifies segments batch by batch during Open.
type recoveryScan struct {
	buf        []byte
	epochs     epochCache
	epochBound int32 // largest epoch a batch may carry; -1 = unknown
	prevEpoch  int32
	interval   int32
	now        int64 // unix ms

	// gapBound: batches based at or below it may leave a gap after the
	// previous one (the cleaner removed the records in between).
	gapBound int64

	epochsChanged   bool
	next            int64 // offset the next batch must start at
	started         bool
	firstOffset     int64 // first offset verified
	firstTs         int64 // max timestamp of the active segment's first batch
	producerBatches []record.Header
	// markers maps the offset of each transaction marker among
	// producerBatches to whether it commits.
	markers map[int64]bool
}

const recoveryReadSize = 1 << 20

// recoveryBufs holds recoveryReadSize buffers for recovery scans: a broker
// opening thousands of logs, most with an empty or short tail to verify,
// would otherwise allocate (and zero) 1 MiB per log; that was half of a
// 2,000-partition start's CPU, in the allocator and the GC.
var recoveryBufs = sync.Pool{New: func() any { b := make([]byte, recoveryReadSize); return &b }}

// release gives the scan's buffer back.
func (rs *recoveryScan) release() {
	if cap(rs.buf) != 0 {
		b := rs.buf[:cap(rs.buf)]
		recoveryBufs.Put(&b)
		rs.buf = nil
	}
}

// scan verifies segment s (size bytes on disk) from its start, rebuilding
// its in-memory index. It returns the end of the last good batch and, if
// the segment does not end there, the corruption found; err is an I/O
// error that aborts Open.
func (rs *recoveryScan) scan(s *segment, size int64) (end int64, corrupt, err error) {
	if !rs.started {
		rs.started = true
		rs.next = s.base
		rs.firstOffset = s.base
	}
	if rs.next != s.base {
		if s.base < rs.next || s.base > rs.gapBound {
			// A gap or overlap between segments where the cleaner
			// cannot have left one: nothing in s can be trusted.
			return 0, &CorruptionError{Segment: s.path(logSuffix), Err: fmt.Errorf("segment starts at offset %d, log ends at %d", s.base, rs.next)}, nil
		}
		rs.next = s.base // the cleaner removed the records in between
	}
	s.idx.mu.Lock()
	s.idx.loaded, s.idx.fromFile = true, false
	s.idx.offsets, s.idx.times = nil, nil
	s.idx.maxTs, s.idx.maxTsOffset = -1, -1
	s.idx.mu.Unlock()
	s.sinceIndex = 0
	rs.firstTs = -1
	if cap(rs.buf) == 0 && size > 0 {
		rs.buf = *recoveryBufs.Get().(*[]byte)
	}
	var (
		win      []byte // file bytes [winStart, winStart+len(win))
		winStart int64
	)
	// fill makes [pos, pos+need) available in win.
	fill := func(pos, need int64) error {
		if pos >= winStart && pos+need <= winStart+int64(len(win)) {
			return nil
		}
		n := min(int64(cap(rs.buf)), size-pos)
		win = rs.buf[:n]
		winStart = pos
		if err := readFull(s.log, win, pos); err != nil {
			return fmt.Errorf("read segment %s at %d: %w", s.path(logSuffix), pos, err)
		}
		return nil
	}
	bad := func(pos int64, err error) (int64, error, error) {
		s.tail.Store(packTail(uint32(rs.next-s.base), uint32(pos)))
		return pos, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: err}, nil
	}
	var pos int64
	for pos < size {
		avail := size - pos
		if err := fill(pos, min(avail, record.HeaderSize)); err != nil {
			return 0, nil, err
		}
		h, perr := record.ParseHeader(win[pos-winStart : pos-winStart+min(avail, record.HeaderSize)])
		if perr != nil {
			return bad(pos, perr)
		}
		if h.Size() > avail {
			return bad(pos, fmt.Errorf("batch of %d bytes with %d left: %w", h.Size(), avail, record.ErrShort))
		}
		if h.Size() <= int64(cap(rs.buf)) {
			if err := fill(pos, h.Size()); err != nil {
				return 0, nil, err
			}
			if cerr := record.CheckCRC(win[pos-winStart:pos-winStart+h.Size()], &h); cerr != nil {
				return bad(pos, cerr)
			}
		} else {
			// A batch larger than the buffer (or a damaged length that
			// still fits in the file): checksum it in pieces rather
			// than allocate what the length claims.
			ok, err := rs.streamCRC(s, pos, &h)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				return bad(pos, fmt.Errorf("crc mismatch in a %d-byte batch: %w", h.Size(), record.ErrCorrupt))
			}
			win = nil
		}
		switch {
		case h.BaseOffset < rs.next || (h.BaseOffset > rs.next && h.BaseOffset > rs.gapBound):
			// Offsets must continue exactly, except below the gap bound,
			// where the cleaner removed records.
			return bad(pos, fmt.Errorf("batch offset %d, expected %d", h.BaseOffset, rs.next))
		case h.LastOffsetDelta < 0 || h.LastOffset()-s.base > 0xffffffff:
			return bad(pos, fmt.Errorf("last offset delta %d", h.LastOffsetDelta))
		case h.PartitionLeaderEpoch < rs.prevEpoch:
			return bad(pos, fmt.Errorf("leader epoch %d after %d", h.PartitionLeaderEpoch, rs.prevEpoch))
		case rs.epochBound >= 0 && h.PartitionLeaderEpoch > rs.epochBound:
			return bad(pos, fmt.Errorf("leader epoch %d is newer than the checkpointed %d", h.PartitionLeaderEpoch, rs.epochBound))
		}
		rs.prevEpoch = h.PartitionLeaderEpoch
		if rs.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
			rs.epochsChanged = true
		}
		if rs.firstTs < 0 {
			rs.firstTs = h.MaxTimestamp
		}
		if h.ProducerID >= 0 {
			if h.Control() {
				commit, ok, err := rs.marker(s, pos, &h, win, winStart)
				if err != nil {
					return bad(pos, err)
				}
				if ok {
					if rs.markers == nil {
						rs.markers = map[int64]bool{}
					}
					rs.markers[h.BaseOffset] = commit
				}
			}
			rs.producerBatches = append(rs.producerBatches, h)
		}
		s.addBatchLocked(&h, pos, rs.interval)
		rs.next = h.LastOffset() + 1
		pos += h.Size()
		s.tail.Store(packTail(uint32(rs.next-s.base), uint32(pos)))
	}
	s.tail.Store(packTail(uint32(rs.next-s.base), uint32(pos)))
	return pos, nil, nil
}

// marker decodes the control batch at pos, from win when the scan holds
// it there.
func (rs *recoveryScan) marker(s *segment, pos int64, h *record.Header, win []byte, winStart int64) (commit, ok bool, err error) {
	if pos >= winStart && pos+h.Size() <= winStart+int64(len(win)) {
		return markerType(h, win[pos-winStart:pos-winStart+h.Size()])
	}
	return readMarker(s, pos, h)
}

// streamCRC computes the CRC-32C of the batch at pos (bytes 21..end) by
// reading it in buffer-sized pieces, and compares it with the header's.
func (rs *recoveryScan) streamCRC(s *segment, pos int64, h *record.Header) (bool, error) {
	var crc uint32
	for off, end := pos+crcStart, pos+h.Size(); off < end; {
		piece := rs.buf[:min(int64(cap(rs.buf)), end-off)]
		if err := readFull(s.log, piece, off); err != nil {
			return false, fmt.Errorf("read segment %s at %d: %w", s.path(logSuffix), off, err)
		}
		crc = crc32.Update(crc, castagnoli, piece)
		off += int64(len(piece))
	}
	return crc == h.CRC, nil
}

// crcStart is where the bytes covered by a batch's CRC begin.
const crcStart = 21
