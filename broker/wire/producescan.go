package wire

import (
	"encoding/binary"
	"hash/crc32"
	"unsafe"
)

// ProduceScanner follows a Produce request (versions 3-9) while its frame
// is being read from the socket and checks the CRC-32C of every record
// batch in it as the bytes arrive, while they are still in the CPU's
// cache. Checked later, after the whole frame is read, a request larger
// than a core's L2 cache (4 partitions of 1 MB, say) is read back from
// memory, which costs about twice as much.
//
// It only ever vouches for bytes it has checked: anything it does not
// follow (another API, a version it does not know, a malformed frame, a
// batch that is not v2 or does not tile its records field) is left for
// the full validation to check, and explain, as before. It never
// allocates per batch and never fails.
//
// Use: Reset when a frame starts, Advance with the frame so far after
// every read (the frame's bytes read earlier must not change), then ask
// CRCChecked about each partition's records once the frame is complete.
type ProduceScanner struct {
	version int16
	state   scanState
	flex    bool
	pos     int // next byte to parse in the frame

	topics, partitions int // left to parse in the request, in the topic

	// The records field being scanned: [recStart, recEnd) of the frame,
	// and whether every batch of it so far had a good CRC.
	recStart, recEnd int
	recOK            bool
	// The batch being checked: CRC of [crcPos-..., crcPos) so far,
	// against want, up to batchEnd.
	crcPos, batchEnd int
	crc, want        uint32

	// checked are the records fields whose every batch had a good CRC.
	checked []span
}

type span struct{ start, end int }

type scanState uint8

const (
	scanOff       scanState = iota // not a produce request we follow, or gave up
	scanHeader                     // header and the fields before the topics
	scanTopic                      // a topic's name and partition count
	scanPartition                  // a partition's index and records length
	scanBatchHead                  // the first bytes of a batch, through its CRC
	scanBatchBody                  // the bytes a batch's CRC covers
	scanPartTags                   // a partition's tagged fields (v9)
	scanTopicTags                  // a topic's tagged fields (v9)
	scanDone
)

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// Batch layout, as in package record (which wire does not import).
const (
	batchLenEnd   = 12 // baseOffset (8) and batchLength (4)
	batchMagicOff = 16
	batchCRCOff   = 17
	batchCRCEnd   = 21 // the CRC covers the batch from here
	batchMinSize  = 61 // a v2 batch header
)

// Reset starts a new frame.
func (s *ProduceScanner) Reset() {
	s.state, s.pos, s.checked = scanHeader, 0, s.checked[:0]
}

// Advance scans frame, the frame read so far.
func (s *ProduceScanner) Advance(frame []byte) {
	for s.step(frame) {
	}
}

// step takes one step and reports whether to take another.
func (s *ProduceScanner) step(b []byte) bool {
	switch s.state {
	case scanHeader:
		return s.header(b)
	case scanTopic:
		return s.topic(b)
	case scanPartition:
		return s.partition(b)
	case scanBatchHead:
		return s.batchHead(b)
	case scanBatchBody:
		return s.batchBody(b)
	case scanPartTags:
		return s.tags(b, scanPartTags)
	case scanTopicTags:
		return s.tags(b, scanTopicTags)
	}
	return false
}

// fail stops following the frame; nothing more is vouched for.
func (s *ProduceScanner) fail() bool {
	s.state = scanOff
	return false
}

// header parses the request header and the body's fields up to the
// topic count. It waits for all of them (a few dozen bytes).
func (s *ProduceScanner) header(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	key, version := int16(binary.BigEndian.Uint16(b)), int16(binary.BigEndian.Uint16(b[2:]))
	if key != 0 || version < 3 || version > 9 {
		return s.fail()
	}
	s.version, s.flex = version, version >= 9
	r := reader{b: b, p: 8}
	r.int16String() // client id, never compact
	if s.flex {
		r.skipTags()
		r.compactString() // transactional id
	} else {
		r.int16String()
	}
	r.skip(2 + 4) // acks, timeout
	n := r.arrayLen(s.flex)
	switch {
	case r.short:
		return false
	case r.bad || n < 0:
		return s.fail()
	}
	s.pos, s.topics = r.p, n
	return s.nextTopic()
}

func (s *ProduceScanner) nextTopic() bool {
	if s.topics == 0 {
		s.state = scanDone
		return false
	}
	s.topics--
	s.state = scanTopic
	return true
}

func (s *ProduceScanner) topic(b []byte) bool {
	r := reader{b: b, p: s.pos}
	if s.flex {
		r.compactString()
	} else {
		r.int16String()
	}
	n := r.arrayLen(s.flex)
	switch {
	case r.short:
		return false
	case r.bad || n < 0:
		return s.fail()
	}
	s.pos, s.partitions = r.p, n
	return s.nextPartition()
}

func (s *ProduceScanner) nextPartition() bool {
	if s.partitions == 0 {
		if s.flex {
			s.state = scanTopicTags
			return true
		}
		return s.nextTopic()
	}
	s.partitions--
	s.state = scanPartition
	return true
}

