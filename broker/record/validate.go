package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Validate checks one untrusted batch, as a produce request carries it: batch
// must be exactly one batch (12+batchLength bytes). It checks, in order:
// the length, magic 2, the CRC-32C, that the codec is known, that the batch
// holds at least one record and LastOffsetDelta is NumRecords-1, and then,
// decompressing (bounded by DecompressLimit), every record's framing,
// that the record count equals NumRecords, that offset deltas are exactly
// 0..NumRecords-1 and that no bytes follow the last record.
//
// It returns the parsed header. Errors are *CorruptionError wrapping
// ErrShort (fewer bytes than the batch declares), ErrCorrupt (bad length,
// magic, CRC, framing or compressed data; ErrDecompressLimit as Cause when
// over the decompression limit), ErrInvalidRecord (record count or offset
// deltas) or ErrUnsupportedCodec. Broker policy (control batches,
// transactions, producer sequence rules, timestamps) is left to the caller.
//
// Validate is safe for concurrent use. It never panics. An uncompressed
// batch is validated without allocating; gzip, lz4 and zstd batches are
// walked as they decompress, holding a 64 KiB window and the codec's state
// whatever they decompress to (see validateCompressed); snappy batches,
// which cannot expand more than about 21 times, are decompressed whole.
func Validate(batch []byte) (Header, error) {
	h, _, err := ValidateMaxTimestamp(batch)
	return h, err
}

// ValidateMaxTimestamp is Validate that also returns the largest record
// timestamp in the batch, from the records themselves (baseTimestamp plus
// the largest timestamp delta), which a broker stores in place of the
// maxTimestamp the producer wrote (see SetMaxTimestamp). It costs nothing
// over Validate.
func ValidateMaxTimestamp(batch []byte) (h Header, maxTimestamp int64, err error) {
	return validateMaxTimestamp(batch, true)
}

// ValidateMaxTimestampCRCChecked is ValidateMaxTimestamp for a batch whose
// CRC the caller has checked already, over these very bytes (see
// wire.ProduceScanner): everything but the CRC is checked.
func ValidateMaxTimestampCRCChecked(batch []byte) (h Header, maxTimestamp int64, err error) {
	return validateMaxTimestamp(batch, false)
}

func validateMaxTimestamp(batch []byte, checkCRC bool) (h Header, maxTimestamp int64, err error) {
	h, err = ParseHeader(batch)
	if err != nil {
		return h, 0, err
	}
	if int64(len(batch)) != h.Size() {
		if int64(len(batch)) < h.Size() {
			return h, 0, &CorruptionError{Reason: fmt.Sprintf("have %d bytes for a batch of %d", len(batch), h.Size()), Err: ErrShort}
		}
		return h, 0, &CorruptionError{Reason: fmt.Sprintf("%d bytes after a batch of %d", int64(len(batch))-h.Size(), h.Size()), Err: ErrCorrupt}
	}
	if checkCRC {
		if err := CheckCRC(batch, &h); err != nil {
			return h, 0, err
		}
	}
	c := h.Codec()
	if c > CodecZstd {
		return h, 0, &CorruptionError{Reason: fmt.Sprintf("compression codec %d", int8(c)), Err: ErrUnsupportedCodec}
	}
	if h.NumRecords <= 0 {
		return h, 0, &CorruptionError{Reason: fmt.Sprintf("record count %d", h.NumRecords), Err: ErrInvalidRecord}
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, 0, &CorruptionError{Reason: fmt.Sprintf("last offset delta %d for %d records", h.LastOffsetDelta, h.NumRecords), Err: ErrInvalidRecord}
	}
	data := batch[HeaderSize:]
	if c == CodecNone {
		delta, err := validateRecords(data, h.NumRecords)
		return h, h.BaseTimestamp + delta, err
	}
	delta, err := validateCompressed(c, data, h.NumRecords, DecompressLimit(len(batch)))
	return h, h.BaseTimestamp + delta, err
}

