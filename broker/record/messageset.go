package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Message sets are the record format of Kafka before 0.11 (magic 0 and 1),
// which Produce v0-v2 carry. Each message is
//
//	offset    int64   ignored (assigned by the broker)
//	size      int32   bytes that follow
//	crc       uint32  CRC-32 (IEEE) of the rest of the message
//	magic     int8    0 or 1
//	attributes int8   bits 0-2: codec (0 none, 1 gzip, 2 snappy, 3 lz4);
//	                  bit 3 (magic 1): LogAppendTime, which is the
//	                  broker's to apply (a topic setting), so ignored
//	timestamp int64   magic 1 only
//	key       int32 length (-1 null) and bytes
//	value     int32 length (-1 null) and bytes
//
// A compressed message ("wrapper") holds in its value a compressed message
// set of uncompressed inner messages.

// Message-set framing sizes.
const (
	msgSetLogOverhead = 12 // offset and size
	msgHeaderV0       = 4 + 1 + 1 + 4 + 4
	msgHeaderV1       = msgHeaderV0 + 8
)

// FromMessageSet converts a message set, as a Produce v0-v2 request
// carries it, into one v2 record batch holding its messages in order, as
// Kafka up-converts them: keys and values (null kept apart from empty),
// magic 1 timestamps, and -1 (none) for magic 0 messages, as Kafka gives
// them (retention then ages such records by the segment file's time).
// A set with compressed messages becomes a batch compressed with the
// codec of the first of them. Every message's CRC, magic, attributes and
// framing are checked, nested compression is refused, and decompression is
// bounded as for batches (DecompressLimit); errors are *CorruptionError.
func FromMessageSet(set []byte) ([]byte, error) {
	b := NewBuilder()
	codec := CodecNone
	n, err := readMessages(set, false, func(key, value []byte, ts int64, c Codec) error {
		if c != CodecNone {
			if codec == CodecNone {
				codec = c
			}
			return nil
		}
		b.Add(key, value, nil, ts)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 || b.NumRecords() == 0 {
		return nil, &CorruptionError{Reason: "message set holds no message", Err: ErrInvalidRecord}
	}
	if codec != CodecNone {
		if err := b.SetCodec(codec); err != nil {
			return nil, err
		}
	}
	return b.Build(), nil
}

// readMessages walks a message set, calling fn for each message; a
// compressed message's inner messages are passed to fn first (with
// CodecNone), then the wrapper itself with its codec and no key or value.
// inner says the set is a wrapper's value, where compression is refused.
// It returns the number of messages at this level.
func readMessages(set []byte, inner bool, fn func(key, value []byte, ts int64, c Codec) error) (int, error) {
	n := 0
	for p := 0; p < len(set); n++ {
		if len(set)-p < msgSetLogOverhead {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: %d bytes left for its offset and size", n, len(set)-p), Err: ErrCorrupt}
		}
		size := int(int32(binary.BigEndian.Uint32(set[p+8:])))
		p += msgSetLogOverhead
		if size < msgHeaderV0 || size > len(set)-p {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: size %d with %d bytes left", n, size, len(set)-p), Err: ErrCorrupt}
		}
		msg := set[p : p+size]
		p += size
		if crc := binary.BigEndian.Uint32(msg); crc != crc32.ChecksumIEEE(msg[4:]) {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: CRC mismatch", n), Err: ErrCorrupt}
		}
		magic, attrs := int8(msg[4]), msg[5]
		q := 6
		ts := int64(-1)
		switch magic {
		case 0:
		case 1:
			if len(msg) < msgHeaderV1 {
				return n, &CorruptionError{Reason: fmt.Sprintf("message %d: %d bytes for a magic 1 message", n, len(msg)), Err: ErrCorrupt}
			}
			ts = int64(binary.BigEndian.Uint64(msg[q:]))
			q += 8
		default:
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: magic %d in a message set", n, magic), Err: ErrCorrupt}
		}
		if attrs&^0x0f != 0 {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: attributes %#x", n, attrs), Err: ErrCorrupt}
		}
		key, q, ok := messageBytes(msg, q)
		if !ok {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: bad key", n), Err: ErrCorrupt}
		}
		value, q, ok := messageBytes(msg, q)
		if !ok || q != len(msg) {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: bad value", n), Err: ErrCorrupt}
		}
		c := Codec(attrs & 0x07)
		if c == CodecNone {
			if err := fn(key, value, ts, CodecNone); err != nil {
				return n, err
			}
			continue
		}
		if inner || c > CodecLZ4 {
			return n, &CorruptionError{Reason: fmt.Sprintf("message %d: codec %d inside a compressed message set", n, c), Err: ErrCorrupt}
		}
		if c == CodecLZ4 && magic == 0 {
			fixLZ4HeaderChecksum(value) // see lz4_legacy.go
		}
		buf := getBuf()
		out, err := decompressAppend(c, (*buf)[:0], value, DecompressLimit(len(value)))
		if err == nil {
			var m int
			m, err = readMessages(out, true, fn)
			if err == nil && m == 0 {
				err = &CorruptionError{Reason: fmt.Sprintf("message %d: empty compressed message set", n), Err: ErrCorrupt}
			}
		}
		if out != nil {
			*buf = out[:0]
		}
		putBuf(buf)
		if err != nil {
			return n, err
		}
		if err := fn(nil, nil, ts, c); err != nil {
			return n, err
		}
	}
	return n, nil
}

// messageBytes reads the int32-length-prefixed bytes at msg[q:]: nil for
// length -1.
func messageBytes(msg []byte, q int) ([]byte, int, bool) {
	if len(msg)-q < 4 {
		return nil, q, false
	}
	l := int(int32(binary.BigEndian.Uint32(msg[q:])))
	q += 4
	switch {
	case l == -1:
		return nil, q, true
	case l < -1 || l > len(msg)-q:
		return nil, q, false
	}
	return msg[q : q+l : q+l], q + l, true
}

// AppendMessageSet appends to dst the records of batches (whole v2
// batches, as a log holds them) as a message set of the given magic (0
// or 1), as Kafka 3 down-converts for Fetch v0-v3: each record with an
// offset of at least from becomes one uncompressed message at its absolute
// offset, with its key and value (headers have no place in a message);
// magic 1 messages carry the record's timestamp, a LogAppendTime batch's
// with the attribute saying so. Control batches (transaction markers) are
// left out. Compressed batches are decompressed (Kafka recompresses them
// into a wrapper message; an uncompressed set is as valid to every client,
// only larger). A torn batch at the end is left out, as a fetch's last
// partial batch is. The set stops before the message that would take it
// past limit bytes (at least one message is appended whatever its size),
// as decompressing can make it far larger than the batches: the client
// asks for the rest next. next is the offset after the last batch walked:
// when nothing was appended, where the records after batches start.
func AppendMessageSet(dst, batches []byte, magic int8, from int64, limit int) (out []byte, next int64, err error) {
	if magic != 0 && magic != 1 {
		return dst, from, fmt.Errorf("message set magic %d: only 0 and 1 exist", magic)
	}
	start := len(dst)
	next = from
	err = Batches(batches, func(_ int, batch []byte, h Header) error {
		next = max(next, h.LastOffset()+1)
		if h.Control() || h.LastOffset() < from {
			return nil
		}
		return Records(h, batch, func(r *Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off < from {
				return nil
			}
			size := msgSetLogOverhead + msgHeaderV0 + len(r.Key) + len(r.Value)
			if magic == 1 {
				size += msgHeaderV1 - msgHeaderV0
			}
			if len(dst) > start && len(dst)-start+size > limit {
				return errSetFull
			}
			ts, attrs := h.BaseTimestamp+r.TimestampDelta, byte(0)
			if h.LogAppendTime() {
				ts, attrs = h.MaxTimestamp, 0x08
			}
			dst = appendLegacyMessage(dst, magic, attrs, off, ts, r.Key, r.Value)
			return nil
		})
	})
	if errors.Is(err, ErrShort) || errors.Is(err, errSetFull) {
		err = nil
	}
	return dst, next, err
}

// errSetFull ends AppendMessageSet's walk at its limit.
var errSetFull = errors.New("message set full")

// appendLegacyMessage appends one uncompressed message (see the layout above).
func appendLegacyMessage(dst []byte, magic int8, attrs byte, offset, ts int64, key, value []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(offset))
	sizeAt := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // size, CRC
	crcFrom := len(dst)
	dst = append(dst, byte(magic))
	if magic == 0 {
		attrs = 0 // no timestamp type in format 0
	}
	dst = append(dst, attrs)
	if magic == 1 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	}
	for _, b := range [][]byte{key, value} {
		if b == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xffffffff)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
		dst = append(dst, b...)
	}
	binary.BigEndian.PutUint32(dst[sizeAt:], uint32(len(dst)-sizeAt-4))
	binary.BigEndian.PutUint32(dst[sizeAt+4:], crc32.ChecksumIEEE(dst[crcFrom:]))
	return dst
}
