package appender

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// entryOverhead approximates the memory an entry costs beyond its buffers:
// the entry itself (672 bytes with its kgo.Record, headers and encoder
// state), its promise closure, and kgo's bookkeeping. It is charged against
// Config.BufferBytes with every record so the bound covers real memory,
// not just payload bytes.
const entryOverhead = 768

// maxPooledBuf is the largest encode buffer kept for reuse; bigger ones
// (from rare huge records) are left to the garbage collector.
const maxPooledBuf = 64 << 10

// Header keys carried by every record.
const (
	HeaderService = "service"
	HeaderHost    = "host"
	HeaderLevel   = "level"
)

// entry is one log record on its way to the broker. The front end fills it
// on the logging goroutine; from then on it is owned, in turn, by the
// queue, the shipper goroutine, kgo, and finally kgo's promise, which
// returns it to the pool. Exactly one owner touches it at a time.
type entry struct {
	next atomic.Pointer[entry] // mpscQueue link

	rec  kgo.Record
	hdrs [3]kgo.RecordHeader

	val []byte // owned value buffer
	key []byte // owned key buffer

	size     int64         // bytes charged against the buffer bound
	slot     *atomic.Int64 // in-flight counter of the epoch it was produced in
	barrier  *barrier      // non-nil: a Sync marker, not a record
	spilled  bool          // replayed from the spill files
	order    int64         // when it was produced (Shipper.produced)
	seg      *segment      // the spill segment it was replayed from, until released
	s        *Shipper
	promise  func(*kgo.Record, error)
	levelBuf [16]byte  // level header value when not a shared constant
	js       slogState // the slog encoder's scratch state
}

// newEntryPool returns the entry pool of s. Each entry binds its promise
// closure once, so producing a record allocates nothing.
func newEntryPool(s *Shipper) *sync.Pool {
	return &sync.Pool{New: func() any {
		e := &entry{s: s}
		e.promise = func(_ *kgo.Record, err error) { s.finish(e, err) }
		// What is the same for every record is set once per entry.
		e.rec.Topic = s.topic
		e.hdrs[0] = kgo.RecordHeader{Key: HeaderService, Value: s.service}
		e.hdrs[1] = kgo.RecordHeader{Key: HeaderHost, Value: s.host}
		e.hdrs[2].Key = HeaderLevel
		e.rec.Headers = e.hdrs[:]
		return e
	}}
}

// setMeta fills the record fields that change from record to record,
// other than the value. (Topic and the service and host headers are set
// when the entry is made.)
func (e *entry) setMeta(ts time.Time, level []byte) {
	if ts.IsZero() {
		ts = time.Now()
	}
	e.rec.Timestamp = ts
	e.hdrs[2].Value = level
	if len(e.key) > 0 {
		e.rec.Key = e.key
	} else {
		e.rec.Key = nil
	}
}

// payloadLen is the key and value bytes of the record.
func (e *entry) payloadLen() int64 { return int64(len(e.rec.Key) + len(e.rec.Value)) }

// charge computes the bytes the entry holds against the buffer bound.
func (e *entry) charge() {
	n := int64(entryOverhead + cap(e.key) + cap(e.val))
	// A record bigger than the whole buffer still gets in when the buffer
	// is empty, rather than never.
	e.size = min(n, e.s.maxBytes)
}

// reset drops everything the entry refers to except its reusable buffers.
func (e *entry) reset() {
	if cap(e.val) > maxPooledBuf {
		e.val = nil
	} else {
		e.val = e.val[:0]
	}
	if cap(e.key) > maxPooledBuf {
		e.key = nil
	} else {
		e.key = e.key[:0]
	}
	// kgo sets Partition, Offset, LeaderEpoch, Attrs and the producer id
	// and epoch on every record it takes; only references need dropping.
	e.rec.Key, e.rec.Value = nil, nil
	e.rec.Context = nil
	e.size = 0
	e.slot = nil
	e.barrier = nil
	e.spilled = false
	if e.seg != nil {
		e.s.spill.release(e.seg)
		e.seg = nil
	}
}
