package appender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zapcore"
)

// ErrClosed is returned by Sync and Close on a shipper that is closed.
var ErrClosed = errors.New("appender: closed")

// errTooLargeForTopic fails a record bigger than the topic's
// max.message.bytes; it matches kerr.MessageTooLarge.
var errTooLargeForTopic = fmt.Errorf("appender: record larger than the topic allows: %w", kerr.MessageTooLarge)

// ErrUndelivered is the sentinel matched (errors.Is) by every
// *DeliveryError.
var ErrUndelivered = errors.New("appender: records not delivered")

// DeliveryError reports records that Sync or Close could not get
// acknowledged.
type DeliveryError struct {
	Op      string // "sync" or "close"
	Pending int64  // records still unacknowledged when the deadline passed
	// Failed counts the records that failed since the previous Sync,
	// Flush or Close reported failures; for Close that includes those
	// pending at its deadline that could not be kept.
	Failed int64
	Kept   int64 // of Pending (Close with the spill policy): written to the spill files
	// Spilled is the bytes left in the spill files (Close only), Kept
	// records included, shipped by the next run.
	Spilled int64
	Cause   error // the deadline's error or the last delivery failure, if any
}

func (e *DeliveryError) Error() string {
	msg := fmt.Sprintf("appender %s: %d records unacknowledged at the deadline", e.Op, e.Pending)
	if e.Kept > 0 {
		msg += fmt.Sprintf(" (%d of them kept in the spill files)", e.Kept)
	}
	msg += fmt.Sprintf("; %d failed", e.Failed)
	if e.Spilled > 0 {
		msg += fmt.Sprintf(", %d bytes left in spill files", e.Spilled)
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns ErrUndelivered and the cause.
func (e *DeliveryError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrUndelivered}
	}
	return []error{ErrUndelivered, e.Cause}
}

// Shipper is the asynchronous producer behind the front ends: a bounded
// in-memory queue, the spill files, and a kgo client. Front ends built on
// one Shipper (Shipper.Core, Shipper.Handler) share its buffer, counters
// and connection. All methods are safe for concurrent use.
type Shipper struct {
	// Written by every log call; kept on their own cache line.
	held struct {
		records atomic.Int64
		bytes   atomic.Int64
	}
	_ [48]byte

	q        mpscQueue
	sleeping atomic.Bool   // the shipper is parked on wake
	wake     chan struct{} // capacity 1

	cfg        Config
	maxRecords int64
	maxBytes   int64
	topic      string
	service    []byte
	host       []byte
	level      slog.LevelVar
	keyField   string
	cl         *kgo.Client
	pool       *sync.Pool
	spill      *spill // nil unless OnFull is spill
	onError    func(error)
	zapEncoder *zapcore.EncoderConfig              // for Shipper.Core
	replace    func([]string, slog.Attr) slog.Attr // for Shipper.Handler
	sink       testSink                            // replaces kgo in tests

	topicLimit atomic.Int64  // the topic's max.message.bytes, once known
	limitDone  chan struct{} // closed when discovery has finished
	ctx        context.Context
	cancel     context.CancelFunc // stops discovery, on Close

	closed      atomic.Bool
	stopped     atomic.Bool   // the shipper goroutine has ended (Close)
	drained     chan struct{} // closed by the last release once stopped
	drainedOnce sync.Once
	stopping    chan struct{} // closed to stop the shipper goroutine
	done        chan struct{} // closed when it has stopped
	closeMu     sync.Mutex

	// block policy
	blockers atomic.Int32
	room     struct {
		sync.Mutex
		ch chan struct{} // closed and replaced when room frees up
	}
	wantRoom atomic.Bool // the shipper's replay waits for room

	epochs   epochTracker
	barriers struct {
		replay []*barrier // waiting for the spill replay to reach a position
		acks   []*barrier // waiting for their epoch to be acknowledged
	}
	replayHold *entry // read from spill, waiting for room
	produced   int64  // entries given an order so far (shipper goroutine)
	// kept holds, while Close stops the client with the spill policy, the
	// records that would fail there, to write them to the spill files.
	kept struct {
		on   atomic.Bool
		mu   sync.Mutex
		list []*entry
	}
	replayHoldPos spillPos // where replayHold's frame starts
	resumePos     *spillPos

	c counters

	lastErr      atomic.Pointer[error]
	failSeen     atomic.Int64 // failures already reported by Sync or Close
	failReported int64        // failures already reported to onError (shipper only)
	lastReport   time.Time
	dropReported int64        // drops already reported to onError (shipper only)
	dropsAt      time.Time    // when they were last reported
	dropNudge    atomic.Int64 // when a log call last woke the shipper to report drops (unix ns)
}

