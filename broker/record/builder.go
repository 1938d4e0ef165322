package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Builder builds one v2 record batch. The zero value is not ready: use
// NewBuilder, which starts with no producer (id, epoch and base sequence -1),
// no compression and base offset 0. Add records, then call Build or
// AppendTo; Reset starts a new batch keeping the settings. A Builder is not
// safe for concurrent use.
type Builder struct {
	baseOffset    int64
	leaderEpoch   int32
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	codec         Codec
	attrs         int16 // transactional, control and timestamp-type bits

	records         []byte // encoded uncompressed records
	n               int32
	lastOffsetDelta int32 // -1 before the first record
	baseTimestamp   int64
	maxTimestamp    int64
	scratch         []byte
}

// NewBuilder returns a Builder for an uncompressed batch with no producer.
func NewBuilder() *Builder {
	return &Builder{
		leaderEpoch:     -1,
		producerID:      -1,
		producerEpoch:   -1,
		baseSequence:    -1,
		lastOffsetDelta: -1,
	}
}

// SetProducer sets the idempotent producer id, epoch and the sequence of
// the batch's first record.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) *Builder {
	b.producerID, b.producerEpoch, b.baseSequence = id, epoch, baseSequence
	return b
}

// SetCodec sets the compression codec. It fails with ErrUnsupportedCodec
// for an unknown codec and leaves the previous codec in place.
func (b *Builder) SetCodec(c Codec) error {
	if c < CodecNone || c > CodecZstd {
		return &CorruptionError{Reason: fmt.Sprintf("compression codec %d", int8(c)), Err: ErrUnsupportedCodec}
	}
	b.codec = c
	return nil
}

// SetBaseOffset sets the batch's base offset (default 0).
func (b *Builder) SetBaseOffset(off int64) *Builder { b.baseOffset = off; return b }

// SetPartitionLeaderEpoch sets the partition leader epoch (default -1).
func (b *Builder) SetPartitionLeaderEpoch(epoch int32) *Builder { b.leaderEpoch = epoch; return b }

// SetTransactional sets or clears the transactional attribute.
func (b *Builder) SetTransactional(on bool) *Builder { b.setAttr(0x10, on); return b }

// SetControl sets or clears the control-batch attribute.
func (b *Builder) SetControl(on bool) *Builder { b.setAttr(0x20, on); return b }

// SetLogAppendTime sets or clears the LogAppendTime timestamp type.
func (b *Builder) SetLogAppendTime(on bool) *Builder { b.setAttr(0x08, on); return b }

func (b *Builder) setAttr(bit int16, on bool) {
	if on {
		b.attrs |= bit
	} else {
		b.attrs &^= bit
	}
}

// Add appends a record with the next offset delta. key or value nil means
// null. timestamp is in milliseconds since the epoch.
func (b *Builder) Add(key, value []byte, headers []RecordHeader, timestamp int64) {
	b.add(b.lastOffsetDelta+1, key, value, headers, timestamp)
}

// AddWithOffsetDelta appends a record with the given offset delta, which
// must be larger than the previous record's: batches rewritten by log
// compaction keep their records' original offsets, with gaps.
func (b *Builder) AddWithOffsetDelta(offsetDelta int32, key, value []byte, headers []RecordHeader, timestamp int64) error {
	if offsetDelta <= b.lastOffsetDelta {
		return fmt.Errorf("offset delta %d not after previous %d: %w", offsetDelta, b.lastOffsetDelta, ErrInvalidRecord)
	}
	b.add(offsetDelta, key, value, headers, timestamp)
	return nil
}

// SetLastOffsetDelta raises the batch's last offset delta beyond its last
// record's, as a compacted batch keeps the offset range it had.
func (b *Builder) SetLastOffsetDelta(d int32) *Builder {
	b.lastOffsetDelta = max(b.lastOffsetDelta, d)
	return b
}

func (b *Builder) add(offsetDelta int32, key, value []byte, headers []RecordHeader, timestamp int64) {
	if b.n == 0 {
		b.baseTimestamp, b.maxTimestamp = timestamp, timestamp
	}
	b.maxTimestamp = max(b.maxTimestamp, timestamp)

	body := b.scratch[:0]
	body = append(body, 0) // attributes
	body = binary.AppendVarint(body, timestamp-b.baseTimestamp)
	body = binary.AppendVarint(body, int64(offsetDelta))
	body = appendNullableBytes(body, key)
	body = appendNullableBytes(body, value)
	body = binary.AppendVarint(body, int64(len(headers)))
	for _, h := range headers {
		body = binary.AppendVarint(body, int64(len(h.Key)))
		body = append(body, h.Key...)
		body = appendNullableBytes(body, h.Value)
	}
	b.scratch = body
	b.records = binary.AppendVarint(b.records, int64(len(body)))
	b.records = append(b.records, body...)
	b.n++
	b.lastOffsetDelta = offsetDelta
}

func appendNullableBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(v))), v...)
}

// NumRecords is the number of records added since the last Reset.
func (b *Builder) NumRecords() int { return int(b.n) }

// Reset drops the records, keeping the settings.
func (b *Builder) Reset() {
	b.records = b.records[:0]
	b.n = 0
	b.lastOffsetDelta = -1
	b.baseTimestamp, b.maxTimestamp = 0, 0
}

// Build returns the batch in a new slice.
func (b *Builder) Build() []byte { return b.AppendTo(nil) }

// AppendTo appends the batch to dst and returns the result: the header with
// correct lengths, counts and CRC-32C, then the (compressed) records.
func (b *Builder) AppendTo(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	// The codec was checked by SetCodec, so Compress cannot fail.
	dst, _ = Compress(b.codec, dst, b.records)
	batch := dst[start:]
	be := binary.BigEndian
	be.PutUint64(batch[offBaseOffset:], uint64(b.baseOffset))
	be.PutUint32(batch[offLength:], uint32(len(batch)-LogOverhead))
	be.PutUint32(batch[offLeaderEpoch:], uint32(b.leaderEpoch))
	batch[offMagic] = 2
	be.PutUint16(batch[offAttributes:], uint16(b.attrs|int16(b.codec)))
	be.PutUint32(batch[offLastOffsetDelta:], uint32(max(b.lastOffsetDelta, 0)))
	be.PutUint64(batch[offBaseTimestamp:], uint64(b.baseTimestamp))
	be.PutUint64(batch[offMaxTimestamp:], uint64(b.maxTimestamp))
	be.PutUint64(batch[offProducerID:], uint64(b.producerID))
	be.PutUint16(batch[offProducerEpoch:], uint16(b.producerEpoch))
	be.PutUint32(batch[offBaseSequence:], uint32(b.baseSequence))
	be.PutUint32(batch[offRecordCount:], uint32(b.n))
	be.PutUint32(batch[offCRC:], crc32.Checksum(batch[offAttributes:], castagnoli))
	return dst
}
