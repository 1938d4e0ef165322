package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/wire"
)

// maxQueuedRequests bounds the response queue of one connection whatever
// queued.max.requests says: the queue is allocated whole per connection,
// and Kafka's Int.MAX would be 16 GiB each. Past this many a pipelining
// client waits, as it does past queued.max.requests.
const maxQueuedRequests = 1 << 16

// maxReusedFrame is the largest request buffer a connection keeps between
// requests. Producers send up to a few MiB per request; reusing the buffer
// saves allocating and zeroing it every time. Larger frames are allocated
// per request.
const maxReusedFrame = 16 << 20

// maxUnsentBytes bounds the encoded responses (in memory, not the file
// chunks sent with sendfile) one connection may have waiting to be
// written: past it the reader reads no further request until the writer
// catches up. Without it a client that pipelines requests behind a long
// poll (or reads nothing) had the broker hold up to queued.max.requests
// answers each, hundreds of MB of metadata responses per connection; Kafka
// reads nothing more from a connection until its response is sent.
const maxUnsentBytes = 1 << 20

// writeTimeout bounds how long a response write may go without progress
// (the deadline is extended after every sendPiece of a chunk sent, and
// whenever it passes with bytes written since it was set): a client that
// stops reading is disconnected, which also releases the segments its
// pending fetch responses hold.
const writeTimeout = 2 * time.Minute

// conn is one client connection. Its reader goroutine reads and decodes
// requests and starts their handling in arrival order; responses go out in
// the same order. A response that is ready while none is queued ahead of it
// is written by the reader itself (see inflight); the rest go through the
// writer goroutine, which waits for each in turn, since handlers may finish
// out of order (long-poll fetches).
type conn struct {
	b      *Broker
	nc     net.Conn
	remote string
	host   string // remote's host, for max.connections.per.ip
	queue  chan *pending
	// bw buffers responses; see inflight for who may use it. It is taken
	// from writerPool when a response is to be written and given back
	// once everything is flushed and nothing is in flight (putWriter), so
	// an idle connection holds no 64 KiB buffer.
	bw *bufio.Writer

	// inflight counts responses handed to the writer goroutine and not yet
	// written. The reader increments it before sending on queue, the
	// writer decrements it after writing (and, when the queue is empty,
	// flushing). While it is zero the writer does not touch bw, so the
	// reader writes responses that are already complete itself, saving a
	// goroutine hand-off per request: the common case for produce and
	// metadata requests, which are answered before the handler returns.
	inflight atomic.Int32

	// unsent is the bytes of complete responses queued for the writer
	// and not yet written (see maxUnsentBytes); the writer signals
	// drained after writing each.
	unsent  atomic.Int64
	drained chan struct{}

	// handlers counts goroutines handlers started for this connection
	// (group joins and syncs waiting for their round); the connection is
	// done only when they are.
	handlers sync.WaitGroup
	closing  chan struct{} // closed when the connection is being torn down
	once     sync.Once

	sessions connSessions // fetch sessions; see fetch_session.go

	// scan follows produce requests as they are read and appends each
	// partition as soon as its records are in (see produceStream); the
	// reader's.
	scan   wire.ProduceScanner
	stream produceStream

	// Deadlines are set again only when the last setting is an eighth of
	// its timeout old (see arm): setting one updates a runtime timer,
	// which is not free at thousands of requests a second. born is the
	// base of the monotonic times below.
	born       time.Time
	readArmed  time.Duration // the reader's
	writeArmed time.Duration // bw's owner's (see inflight)
	lastWrite  atomic.Int64  // when bytes of a response last went out (see progressed)
	ackedAtArm uint64        // the client's bytes_acked when the write deadline was last set (bw's owner's)
}

// arm sets a deadline timeout from now (plus an eighth, the most it may
// have aged when it is next extended) unless *last, when the deadline was
// last set, is less than an eighth of timeout ago. The deadline thus falls
// between timeout and 9/8 timeout after the last activity.
// It reports whether it set one.
func (c *conn) arm(last *time.Duration, timeout time.Duration, set func(time.Time) error) bool {
	now := time.Since(c.born)
	if *last > 0 && now-*last < timeout/8 {
		return false
	}
	*last = now
	set(c.born.Add(now + timeout + timeout/8))
	return true
}

