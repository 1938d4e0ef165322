package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/gregor-log/gregor/broker/record"
)

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection (Kafka's max.in.flight.requests.per.connection limit
// for idempotence).
const producerWindow = 5

// producerBatch is one remembered batch of an idempotent producer.
type producerBatch struct {
	firstSeq, lastSeq int32
	firstOffset       int64
	lastOffsetDelta   int32
}

// producerEntry is the state of one producer id in one partition.
type producerEntry struct {
	epoch         int16
	n             uint8 // valid entries in batches, oldest first
	batches       [producerWindow]producerBatch
	lastTimestamp int64
	// txnFirst is the first offset of the producer's open transaction
	// in this partition, -1 when none is open (see txn.go).
	txnFirst int64
}

// newProducerEntry is the state of a producer first seen in epoch.
func newProducerEntry(epoch int16) *producerEntry {
	return &producerEntry{epoch: epoch, lastTimestamp: -1, txnFirst: -1}
}

func (e *producerEntry) last() *producerBatch { return &e.batches[e.n-1] }

// push remembers a batch, forgetting the oldest when the window is full.
func (e *producerEntry) push(b producerBatch) {
	if int(e.n) == producerWindow {
		copy(e.batches[:], e.batches[1:])
		e.n--
	}
	e.batches[e.n] = b
	e.n++
}

// nextSequence is the sequence after s; sequences wrap at int32 max to 0.
func nextSequence(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// producerCheck is the outcome of checking a batch against producer state.
type producerCheck struct {
	dup      bool
	dupBatch producerBatch
}

// checkProducer decides whether batch h may be appended given the
// producer's state e (nil when the producer is unknown here). everWritten
// reports whether the partition has ever held a record. It follows Kafka
// 2.5+ (KIP-360) and franz-go's expectations:
//   - an older epoch is fenced (ErrInvalidProducerEpoch);
//   - a newer epoch must start at sequence 0;
//   - within an epoch, a batch equal to one of the last five is a
//     duplicate, anything else must continue the sequence;
//   - an unknown producer may start at any sequence, except in a partition
//     that never held a record, where it must start at 0 (KAFKA-15591: a
//     later batch overtaking the first one in flight would otherwise be
//     accepted and the first lost).
func checkProducer(e *producerEntry, h *record.Header, everWritten bool) (producerCheck, error) {
	if e == nil {
		if h.BaseSequence != 0 && !everWritten {
			return producerCheck{}, fmt.Errorf("producer %d: first sequence %d in an empty partition, want 0: %w", h.ProducerID, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return producerCheck{}, nil
	}
	switch {
	case e.txnFirst >= 0 && !h.Transactional():
		// Kafka: "Expected transactional write from producer". Taking it
		// would let the batch bump the epoch past the transaction's,
		// and its marker would be refused.
		return producerCheck{}, fmt.Errorf("producer %d: a non-transactional batch while its transaction from offset %d is open: %w", h.ProducerID, e.txnFirst, ErrInvalidTxnState)
	case h.ProducerEpoch < e.epoch:
		return producerCheck{}, fmt.Errorf("producer %d: epoch %d is older than %d: %w", h.ProducerID, h.ProducerEpoch, e.epoch, ErrInvalidProducerEpoch)
	case h.ProducerEpoch > e.epoch:
		if h.BaseSequence != 0 {
			return producerCheck{}, fmt.Errorf("producer %d: new epoch %d starts at sequence %d, want 0: %w", h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return producerCheck{}, nil
	}
	lastSeq := h.LastSequence()
	for i := range int(e.n) {
		b := e.batches[i]
		if b.firstSeq == h.BaseSequence && b.lastSeq == lastSeq {
			return producerCheck{dup: true, dupBatch: b}, nil
		}
	}
	if e.n > 0 {
		if want := nextSequence(e.last().lastSeq); h.BaseSequence != want {
			return producerCheck{}, fmt.Errorf("producer %d epoch %d: sequence %d, want %d: %w", h.ProducerID, h.ProducerEpoch, h.BaseSequence, want, ErrOutOfOrderSequence)
		}
	}
	return producerCheck{}, nil
}

// applyProducer updates e with an appended batch h (whose BaseOffset is
// stamped). Used both after a checked append and when replaying the log.
func applyProducer(e *producerEntry, h *record.Header) {
	if h.ProducerEpoch != e.epoch || e.n == 0 {
		if h.ProducerEpoch < e.epoch && e.n > 0 {
			return // fenced; never appended, but replay must not regress
		}
		e.epoch = h.ProducerEpoch
		e.n = 0
	}
	e.push(producerBatch{
		firstSeq:        h.BaseSequence,
		lastSeq:         h.LastSequence(),
		firstOffset:     h.BaseOffset,
		lastOffsetDelta: h.LastOffsetDelta,
	})
	if h.MaxTimestamp > e.lastTimestamp {
		e.lastTimestamp = h.MaxTimestamp
	}
	if h.Transactional() && e.txnFirst < 0 {
		e.txnFirst = h.BaseOffset
	}
}

// producerStates maps producer ids to their state in one partition.
type producerStates map[int64]*producerEntry

// apply updates ps with a data batch h (control batches go through
// applyMarker).
func (ps producerStates) apply(h *record.Header) {
	if h.ProducerID < 0 || h.Control() {
		return
	}
	e := ps[h.ProducerID]
	if e == nil {
		e = newProducerEntry(h.ProducerEpoch)
		ps[h.ProducerID] = e
	}
	applyProducer(e, h)
}

// expire forgets the producers whose newest batch is timestamped before
// cutoff (ms), except those with an open transaction, and reports how
// many it forgot.
func (ps producerStates) expire(cutoff int64) int {
	n := 0
	for id, e := range ps {
		if e.lastTimestamp < cutoff && e.txnFirst < 0 {
			delete(ps, id)
			n++
		}
	}
	return n
}

// Producer snapshot payload (inside the checkpoint frame, see
// docs/format.md):
//
//	count int32, then per producer, ascending by id:
//	  producerId int64, epoch int16, lastTimestamp int64, batches int8,
//	  then per batch, oldest first:
//	    firstSeq int32, lastSeq int32, firstOffset int64, lastOffsetDelta int32
const (
	snapshotProducerSize = 8 + 2 + 8 + 1
	snapshotBatchSize    = 4 + 4 + 8 + 4
)

func (ps producerStates) encode() []byte {
	ids := make([]int64, 0, len(ps))
	size := 4
	for id, e := range ps {
		ids = append(ids, id)
		size += snapshotProducerSize + int(e.n)*snapshotBatchSize
	}
	slices.Sort(ids)
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := ps[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTimestamp))
		b = append(b, e.n)
		for _, pb := range e.batches[:e.n] {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.firstOffset))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastOffsetDelta))
		}
	}
	return b
}