// validateRecords checks the records section of a batch declaring n
// records: framing, count, offset deltas 0..n-1 and no trailing bytes, and
// returns the largest timestamp delta (meaningless with an error). It is
// the hot path of produce, so it is written as one loop over positions
// without materializing records; Records' walker does the same checks
// (fuzzing compares the two).
func validateRecords(data []byte, n int32) (maxDelta int64, err error) {
	// Every record takes at least minRecordSize bytes: reject absurd counts
	// without walking.
	if int64(n) > int64(len(data)/minRecordSize) {
		return 0, &CorruptionError{Reason: fmt.Sprintf("batch declares %d records in %d bytes", n, len(data)), Err: ErrInvalidRecord}
	}
	p := 0
	maxDelta = math.MinInt64
	for i := int32(0); i < n; i++ {
		if p, i, maxDelta = fastRecords(data, p, i, n, maxDelta); i == n {
			break
		}
		if p == len(data) {
			return 0, &CorruptionError{Reason: fmt.Sprintf("batch declares %d records, found %d", n, i), Err: ErrInvalidRecord}
		}
		// Each varint is tried with the inlined one/two-byte fast path
		// first (q == -2 when it does not apply).
		length, q := fast2(data, p)
		if q == -2 {
			length, q = int32At(data, p)
		}
		if q < 0 || length < minRecordSize-1 || int(length) > len(data)-q {
			return 0, recordCorrupt(i, "bad length")
		}
		end := q + int(length)
		body := data[:end]
		p = q + 1 // attributes
		tsDelta, q := fast2(body, p)
		delta64 := int64(tsDelta)
		if q == -2 {
			var u uint64
			u, q = uvarintAt(body, p, 10)
			delta64 = unzigzag(u)
		}
		if p = q; p < 0 {
			return 0, recordCorrupt(i, "bad timestamp delta")
		}
		maxDelta = max(maxDelta, delta64)
		delta, q := fast2(body, p)
		if q == -2 {
			delta, q = int32At(body, p)
		}
		if p = q; p < 0 {
			return 0, recordCorrupt(i, "bad offset delta")
		}
		if delta != i {
			return 0, &CorruptionError{Reason: fmt.Sprintf("record %d has offset delta %d", i, delta), Err: ErrInvalidRecord}
		}
		// Key, then value: a length (-1 for null) and that many bytes.
		for kv := range 2 {
			l, q := fast2(body, p)
			if q == -2 {
				l, q = int32At(body, p)
			}
			if q < 0 || l < -1 || int(l) > end-q {
				return 0, recordCorrupt(i, "bad "+[2]string{"key", "value"}[kv])
			}
			p = q + max(int(l), 0)
		}
		if p == end-1 && body[p] == 0 {
			// No headers, the common case; it is also the record's last
			// byte, which fast2 (wanting two bytes) would not take.
			p = end
			continue
		}
		count, q := fast2(body, p)
		if q == -2 {
			count, q = int32At(body, p)
		}
		if p = q; p < 0 || count < 0 || int(count)*2 > end-p {
			return 0, recordCorrupt(i, "bad header count")
		}
		for range count {
			klen, q := fast2(body, p)
			if q == -2 {
				klen, q = int32At(body, p)
			}
			if q < 0 || klen < 0 || int(klen) > end-q {
				return 0, recordCorrupt(i, "bad header key")
			}
			p = q + int(klen)
			vlen, q := fast2(body, p)
			if q == -2 {
				vlen, q = int32At(body, p)
			}
			if q < 0 || vlen < -1 || int(vlen) > end-q {
				return 0, recordCorrupt(i, "bad header value")
			}
			p = q + max(int(vlen), 0)
		}
		if p != end {
			return 0, recordCorrupt(i, fmt.Sprintf("%d bytes after the headers within the record's length", end-p))
		}
	}
	if p != len(data) {
		return 0, &CorruptionError{Reason: fmt.Sprintf("%d bytes after the batch's %d records", len(data)-p, n), Err: ErrInvalidRecord}
	}
	return maxDelta, nil
}