// armWrite extends the write deadline before bw's owner writes or flushes,
// noting how much the client had acknowledged then (see stillReading).
func (c *conn) armWrite() {
	if c.arm(&c.writeArmed, c.writeTimeout(), c.nc.SetWriteDeadline) {
		c.ackedAtArm = math.MaxUint64 // unknown: compares as no progress
		if acked, ok := c.peerAcked(); ok {
			c.ackedAtArm = acked
		}
	}
}

// peerAcked is how many bytes of the connection the client's TCP has
// acknowledged (TCP_INFO's bytes_acked); ok is false where that cannot be
// read.
func (c *conn) peerAcked() (acked uint64, ok bool) {
	tc, isTCP := c.nc.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); gerr == nil {
			acked = info.Bytes_acked
		}
	}); err != nil || gerr != nil {
		return 0, false
	}
	return acked, true
}

// shutdownWriteTimeout bounds how long a response write may go without
// progress once the broker is shutting down: a client that reads nothing
// would otherwise hold the shutdown for the whole write timeout (or the
// shutdown deadline, 30 s).
const shutdownWriteTimeout = 5 * time.Second

// writeTimeout is how long a response write may go without progress.
func (c *conn) writeTimeout() time.Duration {
	t := c.b.cfg.writeTimeoutOrDefault()
	if c.b.ctx.Err() != nil {
		t = min(t, shutdownWriteTimeout)
	}
	return t
}

// pending is a response slot. The handler fills out and closes done, or
// leaves poll to do so.
type pending struct {
	done chan struct{}
	out  outbound
	// poll, if set, is a long-poll fetch's wait: the writer goroutine
	// calls it when this response is the next to go out, and it returns
	// with done closed (at the latest when the connection is closing).
	poll func()
}

// outbound is an encoded response: either one buffer, or buffers
// interleaved with file chunks that go out with sendfile.
type outbound struct {
	parts  []outPart
	chunks []storage.Chunk // released after writing
	none   bool            // no response at all (acks=0 produce)
	// reserved is what the response holds of the broker's conversion
	// budget (records converted for an old fetch), given back once it
	// is written.
	reserved int64
	// counted is what the response adds to its connection's unsent.
	counted int64
	// closeAfter closes the connection once everything before it is
	// written (an acks=0 produce that failed).
	closeAfter bool
}

type outPart struct {
	buf   []byte
	chunk *storage.Chunk
}

func newConn(b *Broker, nc net.Conn) *conn {
	c := &conn{
		b:       b,
		nc:      nc,
		remote:  nc.RemoteAddr().String(),
		host:    hostOf(nc.RemoteAddr().String()),
		queue:   make(chan *pending, min(b.cfg.prop("queued.max.requests"), maxQueuedRequests)),
		closing: make(chan struct{}),
		drained: make(chan struct{}, 1),
		born:    time.Now(),
	}
	c.scan.OnRecords = func(f wire.RecordsField) { c.stream.produce(b, f) }
	return c
}

// idleFrameMax is the largest request buffer a connection keeps while it
// waits longer than frameKeepIdle for its next request.
const idleFrameMax = 64 << 10

// frameKeepIdle is how long a connection waits for its next request
// before it lets a request buffer larger than idleFrameMax go. A busy
// producer reuses its buffer from one request to the next (no allocation,
// and the request is scanned as it arrives); low-rate producers that once
// sent a big batch do not each hold one.
const frameKeepIdle = time.Second

// waitKeepingFrame waits up to frameKeepIdle for the next request to
// start and returns buf, or nil if it did not: the caller then reads it
// into a new buffer. The read deadline is set back to the idle timeout
// (or none). Other errors are left for the frame read to report.
func (c *conn) waitKeepingFrame(br *bufio.Reader, buf []byte, idle time.Duration) []byte {
	_ = c.nc.SetReadDeadline(time.Now().Add(frameKeepIdle))
	_, err := br.Peek(1)
	if errors.Is(err, osErrDeadline) {
		buf = nil
	}
	if idle > 0 {
		c.readArmed = 0 // set it again, whenever it was last set
		c.arm(&c.readArmed, idle, c.nc.SetReadDeadline)
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	return buf
}

// writerPool holds response buffers between uses (see conn.bw).
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writer returns bw, taking one from writerPool if the connection holds
// none. Only bw's owner (see inflight) calls it.
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(connWriter{c})
	}
	return c.bw
}

