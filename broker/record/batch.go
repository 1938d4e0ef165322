// Package record owns the Kafka v2 record-batch format: parsing batch
// headers, splitting concatenated batches (Batches), validating untrusted
// batches (Validate: length, magic, CRC-32C, codec, every record's framing,
// record count, offset deltas), iterating the records inside a batch
// (Records), building batches (Builder), and the compression codecs (gzip,
// snappy, lz4, zstd) with bounded decompression. It knows nothing of files
// or the network, and of broker policy (control batches, transactions,
// producer sequences, timestamps).
//
// The header layout is below; the record layout is in records.go.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Batch header layout (all big endian), see docs/format.md:
//
//	0  baseOffset           int64
//	8  batchLength          int32   bytes after this field
//	12 partitionLeaderEpoch int32
//	16 magic                int8    (2)
//	17 crc                  uint32  CRC-32C of bytes 21..end
//	21 attributes           int16
//	23 lastOffsetDelta      int32
//	27 baseTimestamp        int64
//	35 maxTimestamp         int64
//	43 producerId           int64
//	51 producerEpoch        int16
//	53 baseSequence         int32
//	57 recordCount          int32
//	61 records...
const (
	// HeaderSize is the size of a v2 batch header in bytes.
	HeaderSize = 61
	// LogOverhead is the size of the baseOffset and batchLength fields.
	LogOverhead = 12
	// MagicOffset is where the magic byte sits, in a v2 batch as in a
	// format 0 or 1 message (after its offset, size and CRC).
	MagicOffset = 16

	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = MagicOffset
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// Codec is a record-batch compression codec (attributes bits 0-2).
type Codec int8

// The compression codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// Header is a decoded v2 batch header.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Codec returns the batch's compression codec.
func (h *Header) Codec() Codec { return Codec(h.Attributes & 0x07) }

// LogAppendTime reports whether the timestamp type is LogAppendTime.
func (h *Header) LogAppendTime() bool { return h.Attributes&0x08 != 0 }

// Transactional reports whether the batch is part of a transaction.
func (h *Header) Transactional() bool { return h.Attributes&0x10 != 0 }

// Control reports whether the batch is a control batch.
func (h *Header) Control() bool { return h.Attributes&0x20 != 0 }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Size is the batch's total size on disk and on the wire.
func (h *Header) Size() int64 { return int64(h.Length) + LogOverhead }

// LastSequence is the sequence number of the batch's last record.
func (h *Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > 0x7fffffff {
		s -= 0x80000000 // sequences wrap at int32 max, as Kafka's do
	}
	return int32(s)
}

// Errors returned by this package. Check them with errors.Is.
var (
	// ErrCorrupt means the bytes are not a well-formed batch (bad length,
	// magic, CRC or records). Kafka's CORRUPT_MESSAGE.
	ErrCorrupt = errors.New("corrupt record batch")
	// ErrInvalidRecord means the batch is well formed but breaks a rule the
	// broker enforces (record count, offset deltas). Kafka's INVALID_RECORD.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrShort means fewer bytes than a header (or the declared length) are
	// present; at the tail of a log this is a torn write.
	ErrShort = errors.New("short record batch")
	// ErrUnsupportedCodec means the compression codec is unknown.
	ErrUnsupportedCodec = errors.New("unsupported compression codec")
	// ErrDecompressLimit means a compressed batch decompresses to more than
	// the allowed size (see DecompressLimit). It appears as the Cause of a
	// CorruptionError whose Err is ErrCorrupt.
	ErrDecompressLimit = errors.New("decompressed size over limit")
)

// CorruptionError says what is wrong with a batch and where. errors.Is
// matches both Err (the category) and Cause (the underlying error, if any).
type CorruptionError struct {
	Offset int64 // byte position of the batch in whatever was being read
	Reason string
	Err    error // ErrCorrupt, ErrShort, ErrInvalidRecord or ErrUnsupportedCodec
	Cause  error // optional underlying error, e.g. from a decompressor, or ErrDecompressLimit
}

func (e *CorruptionError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("record batch at byte %d: %s: %v: %v", e.Offset, e.Reason, e.Err, e.Cause)
	}
	return fmt.Sprintf("record batch at byte %d: %s: %v", e.Offset, e.Reason, e.Err)
}

// Unwrap returns the category and, if set, the cause, so that errors.Is and
// errors.As see both.
func (e *CorruptionError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ParseHeader decodes the header at the start of b. It checks only that b
// holds a full header, that the magic byte is 2, and that batchLength is
// plausible; it does not check the CRC or that the whole batch is present.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < LogOverhead {
		return h, &CorruptionError{Reason: fmt.Sprintf("%d bytes, need %d for offset and length", len(b), LogOverhead), Err: ErrShort}
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	if h.Length < HeaderSize-LogOverhead {
		return h, &CorruptionError{Reason: fmt.Sprintf("batch length %d below minimum %d", h.Length, HeaderSize-LogOverhead), Err: ErrCorrupt}
	}
	if len(b) < HeaderSize {
		return h, &CorruptionError{Reason: fmt.Sprintf("%d bytes, need %d for a header", len(b), HeaderSize), Err: ErrShort}
	}
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	if h.Magic != 2 {
		return h, &CorruptionError{Reason: fmt.Sprintf("magic %d, only 2 is supported", h.Magic), Err: ErrCorrupt}
	}
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	return h, nil
}

// CheckCRC verifies the CRC-32C of a complete batch (b must be exactly the
// batch: Size() bytes).
func CheckCRC(b []byte, h *Header) error {
	if int64(len(b)) != h.Size() {
		return &CorruptionError{Reason: fmt.Sprintf("have %d bytes for a batch of %d", len(b), h.Size()), Err: ErrShort}
	}
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != h.CRC {
		return &CorruptionError{Reason: fmt.Sprintf("crc %08x, header says %08x", got, h.CRC), Err: ErrCorrupt}
	}
	return nil
}

// SetBaseOffset overwrites the baseOffset field of the batch at the start of
// b. The field is not covered by the CRC.
func SetBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off)) }

// SetLogAppendTime marks the batch at the start of b as timestamped by the
// log (attribute bit 3) with maxTimestamp ts, and recomputes its CRC, as a
// broker does for topics with message.timestamp.type=LogAppendTime. The
// records, compressed or not, are untouched: readers take the batch's
// maxTimestamp as every record's timestamp. h, b's parsed header, is
// updated to match.
func SetLogAppendTime(b []byte, h *Header, ts int64) {
	h.Attributes |= 0x08
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes))
	SetMaxTimestamp(b, h, ts)
}

// SetMaxTimestamp overwrites the maxTimestamp of the batch at the start of
// b and recomputes its CRC; h, b's parsed header, is updated to match. A
// broker stores the largest record timestamp there (ValidateMaxTimestamp),
// whatever the producer wrote: retention, the time index and lookups by
// time read it, and some clients write -1 or a wrong value.
func SetMaxTimestamp(b []byte, h *Header, ts int64) {
	h.MaxTimestamp = ts
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	h.CRC = crc32.Checksum(b[offAttributes:h.Size()], castagnoli)
	binary.BigEndian.PutUint32(b[offCRC:], h.CRC)
}

// SetPartitionLeaderEpoch overwrites the partitionLeaderEpoch field of the
// batch at the start of b. The field is not covered by the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}
