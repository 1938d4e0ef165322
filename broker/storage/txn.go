package storage

// Transactions in one partition (Kafka's KIP-98, the partition's side):
// transactional batches open a transaction for their producer, and a
// control batch (a commit or abort marker, written by the transaction
// coordinator through AppendMarker) closes it. The log keeps, as part of
// the producer state, the first offset of each producer's open
// transaction, which bounds the last stable offset (LSO), and the list of
// aborted transactions, which read_committed fetches return so that
// clients drop the aborted records. Both are rebuilt from the log like
// the rest of the producer state and kept in the producer snapshots
// (docs/format.md).

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gregor-log/gregor/broker/record"
)

// AbortedTxn is one aborted transaction in a partition: its producer and
// the offsets of its first record and of its abort marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// Control record types (the key of a control batch's one record).
const (
	controlAbort  = 0
	controlCommit = 1
)

// maxControlBatch bounds the size of a control batch read back from disk:
// it holds one record of a 4-byte key and a 6-byte value.
const maxControlBatch = 4096

// markerType decodes a control batch's record: commit reports a commit
// marker; ok is false for a control record of another type (Kafka has
// others, which do not end a transaction).
func markerType(h *record.Header, batch []byte) (commit, ok bool, err error) {
	seen := false
	err = record.Records(*h, batch, func(r *record.Record) error {
		if seen {
			return nil
		}
		seen = true
		if len(r.Key) < 4 {
			return fmt.Errorf("control record key of %d bytes: %w", len(r.Key), record.ErrCorrupt)
		}
		switch binary.BigEndian.Uint16(r.Key[2:]) {
		case controlAbort:
			ok = true
		case controlCommit:
			commit, ok = true, true
		}
		return nil
	})
	return commit, ok, err
}

// buildMarker encodes a commit or abort marker for producer pid, as Kafka
// writes it: a transactional control batch with one record whose key is
// (version 0, type) and whose value is (version 0, coordinator epoch).
func buildMarker(pid int64, epoch int16, commit bool, coordinatorEpoch int32, nowMs int64) []byte {
	typ := uint16(controlAbort)
	if commit {
		typ = controlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ)
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	b := record.NewBuilder()
	b.SetProducer(pid, epoch, -1).SetTransactional(true).SetControl(true)
	b.Add(key, value, nil, nowMs)
	return b.Build()
}