// connWriter writes to the connection in pieces of at most writePiece
// bytes, noting each that goes out, and extends the write deadline when
// it passes while the client is still reading: a client reading a large
// response slowly is not cut off; one reading nothing is, after the write
// timeout. Only bw's owner uses it.
type connWriter struct{ c *conn }

// writePiece is the most connWriter hands the kernel in one write.
const writePiece = 64 << 10

func (w connWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := w.c.nc.Write(p[n:min(len(p), n+writePiece)])
		n += m
		if m > 0 {
			w.c.progressed()
			w.c.armWrite()
		}
		if err != nil {
			if !errors.Is(err, osErrDeadline) || !w.c.stillReading() {
				return n, err
			}
			w.c.armWrite() // slow, not stalled
		}
	}
	return n, nil
}

// progressed notes that bytes of a response went out.
func (c *conn) progressed() { c.lastWrite.Store(int64(time.Since(c.born))) }

// stillReading reports, when a write's deadline has passed, whether the
// client took bytes within the write timeout: the write then goes on. A
// slow reader may take bytes the kernel holds without the kernel taking
// more from the broker for minutes (a socket is writable again only once
// half its send buffer is free: 256 s at 2 KB/s), so what the client's TCP
// acknowledged since the deadline was set counts as well as what the
// broker wrote. (Acknowledged bytes also include what filled the client's
// receive buffer, so a client that stopped reading may be given one more
// write timeout.) At shutdown only what the broker wrote counts.
func (c *conn) stillReading() bool {
	if c.b.ctx.Err() == nil {
		if acked, ok := c.peerAcked(); ok && acked > c.ackedAtArm {
			return true
		}
	}
	return time.Since(c.born)-time.Duration(c.lastWrite.Load()) < c.writeTimeout()
}

// putWriter gives bw back to writerPool if it holds nothing unwritten.
// Only bw's owner calls it.
func (c *conn) putWriter() {
	if c.bw != nil && c.bw.Buffered() == 0 {
		c.releaseWriter()
	}
}

// releaseWriter gives bw back to writerPool, dropping anything unwritten.
func (c *conn) releaseWriter() {
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.bw = nil
}

// stopReading makes the reader stop after the request it is on (the
// broker's context, cancelled first, tells it not to read another);
// queued requests are still answered.
func (c *conn) stopReading() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.CloseRead()
		return
	}
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.b.removeConn(c)
	c.b.metrics.connections.Inc()
	defer c.b.metrics.connections.Dec()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	if c.readLoop() {
		// The client is gone: nobody will read what is queued, so long
		// polls must not hold the connection (and their goroutines)
		// until their wait is up. Kafka closes at once too.
		c.once.Do(func() { close(c.closing) })
	}
	close(c.queue)
	<-writerDone
	c.once.Do(func() { close(c.closing) })
	c.handlers.Wait()
	c.closeSessions()
	c.nc.Close()
	if c.bw != nil { // reader and writer are done: unwritten bytes are moot
		c.releaseWriter()
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(int64(n))
	return n, err
}