type counters struct {
	enqueued, enqueuedBytes atomic.Int64
	sent, sentBytes         atomic.Int64
	dropped, droppedBytes   atomic.Int64
	tooLarge                atomic.Int64
	spilled, spilledBytes   atomic.Int64
	replayed, replayedBytes atomic.Int64
	failed, failedBytes     atomic.Int64
	kept, keptBytes         atomic.Int64
}

// Stats are the shipper's counters. Records are counted once in Enqueued
// (went to memory) or Spilled (went to a spill file) or Dropped (rejected
// at the log call); those that went to memory, or were Replayed from a
// spill file into it, later once in Sent, Failed or Kept. Bytes count key
// plus value.
type Stats struct {
	Enqueued, EnqueuedBytes int64 // accepted into memory by log calls (counted as the shipper takes them)
	Spilled, SpilledBytes   int64 // written to spill files by log calls
	Dropped, DroppedBytes   int64 // rejected by log calls: buffer or spill full, too large, closed
	DroppedTooLarge         int64 // of Dropped: larger than MaxRecordBytes, or than the topic's max.message.bytes once known
	Replayed, ReplayedBytes int64 // read back from spill files and handed to the producer
	Sent, SentBytes         int64 // acknowledged by the broker
	Failed, FailedBytes     int64 // given up: broker error, missing topic, too large, Close deadline; also spilled records a failed spill write lost
	Kept, KeptBytes         int64 // unacknowledged at the Close deadline, written to the spill files (spill policy)

	BufferedRecords   int64 // in memory now (queued or in flight)
	BufferedBytes     int64 // memory charged for them now
	SpillBytes        int64 // bytes in spill files now, pending writes included
	SpillPendingBytes int64 // of SpillBytes: in memory, waiting to be written
}

// NewShipper validates the options and starts a shipper. It does not wait
// for, or even contact, the brokers: a broker that is down only delays
// delivery. Close it when done.
func NewShipper(opts ...Option) (*Shipper, error) {
	st := newSettings(opts)
	return newShipper(st)
}

