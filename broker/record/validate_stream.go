package record

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Validating a compressed batch as it decompresses. Validate used to
// decompress a batch whole and then walk it: the decompression bound (up
// to MaxDecompressLimit, 256 MiB) held per batch, so eight connections
// producing small zstd bombs at once made the broker hold gigabytes.
// Instead, gzip, lz4 and zstd batches are decompressed through a
// streamBufSize window and walked as they come, as Kafka does: memory per
// validation is the window plus the codec's own state (zstd's history is
// capped at streamMaxWindow), whatever the batch decompresses to. The
// decompression bound still caps the work a batch can make. Snappy is
// decoded whole as before: its format cannot expand more than about 21
// times, so a snappy batch holds at most that multiple of request bytes,
// which queued.max.request.bytes already bounds.
//
// The result is the flat walk's, error category for error category (the
// fuzz test checks): on a record error the rest of the stream is still
// decompressed, so that a corrupt stream or one over the bound is reported
// as such, as the flat walk (which decompresses first) would.
const (
	streamBufSize = 64 << 10
	// streamMaxWindow caps the zstd history a streaming validation keeps.
	// Producers' frames declare 1-8 MiB (franz-go and librdkafka the
	// frame's own size, the Java client 2-8 MiB); a frame declaring more
	// is decompressed whole instead, one such batch at a time broker-wide
	// (bigWindow).
	streamMaxWindow = 8 << 20
)

// bigWindow admits one whole-batch decompression of a zstd frame whose
// window exceeds streamMaxWindow at a time.
var bigWindow = make(chan struct{}, 1)

var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamBufSize) }}

// countingReader reads from r, counting the bytes it yields, and fails with
// ErrDecompressLimit once they pass limit. err keeps the first error other
// than EOF, the decompressor's or the limit's.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
	err   error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		c.err = ErrDecompressLimit
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// zstdStream is a pooled streaming zstd decoder (concurrency 1: it decodes
// in the caller's goroutine and starts none) and the reader it reads.
type zstdStream struct {
	src bytes.Reader
	dec *zstd.Decoder
}

var zstdStreams sync.Pool // of *zstdStream

// validateCompressed validates the records section data of a batch
// compressed with c and declaring n records, decompressing at most limit
// bytes, and returns the largest timestamp delta.
func validateCompressed(c Codec, data []byte, n int32, limit int) (int64, error) {
	var (
		src    io.Reader
		finish func()
	)
	switch c {
	case CodecGzip:
		gr, _ := gzipReaders.Get().(*gzipReader)
		if gr == nil {
			gr = new(gzipReader)
		}
		gr.src.Reset(data)
		if err := gr.zr.Reset(&gr.src); err != nil {
			gzipReaders.Put(gr)
			return 0, decompressError(c, err, limit)
		}
		src, finish = &gr.zr, func() { gr.src.Reset(nil); gzipReaders.Put(gr) }
	case CodecLZ4:
		lr, _ := lz4Readers.Get().(*lz4Reader)
		if lr == nil {
			lr = newLZ4Reader()
		}
		lr.src.Reset(data)
		lr.zr.Reset(&lr.src)
		src, finish = lr.zr, func() { lr.src.Reset(nil); lz4Readers.Put(lr) }
	case CodecZstd:
		if zstdWindow(data) > streamMaxWindow {
			return validateWhole(c, data, n, limit, true)
		}
		zs, _ := zstdStreams.Get().(*zstdStream)
		if zs == nil {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(streamMaxWindow))
			if err != nil {
				return 0, fmt.Errorf("new zstd decoder: %w", err)
			}
			zs = &zstdStream{dec: dec}
		}
		zs.src.Reset(data)
		if err := zs.dec.Reset(&zs.src); err != nil {
			zstdStreams.Put(zs)
			return 0, decompressError(c, err, limit)
		}
		src, finish = zs.dec, func() { zs.src.Reset(nil); _ = zs.dec.Reset(nil); zstdStreams.Put(zs) }
	default:
		return validateWhole(c, data, n, limit, false)
	}
	defer finish()
	cr := &countingReader{r: src, limit: int64(limit)}
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(cr)
	defer func() { br.Reset(nil); bufReaders.Put(br) }()

	maxDelta, err := walkStream(br, n)
	// What follows the last record (trailing bytes, a corrupt end, or the
	// bound) is found by reading on; after a record error the same read
	// lets decompression errors and the bound take precedence, and the
	// total size the count check, in the flat walk's order.
	rest, _ := io.Copy(io.Discard, br)
	switch {
	case c == CodecZstd && (errors.Is(cr.err, zstd.ErrWindowSizeExceeded) || errors.Is(cr.err, zstd.ErrDecoderSizeExceeded)):
		// A later frame of the batch declared a window past
		// streamMaxWindow (the first is checked above).
		return validateWhole(c, data, n, limit, true)
	case cr.err != nil:
		return 0, decompressError(c, cr.err, limit)
	case int64(n) > cr.n/minRecordSize:
		return 0, &CorruptionError{Reason: fmt.Sprintf("batch declares %d records in %d bytes", n, cr.n), Err: ErrInvalidRecord}
	case err != nil:
		return 0, err
	case rest > 0:
		return 0, &CorruptionError{Reason: fmt.Sprintf("%d bytes after the batch's %d records", rest, n), Err: ErrInvalidRecord}
	}
	return maxDelta, nil
}

