package storage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// Append validates and appends records, the records field of a produce
// request for this partition: one or more concatenated v2 batches. Either
// every batch is appended or none is. The log stamps each batch's
// baseOffset and partitionLeaderEpoch in place (neither is covered by the
// CRC) and keeps no reference to records after returning.
//
// Errors: ErrCorruptBatch, ErrInvalidRecord, ErrBatchTooLarge (a batch over
// max.message.bytes), ErrInvalidRecord (also for a control batch: only
// AppendMarker writes them), ErrInvalidTxnState (a non-transactional batch
// from a producer with a transaction open here), ErrOutOfOrderSequence and ErrInvalidProducerEpoch (idempotent
// producers), ErrFencedLeaderEpoch, ErrClosed, and ErrStorage after a failed
// write. A write failure is sticky (later appends fail too; reads keep
// working) except on a full disk, when the file is cut back to the last
// whole batch and the log stays writable.
//
// A batch that repeats one of its producer's last five batches appends
// nothing and returns the original offsets with Duplicate set.
func (l *Log) Append(records []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendRecords(records, leaderEpoch, false)
}

// AppendCRCChecked is Append for records whose every batch's CRC the
// caller has checked already, over these very bytes (see
// wire.ProduceScanner); everything else is validated as Append does.
func (l *Log) AppendCRCChecked(records []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendRecords(records, leaderEpoch, true)
}

func (l *Log) appendRecords(records []byte, leaderEpoch int32, crcChecked bool) (AppendResult, error) {
	cfg := l.cfg.Load()
	// Most produce requests carry one batch per partition; keep the
	// headers on the stack.
	var hdrArr [4]record.Header
	hdrs, err := validateBatches(records, cfg, hdrArr[:0], l.now(), crcChecked)
	if err != nil {
		return AppendResult{}, err
	}
	if cfg.Recompress {
		if records, err = recompressBatches(records, hdrs, cfg); err != nil {
			return AppendResult{}, err
		}
	}

	l.mu.Lock()
	res, leo, needFlush, err := l.appendLocked(records, hdrs, leaderEpoch, cfg)
	l.mu.Unlock()
	if err != nil || res.Duplicate {
		return res, err
	}
	if needFlush {
		if err := l.Flush(); err != nil {
			return res, err
		}
	}
	if l.onAppend != nil {
		l.onAppend(leo)
	}
	return res, nil
}