func newShipper(st settings) (*Shipper, error) {
	cfg := st.cfg
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("appender: invalid config:\n%w", err)
	}
	lvl, _ := ParseLevel(cfg.Level)
	codec, _ := compressionCodec(cfg.Compression)
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "unknown"
		}
		cfg.Host = h
	}
	if cfg.Service == "" && len(os.Args) > 0 {
		cfg.Service = filepath.Base(os.Args[0]) // the program, rather than an empty header
	}
	s := &Shipper{
		wake:       make(chan struct{}, 1),
		cfg:        cfg,
		maxRecords: int64(cfg.BufferRecords),
		maxBytes:   cfg.BufferBytes,
		topic:      cfg.Topic,
		service:    []byte(cfg.Service),
		host:       []byte(cfg.Host),
		keyField:   cfg.KeyField,
		onError:    st.onError,
		zapEncoder: st.zapEncoder,
		replace:    st.replaceAttr,
		sink:       st.sink,
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
		limitDone:  make(chan struct{}),
		drained:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.level.Set(lvl)
	s.q.init()
	s.pool = newEntryPool(s)
	s.room.ch = make(chan struct{})

	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		// A broker that creates topics on first use (gregor's and
		// Kafka's default) creates the appender's, as it does the
		// agent's and gregor produce's.
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchMaxBytesFn(func(string) int32 { return int32(s.batchLimit()) }),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(codec),
		// Our own reservation bounds what kgo holds; kgo must never block
		// the shipper goroutine on its own limit.
		kgo.MaxBufferedRecords(cfg.BufferRecords + 1),
	}
	switch cfg.Acks {
	case "all":
		kopts = append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		kopts = append(kopts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none":
		kopts = append(kopts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	if cfg.DeliveryTimeout > 0 {
		kopts = append(kopts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))
	}
	kopts = append(kopts, st.kgoOpts...)

	if cfg.OnFull == OnFullSpill {
		pending := spillPendingMax(cfg.BufferBytes)
		s.maxBytes -= pending // the spill writer's buffer is part of the bound
		sp, err := openSpill(st.fs, cfg.SpillDir, cfg.Topic, cfg.SpillMaxBytes, cfg.MaxRecordBytes, pending, s.spillLost)
		if err != nil {
			return nil, fmt.Errorf("appender: %w", err)
		}
		sp.borrow = s
		s.spill = sp
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		if s.spill != nil {
			_, _, _ = s.spill.close(nil, nil)
		}
		return nil, fmt.Errorf("appender: create kafka client: %w", err)
	}
	s.cl = cl
	if s.sink == nil {
		go s.discoverLimit(s.ctx)
	} else {
		close(s.limitDone)
	}
	go s.run()
	return s, nil
}

// Config returns the effective configuration (defaults and host filled in).
func (s *Shipper) Config() Config { return s.cfg }

// SetLevel changes the minimum level shipped by every front end of s.
func (s *Shipper) SetLevel(l slog.Level) { s.level.Set(l) }

// Level returns the minimum level shipped.
func (s *Shipper) Level() slog.Level { return s.level.Level() }

// Stats returns a snapshot of the counters.
func (s *Shipper) Stats() Stats {
	st := Stats{
		Enqueued:        s.c.enqueued.Load(),
		EnqueuedBytes:   s.c.enqueuedBytes.Load(),
		Spilled:         s.c.spilled.Load(),
		SpilledBytes:    s.c.spilledBytes.Load(),
		Dropped:         s.c.dropped.Load(),
		DroppedBytes:    s.c.droppedBytes.Load(),
		DroppedTooLarge: s.c.tooLarge.Load(),
		Replayed:        s.c.replayed.Load(),
		ReplayedBytes:   s.c.replayedBytes.Load(),
		Sent:            s.c.sent.Load(),
		SentBytes:       s.c.sentBytes.Load(),
		Failed:          s.c.failed.Load(),
		FailedBytes:     s.c.failedBytes.Load(),
		Kept:            s.c.kept.Load(),
		KeptBytes:       s.c.keptBytes.Load(),
		BufferedRecords: s.held.records.Load(),
		BufferedBytes:   s.held.bytes.Load(),
	}
	if s.spill != nil {
		st.SpillBytes = s.spill.size()
		pending, borrowed, held := s.spill.pendingSizes(s.held.bytes.Load)
		st.SpillPendingBytes = pending
		// Bytes the spill borrowed are counted once, as spill pending.
		st.BufferedBytes = held - borrowed
	}
	return st
}

// getEntry returns an empty entry from the pool.
func (s *Shipper) getEntry() *entry { return s.pool.Get().(*entry) }

// discard returns an entry that was never submitted to the pool.
func (s *Shipper) discard(e *entry) {
	e.reset()
	s.pool.Put(e)
}

// submit takes ownership of a filled entry: it enqueues it, or applies the
// full-buffer policy. Called on the logging goroutine; it never waits on
// the network.
func (s *Shipper) submit(e *entry) {
	n := e.payloadLen()
	if n > int64(s.cfg.MaxRecordBytes) || !s.fitsTopic(n) {
		s.c.tooLarge.Add(1)
		s.drop(e, n)
		return
	}
	if s.closed.Load() {
		s.drop(e, n)
		return
	}
	e.charge()
	if sp := s.spill; sp != nil && sp.active.Load() {
		// Records already wait on disk: this one goes behind them.
		s.spillOrDrop(e, n)
		return
	}
	if s.reserve(e.size) {
		s.q.push(e)
		s.maybeWake()
		return
	}
	switch s.cfg.OnFull {
	case OnFullBlock:
		if s.waitForRoom(e.size) {
			s.q.push(e)
			s.maybeWake()
			return
		}
	case OnFullSpill:
		s.spillOrDrop(e, n)
		return
	}
	s.drop(e, n)
}

func (s *Shipper) drop(e *entry, n int64) {
	s.c.dropped.Add(1)
	s.c.droppedBytes.Add(n)
	s.discard(e)
	if s.onError != nil {
		// Have the shipper report drops, at most once a second.
		now := time.Now().UnixNano()
		if last := s.dropNudge.Load(); now-last >= int64(time.Second) && s.dropNudge.CompareAndSwap(last, now) {
			s.wakeNow()
		}
	}
}

func (s *Shipper) spillOrDrop(e *entry, n int64) {
	if err := s.spill.append(e); err != nil {
		// Full, or a write failed earlier (reported when it happened).
		s.drop(e, n)
		return
	}
	s.c.spilled.Add(1)
	s.c.spilledBytes.Add(n)
	s.discard(e)
	s.maybeWake()
}

// reserve charges size bytes and one record against the bounds, or changes
// nothing and reports false if either would be exceeded. The counters are
// only ever moved within the bounds (compare-and-swap, not add-and-undo),
// so what Stats reports never exceeds them, even for a moment.
func (s *Shipper) reserve(size int64) bool {
	if !addWithin(&s.held.bytes, size, s.maxBytes) {
		return false
	}
	if !addWithin(&s.held.records, 1, s.maxRecords) {
		s.held.bytes.Add(-size)
		return false
	}
	return true
}

// addWithin adds n to c unless that would take it over max, reporting
// whether it did; compare-and-swap, so c is never seen over max.
func addWithin(c *atomic.Int64, n, max int64) bool {
	for {
		v := c.Load()
		if v+n > max {
			return false
		}
		if c.CompareAndSwap(v, v+n) {
			return true
		}
	}
}

// take implements borrower for the spill: it charges n bytes (no record)
// against the in-memory bound, or nothing if they do not fit.
func (s *Shipper) take(n int64) bool { return addWithin(&s.held.bytes, n, s.maxBytes) }

// give returns bytes the spill took.
func (s *Shipper) give(n int64) { s.held.bytes.Add(-n) }

// unreserve returns what reserve charged and wakes whoever waits for room.
func (s *Shipper) unreserve(size int64) {
	if s.held.records.Add(-1) == 0 && s.stopped.Load() {
		s.drainedOnce.Do(func() { close(s.drained) })
	}
	b := s.held.bytes.Add(-size)
	// Blocked log calls are woken once a good part of the buffer is free,
	// not on every release: waking them costs more than a release.
	if s.blockers.Load() > 0 && (b <= s.maxBytes-s.maxBytes/8 || s.held.records.Load() <= s.maxRecords-s.maxRecords/8) {
		s.signalRoom()
	}
	if s.wantRoom.Load() && s.wantRoom.CompareAndSwap(true, false) {
		s.wakeNow()
	}
}

func (s *Shipper) signalRoom() {
	s.room.Lock()
	close(s.room.ch)
	s.room.ch = make(chan struct{})
	s.room.Unlock()
}

// waitForRoom implements the block policy: retry the reservation until it
// succeeds, BlockTimeout passes, or the shipper closes.
func (s *Shipper) waitForRoom(size int64) bool {
	s.blockers.Add(1)
	defer s.blockers.Add(-1)
	deadline := time.Now().Add(s.cfg.BlockTimeout)
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		s.room.Lock()
		ch := s.room.ch
		s.room.Unlock()
		if s.closed.Load() {
			return false
		}
		if s.reserve(size) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		if t == nil {
			t = time.NewTimer(left)
		} else {
			t.Reset(left)
		}
		select {
		case <-ch:
		case <-t.C:
		}
	}
}