// readLoop reads and dispatches requests until the connection is to close.
// It reports whether it stopped because the client went away (or fell
// silent past connections.max.idle.ms) rather than for the broker's own
// reasons (a shutdown, a request that closes the connection).
func (c *conn) readLoop() (clientGone bool) {
	// A small buffer: frames larger than what it holds are read straight
	// into their own buffer by bufio, sparing a copy of produce data.
	// Bytes read are counted for the request budget, which judges a
	// frame holding budget by the rate they arrive.
	var read atomic.Int64
	br := bufio.NewReaderSize(countingReader{c.nc, &read}, 8<<10)
	maxSize := c.b.cfg.maxRequestBytes()
	var buf []byte
	idle := c.b.cfg.maxIdle()
	// reserved is what the frame being read or handled holds of the
	// broker's request budget (queued.max.request.bytes).
	var reserved int64
	holder := &frameHolder{read: &read,
		ahead: func() int64 { return int64(br.Buffered()) }, // on this goroutine, in reserveFrame
		evict: func() {
			// Its read fails at once; readLoop logs it and closes.
			_ = c.nc.SetReadDeadline(time.Now())
		}}
	defer func() { c.b.budget.releaseFrame(reserved, holder) }()
	reserve := func(n int) (err error) {
		reserved, err = c.b.budget.reserveFrame(n, holder)
		if err == nil && reserved > 0 {
			// A frame holding budget must arrive in budgetBodyTimeout,
			// however long it waited for the budget (the idle deadline
			// armed before may have passed meanwhile): a client that
			// claims a large frame and stalls holds others back only
			// that long. The next request re-arms the idle deadline.
			c.readArmed = 0
			_ = c.nc.SetReadDeadline(time.Now().Add(budgetBodyTimeout))
		}
		return err
	}
	for {
		if c.b.ctx.Err() != nil {
			// Shutting down: the requests read are answered, no more are
			// read. (The reading side's shutdown does not stop a client
			// that keeps sending: Linux still delivers what arrives.)
			c.flushInline()
			return false
		}
		if !c.waitUnsent() {
			return false
		}
		if idle > 0 {
			c.arm(&c.readArmed, idle, c.nc.SetReadDeadline)
		}
		if br.Buffered() == 0 {
			if !c.flushInline() {
				return false
			}
			if cap(buf) > idleFrameMax && (idle <= 0 || idle > frameKeepIdle) {
				buf = c.waitKeepingFrame(br, buf, idle)
			}
		}
		c.stream.reset()
		c.b.budget.releaseFrame(reserved, holder) // the previous frame's, if a path below kept it
		reserved = 0
		frame, err := wire.ReadFrameBudgeted(br, buf, maxSize, &c.scan, reserve)
		if err == nil && reserved > 0 && idle <= 0 {
			_ = c.nc.SetReadDeadline(time.Time{}) // the body's deadline; no idle one to re-arm
		}
		if err != nil {
			switch {
			case errors.Is(err, osErrDeadline) && reserved > 0 && holder.evicted.Load():
				c.b.log.Info("closing connection: a large request arrives too slowly to be whole in time while others wait for the request budget",
					zap.String("remote", c.remote), zap.Duration("limit", budgetBodyTimeout), zap.Int64("frame_bytes", reserved),
					zap.Int64("arrived_bytes", read.Load()-holder.start))
			case errors.Is(err, osErrDeadline) && reserved > 0:
				c.b.log.Info("closing connection: a large request did not arrive in time", zap.String("remote", c.remote),
					zap.Duration("limit", budgetBodyTimeout), zap.Int64("frame_bytes", reserved))
			case errors.Is(err, osErrDeadline) && idle > 0:
				c.b.log.Debug("closing idle connection", zap.String("remote", c.remote), zap.Int64("connections.max.idle.ms", idle.Milliseconds()))
			case !errors.Is(err, io.EOF) && !isClosedErr(err):
				// A frame over socket.request.max.bytes, mostly: once per
				// refusalLogEvery per client host, as clients that send
				// one reconnect and send it again.
				if ok, held := c.b.refusals.allow(refusalKey(c.remote, -1, -1), time.Now()); ok {
					c.b.log.Info("closing connection", zap.String("remote", c.remote), zap.Error(err),
						zap.Int("same_since_last_logged", held))
				}
			}
			return c.b.ctx.Err() == nil // a shutdown stops readers by closing their reading side
		}
		c.b.metrics.bytesIn.Add(float64(len(frame) + 4))
		hdr, body, err := wire.ParseHeader(frame)
		if err == nil {
			// Refuse what we do not implement before decoding the body.
			if spec, ok := apis[hdr.APIKey]; !ok || hdr.APIVersion < spec.min || hdr.APIVersion > spec.max {
				err = fmt.Errorf("%s v%d: %w", kmsg.NameForKey(hdr.APIKey), hdr.APIVersion, wire.ErrUnsupportedVersion)
			}
		}
		var req kmsg.Request
		if err == nil {
			req, err = wire.DecodeBody(hdr, body)
		}
		if err != nil {
			if !c.handleBadRequest(hdr, err) {
				return
			}
			continue
		}
		p := &pending{done: make(chan struct{})}
		keep := c.b.dispatch(c, hdr, req, p)
		c.b.budget.releaseFrame(reserved, holder) // handled: what it holds of the frame is the response's now
		reserved = 0
		c.stream.checkTaken(c)
		if !c.send(p) {
			return
		}
		if !keep {
			return
		}
		// Reuse the frame buffer for the next request only if this
		// request's handler cannot still be holding bytes of it.
		if spec := apis[hdr.APIKey]; spec.frameReusable && cap(frame) <= maxReusedFrame {
			buf = frame[:0]
		} else if sameArray(buf, frame) {
			buf = nil // the handler may hold it; read the next request elsewhere
		}
	}
}