func (s *ProduceScanner) partition(b []byte) bool {
	r := reader{b: b, p: s.pos}
	r.skip(4) // index
	var n int
	if s.flex {
		n = int(r.uvarint()) - 1
	} else {
		n = int(int32(r.uint32()))
	}
	switch {
	case r.short:
		return false
	case r.bad:
		return s.fail()
	}
	s.pos = r.p
	if n <= 0 { // null or empty records: nothing to vouch for
		return s.endRecords()
	}
	s.recStart, s.recEnd, s.recOK = s.pos, s.pos+n, true
	s.state = scanBatchHead
	return true
}

// batchHead reads a batch's length and CRC, once its first 21 bytes (or
// the end of its records field) are in.
func (s *ProduceScanner) batchHead(b []byte) bool {
	if s.pos == s.recEnd {
		if s.recOK {
			s.checked = append(s.checked, span{s.recStart, s.recEnd})
		}
		return s.endRecords()
	}
	if len(b) < min(s.pos+batchCRCEnd, s.recEnd) {
		return false
	}
	size := -1
	if s.recEnd-s.pos >= batchCRCEnd {
		size = batchLenEnd + int(int32(binary.BigEndian.Uint32(b[s.pos+8:])))
	}
	if size < batchMinSize || size > s.recEnd-s.pos || b[s.pos+batchMagicOff] != 2 {
		// Not a batch this scanner can vouch for; the validation will
		// say what is wrong with it.
		s.recOK = false
		s.pos = s.recEnd
		s.state = scanBatchBody
		s.crcPos, s.batchEnd = s.recEnd, s.recEnd
		return true
	}
	s.want = binary.BigEndian.Uint32(b[s.pos+batchCRCOff:])
	s.crc = 0
	s.crcPos, s.batchEnd = s.pos+batchCRCEnd, s.pos+size
	s.state = scanBatchBody
	return true
}

// batchBody adds the bytes that arrived to the batch's CRC (or, after a
// batch it cannot vouch for, waits for the records field to end).
func (s *ProduceScanner) batchBody(b []byte) bool {
	if end := min(len(b), s.batchEnd); end > s.crcPos {
		if s.recOK {
			s.crc = crc32.Update(s.crc, castagnoliTable, b[s.crcPos:end])
		}
		s.crcPos = end
	}
	if s.crcPos < s.batchEnd {
		return false
	}
	if s.recOK && s.crc != s.want {
		s.recOK = false
	}
	s.pos = s.batchEnd
	s.state = scanBatchHead
	return true
}

func (s *ProduceScanner) endRecords() bool {
	if s.flex {
		s.state = scanPartTags
		return true
	}
	return s.nextPartition()
}

func (s *ProduceScanner) tags(b []byte, st scanState) bool {
	r := reader{b: b, p: s.pos}
	r.skipTags()
	switch {
	case r.short:
		return false
	case r.bad:
		return s.fail()
	}
	s.pos = r.p
	if st == scanPartTags {
		return s.nextPartition()
	}
	return s.nextTopic()
}

// CRCChecked reports whether every batch in records, a partition's
// records field of the frame last scanned (a slice of that very frame),
// had a good CRC. False whenever in doubt.
func (s *ProduceScanner) CRCChecked(frame, records []byte) bool {
	if len(records) == 0 || len(s.checked) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(frame)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(records)))
	if p < base || p-base > uintptr(len(frame)) {
		return false
	}
	start := int(p - base)
	for _, c := range s.checked {
		if c.start == start {
			return c.end-c.start == len(records)
		}
	}
	return false
}

// reader parses a frame's small fields; short means the bytes are not all
// in yet, bad that they can never parse.
type reader struct {
	b     []byte
	p     int
	short bool
	bad   bool
}

func (r *reader) need(n int) bool {
	if r.short || r.bad {
		return false
	}
	if n < 0 {
		r.bad = true
		return false
	}
	if len(r.b)-r.p < n {
		r.short = true
		return false
	}
	return true
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.p += n
	}
}

func (r *reader) uint32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.p:])
	r.p += 4
	return v
}

func (r *reader) uvarint() uint64 {
	if r.short || r.bad {
		return 0
	}
	if r.p >= len(r.b) {
		r.short = true
		return 0
	}
	v, n := binary.Uvarint(r.b[r.p:])
	switch {
	case n == 0:
		r.short = true
	case n < 0 || v > 1<<31:
		r.bad = true
	default:
		r.p += n
	}
	return v
}

// int16String skips a (nullable) string with an int16 length.
func (r *reader) int16String() {
	if !r.need(2) {
		return
	}
	n := int(int16(binary.BigEndian.Uint16(r.b[r.p:])))
	r.p += 2
	if n > 0 {
		r.skip(n)
	}
}

// compactString skips a (nullable) compact string.
func (r *reader) compactString() {
	if n := int(r.uvarint()); n > 1 {
		r.skip(n - 1)
	}
}

func (r *reader) arrayLen(compact bool) int {
	if compact {
		return int(r.uvarint()) - 1
	}
	return int(int32(r.uint32()))
}

// skipTags skips a tagged-fields section.
func (r *reader) skipTags() {
	for n := r.uvarint(); n > 0 && !r.short && !r.bad; n-- {
		r.uvarint() // tag
		r.skip(int(r.uvarint()))
	}
}