// maybeWake wakes the shipper goroutine if it is parked. While it is busy
// or polling, log calls pay only one atomic load here.
func (s *Shipper) maybeWake() {
	if s.sleeping.Load() && s.sleeping.CompareAndSwap(true, false) {
		s.wakeNow()
	}
}

func (s *Shipper) wakeNow() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finish is every record's promise, called serially on kgo's promise
// goroutine.
func (s *Shipper) finish(e *entry, err error) {
	if err != nil && s.kept.on.Load() && !errors.Is(err, errTooLargeForTopic) && !errors.Is(err, kerr.MessageTooLarge) {
		s.keep(e)
		return
	}
	n := e.payloadLen()
	if err == nil {
		s.c.sent.Add(1)
		s.c.sentBytes.Add(n)
	} else {
		s.c.failed.Add(1)
		s.c.failedBytes.Add(n)
		s.noteErr(err)
	}
	slot, size := e.slot, e.size
	e.reset()
	s.pool.Put(e)
	if slot != nil && slot.Add(-1) == 0 && s.epochs.waiting.Load() > 0 {
		s.wakeNow()
	}
	s.unreserve(size)
}

// keep sets aside a record Close would fail, to be written to the spill
// files once the client has stopped (closeSpill). It releases what the
// record held, as finish does.
func (s *Shipper) keep(e *entry) {
	slot, size := e.slot, e.size
	e.slot = nil
	s.kept.mu.Lock()
	s.kept.list = append(s.kept.list, e)
	s.kept.mu.Unlock()
	if slot != nil && slot.Add(-1) == 0 && s.epochs.waiting.Load() > 0 {
		s.wakeNow()
	}
	s.unreserve(size)
}