// fastRecords walks records i, i+1, ... (of n) from data[p:] while each
// is of the common shape, checked without the general varint decoder: a
// length, attributes, timestamp delta, offset delta and key length of one
// or two bytes each, read from a 16-byte window with no bounds checks, a
// value length of one or two bytes in the word after the key, and no
// headers. It returns the position and index of the first record it did
// not take (i == n when it took them all) and maxDelta raised to the
// largest timestamp delta it saw. A record it does not take is not of that
// shape or is wrong in some way; the careful walk then decides (and
// explains any error). It accepts exactly what that walk accepts for such
// records (fuzzing checks Validate against Records). One loop, not a call
// per record: the call cost 15-20% of the walk.
func fastRecords(data []byte, p int, i, n int32, maxDelta int64) (int, int32, int64) {
	for ; i < n; i++ {
		if p < 0 || len(data)-p < 16 {
			break // near the end: the careful walk
		}
		b := (*[16]byte)(data[p:])
		length, q := varint2(b, 0)
		if q == 0 || length&1 != 0 { // longer, or negative
			break
		}
		end := p + q + int(length>>1)
		if int(length>>1) < minRecordSize-1 || end > len(data) {
			break
		}
		// attributes (q), then the timestamp delta
		ts, q := varint2(b, q+1)
		if q == 0 {
			break
		}
		delta, q := varint2(b, q)
		if q == 0 || int32(delta>>1)^-int32(delta&1) != i {
			break
		}
		k, q := varint2(b, q)
		if q == 0 {
			break
		}
		keyLen := int64(k>>1) ^ -int64(k&1)
		pos := p + q + max(int(keyLen), 0)
		if keyLen < -1 || pos > end-2 || len(data)-pos < 8 {
			break
		}
		w := binary.LittleEndian.Uint64(data[pos:])
		var valueLen int64
		switch {
		case w&0x80 == 0:
			valueLen, pos = int64(w&0x7f), pos+1
		case w&0x8000 == 0:
			valueLen, pos = int64(w&0x7f|(w>>1)&0x3f80), pos+2
		default:
			return p, i, maxDelta
		}
		valueLen = valueLen>>1 ^ -(valueLen & 1)
		pos += max(int(valueLen), 0)
		// No headers: a zero count as the record's last byte.
		if valueLen < -1 || pos != end-1 || data[pos] != 0 {
			break
		}
		maxDelta = max(maxDelta, int64(ts>>1)^-int64(ts&1))
		p = end
	}
	return p, i, maxDelta
}

// varint2 decodes the one- or two-byte varint at b[q] (its 7-bit groups,
// not unzigzagged) and returns it with the index after it, or q 0 when the
// varint is longer. The masks keep the indexes in the array without
// bounds checks.
func varint2(b *[16]byte, q int) (v uint32, next int) {
	v = uint32(b[q&15])
	if v < 0x80 {
		return v, q + 1
	}
	hi := uint32(b[(q+1)&15])
	if hi >= 0x80 {
		return 0, 0
	}
	return v&0x7f | hi<<7, q + 2
}

func recordCorrupt(i int32, what string) error {
	return &CorruptionError{Reason: fmt.Sprintf("record %d: %s", i, what), Err: ErrCorrupt}
}

// int32At decodes the zigzag varint at b[p:], which must fit an int32, and
// returns it with the position after it (-1 if bad).
func int32At(b []byte, p int) (int32, int) {
	u, q := uvarintAt(b, p, 5)
	v := unzigzag(u)
	if q < 0 || v != int64(int32(v)) {
		return 0, -1
	}
	return int32(v), q
}

// fast2 decodes a one- or two-byte zigzag varint at b[p:], returning the
// position after it, or q = -2 when the varint is longer, truncated, or p is
// out of range. It is small enough to inline.
func fast2(b []byte, p int) (v int32, q int) {
	if p >= 0 && p+1 < len(b) {
		c0 := b[p]
		if c0 < 0x80 {
			return int32(c0>>1) ^ -int32(c0&1), p + 1
		}
		if c1 := b[p+1]; c1 < 0x80 {
			u := uint32(c0&0x7f) | uint32(c1)<<7
			return int32(u>>1) ^ -int32(u&1), p + 2
		}
	}
	return 0, -2
}

// Batches splits b, a concatenation of whole batches (a produce request's
// records field, or a region of a segment file), calling fn with each
// batch's byte position in b, its bytes and its parsed header. It checks
// each header with ParseHeader but not the CRC or the records (use Validate
// or CheckCRC in fn). A batch that does not fit in what is left of b (a torn
// tail) is ErrShort. Errors are *CorruptionError with Offset set to the
// batch's position, or the first error returned by fn, unwrapped.
func Batches(b []byte, fn func(pos int, batch []byte, h Header) error) error {
	for pos := 0; pos < len(b); {
		h, err := ParseHeader(b[pos:])
		if err != nil {
			if ce, ok := err.(*CorruptionError); ok {
				ce.Offset = int64(pos)
			}
			return err
		}
		if h.Size() > int64(len(b)-pos) {
			return &CorruptionError{
				Offset: int64(pos),
				Reason: fmt.Sprintf("batch of %d bytes with %d left", h.Size(), len(b)-pos),
				Err:    ErrShort,
			}
		}
		end := pos + int(h.Size())
		if err := fn(pos, b[pos:end:end], h); err != nil {
			return err
		}
		pos = end
	}
	return nil
}
