package record

import (
	"fmt"
	"math"
)

// Record layout inside a batch's records section (after decompression).
// Varints are zigzag encoded, as protobuf's sint32/sint64:
//
//	length          varint   bytes after this field
//	attributes      int8     unused, 0
//	timestampDelta  varlong  from the batch's baseTimestamp
//	offsetDelta     varint   from the batch's baseOffset
//	keyLength       varint   -1 for a null key
//	key             bytes
//	valueLength     varint   -1 for a null value
//	value           bytes
//	headerCount     varint
//	headers         headerCount times:
//	  keyLength     varint   never negative
//	  key           bytes    UTF-8
//	  valueLength   varint   -1 for a null value
//	  value         bytes
const minRecordSize = 7 // a length byte and six one-byte fields

// Record is one record of a batch, as Records yields it.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil when null
	Value          []byte // nil when null
	Headers        []RecordHeader
}

// RecordHeader is one record header. Value is nil when null.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Records calls fn for each record of batch, which must be exactly the batch
// whose header is h (as returned by ParseHeader or Validate), decompressing
// it first if needed. It stops at and returns the first error from fn.
//
// The *Record, its Key, Value and Headers slice (but not the header keys,
// which are strings) alias buffers that are reused: they are valid only
// during the call to fn; copy what you keep.
//
// Records checks the framing of every record, that the number of records
// equals h.NumRecords, and that offset deltas increase and stay within
// h.LastOffsetDelta (compacted batches have gaps, so it does not require
// them to be consecutive; Validate does). It does not check the CRC. Errors
// are *CorruptionError as for Validate.
//
// A batch may decompress to MaxDecompressLimit, not DecompressLimit's ratio:
// Records reads batches a log holds (the cleaner, down-conversion, the
// coordinators), which Validate passed on their way in, or which the broker
// itself compressed (compression.type), and 3 MB of one repeated byte
// recompressed to gzip is far past the ratio yet must stay readable.
func Records(h Header, batch []byte, fn func(*Record) error) error {
	if int64(len(batch)) != h.Size() {
		return &CorruptionError{Reason: fmt.Sprintf("have %d bytes for a batch of %d", len(batch), h.Size()), Err: ErrShort}
	}
	if h.NumRecords < 0 {
		return &CorruptionError{Reason: fmt.Sprintf("negative record count %d", h.NumRecords), Err: ErrInvalidRecord}
	}
	data := batch[HeaderSize:]
	var buf *[]byte
	if c := h.Codec(); c != CodecNone {
		buf = getBuf()
		defer putBuf(buf)
		out, err := decompressAppend(c, (*buf)[:0], data, MaxDecompressLimit)
		if out != nil {
			*buf = out[:0]
		}
		if err != nil {
			return err
		}
		data = out
	}
	w := walker{data: data, want: h.NumRecords, lastOffsetDelta: h.LastOffsetDelta, prevDelta: -1}
	var r Record
	for !w.done() {
		if err := w.next(&r, true); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return w.finish()
}

// walker iterates the records of an uncompressed records section.
type walker struct {
	data            []byte
	pos             int
	n               int32 // records read so far
	want            int32 // the batch's record count
	lastOffsetDelta int32
	prevDelta       int64 // offset delta of the previous record; -1 before the first
	strict          bool  // offset deltas must be exactly 0..want-1
}

func (w *walker) done() bool { return w.n >= w.want || w.pos >= len(w.data) }

// finish reports a record count mismatch or trailing bytes.
func (w *walker) finish() error {
	if w.n < w.want {
		return &CorruptionError{Reason: fmt.Sprintf("batch declares %d records, found %d", w.want, w.n), Err: ErrInvalidRecord}
	}
	if w.pos != len(w.data) {
		return &CorruptionError{Reason: fmt.Sprintf("%d bytes after the batch's %d records", len(w.data)-w.pos, w.want), Err: ErrInvalidRecord}
	}
	return nil
}

func (w *walker) corrupt(what string) error {
	return &CorruptionError{Reason: fmt.Sprintf("record %d: %s", w.n, what), Err: ErrCorrupt}
}

// next decodes the next record into r, reusing r.Headers. Header keys are
// only materialized when decodeHeaders is set; otherwise headers are checked
// and skipped and r.Headers is left empty.
func (w *walker) next(r *Record, decodeHeaders bool) error {
	length, n := varint32(w.data[w.pos:])
	if n <= 0 {
		return w.corrupt("bad length varint")
	}
	w.pos += n
	if length < minRecordSize-1 || int64(length) > int64(len(w.data)-w.pos) {
		return w.corrupt(fmt.Sprintf("length %d with %d bytes left", length, len(w.data)-w.pos))
	}
	body := w.data[w.pos : w.pos+int(length)]
	w.pos += int(length)

	r.Attributes = int8(body[0])
	p := 1
	if r.TimestampDelta, n = varint64(body[p:]); n <= 0 {
		return w.corrupt("bad timestamp delta")
	}
	p += n
	if r.OffsetDelta, n = varint32(body[p:]); n <= 0 {
		return w.corrupt("bad offset delta")
	}
	p += n
	if w.strict {
		if r.OffsetDelta != w.n {
			return &CorruptionError{Reason: fmt.Sprintf("record %d has offset delta %d", w.n, r.OffsetDelta), Err: ErrInvalidRecord}
		}
	} else if int64(r.OffsetDelta) <= w.prevDelta || r.OffsetDelta > w.lastOffsetDelta {
		return &CorruptionError{Reason: fmt.Sprintf("record %d has offset delta %d after %d (last offset delta %d)", w.n, r.OffsetDelta, w.prevDelta, w.lastOffsetDelta), Err: ErrInvalidRecord}
	}
	w.prevDelta = int64(r.OffsetDelta)

	var ok bool
	if r.Key, p, ok = nullableBytes(body, p); !ok {
		return w.corrupt("bad key")
	}
	if r.Value, p, ok = nullableBytes(body, p); !ok {
		return w.corrupt("bad value")
	}
	count, n := varint32(body[p:])
	if n <= 0 {
		return w.corrupt("bad header count")
	}
	p += n
	// Each header takes at least two bytes, which bounds count before it
	// sizes anything.
	if count < 0 || int64(count)*2 > int64(len(body)-p) {
		return w.corrupt(fmt.Sprintf("header count %d with %d bytes left", count, len(body)-p))
	}
	r.Headers = r.Headers[:0]
	for range count {
		klen, n := varint32(body[p:])
		if n <= 0 || klen < 0 || int64(klen) > int64(len(body)-p-n) {
			return w.corrupt("bad header key")
		}
		p += n
		key := body[p : p+int(klen)]
		p += int(klen)
		var value []byte
		if value, p, ok = nullableBytes(body, p); !ok {
			return w.corrupt("bad header value")
		}
		if decodeHeaders {
			r.Headers = append(r.Headers, RecordHeader{Key: string(key), Value: value})
		}
	}
	if p != len(body) {
		return w.corrupt(fmt.Sprintf("%d bytes after the headers within the record's length", len(body)-p))
	}
	w.n++
	return nil
}

// skip checks the next record's framing without keeping anything.
func (w *walker) skip() error {
	var r Record
	return w.next(&r, false)
}

// nullableBytes reads a varint length (-1 for null) and that many bytes at
// b[p:]. The result aliases b and has its capacity clipped.
func nullableBytes(b []byte, p int) ([]byte, int, bool) {
	l, n := varint32(b[p:])
	if n <= 0 || l < -1 {
		return nil, p, false
	}
	p += n
	if l == -1 {
		return nil, p, true
	}
	if int64(l) > int64(len(b)-p) {
		return nil, p, false
	}
	return b[p : p+int(l) : p+int(l)], p + int(l), true
}

// varint64 decodes a zigzag varlong (at most 10 bytes). n is the number of
// bytes read, or <= 0 if b is too short or the encoding is too long. The
// one-byte case is kept small enough to inline.
func varint64(b []byte) (int64, int) {
	if len(b) != 0 && b[0] < 0x80 {
		return int64(b[0]>>1) ^ -int64(b[0]&1), 1
	}
	return varint64Slow(b)
}

//go:noinline
func varint64Slow(b []byte) (int64, int) {
	var u uint64
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if c < 0x80 {
			if i == 9 && c > 1 {
				return 0, -1
			}
			u |= uint64(c) << (7 * i)
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
		u |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// varint32 decodes a zigzag varint that must fit an int32 (at most 5 bytes).
func varint32(b []byte) (int32, int) {
	if len(b) != 0 && b[0] < 0x80 {
		return int32(b[0]>>1) ^ -int32(b[0]&1), 1
	}
	return varint32Slow(b)
}

//go:noinline
func varint32Slow(b []byte) (int32, int) {
	v, n := varint64Slow(b)
	if n <= 0 || n > 5 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, -1
	}
	return int32(v), n
}

// uvarintAt decodes the unsigned varint at b[p:] and returns it with the
// position after it, or p = -1 when it is truncated or longer than max
// bytes. Zigzag decoding is left to the caller.
func uvarintAt(b []byte, p, maxLen int) (uint64, int) {
	if p+1 < len(b) {
		// Most varints in a batch (deltas, small lengths, 100-byte values)
		// take one or two bytes.
		c0 := b[p]
		if c0 < 0x80 {
			return uint64(c0), p + 1
		}
		if c1 := b[p+1]; c1 < 0x80 {
			return uint64(c0&0x7f) | uint64(c1)<<7, p + 2
		}
	}
	var u uint64
	for i := 0; i < maxLen; i++ {
		if p+i >= len(b) {
			return 0, -1
		}
		c := b[p+i]
		if c < 0x80 {
			if i == 9 && c > 1 {
				return 0, -1
			}
			return u | uint64(c)<<(7*i), p + i + 1
		}
		u |= uint64(c&0x7f) << (7 * i)
	}
	return 0, -1
}

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