// waitUnsent waits while the responses waiting for the writer hold more
// than maxUnsentBytes; false means the connection is closing.
func (c *conn) waitUnsent() bool {
	for c.unsent.Load() > maxUnsentBytes {
		select {
		case <-c.drained:
		case <-c.closing:
			return false
		}
	}
	return true
}

// settle gives back what a response held once it is written or dropped.
func (c *conn) settle(out *outbound) {
	for i := range out.chunks {
		out.chunks[i].Release()
	}
	c.b.convBudget.release(out.reserved)
	out.reserved = 0
	if out.counted != 0 {
		c.unsent.Add(-out.counted)
		out.counted = 0
		select {
		case c.drained <- struct{}{}:
		default:
		}
	}
}

// heapBytes is what out's encoded parts hold in memory.
func (out *outbound) heapBytes() int64 {
	var n int64
	for _, part := range out.parts {
		n += int64(len(part.buf))
	}
	return n
}

// handleBadRequest answers what can be answered (ApiVersions at an
// unsupported version) and reports whether to keep the connection.
func (c *conn) handleBadRequest(hdr wire.RequestHeader, err error) bool {
	if errors.Is(err, wire.ErrUnsupportedVersion) && hdr.APIKey == int16(kmsg.ApiVersions) {
		// Not an error: clients start with the newest ApiVersions they
		// know and fall back to the version this answer names.
		p := &pending{done: make(chan struct{})}
		resp := c.b.apiVersionsUnsupported()
		hdr.APIVersion = 0
		c.finish(p, hdr, resp)
		return c.send(p)
	}
	c.b.metrics.requestErrors.WithLabelValues(kmsg.NameForKey(hdr.APIKey)).Inc()
	if ok, held := c.b.refusals.allow(refusalKey(c.remote, hdr.APIKey, hdr.APIVersion), time.Now()); ok {
		c.b.log.Info("bad request; closing connection", zap.String("remote", c.remote),
			zap.Int16("api_key", hdr.APIKey), zap.Int16("api_version", hdr.APIVersion), zap.Error(err),
			zap.Int("same_since_last_logged", held))
	}
	return false
}

// send passes p, whose handler has been started, on towards the client in
// request order. A response that is complete while nothing is queued ahead
// of it is written by the reader itself (into bw, flushed before the reader
// next waits for input); anything else goes to the writer goroutine. False
// means the connection is finished.
func (c *conn) send(p *pending) bool {
	if c.inflight.Load() == 0 && isDone(p) && !p.out.closeAfter {
		if p.out.none {
			return true
		}
		c.armWrite()
		err := c.writeOut(c.writer(), &p.out)
		c.settle(&p.out)
		if err != nil {
			c.failWrite(err)
			return false
		}
		return true
	}
	c.inflight.Add(1)
	if isDone(p) {
		// Complete while others are ahead of it: it waits in memory.
		p.out.counted = p.out.heapBytes()
		c.unsent.Add(p.out.counted)
	}
	select {
	case c.queue <- p:
		return true
	case <-c.closing:
		c.inflight.Add(-1)
		// Nobody will write p. Its handler finishes promptly once
		// closing is closed (long polls watch it); release what it holds.
		<-p.done
		c.settle(&p.out)
		return false
	}
}