// applyMarker updates ps and aborted with a marker of producer h.ProducerID
// at h.BaseOffset. A marker in a newer epoch than the producer's (the
// coordinator fenced it) starts the new epoch with no batches, so the
// producer's next batch must start at sequence 0.
func (ps producerStates) applyMarker(h *record.Header, commit bool, aborted *[]AbortedTxn) {
	e := ps[h.ProducerID]
	if e == nil {
		e = newProducerEntry(h.ProducerEpoch)
		ps[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.epoch {
		e.epoch, e.n = h.ProducerEpoch, 0
	}
	if h.MaxTimestamp > e.lastTimestamp {
		e.lastTimestamp = h.MaxTimestamp
	}
	if e.txnFirst >= 0 {
		if !commit {
			*aborted = append(*aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: e.txnFirst, LastOffset: h.BaseOffset})
		}
		e.txnFirst = -1
	}
}

// firstUnstable is the first offset of the oldest open transaction, or
// math.MaxInt64 when none is open.
func (ps producerStates) firstUnstable() int64 {
	first := int64(math.MaxInt64)
	for _, e := range ps {
		if e.txnFirst >= 0 {
			first = min(first, e.txnFirst)
		}
	}
	return first
}

// LastStableOffset is the offset below which every transaction is decided
// (Kafka's LSO): the high watermark, or the first offset of the oldest
// open transaction if that is lower. read_committed consumers read up to
// it.
func (l *Log) LastStableOffset() int64 {
	return max(min(l.hwm.Load(), l.unstable.Load()), l.logStart.Load())
}

// AbortedTxns returns the aborted transactions that may hold records in
// [from, upper): those whose marker is at or after from and whose first
// record is before upper. A read_committed fetch returns them.
func (l *Log) AbortedTxns(from, upper int64) []AbortedTxn {
	p := l.abortedView.Load()
	if p == nil {
		return nil
	}
	all := *p
	i := sort.Search(len(all), func(i int) bool { return all[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range all[i:] {
		if a.FirstOffset < upper {
			out = append(out, a)
		}
	}
	return out
}

// OpenTxn is a transaction open in a partition.
type OpenTxn struct {
	ProducerID  int64
	Epoch       int16
	FirstOffset int64
}

// OpenTxns lists the partition's open transactions.
func (l *Log) OpenTxns() []OpenTxn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []OpenTxn
	for id, e := range l.mu.producers {
		if e.txnFirst >= 0 {
			out = append(out, OpenTxn{ProducerID: id, Epoch: e.epoch, FirstOffset: e.txnFirst})
		}
	}
	slices.SortFunc(out, func(a, b OpenTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return out
}

// publishTxnLocked makes the transaction state visible to lock-free
// readers after a change: the aborted list, then the first unstable
// offset. The order matters: a fetch that sees the last stable offset
// moved past an aborted transaction must find it in the aborted list it
// loads afterwards, or its client would take the aborted records.
func (l *Log) publishTxnLocked(abortedChanged bool) {
	if abortedChanged {
		a := slices.Clip(l.mu.aborted)
		l.abortedView.Store(&a)
	}
	l.unstable.Store(l.mu.producers.firstUnstable())
}

// AppendMarker appends a transaction marker (commit or abort) for producer
// pid in epoch, as the transaction coordinator does when a transaction
// ends, and returns its offset. A marker from an epoch older than the
// producer's here is ErrInvalidProducerEpoch. The marker ends the
// producer's open transaction in this partition, if any; an abort adds
// it to the aborted transactions.
func (l *Log) AppendMarker(pid int64, epoch int16, commit bool, coordinatorEpoch, leaderEpoch int32) (int64, error) {
	if pid < 0 || epoch < 0 {
		return 0, fmt.Errorf("marker for producer %d epoch %d: %w", pid, epoch, ErrInvalidRecord)
	}
	batch := buildMarker(pid, epoch, commit, coordinatorEpoch, l.now().UnixMilli())
	h, err := record.ParseHeader(batch)
	if err != nil {
		return 0, fmt.Errorf("marker: %w", err)
	}
	cfg := l.cfg.Load()
	l.mu.Lock()
	if e := l.mu.producers[pid]; e != nil && epoch < e.epoch {
		l.mu.Unlock()
		return 0, fmt.Errorf("marker for producer %d: epoch %d is older than %d: %w", pid, epoch, e.epoch, ErrInvalidProducerEpoch)
	}
	res, leo, needFlush, err := l.appendLocked(batch, []record.Header{h}, leaderEpoch, cfg)
	if err == nil {
		h.BaseOffset = res.BaseOffset
		n := len(l.mu.aborted)
		l.mu.producers.applyMarker(&h, commit, &l.mu.aborted)
		l.publishTxnLocked(len(l.mu.aborted) != n)
	}
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if needFlush {
		if err := l.Flush(); err != nil {
			return res.BaseOffset, err
		}
	}
	if l.onAppend != nil {
		l.onAppend(leo)
	}
	return res.BaseOffset, nil
}

// pruneAbortedLocked forgets aborted transactions wholly below the log
// start offset.
func (l *Log) pruneAbortedLocked(logStart int64) {
	a := l.mu.aborted
	i := sort.Search(len(a), func(i int) bool { return a[i].LastOffset >= logStart })
	if i == 0 {
		return
	}
	l.mu.aborted = slices.Clone(a[i:])
	l.publishTxnLocked(true)
}

// readMarker reads the control batch with header h at pos of segment s
// and decodes its type.
func readMarker(s *segment, pos int64, h *record.Header) (commit, ok bool, err error) {
	if h.Size() > maxControlBatch {
		return false, false, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: fmt.Errorf("control batch of %d bytes: %w", h.Size(), record.ErrCorrupt)}
	}
	buf := make([]byte, h.Size())
	if err := readFull(s.log, buf, pos); err != nil {
		return false, false, fmt.Errorf("read control batch in %s at %d: %w", s.path(logSuffix), pos, err)
	}
	commit, ok, err = markerType(h, buf)
	if err != nil {
		return false, false, &CorruptionError{Segment: s.path(logSuffix), Pos: pos, Err: err}
	}
	return commit, ok, nil
}

// Snapshot transaction section (after the producers, see docs/format.md),
// present only when the partition has an open or an aborted transaction:
//
//	open int32, then per open transaction, ascending by producer id:
//	  producerId int64, firstOffset int64
//	aborted int32, then per aborted transaction, by marker offset:
//	  producerId int64, firstOffset int64, lastOffset int64
func encodeSnapshot(ps producerStates, aborted []AbortedTxn) []byte {
	b := ps.encode()
	var open []int64
	for id, e := range ps {
		if e.txnFirst >= 0 {
			open = append(open, id)
		}
	}
	if len(open) == 0 && len(aborted) == 0 {
		return b
	}
	slices.Sort(open)
	b = binary.BigEndian.AppendUint32(b, uint32(len(open)))
	for _, id := range open {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint64(b, uint64(ps[id].txnFirst))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(aborted)))
	for _, a := range aborted {
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
	}
	return b
}

// decodeSnapshot decodes a producer snapshot with its optional
// transaction section.
func decodeSnapshot(p []byte) (producerStates, []AbortedTxn, error) {
	ps, rest, err := decodeProducerSection(p)
	if err != nil || len(rest) == 0 {
		return ps, nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("producer snapshot transactions: "+format+": %w", append(args, ErrCorruptCheckpoint)...)
	}
	if len(rest) < 4 {
		return nil, nil, bad("%d bytes", len(rest))
	}
	n := int64(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n*16 > int64(len(rest)) {
		return nil, nil, bad("%d open in %d bytes", n, len(rest))
	}
	for range n {
		id, first := int64(binary.BigEndian.Uint64(rest)), int64(binary.BigEndian.Uint64(rest[8:]))
		rest = rest[16:]
		e := ps[id]
		if e == nil || first < 0 || e.txnFirst >= 0 {
			return nil, nil, bad("open transaction of producer %d at %d", id, first)
		}
		e.txnFirst = first
	}
	if len(rest) < 4 {
		return nil, nil, bad("no aborted count")
	}
	n = int64(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n*24 != int64(len(rest)) {
		return nil, nil, bad("%d aborted in %d bytes", n, len(rest))
	}
	aborted := make([]AbortedTxn, n)
	for i := range aborted {
		a := AbortedTxn{
			ProducerID:  int64(binary.BigEndian.Uint64(rest)),
			FirstOffset: int64(binary.BigEndian.Uint64(rest[8:])),
			LastOffset:  int64(binary.BigEndian.Uint64(rest[16:])),
		}
		rest = rest[24:]
		if a.FirstOffset < 0 || a.LastOffset < a.FirstOffset || (i > 0 && a.LastOffset <= aborted[i-1].LastOffset) {
			return nil, nil, bad("aborted transaction %+v", a)
		}
		aborted[i] = a
	}
	return ps, aborted, nil
}

// ProducerInfo describes one producer's state in a partition
// (DescribeProducers).
type ProducerInfo struct {
	ProducerID     int64
	Epoch          int16
	LastSequence   int32 // -1 when no batch of the epoch is remembered
	LastTimestamp  int64
	TxnStartOffset int64 // first offset of its open transaction, -1 when none
}

// Producers returns the partition's producers, by producer id.
func (l *Log) Producers() []ProducerInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ProducerInfo, 0, len(l.mu.producers))
	for id, e := range l.mu.producers {
		p := ProducerInfo{ProducerID: id, Epoch: e.epoch, LastSequence: -1, LastTimestamp: e.lastTimestamp, TxnStartOffset: e.txnFirst}
		if e.n > 0 {
			p.LastSequence = e.last().lastSeq
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ProducerInfo) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
	return out
}