// closeSpill closes the spill files, writing the records keep set aside
// to them in the order they were produced (see spill.close), and returns
// how many records and bytes it kept there. Records it could not keep
// fail, but for those read from the files, which are replayed again.
func (s *Shipper) closeSpill() (kept, keptBytes int64, err error) {
	s.kept.on.Store(false)
	s.kept.mu.Lock()
	list := s.kept.list
	s.kept.list = nil
	s.kept.mu.Unlock()
	slices.SortFunc(list, func(a, b *entry) int { return cmp.Compare(a.order, b.order) })
	all, keptBytes, err := s.spill.close(list, s.resumePos)
	for _, e := range list {
		size := e.payloadLen()
		if all || e.seg != nil {
			kept++
			s.c.kept.Add(1)
			s.c.keptBytes.Add(size)
		} else {
			s.c.failed.Add(1)
			s.c.failedBytes.Add(size)
		}
		e.reset()
		s.pool.Put(e)
	}
	if !all && err != nil {
		s.noteErr(err)
	}
	return kept, keptBytes, err
}

// spillLost counts records that were spilled but that a failed write lost,
// and reports the write error (once, when it happens).
func (s *Shipper) spillLost(frames, bytes int64, err error) {
	s.c.failed.Add(frames)
	s.c.failedBytes.Add(bytes) // frame bytes: close enough for a disk failure
	if err != nil {
		s.noteErr(err)
		s.report(err)
	}
}

// noteErr remembers the latest delivery error.
func (s *Shipper) noteErr(err error) {
	stored := err // a copy, so finish's parameter stays on the stack
	s.lastErr.Store(&stored)
}

// report passes an error to the error handler, if any.
func (s *Shipper) report(err error) {
	if s.onError != nil && err != nil {
		s.onError(err)
	}
}

// Tuning of the shipper loop.
const (
	drainBatch       = 4096                   // records produced per loop turn before other work
	replayBatch      = 1024                   // spilled records replayed per loop turn
	pollInterval     = 500 * time.Microsecond // while recently busy, look for work this often
	pollsBeforeSleep = 20                     // then park until woken
	idleTick         = 100 * time.Millisecond // parked: still look at spill, barriers and failures
)

// run is the shipper goroutine. It owns the queue's consumer side, the
// spill reader, the epoch counters' producer side and the barrier lists.
// It stops when stopping is closed.
func (s *Shipper) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	idle := 0
	for {
		progressed := s.drainQueue()
		if s.spill != nil && s.replay() {
			progressed = true
		}
		s.checkBarriers()
		s.reportFailures()
		select {
		case <-s.stopping:
			s.shutdownQueue()
			return
		default:
		}
		if progressed {
			idle = 0
			continue
		}
		wait := pollInterval
		if idle++; idle > pollsBeforeSleep {
			s.sleeping.Store(true)
			if !s.q.empty() {
				s.sleeping.Store(false)
				continue
			}
			wait = idleTick
			if len(s.barriers.acks) > 0 || len(s.barriers.replay) > 0 || (s.spill != nil && s.spill.active.Load()) {
				wait = 10 * time.Millisecond
			}
		}
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.stopping:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		s.sleeping.Store(false)
	}
}

// drainQueue hands queued records to kgo. It reports whether it did
// anything.
func (s *Shipper) drainQueue() bool {
	if !s.limitKnown() {
		return false // see limit.go; the queue's bound holds meanwhile
	}
	var n, bytes int64
	did := false
	for i := 0; i < drainBatch; i++ {
		e := s.q.pop()
		if e == nil {
			break
		}
		did = true
		if e.barrier != nil {
			s.addBarrier(e.barrier)
			continue
		}
		n++
		bytes += e.payloadLen()
		s.produce(e)
	}
	if n > 0 {
		s.c.enqueued.Add(n)
		s.c.enqueuedBytes.Add(bytes)
	}
	return did
}