// validateBatches splits records into batches and validates each one
// completely (CRC, records, decompression) before the log's lock is taken;
// the CRCs are not computed again when crcChecked says the caller did.
func validateBatches(records []byte, cfg *Config, hdrs []record.Header, now time.Time, crcChecked bool) ([]record.Header, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("no record batches: %w", ErrCorruptBatch)
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("%d bytes of records: %w", len(records), ErrBatchTooLarge)
	}
	// Records larger than segment.bytes are taken, in a segment of their
	// own (shouldRollLocked rolls before them, and after them at the next
	// append). Kafka 3 refuses them with RECORD_LIST_TOO_LARGE, and Kafka 4
	// does not let segment.bytes go below 1 MiB, where a default client's
	// batches fit; here a small segment.bytes is allowed, and refusing
	// would cost a client the records it batched up while the broker was
	// away (franz-go does not split a refused batch).
	var first int32 // index of the batch's first record among all of them
	for pos := 0; pos < len(records); {
		h, err := record.ParseHeader(records[pos:])
		if err != nil {
			return nil, validationError(pos, err)
		}
		size := h.Size()
		if size > int64(len(records)-pos) {
			return nil, fmt.Errorf("batch at byte %d: %d bytes declared, %d present: %w", pos, size, len(records)-pos, ErrCorruptBatch)
		}
		if size > int64(cfg.MaxMessageBytes) {
			return nil, fmt.Errorf("batch at byte %d: %d bytes, max.message.bytes is %d: %w", pos, size, max(cfg.MaxMessageBytes, 0), ErrBatchTooLarge)
		}
		batch := records[pos : pos+int(size)]
		var maxTs int64
		validate := record.ValidateMaxTimestamp
		if crcChecked {
			validate = record.ValidateMaxTimestampCRCChecked
		}
		if h, maxTs, err = validate(batch); err != nil {
			return nil, validationError(pos, err)
		}
		if h.LogAppendTime() {
			// Only a broker stamps LogAppendTime; Kafka refuses it from a
			// producer, whatever the topic's timestamp type.
			return nil, fmt.Errorf("batch at byte %d: the producer set the LogAppendTime timestamp type, which only the broker sets: %w", pos, ErrInvalidTimestamp)
		}
		if h.MaxTimestamp != maxTs {
			// Store the largest record timestamp, as Kafka does, not what
			// the producer wrote (-1 from sarama before 1.45.1, a value
			// from some records only from kafkajs): retention, the time
			// index and lookups by time go by it.
			record.SetMaxTimestamp(batch, &h, maxTs)
		}
		if err := checkTimestamps(batch, &h, maxTs, cfg, now, first); err != nil {
			return nil, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		switch {
		case h.Control():
			return nil, fmt.Errorf("batch at byte %d: control batches cannot be produced: %w", pos, ErrInvalidRecord)
		case h.Transactional() && h.ProducerID < 0:
			return nil, fmt.Errorf("batch at byte %d: transactional without a producer id: %w", pos, ErrInvalidRecord)
		case h.ProducerID >= 0 && (h.ProducerEpoch < 0 || h.BaseSequence < 0):
			return nil, fmt.Errorf("batch at byte %d: producer %d with epoch %d and sequence %d: %w", pos, h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrInvalidRecord)
		}
		if cfg.CleanupPolicy.Compact() {
			if err := checkKeys(h, batch, first); err != nil {
				return nil, fmt.Errorf("batch at byte %d: %w", pos, err)
			}
		}
		hdrs = append(hdrs, h)
		pos += int(size)
		first += h.NumRecords
	}
	return hdrs, nil
}