// decodeProducerStates decodes a snapshot without a transaction section.
func decodeProducerStates(p []byte) (producerStates, error) {
	ps, rest, err := decodeProducerSection(p)
	if err == nil && len(rest) != 0 {
		return nil, fmt.Errorf("producer snapshot: %d trailing bytes: %w", len(rest), ErrCorruptCheckpoint)
	}
	return ps, err
}

// decodeProducerSection decodes the producers of a snapshot and returns
// the bytes after them.
func decodeProducerSection(p []byte) (producerStates, []byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("producer snapshot: "+format+": %w", append(args, ErrCorruptCheckpoint)...)
	}
	if len(p) < 4 {
		return nil, nil, bad("%d bytes", len(p))
	}
	count := int64(binary.BigEndian.Uint32(p))
	p = p[4:]
	if count*snapshotProducerSize > int64(len(p)) {
		return nil, nil, bad("%d producers in %d bytes", count, len(p))
	}
	ps := make(producerStates, count)
	prev := int64(-1)
	for range count {
		if len(p) < snapshotProducerSize {
			return nil, nil, bad("truncated producer")
		}
		id := int64(binary.BigEndian.Uint64(p))
		e := &producerEntry{
			epoch:         int16(binary.BigEndian.Uint16(p[8:])),
			lastTimestamp: int64(binary.BigEndian.Uint64(p[10:])),
			n:             p[18],
			txnFirst:      -1,
		}
		p = p[snapshotProducerSize:]
		if id <= prev || e.epoch < 0 || e.n > producerWindow {
			return nil, nil, bad("producer %d epoch %d with %d batches after %d", id, e.epoch, e.n, prev)
		}
		prev = id
		if len(p) < int(e.n)*snapshotBatchSize {
			return nil, nil, bad("truncated batches of producer %d", id)
		}
		for i := range int(e.n) {
			e.batches[i] = producerBatch{
				firstSeq:        int32(binary.BigEndian.Uint32(p)),
				lastSeq:         int32(binary.BigEndian.Uint32(p[4:])),
				firstOffset:     int64(binary.BigEndian.Uint64(p[8:])),
				lastOffsetDelta: int32(binary.BigEndian.Uint32(p[16:])),
			}
			if e.batches[i].firstOffset < 0 || e.batches[i].lastOffsetDelta < 0 {
				return nil, nil, bad("producer %d batch %+v", id, e.batches[i])
			}
			p = p[snapshotBatchSize:]
		}
		ps[id] = e
	}
	return ps, p, nil
}