// produce gives a reserved entry to kgo, or fails it if it cannot fit the
// topic (logged before the topic's limit was known).
func (s *Shipper) produce(e *entry) {
	s.produced++
	e.order = s.produced
	e.slot = s.epochs.add()
	if !s.fitsTopic(e.payloadLen()) {
		s.finish(e, errTooLargeForTopic)
		return
	}
	if s.sink != nil {
		s.sink.produce(e)
		return
	}
	s.cl.Produce(context.Background(), &e.rec, e.promise)
}

// shutdownQueue drops whatever is still queued once the shipper stops and
// releases barriers still waiting.
func (s *Shipper) shutdownQueue() {
	for {
		e := s.q.pop()
		if e == nil {
			break
		}
		if b := e.barrier; b != nil {
			b.finish()
			continue
		}
		// Enqueued, never produced: kept or failed, like what kgo still
		// held.
		s.c.enqueued.Add(1)
		s.c.enqueuedBytes.Add(e.payloadLen())
		if s.kept.on.Load() {
			s.produced++
			e.order = s.produced
			s.keep(e)
			continue
		}
		s.c.failed.Add(1)
		s.c.failedBytes.Add(e.payloadLen())
		size := e.size
		s.discard(e)
		s.unreserve(size)
	}
	if e := s.replayHold; e != nil {
		// Still in the spill files: the next run resumes with it.
		s.replayHold = nil
		pos := s.replayHoldPos
		s.resumePos = &pos
		s.discard(e)
	}
	for _, b := range s.barriers.replay {
		b.finish()
	}
	for _, b := range s.barriers.acks {
		b.finish()
	}
	s.barriers.replay, s.barriers.acks = nil, nil
	s.epochs.waiting.Store(0)
}

// reportFailures tells the error handler, at most once a second, how many
// records failed, and how many log calls dropped their record, since the
// last report.
func (s *Shipper) reportFailures() {
	if s.onError == nil {
		return
	}
	s.reportDrops(false)
	failed := s.c.failed.Load()
	if failed == s.failReported || time.Since(s.lastReport) < time.Second {
		return
	}
	var cause error
	if p := s.lastErr.Load(); p != nil {
		cause = *p
	}
	s.onError(fmt.Errorf("appender: %d records to topic %q failed: %w", failed-s.failReported, s.topic, cause))
	s.failReported = failed
	s.lastReport = time.Now()
}

// reportDrops tells the error handler how many log calls dropped their
// record since the last report: at most once a second, or now if final
// (Close, once the shipper stopped). Shipper goroutine, or Close after it.
func (s *Shipper) reportDrops(final bool) {
	dropped := s.c.dropped.Load()
	if s.onError == nil || dropped == s.dropReported || !final && time.Since(s.dropsAt) < time.Second {
		return
	}
	s.onError(fmt.Errorf("appender: %d log records for topic %q dropped (%d in all, %d of them too large): %s",
		dropped-s.dropReported, s.topic, dropped, s.c.tooLarge.Load(), s.dropReason()))
	s.dropReported = dropped
	s.dropsAt = time.Now()
}

// dropReason says why log calls drop records under the configured policy
// (besides records too large, and log calls after Close).
func (s *Shipper) dropReason() string {
	switch {
	case s.cfg.OnFull == OnFullSpill:
		return "the memory buffer and the spill files are full"
	case s.cfg.OnFull == OnFullBlock:
		return "the memory buffer stayed full for the block timeout"
	}
	return "the memory buffer is full (policy drop)"
}

// newFailures returns how many records failed since the last Sync, Flush
// or Close reported failures.
func (s *Shipper) newFailures() int64 {
	now := s.c.failed.Load()
	return now - s.failSeen.Swap(now)
}

// Sync waits until every record logged before the call is acknowledged or
// has failed, at most Config.SyncTimeout. With the spill policy that
// includes records spilled before the call. It returns a *DeliveryError if
// records were still pending at the deadline, or if records failed since
// the previous Sync (or Flush, or Close) reported.
func (s *Shipper) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SyncTimeout)
	defer cancel()
	return s.Flush(ctx)
}

// Flush is Sync with the deadline taken from ctx.
func (s *Shipper) Flush(ctx context.Context) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	return s.flush(ctx, "sync")
}