// flushInline flushes responses the reader wrote itself; it is called
// before the reader may block waiting for input. While the writer goroutine
// owns bw it flushes instead.
func (c *conn) flushInline() bool {
	if c.inflight.Load() != 0 || c.bw == nil {
		return true
	}
	if c.bw.Buffered() > 0 {
		c.armWrite()
		if err := c.bw.Flush(); err != nil {
			c.failWrite(err)
			return false
		}
	}
	c.putWriter() // the reader is about to wait for the next request
	return true
}

// failWrite tears the connection down after a failed write (err nil: the
// connection is closed on purpose). A client that read nothing of a
// response for writeTimeout is logged; one that went away is not.
func (c *conn) failWrite(err error) {
	if errors.Is(err, osErrDeadline) {
		c.b.log.Info("closing connection: the client read nothing of a response within the write timeout",
			zap.String("remote", c.remote), zap.Duration("write_timeout", c.writeTimeout()))
	}
	c.once.Do(func() { close(c.closing) })
	c.nc.Close()
}

func isDone(p *pending) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// finish encodes a plain response into p.
func (c *conn) finish(p *pending, hdr wire.RequestHeader, resp kmsg.Response) {
	resp.SetVersion(hdr.APIVersion)
	p.out.parts = []outPart{{buf: wire.AppendResponse(nil, hdr, resp)}}
	close(p.done)
}

// finishNone completes p without a response (acks=0).
func (c *conn) finishNone(p *pending) {
	p.out.none = true
	close(p.done)
}

func (c *conn) writeLoop() {
	failed := false
	fail := func(err error) {
		failed = true
		c.failWrite(err) // also unblocks the reader
	}
	flush := func() {
		if failed || c.bw == nil || c.bw.Buffered() == 0 {
			return
		}
		c.armWrite()
		if err := c.bw.Flush(); err != nil {
			fail(err)
		}
	}
	for p := range c.queue {
		select {
		case <-p.done:
		default:
			// Responses already encoded must not wait behind one that is
			// not ready (a long poll pipelined after them).
			flush()
			if p.poll != nil {
				c.runPoll(p)
			}
			select {
			case <-p.done:
			case <-c.closing:
				// Torn down before this response was ready; wait for the
				// handler anyway so its chunks are released.
				<-p.done
			}
		}
		if !failed && !p.out.none {
			c.armWrite()
			if err := c.writeOut(c.writer(), &p.out); err != nil {
				fail(err)
			}
		}
		c.settle(&p.out)
		if p.out.closeAfter && !failed {
			// Kafka closes the connection after an acks=0 produce fails
			// so the client notices and refreshes its metadata.
			flush()
			if !failed {
				fail(nil)
			}
		}
		if len(c.queue) == 0 {
			flush()
			c.putWriter() // idle, unless the reader writes next
		}
		// Only now may the reader write into bw again (see inflight).
		c.inflight.Add(-1)
	}
	flush()
}

// runPoll runs p's long poll; a panic in it costs the connection only
// (see handlerPanicked).
func (c *conn) runPoll(p *pending) {
	defer func() {
		if r := recover(); r != nil {
			c.b.handlerPanicked(c, "Fetch (long poll)", -1, r, p)
		}
	}()
	p.poll()
}

func (c *conn) writeOut(bw *bufio.Writer, out *outbound) error {
	for _, part := range out.parts {
		if part.chunk == nil {
			if _, err := bw.Write(part.buf); err != nil {
				return err
			}
			c.b.metrics.bytesOut.Add(float64(len(part.buf)))
			continue
		}
		if part.chunk.Size <= copyChunkMax {
			if err := copyChunk(bw, part.chunk); err != nil {
				return err
			}
		} else {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := c.sendChunk(part.chunk); err != nil {
				return err
			}
		}
		c.b.metrics.bytesOut.Add(float64(part.chunk.Size))
	}
	return nil
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, osErrDeadline)
}

// sameArray reports whether a and b share a backing array start.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:cap(a)][0] == &b[:cap(b)][0]
}