// zstdWindow returns the history the first zstd frame of data declares it
// needs (its content size, for a single-segment frame), 0 if data does not
// start with a readable frame header.
func zstdWindow(data []byte) uint64 {
	var fh zstd.Header
	if err := fh.Decode(data); err != nil {
		return 0
	}
	if fh.SingleSegment {
		return fh.FrameContentSize
	}
	return fh.WindowSize
}

// decompressError classifies an error of c's decompressor as
// decompressAppend does.
func decompressError(c Codec, err error, limit int) error {
	if errors.Is(err, ErrDecompressLimit) || errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return limitError(c, limit)
	}
	return &CorruptionError{Reason: c.String() + " decompression", Err: ErrCorrupt, Cause: err}
}

// validateWhole decompresses data whole and walks it, the way for snappy
// and for zstd frames with windows too large to stream (big), which are
// admitted one at a time, their output collected before the next.
func validateWhole(c Codec, data []byte, n int32, limit int, big bool) (int64, error) {
	if !big {
		delta, _, err := decompressAndWalk(c, data, n, limit)
		return delta, err
	}
	bigWindow <- struct{}{}
	defer func() { <-bigWindow }()
	delta, size, err := decompressAndWalk(c, data, n, limit)
	if size > bigCollect {
		// Left to the pacer, a run of such batches held several
		// outputs at once.
		runtime.GC()
	}
	return delta, err
}

// bigCollect is the output of a big whole-batch decompression past which
// the garbage is collected at once.
const bigCollect = 64 << 20

// decompressAndWalk decompresses data into a pooled buffer and walks the
// records; size is the buffer's capacity, which the pool drops if large.
func decompressAndWalk(c Codec, data []byte, n int32, limit int) (delta int64, size int, err error) {
	buf := getBuf()
	defer putBuf(buf)
	out, err := decompressAppend(c, (*buf)[:0], data, limit)
	if out != nil {
		*buf = out[:0]
	}
	if err != nil {
		return 0, cap(out), err
	}
	delta, err = validateRecords(out, n)
	return delta, cap(out), err
}

// walkStream checks n records read from br, the decompressed records
// section, as validateRecords does a flat one, and returns the largest
// timestamp delta. It stops after the n-th record; the caller checks what
// follows. Records are walked in place in br's buffer, with
// validateRecords' fast path; a record too long for the buffer is checked
// field by field as it streams past (bigRecord).
func walkStream(br *bufio.Reader, n int32) (int64, error) {
	maxDelta := int64(math.MinInt64)
	w := walker{want: n, lastOffsetDelta: n - 1, prevDelta: -1, strict: true}
	var (
		r     Record
		ended error // what stopped br's fills, once it has
	)
	for w.n < n {
		window, rerr := peekWindow(br, &ended)
		if len(window) == 0 {
			return 0, &CorruptionError{Reason: fmt.Sprintf("batch declares %d records, found %d", n, w.n), Err: ErrInvalidRecord}
		}
		p, i, md := fastRecords(window, 0, w.n, n, maxDelta)
		if p > 0 {
			w.n, w.prevDelta, maxDelta = i, int64(i)-1, md
			_, _ = br.Discard(p)
			continue
		}
		length, q := varint32(window)
		if q > 0 && length >= minRecordSize-1 && q+int(length) > len(window) && rerr == nil && len(window) < streamBufSize {
			// The record goes past what is buffered: fill the buffer.
			window, rerr = br.Peek(streamBufSize)
			ended = rerr
			if len(window) == 0 {
				continue
			}
		}
		if q > 0 && length >= minRecordSize-1 && q+int(length) > len(window) && rerr == nil {
			delta, err := bigRecord(br, &w)
			if err != nil {
				return 0, err
			}
			maxDelta = max(maxDelta, delta)
			continue
		}
		// The record is in the window, or this is the end of the stream
		// and the walker reports what is wrong with it.
		w.data, w.pos = window, 0
		err := w.next(&r, false)
		w.data = nil
		if err != nil {
			return 0, err
		}
		maxDelta = max(maxDelta, r.TimestampDelta)
		_, _ = br.Discard(w.pos)
	}
	return maxDelta, nil
}