func (s *Shipper) flush(ctx context.Context, op string) error {
	b := &barrier{done: make(chan struct{})}
	if s.spill != nil {
		b.spillPos, b.hasSpill = s.spill.endPos()
	}
	s.q.push(&entry{barrier: b})
	s.wakeNow()
	var cause error
	select {
	case <-b.done:
	case <-ctx.Done():
		cause = ctx.Err()
	}
	pending := b.pendingAtEnd(s)
	failed := s.newFailures()
	if pending == 0 && failed == 0 {
		return nil
	}
	if cause == nil {
		if p := s.lastErr.Load(); p != nil {
			cause = *p
		}
	}
	return &DeliveryError{Op: op, Pending: pending, Failed: failed, Cause: cause}
}

// Close stops accepting records (later log calls drop and count them),
// waits until everything buffered is acknowledged or ctx is done, then
// stops the client. Records still unacknowledged then fail, unless the
// policy is spill: then they are written to the spill files (after the
// spilled records not yet shipped, which stay there), and the next run
// ships them. It returns a *DeliveryError describing what was not
// delivered. Close waits as long as ctx allows: give it a deadline, or a
// broker that is down holds it forever. Calling Close again returns
// ErrClosed.
func (s *Shipper) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return ErrClosed
	}
	s.signalRoom() // blocked log calls give up now
	flushErr := s.flush(ctx, "close")
	if s.spill != nil {
		// What is still unacknowledged goes to the spill files rather
		// than failing: a clean Close during an outage loses nothing.
		s.kept.on.Store(true)
	}

	s.cancel() // stop the limit discovery
	<-s.limitDone
	close(s.stopping)
	<-s.done
	s.stopped.Store(true)
	s.reportDrops(true) // those of the last second
	if s.sink != nil {
		s.sink.close()
	}
	s.cl.Close() // fails whatever kgo still holds
	// kgo calls the remaining promises from its own goroutine; they return
	// every reservation, and the last one closes drained.
	if s.held.records.Load() == 0 {
		s.drainedOnce.Do(func() { close(s.drained) })
	}
	t := time.NewTimer(10 * time.Second)
	select {
	case <-s.drained:
	case <-t.C: // a promise kgo never called: leave it
	}
	t.Stop()
	var spillLeft, kept int64
	var spillErr error
	if s.spill != nil {
		spillLeft = s.spill.pendingBytes()
		var keptBytes int64
		kept, keptBytes, spillErr = s.closeSpill()
		spillLeft += keptBytes
	}
	failed := s.newFailures()
	var de *DeliveryError
	if errors.As(flushErr, &de) || failed > 0 || spillLeft > 0 {
		out := &DeliveryError{Op: "close", Failed: failed, Kept: kept, Spilled: spillLeft}
		if de != nil {
			out.Pending = de.Pending
			out.Failed += de.Failed
			out.Cause = de.Cause
		}
		if out.Cause == nil {
			if p := s.lastErr.Load(); p != nil {
				out.Cause = *p
			}
		}
		return errors.Join(out, spillErr)
	}
	return spillErr
}

// replay moves spilled records into the producer, oldest first, as far as
// the memory bound allows. It reports whether it did anything.
func (s *Shipper) replay() bool {
	did := false
	for i := 0; i < replayBatch; i++ {
		e := s.replayHold
		if e == nil {
			e = s.getEntry()
			pos, ok, err := s.spill.next(e)
			if err != nil {
				s.discard(e)
				s.report(err)
				did = true
				continue
			}
			if !ok {
				s.discard(e)
				break
			}
			e.charge()
			s.replayHold, s.replayHoldPos = e, pos
		}
		if !s.reserve(e.size) {
			// Ask to be woken when room frees up, then look once more so
			// a release between the two is not missed.
			s.wantRoom.Store(true)
			if !s.reserve(e.size) {
				break
			}
			s.wantRoom.Store(false)
		}
		s.replayHold = nil
		// Records a goroutine put in memory before it spilled this one
		// must be produced first.
		s.drainQueue()
		s.c.replayed.Add(1)
		s.c.replayedBytes.Add(e.payloadLen())
		s.produce(e)
		did = true
	}
	return did
}

// spillReplayedPast reports whether every spilled record before p has been
// handed to the producer.
func (s *Shipper) spillReplayedPast(p spillPos) bool {
	cur := s.spill.readerPos()
	if s.replayHold != nil {
		cur = s.replayHoldPos
	}
	return !cur.less(p)
}