// checkTimestamps applies message.timestamp.{before,after}.max.ms to a
// validated batch whose largest record timestamp is maxTs; first is the
// index of the batch's first record among the append's. Topics stamped
// with LogAppendTime are not checked, as in Kafka. The records are read
// only when a before-limit is set or the after-limit is broken, to name
// every record out of range, as Kafka does.
func checkTimestamps(batch []byte, h *record.Header, maxTs int64, cfg *Config, now time.Time, first int32) error {
	if cfg.LogAppendTime || (cfg.TimestampBeforeMaxMs == 0 && cfg.TimestampAfterMaxMs == 0) {
		return nil
	}
	nowMs := now.UnixMilli()
	afterLimit, beforeLimit := max(cfg.TimestampAfterMaxMs, 0), max(cfg.TimestampBeforeMaxMs, 0)
	after := cfg.TimestampAfterMaxMs != 0 && maxTs-nowMs > afterLimit
	if !after && cfg.TimestampBeforeMaxMs == 0 {
		return nil
	}
	var bad []RecordError
	var worst int64 // the largest distance past a limit, the first record found at it
	var worstMsg string
	i := first
	if err := record.Records(*h, batch, func(r *record.Record) error {
		defer func() { i++ }()
		// -1 is "no timestamp" (pre-0.10 producers, up-converted message
		// sets): Kafka checks no limit against it.
		ts := h.BaseTimestamp + r.TimestampDelta
		if ts == -1 {
			return nil
		}
		var msg string
		var past int64
		switch {
		case cfg.TimestampAfterMaxMs != 0 && ts-nowMs > afterLimit:
			past = ts - nowMs - afterLimit
			msg = fmt.Sprintf("a record is timestamped %d ms after the broker's clock, the limit is %d ms (message.timestamp.after.max.ms, or difference.max.ms when that is not set)", ts-nowMs, afterLimit)
		case cfg.TimestampBeforeMaxMs != 0 && nowMs-ts > beforeLimit:
			past = nowMs - ts - beforeLimit
			msg = fmt.Sprintf("a record is timestamped %d ms before the broker's clock, the limit is %d ms (message.timestamp.before.max.ms, or difference.max.ms when that is not set)", nowMs-ts, beforeLimit)
		default:
			return nil
		}
		bad = append(bad, RecordError{Index: i, Message: fmt.Sprintf("Timestamp %d of the record at index %d is out of range (%s)", ts, i, msg)})
		if past > worst {
			worst, worstMsg = past, msg
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptBatch, err)
	}
	if len(bad) == 0 {
		return nil
	}
	return &RecordErrors{Records: bad, Err: fmt.Errorf("%s: %w", worstMsg, ErrInvalidTimestamp)}
}

// recompressBatches applies compression.type: it returns records with
// every batch not compressed with cfg.RecompressTo recompressed (hdrs
// updated), in a new buffer if any changed. A batch that grows past
// max.message.bytes (recompressed to none, say) is ErrBatchTooLarge, as
// in Kafka.
func recompressBatches(records []byte, hdrs []record.Header, cfg *Config) ([]byte, error) {
	var out []byte // nil until a batch changes
	pos := 0
	for i := range hdrs {
		size := int(hdrs[i].Size())
		batch := records[pos : pos+size]
		nb, nh, err := record.Recompress(batch, hdrs[i], cfg.RecompressTo, cfg.RecompressLevel)
		if err != nil {
			return nil, validationError(pos, err)
		}
		if nh.Size() > int64(cfg.MaxMessageBytes) {
			return nil, fmt.Errorf("batch at byte %d: %d bytes once compressed with %v, max.message.bytes is %d: %w", pos, nh.Size(), cfg.RecompressTo, max(cfg.MaxMessageBytes, 0), ErrBatchTooLarge)
		}
		if changed := &nb[0] != &batch[0]; changed && out == nil {
			out = append(make([]byte, 0, len(records)), records[:pos]...)
		}
		if out != nil {
			out = append(out, nb...)
		}
		hdrs[i] = nh
		pos += size
	}
	if out == nil {
		return records, nil
	}
	return out, nil
}

// checkKeys refuses a batch holding records with a null key, as Kafka
// does for compacted topics (INVALID_RECORD): the cleaner could not keep
// them. first is the index of the batch's first record among the
// append's; the error names every record without a key.
func checkKeys(h record.Header, batch []byte, first int32) error {
	var bad []RecordError
	i := first
	err := record.Records(h, batch, func(r *record.Record) error {
		if r.Key == nil {
			bad = append(bad, RecordError{Index: i, Message: fmt.Sprintf("the record at index %d has no key, which a compacted topic cannot accept", i)})
		}
		i++
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptBatch, err)
	}
	if len(bad) == 0 {
		return nil
	}
	return &RecordErrors{Records: bad, Err: fmt.Errorf("%d record(s) without a key, the first at index %d: a compacted topic cannot accept a record without a key: %w", len(bad), bad[0].Index, ErrInvalidRecord)}
}

func validationError(pos int, err error) error {
	if errors.Is(err, record.ErrInvalidRecord) {
		return fmt.Errorf("batch at byte %d: %w: %w", pos, ErrInvalidRecord, err)
	}
	return fmt.Errorf("batch at byte %d: %w: %w", pos, ErrCorruptBatch, err)
}

// appendLocked does the part of Append that needs the lock: producer
// checks, roll, offset assignment, the write and the bookkeeping.
func (l *Log) appendLocked(records []byte, hdrs []record.Header, leaderEpoch int32, cfg *Config) (res AppendResult, leo int64, needFlush bool, err error) {
	if err := l.writeErrLocked(); err != nil {
		return res, 0, false, err
	}
	leo = l.leo.Load()

	// Idempotence: check every batch before changing anything.
	if dup, ok, err := l.checkProducersLocked(hdrs, leo); err != nil || ok {
		return dup, 0, false, err
	}

	if latest := l.mu.epochs.latest(); leaderEpoch < latest {
		return res, 0, false, fmt.Errorf("append with leader epoch %d, log is at %d: %w", leaderEpoch, latest, ErrFencedLeaderEpoch)
	}

	var records64 int64
	for i := range hdrs {
		records64 += int64(hdrs[i].LastOffsetDelta) + 1
	}
	now := l.now()
	nowMs := now.UnixMilli()
	// The records' timestamp, which segment.ms compares with the active
	// segment's first batch's, as Kafka does, and the first batch's,
	// kept if they start a segment.
	maxTs, firstTs := nowMs, nowMs
	if !cfg.LogAppendTime {
		maxTs, firstTs = -1, hdrs[0].MaxTimestamp
		for i := range hdrs {
			maxTs = max(maxTs, hdrs[i].MaxTimestamp)
		}
	}
	active := l.activeLocked()
	if l.shouldRollLocked(active, int64(len(records)), leo+records64-1, nowMs, maxTs, cfg) {
		if active, err = l.rollLocked(leo); err != nil {
			return res, 0, false, err
		}
	}
	if prev := l.mu.epochs; leaderEpoch > prev.latest() {
		prev = slices.Clone(prev) // assign may replace entries in place
		l.mu.epochs.assign(leaderEpoch, leo)
		if err := l.persistEpochsLocked(); err != nil {
			if vfs.IsShortage(err) {
				// The checkpoint is replaced whole: the old one (or, past
				// the rename, the new one, whose extra epoch starts at the
				// log end, where it did begin) is on disk. Undo the
				// assignment and refuse this append only.
				l.mu.epochs = prev
				return res, 0, false, l.noSpace("write leader-epoch checkpoint", err)
			}
			return res, 0, false, l.failLocked("write leader-epoch checkpoint", err)
		}
	}

	// Stamp offsets, the leader epoch and, for LogAppendTime, the time.
	off := leo
	pos := 0
	for i := range hdrs {
		h := &hdrs[i]
		record.SetBaseOffset(records[pos:], off)
		record.SetPartitionLeaderEpoch(records[pos:], leaderEpoch)
		if cfg.LogAppendTime {
			record.SetLogAppendTime(records[pos:], h, nowMs)
		}
		h.BaseOffset, h.PartitionLeaderEpoch = off, leaderEpoch
		off += int64(h.LastOffsetDelta) + 1
		pos += int(h.Size())
	}

	nextRel, size := unpackTail(active.tail.Load())
	l.preallocateLocked(active, int64(size), int64(len(records)), cfg)
	if n, werr := active.log.Write(records); werr != nil || n != len(records) {
		if werr == nil {
			werr = fmt.Errorf("short write: %d of %d bytes", n, len(records))
		}
		// Leave the file as it was so the log on disk stays clean; if
		// even that fails, recovery truncates the torn tail at the next
		// open. Readers never see past the tail either way.
		active.prealloc = 0 // Truncate gives the reservation back
		if terr := active.log.Truncate(int64(size)); terr != nil {
			werr = errors.Join(werr, fmt.Errorf("truncate back to %d: %w", size, terr))
		} else if vfs.IsNoSpace(werr) {
			// A full disk, and the file is as it was (it is opened
			// O_APPEND, so the next write lands at its end): refuse this
			// append, retriably, and keep the log writable for when
			// space is freed.
			return res, 0, false, l.noSpace("write "+active.path(logSuffix), werr)
		}
		return res, 0, false, l.failLocked("write "+active.path(logSuffix), werr)
	}

	bpos := int64(size)
	for i := range hdrs {
		h := &hdrs[i]
		active.addBatchLocked(h, bpos, cfg.IndexIntervalBytes)
		bpos += h.Size()
		l.mu.producers.apply(h)
		if h.Transactional() && !h.Control() && l.mu.producers[h.ProducerID].txnFirst == h.BaseOffset {
			// This batch opened its producer's transaction.
			l.unstable.Store(min(l.unstable.Load(), h.BaseOffset))
		}
	}
	if size == 0 {
		active.rollBase, active.firstTs = nowMs, max(firstTs, -1)
	}
	active.tail.Store(packTail(nextRel+uint32(off-leo), size+uint32(len(records))))
	l.size.Add(int64(len(records)))
	l.leo.Store(off)

	if n := len(l.mu.unflushed); n == 0 || l.mu.unflushed[n-1] != active {
		l.mu.unflushed = append(l.mu.unflushed, active)
	}
	if l.mu.unflushedMsgs == 0 {
		l.firstUnflushed.Store(now.UnixNano())
	}
	l.mu.unflushedMsgs += records64
	needFlush = cfg.FlushMessages > 0 && l.mu.unflushedMsgs >= cfg.FlushMessages

	res = AppendResult{
		BaseOffset:     leo,
		LastOffset:     off - 1,
		LogStartOffset: l.logStart.Load(),
		LogAppendTime:  -1,
	}
	if cfg.LogAppendTime {
		res.LogAppendTime = nowMs
	}
	return res, off, needFlush, nil
}

// checkProducersLocked runs the idempotent-producer checks for every batch.
// ok reports a duplicate, answered with res.
func (l *Log) checkProducersLocked(hdrs []record.Header, leo int64) (res AppendResult, ok bool, err error) {
	everWritten := leo > 0
	if len(hdrs) == 1 {
		h := &hdrs[0]
		if h.ProducerID < 0 || h.Control() {
			return res, false, nil
		}
		c, err := checkProducer(l.mu.producers[h.ProducerID], h, everWritten)
		if err != nil || !c.dup {
			return res, false, err
		}
		return l.duplicateResult(c.dupBatch), true, nil
	}
	// Several batches: later ones are checked against the state the
	// earlier ones would leave.
	var overlay producerStates
	for i := range hdrs {
		h := &hdrs[i]
		if h.ProducerID < 0 || h.Control() {
			continue
		}
		e := overlay[h.ProducerID]
		if e == nil {
			if cur := l.mu.producers[h.ProducerID]; cur != nil {
				cp := *cur
				e = &cp
			}
		}
		c, err := checkProducer(e, h, everWritten)
		if err != nil {
			return res, false, err
		}
		if c.dup {
			return l.duplicateResult(c.dupBatch), true, nil
		}
		if overlay == nil {
			overlay = producerStates{}
		}
		if e == nil {
			e = newProducerEntry(h.ProducerEpoch)
		}
		applyProducer(e, h)
		overlay[h.ProducerID] = e
	}
	return res, false, nil
}

func (l *Log) duplicateResult(b producerBatch) AppendResult {
	res := AppendResult{
		BaseOffset:     b.firstOffset,
		LastOffset:     b.firstOffset + int64(b.lastOffsetDelta),
		LogStartOffset: l.logStart.Load(),
		Duplicate:      true,
		LogAppendTime:  -1,
	}
	if l.cfg.Load().LogAppendTime {
		// The retry gets the time the original was stamped with, as in
		// Kafka, read back from the batch in the log (rare: only
		// retried batches come here).
		res.LogAppendTime = l.stampedTimeLocked(b.firstOffset)
	}
	return res
}

// stampedTimeLocked returns the LogAppendTime stamp (the max timestamp) of
// the batch holding offset, or -1 when it is not a LogAppendTime batch or
// cannot be read. l.mu is held.
func (l *Log) stampedTimeLocked(offset int64) int64 {
	segs := l.segments()
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.base > offset {
			continue
		}
		_, limit := s.end()
		pos, size, err := s.lookup(offset, limit)
		if err != nil || size == 0 {
			return -1
		}
		h, err := s.readHeader(pos, limit)
		if err != nil || !h.LogAppendTime() || h.BaseOffset > offset || h.LastOffset() < offset {
			return -1 // not there (deleted, or the next batch was found)
		}
		return h.MaxTimestamp
	}
	return -1
}