// peekWindow returns br's buffered bytes, filling the buffer first when
// fewer than a quarter of it remain and the stream has not ended. The error
// is the one that stopped a fill (io.EOF at the end of the stream), now or
// earlier: *ended records it, since bufio hands an error out only once.
// Without it every record of a stream's last 16 KiB refilled, sliding the
// rest of the buffer each time (for records the fast path does not take,
// such as ones with headers, that was most of a small batch's validation).
func peekWindow(br *bufio.Reader, ended *error) ([]byte, error) {
	if b := br.Buffered(); b >= streamBufSize/4 || *ended != nil {
		w, _ := br.Peek(b)
		return w, *ended
	}
	w, err := br.Peek(streamBufSize)
	*ended = err
	return w, err
}

// bigRecord checks the record at the front of br, longer than br's buffer,
// as walker.next does, reading its fields as they stream past and
// discarding key and value bytes; it returns the record's timestamp delta.
func bigRecord(br *bufio.Reader, w *walker) (int64, error) {
	corrupt := func(what string) error {
		return &CorruptionError{Reason: fmt.Sprintf("record %d: %s", w.n, what), Err: ErrCorrupt}
	}
	left := int64(math.MaxInt32) // bytes of the record still to come, once the length is read
	take := func(n int64) bool {
		if n < 0 || n > left {
			return false
		}
		d, _ := br.Discard(int(n))
		left -= int64(d)
		return int64(d) == n
	}
	varint := func(maxLen int) (int64, bool) {
		b, _ := br.Peek(maxLen)
		if int64(len(b)) > left {
			b = b[:left]
		}
		v, q := varint64(b)
		if q <= 0 || q > maxLen {
			return 0, false
		}
		return v, take(int64(q))
	}
	length, ok := varint(5)
	if !ok || length != int64(int32(length)) {
		return 0, corrupt("bad length varint")
	}
	left = length
	if !take(1) { // attributes
		return 0, corrupt("bad attributes")
	}
	tsDelta, ok := varint(10)
	if !ok {
		return 0, corrupt("bad timestamp delta")
	}
	delta, ok := varint(5)
	if !ok || delta != int64(int32(delta)) {
		return 0, corrupt("bad offset delta")
	}
	if delta != int64(w.n) {
		return 0, &CorruptionError{Reason: fmt.Sprintf("record %d has offset delta %d", w.n, delta), Err: ErrInvalidRecord}
	}
	for _, what := range [2]string{"bad key", "bad value"} {
		l, ok := varint(5)
		if !ok || l < -1 || !take(max(l, 0)) {
			return 0, corrupt(what)
		}
	}
	count, ok := varint(5)
	if !ok || count < 0 || count*2 > left {
		return 0, corrupt("bad header count")
	}
	for range count {
		if l, ok := varint(5); !ok || l < 0 || !take(l) {
			return 0, corrupt("bad header key")
		}
		if l, ok := varint(5); !ok || l < -1 || !take(max(l, 0)) {
			return 0, corrupt("bad header value")
		}
	}
	if left != 0 {
		return 0, corrupt(fmt.Sprintf("%d bytes after the headers within the record's length", left))
	}
	w.n++
	w.prevDelta = delta
	return tsDelta, nil
}
