package wire

import (
	"encoding/binary"
	"hash/crc32"
)

// ProduceScanner follows a Produce request (versions 3-9) while its frame
// is being read from the socket, and hands over each partition's records
// field (OnRecords) the moment its last byte is in, so that the broker can
// validate and append it while its bytes are still in the CPU's cache.
// Handled after the whole frame is read, a request larger than a core's
// L2 cache (4 partitions of 1 MB, say) is read back from memory, by the
// validation and again by the write into the page cache.
//
// It checks the CRC-32C of every record batch as the bytes arrive and says
// whether all of a field's were right. It only vouches for bytes it has
// checked: a batch it does not follow (not v2, or not tiling its records
// field) or a bad CRC makes the field unchecked, for the full validation
// to check and explain. A frame it does not follow (another API, a
// version it does not know, a malformed frame) hands nothing over from the
// point it stops following. It never allocates and never fails.
//
// Use: set OnRecords, Reset when a frame starts, and Advance with the
// frame so far after every read (bytes read earlier must not change).
type ProduceScanner struct {
	// OnRecords, if set, is called for each partition's records field of
	// a produce request (not for a null or empty one), in the request's
	// order, as soon as the field is complete: with the request's acks,
	// whether it names a transactional id, the topic's name and the
	// partition (both as the request gives them), the field (a slice of
	// the frame) and whether the scanner checked every batch's CRC in it.
	OnRecords func(f RecordsField)

	version int16
	state   scanState
	flex    bool
	pos     int // next byte to parse in the frame

	acks          int16
	transactional bool
	topicName     span  // the current topic's name, in the frame
	partitionID   int32 // the current partition

	topics, partitions int // left to parse in the request, in the topic

	// The records field being scanned: [recStart, recEnd) of the frame,
	// and whether every batch of it so far had a good CRC.
	recStart, recEnd int
	recOK            bool
	// The batch being checked: CRC of [crcPos-..., crcPos) so far,
	// against want, up to batchEnd.
	crcPos, batchEnd int
	crc, want        uint32
}

type span struct{ start, end int }

// RecordsField is one partition's records in a produce request, as
// ProduceScanner.OnRecords gets it.
type RecordsField struct {
	Version       int16 // the request's
	Acks          int16
	Transactional bool // the request names a transactional id
	Topic         []byte
	Partition     int32
	Records       []byte
	CRCChecked    bool
}

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
	s.state, s.pos = scanHeader, 0
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

// fail stops following the frame; nothing more is handed over.
func (s *ProduceScanner) fail() bool {
	s.state = scanOff
	return false
}

// settle reports whether r parsed what a step asked of it. When not, the
// step waits for more bytes (r.short) or, when they can never parse
// (r.bad), the scanner stops following the frame.
func (s *ProduceScanner) settle(r *reader) bool {
	if r.bad {
		s.fail()
	}
	return !r.short && !r.bad
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
	}
	_, txn := r.str(s.flex) // transactional id
	acks := int16(r.uint16())
	r.skip(4) // timeout
	n := r.arrayLen(s.flex)
	if !s.settle(&r) {
		return false
	}
	s.pos, s.topics, s.acks, s.transactional = r.p, n, acks, txn
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
	name, _ := r.str(s.flex)
	n := r.arrayLen(s.flex)
	if !s.settle(&r) {
		return false
	}
	s.pos, s.partitions, s.topicName = r.p, n, name
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
	partition := int32(r.uint32())
	var n int
	if s.flex {
		n = int(r.uvarint()) - 1
	} else {
		n = int(int32(r.uint32()))
	}
	if !s.settle(&r) {
		return false
	}
	s.pos, s.partitionID = r.p, partition
	if n <= 0 { // null or empty records: nothing to vouch for or hand over
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
		if s.OnRecords != nil {
			s.OnRecords(RecordsField{
				Version:       s.version,
				Acks:          s.acks,
				Transactional: s.transactional,
				Topic:         b[s.topicName.start:s.topicName.end],
				Partition:     s.partitionID,
				Records:       b[s.recStart:s.recEnd:s.recEnd],
				CRCChecked:    s.recOK,
			})
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
		// Wait for the rest of the field all the same: it is handed
		// over whole.
		s.recOK = false
		s.state = scanBatchBody
		s.crcPos, s.batchEnd = s.pos, s.recEnd
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
	if !s.settle(&r) {
		return false
	}
	s.pos = r.p
	if st == scanPartTags {
		return s.nextPartition()
	}
	return s.nextTopic()
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

// fixed returns the next n bytes, or nil when they are not all in.
func (r *reader) fixed(n int) []byte {
	if !r.need(n) {
		return nil
	}
	r.p += n
	return r.b[r.p-n : r.p]
}

func (r *reader) uint32() uint32 {
	if b := r.fixed(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if b := r.fixed(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
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

// int16String skips a (nullable) string with an int16 length and returns
// where it is and whether it is not null.
func (r *reader) int16String() (span, bool) {
	n := int(int16(r.uint16()))
	start := r.p
	if n > 0 {
		r.skip(n)
	}
	return span{start, r.p}, n >= 0
}

// str is compactString or int16String.
func (r *reader) str(compact bool) (span, bool) {
	if compact {
		return r.compactString()
	}
	return r.int16String()
}

// compactString is int16String for a (nullable) compact string.
func (r *reader) compactString() (span, bool) {
	n := int(r.uvarint())
	start := r.p
	if n > 1 {
		r.skip(n - 1)
	}
	return span{start, r.p}, n > 0
}

// arrayLen reads an array's length; a null array (negative) is empty, as
// kmsg decodes it.
func (r *reader) arrayLen(compact bool) int {
	var n int
	if compact {
		n = int(r.uvarint()) - 1
	} else {
		n = int(int32(r.uint32()))
	}
	return max(n, 0)
}

// skipTags skips a tagged-fields section.
func (r *reader) skipTags() {
	for n := r.uvarint(); n > 0 && !r.short && !r.bad; n-- {
		r.uvarint() // tag
		r.skip(int(r.uvarint()))
	}
}