// shouldRollLocked decides whether an append of size bytes ending at
// lastOffset, whose records' largest timestamp is maxTs, must go to a new
// segment: the active segment is not empty and the append would overflow
// segment.bytes or the 32-bit relative offsets, or it is segment.ms past
// the segment's start. As in Kafka, that is the records' time against the
// segment's first batch's when that has a timestamp (so a backfill of old
// records rolls a segment per segment.ms of their time, which retention
// then deletes by it, and records stamped in the future hold no older ones
// past retention.ms), and the wall-clock age of the segment otherwise.
func (l *Log) shouldRollLocked(active *segment, size, lastOffset, nowMs, maxTs int64, cfg *Config) bool {
	_, cur := active.end()
	if cur == 0 {
		return false
	}
	if cur+size > cfg.SegmentBytes || cur+size > maxSegmentFileSize || lastOffset-active.base > math.MaxUint32 {
		return true
	}
	if active.firstTs >= 0 {
		return maxTs-active.firstTs > cfg.rollMs()
	}
	return active.rollBase > 0 && nowMs-active.rollBase >= cfg.rollMs()
}

// rollLocked starts a new active segment at offset base.
func (l *Log) rollLocked(base int64) (*segment, error) {
	old := l.activeLocked()
	if l.beforeRoll != nil {
		if err := l.beforeRoll(); err != nil {
			return nil, l.noSpace("roll segment", err)
		}
	}
	s, err := l.createSegment(base)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			// Out of file descriptors, the new file not created: the log
			// is as it was, so refuse this append (retriably, logged at
			// most every noSpaceLogEvery) and keep the log writable for
			// when descriptors are free again.
			return nil, l.noSpace("roll segment", err)
		}
		if vfs.IsNoSpace(err) {
			// Likewise for a full disk. The log is as it was; at most an
			// empty file at the new base is left, which the next roll
			// truncates and a restart takes as an empty segment.
			return nil, l.noSpace("roll segment", err)
		}
		return nil, l.failLocked("roll segment", err)
	}
	old.sealTimeIndex()
	_, oldSize := old.end()
	l.trimPreallocated(old, oldSize)
	segs := append(append(make([]*segment, 0, len(l.segments())+1), l.segments()...), s)
	l.segs.Store(&segs)
	if n := len(l.mu.unflushed); n == 0 || l.mu.unflushed[n-1] != old {
		l.mu.unflushed = append(l.mu.unflushed, old)
	}
	l.mu.unflushed = append(l.mu.unflushed, s)
	l.mu.dirDirty = true
	// A roll is due for a flush like an append (the old segment's index
	// files, the directory, the recovery point): the cleaner only takes
	// segments below the recovery point's segment.
	l.firstUnflushed.CompareAndSwap(0, l.now().UnixNano())
	return s, nil
}

// createSegment creates an empty segment file at base.
func (l *Log) createSegment(base int64) (*segment, error) {
	s := newSegment(l.fs, l.dir, base, nil, 0, 0, true)
	s.logger = l.logger
	f, err := l.fs.OpenFile(s.path(logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", s.path(logSuffix), err)
	}
	s.log = f
	// Stale index files of an earlier segment at this base must not be
	// trusted later; the index is written fresh at flush time.
	if err := s.removeIndexFiles(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create segment: %w", err)
	}
	return s, nil
}

// persistTrimmedEpochsLocked writes leader-epoch-checkpoint after the
// cache lost epochs below a new log start. A full disk is not sticky: the
// old file, holding those epochs too, is still right once open trims it
// to the log start, so the failure is only logged.
func (l *Log) persistTrimmedEpochsLocked() error {
	err := l.persistEpochsLocked()
	if err != nil && vfs.IsShortage(err) {
		_ = l.noSpace("write leader-epoch checkpoint", err)
		return nil
	}
	if err != nil {
		return l.failLocked("write leader-epoch checkpoint", err)
	}
	return nil
}

// persistEpochsLocked writes leader-epoch-checkpoint.
func (l *Log) persistEpochsLocked() error {
	return writeCheckpoint(l.fs, checkpointPath(l.dir, epochCheckpoint), magicEpochs, encodeEpochs(l.mu.epochs))
}
