package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errLineTooLong reports an input line above --max-line-bytes.
var errLineTooLong = errors.New("line too long")

// runProduce reads lines from stdin and produces each as one record. With
// a key separator, the part of a line before its first separator is the
// key and the rest the value; a line without the separator is all value
// with a null key. A trailing "\r\n" or "\n" is not part of the record.
// At EOF it flushes, prints how many records the cluster acknowledged and
// fails if any record failed.
//
// Records are batched up to the topic's max.message.bytes, asked from the
// cluster first (--max-message-bytes overrides it), so that the broker
// takes every full batch; a line that cannot fit in a batch of its own
// stops the command with an error naming it.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("produce", "", stderr)
	cf := addClientFlags(fs)
	var topic, keySep string
	fs.StringVar(&topic, "topic", "", "topic to produce to (required)")
	fs.StringVar(&topic, "t", "", "topic to produce to (shorthand)")
	fs.StringVar(&keySep, "key-separator", "", `split each line into key and value at the first occurrence of this string; \t, \r, \0 and \\ are escapes, as in consume --format`)
	fs.StringVar(&keySep, "k", "", "key separator (shorthand)")
	partition := fs.Int("partition", -1, "produce every record to this partition (-1: the client's partitioner)")
	acksFlag := fs.String("acks", "all", "acknowledgements to wait for: all, 1 or 0")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	var headerFlags stringList
	fs.Var(&headerFlags, "header", "add header key=value to every record (repeatable)")
	maxLine := fs.Int("max-line-bytes", 0, "longest accepted input line (0: as long as fits in a record batch)")
	maxMessage := fs.Int("max-message-bytes", 0, "largest record batch to send (0: the topic's max.message.bytes, asked from the cluster)")
	deliveryTimeout := fs.Duration("timeout", 2*time.Minute, "fail a record the cluster has not acknowledged this long after it was read; give up as soon on a cluster that cannot be reached at the start")
	cf.timeout = deliveryTimeout
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if topic == "" {
		return usagef("--topic is required")
	}
	keySep, err := unescape(keySep)
	if err != nil {
		return usagef("--key-separator: %w", err)
	}
	if strings.Contains(keySep, "\n") {
		return usagef("--key-separator cannot contain a newline: a line never does")
	}
	acks, err := parseAcks(*acksFlag)
	if err != nil {
		return err
	}
	codec, err := parseCompression(*compression)
	if err != nil {
		return err
	}
	var headers []kgo.RecordHeader
	for _, h := range headerFlags {
		k, v, err := parseKeyValue(h)
		if err != nil {
			return usagef("--header: %w", err)
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if *partition < -1 || *partition > 1<<31-1 {
		return usagef("--partition %d out of range", *partition)
	}
	if *maxLine < 0 {
		return usagef("--max-line-bytes must not be negative")
	}
	if *maxMessage != 0 && (*maxMessage < minBatchBytes || *maxMessage > maxBatchBytes) {
		return usagef("--max-message-bytes %d out of range [%d, %d]", *maxMessage, minBatchBytes, maxBatchBytes)
	}
	if *deliveryTimeout < time.Second { // the client's least delivery timeout
		return usagef("--timeout %v: want at least 1s", *deliveryTimeout)
	}

	conn := newConnReporter(stderr)
	defer conn.stop()
	limit := batchLimit{bytes: int32(*maxMessage), source: "--max-message-bytes",
		raise: "raise --max-message-bytes, up to the topic's max.message.bytes"}
	if *maxMessage == 0 {
		lctx, cancel := context.WithTimeout(ctx, *deliveryTimeout)
		limit, err = lookupBatchLimit(lctx, cf, topic, kgo.WithHooks(conn))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return timeoutErr(ctx, lctx, *deliveryTimeout, err)
		}
	}
	if *maxLine == 0 {
		*maxLine = int(limit.bytes)
	}

	opts := []kgo.Opt{
		kgo.WithHooks(conn),
		kgo.WithLogger(conn),
		kgo.ProducerBatchMaxBytes(max(limit.bytes, minBatchBytes)),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(*deliveryTimeout),
	}
	if *acksFlag != "all" && *acksFlag != "-1" {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := cf.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var res produceResult
	sep := []byte(keySep)
	var lineNo int64
	produceLine := func(line []byte) error {
		lineNo++
		r := &kgo.Record{Value: line, Headers: headers}
		if len(sep) > 0 {
			if k, v, ok := bytes.Cut(line, sep); ok {
				r.Key, r.Value = k, v
			}
		}
		if *partition >= 0 {
			r.Partition = int32(*partition)
		}
		if need := recordBatchBytes(r); need > int64(limit.bytes) {
			return fmt.Errorf("line %d is %d bytes, %d as a record batch, more than the %d allowed by %s; %s",
				lineNo, len(line), need, limit.bytes, limit.source, limit.raise)
		}
		res.sent.Add(1)
		cl.Produce(ctx, r, res.promise)
		return nil
	}

	// Reading happens on its own goroutine so that a signal stops us even
	// while stdin (a terminal, say) has nothing to read. The goroutine exits
	// at its next line once done is closed; a read blocked on stdin ends
	// with the process.
	batches := make(chan lineBatch, 4)
	done := make(chan struct{})
	defer close(done)
	go readLineBatches(newLineReader(stdin, *maxLine), batches, done)
	var readErr error
read:
	for {
		select {
		case <-ctx.Done():
			break read
		case b := <-batches:
			for _, line := range b.lines {
				if readErr = produceLine(line); readErr != nil {
					break read
				}
			}
			var tooLong *lineTooLongError
			switch {
			case b.err == nil:
			case errors.Is(b.err, io.EOF):
				break read
			case errors.As(b.err, &tooLong) && tooLong.size > int64(limit.bytes):
				readErr = fmt.Errorf("line %d is %d bytes, more than the %d allowed by %s; %s",
					tooLong.line, tooLong.size, limit.bytes, limit.source, limit.raise)
				break read
			case tooLong != nil:
				readErr = fmt.Errorf("line %d is %d bytes, more than --max-line-bytes %d", tooLong.line, tooLong.size, *maxLine)
				break read
			default:
				readErr = fmt.Errorf("read stdin: %w", b.err)
				break read
			}
		}
	}
	flushErr := cl.Flush(ctx)

	fmt.Fprintf(stdout, "produced %d record(s) to %s\n", res.acked.Load(), topic)
	switch {
	case res.failed.Load() > 0:
		err := fmt.Errorf("%d of %d record(s) failed; first error: %w", res.failed.Load(), res.sent.Load(), conn.explainTimeout(res.firstErr()))
		if errors.Is(err, kerr.MessageTooLarge) {
			err = fmt.Errorf("%w (batches were up to %d bytes, %s)", err, limit.bytes, limit.source)
		}
		if readErr != nil {
			err = errors.Join(err, readErr)
		}
		return err
	case readErr != nil:
		return readErr
	case ctx.Err() != nil:
		if pending := res.sent.Load() - res.acked.Load() - res.failed.Load(); pending > 0 {
			return fmt.Errorf("interrupted with %d record(s) read from stdin but not acknowledged (they may or may not be in the topic): %w", pending, ctx.Err())
		}
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	}
	return nil
}

// produceResult counts the outcome of produced records; it is safe for
// concurrent use by kgo's promise callbacks.
type produceResult struct {
	sent, acked, failed atomic.Int64

	mu struct {
		sync.Mutex
		first error
	}
}

// promise is the kgo produce callback.
func (p *produceResult) promise(_ *kgo.Record, err error) {
	if err == nil {
		p.acked.Add(1)
		return
	}
	p.failed.Add(1)
	p.mu.Lock()
	if p.mu.first == nil {
		p.mu.first = err
	}
	p.mu.Unlock()
}

func (p *produceResult) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.first
}

// lineReader splits input into lines of at most max bytes, returning
// each in a fresh slice the caller owns. Not safe for concurrent use.
type lineReader struct {
	r     *bufio.Reader
	max   int
	lines int64 // lines returned so far
}

// lineTooLongError is a line above a lineReader's max.
type lineTooLongError struct {
	line int64 // its number, from 1
	size int64 // its length without the line ending
	max  int
}

func (e *lineTooLongError) Error() string {
	return fmt.Sprintf("line %d is %d bytes, more than %d", e.line, e.size, e.max)
}

func (e *lineTooLongError) Unwrap() error { return errLineTooLong }

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its "\n" or "\r\n"; a last line
// without a newline is returned too. It returns io.EOF after the last line
// and a *lineTooLongError for a line above max, having read past it to
// tell its length.
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(line)+len(chunk) > lr.max+2 { // +2: room for the line ending, checked below
			return nil, lr.skipLong(int64(len(line)), chunk, err)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
		default:
			return nil, err
		}
		lr.lines++
		if len(line) > lr.max {
			return nil, &lineTooLongError{line: lr.lines, size: int64(len(line)), max: lr.max}
		}
		return line, nil
	}
}

// skipLong reads the rest of a line too long to return, given the length
// of its start already read and the chunk and error ReadSlice returned
// last, and returns the *lineTooLongError for it.
func (lr *lineReader) skipLong(size int64, chunk []byte, err error) error {
	for errors.Is(err, bufio.ErrBufferFull) {
		size += int64(len(chunk))
		chunk, err = lr.r.ReadSlice('\n')
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err == nil { // the chunk ends the line
		chunk = bytes.TrimSuffix(chunk[:len(chunk)-1], []byte{'\r'})
	}
	lr.lines++
	return &lineTooLongError{line: lr.lines, size: size + int64(len(chunk)), max: lr.max}
}

// hasBufferedLine reports whether next can return a line without reading
// from the underlying reader, that is without blocking.
func (lr *lineReader) hasBufferedLine() bool {
	buf, _ := lr.r.Peek(lr.r.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// lineBatch is some lines read from stdin and, in the last batch, why
// reading stopped (io.EOF at the end of the input).
type lineBatch struct {
	lines [][]byte
	err   error
}

// maxLineBatch bounds how many lines are handed over at once.
const maxLineBatch = 1024

// readLineBatches sends the lines of lr to out in batches: a batch takes
// the lines that can be read without blocking, so a pipe is read in bulk
// and an interactive line is produced as soon as it is typed. It closes out
// when done, after the batch carrying the read error or when done is
// closed.
func readLineBatches(lr *lineReader, out chan<- lineBatch, done <-chan struct{}) {
	defer close(out)
	for {
		var b lineBatch
		for {
			line, err := lr.next()
			if err != nil {
				b.err = err
				break
			}
			b.lines = append(b.lines, line)
			if len(b.lines) >= maxLineBatch || !lr.hasBufferedLine() {
				break
			}
		}
		select {
		case out <- b:
		case <-done:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// The range of ProducerBatchMaxBytes franz-go accepts, given its default
// 100 MiB cap on a request (Kafka's socket.request.max.bytes default).
const (
	minBatchBytes = 512
	maxBatchBytes = 100<<20 - 1<<10 // room for the request around the batch
)

// kgoDefaultBatchBytes is franz-go's ProducerBatchMaxBytes default, what
// produce uses when the cluster does not tell the topic's limit.
const kgoDefaultBatchBytes = 1000012

// batchLimit is the largest record batch produce sends, where that number
// comes from and how to raise it, for the error about a line that cannot
// fit.
type batchLimit struct {
	bytes  int32
	source string
	raise  string
}

// lookupBatchLimit asks the cluster for the largest batch topic accepts:
// the topic's max.message.bytes or, when the topic does not exist yet
// (produce creates it), the broker's message.max.bytes, which a new topic
// gets. When the cluster does not tell, it is franz-go's default. While
// the cluster cannot be reached it retries until ctx ends.
func lookupBatchLimit(ctx context.Context, cf *clientFlags, topic string, opts ...kgo.Opt) (batchLimit, error) {
	cl, err := cf.newClient(opts...)
	if err != nil {
		return batchLimit{}, err
	}
	defer cl.Close()
	var limit batchLimit
	err = untilReachable(ctx, func() error {
		limit, err = lookupBatchLimitOnce(ctx, cl, topic)
		return err
	})
	if err != nil {
		return batchLimit{}, fmt.Errorf("look up max.message.bytes of %s: %w", topic, err)
	}
	if limit.bytes > maxBatchBytes {
		limit.bytes = maxBatchBytes
		limit.source = "the most one produce request carries"
		limit.raise = "such a line cannot be produced"
	}
	return limit, nil
}

// lookupBatchLimitOnce is one attempt of lookupBatchLimit.
func lookupBatchLimitOnce(ctx context.Context, cl *kgo.Client, topic string) (batchLimit, error) {
	fallback := batchLimit{bytes: kgoDefaultBatchBytes,
		source: "franz-go's default (the cluster did not tell the topic's max.message.bytes)",
		raise:  "pass --max-message-bytes, up to the topic's max.message.bytes"}
	n, err := describeIntConfig(ctx, cl, kmsg.ConfigResourceTypeTopic, topic, "max.message.bytes")
	switch {
	case err == nil && n == 0:
		return batchLimit{}, fmt.Errorf("topic %s has max.message.bytes=0, so it refuses every batch; raise it with: gregor topic alter-config %s --set max.message.bytes=N", topic, topic)
	case err == nil && n > 0:
		return batchLimit{bytes: n, source: "the max.message.bytes of topic " + topic,
			raise: fmt.Sprintf("raise it with: gregor topic alter-config %s --set max.message.bytes=N", topic)}, nil
	case err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition):
		if unreachable(err) || ctx.Err() != nil {
			return batchLimit{}, err
		}
		return fallback, nil
	case err == nil:
		return fallback, nil
	}

	// The topic does not exist yet: its default is the broker's. Kafka
	// describes a broker's static config only when asked by the broker's
	// id, so take one from the metadata.
	md, err := fetchMetadata(ctx, cl, []string{})
	if err != nil {
		if unreachable(err) || ctx.Err() != nil {
			return batchLimit{}, err
		}
		return fallback, nil
	}
	if len(md.Brokers) == 0 {
		return fallback, nil
	}
	id := md.Brokers[0].NodeID
	n, err = describeIntConfig(ctx, cl, kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(id)), "message.max.bytes")
	switch {
	case err == nil && n == 0:
		return batchLimit{}, fmt.Errorf("the broker's message.max.bytes is 0, so topic %s would refuse every batch; create it first with: gregor topic create %s --config max.message.bytes=N", topic, topic)
	case err == nil && n > 0:
		return batchLimit{bytes: n, source: fmt.Sprintf("the broker's message.max.bytes, which topic %s gets when produce creates it", topic),
			raise: fmt.Sprintf("create the topic first with: gregor topic create %s --config max.message.bytes=N", topic)}, nil
	case err != nil && (unreachable(err) || ctx.Err() != nil):
		return batchLimit{}, err
	}
	return fallback, nil
}

// describeIntConfig returns one integer config of a resource, -1 if the
// cluster does not list it or it is not an int32.
func describeIntConfig(ctx context.Context, cl *kgo.Client, typ kmsg.ConfigResourceType, name, config string) (int32, error) {
	configs, _, err := describeConfigs(ctx, cl, typ, name, config)
	if err != nil {
		return 0, err
	}
	for _, c := range configs {
		if c.Name == config && c.Value != nil {
			n, err := strconv.ParseInt(*c.Value, 10, 32)
			if err != nil {
				return -1, nil
			}
			return int32(n), nil
		}
	}
	return -1, nil
}

// recordBatchBytes is the size franz-go counts for a batch holding only r
// (the v2 batch header with its length prefix, then r at offset and
// timestamp delta 0), which it compares with ProducerBatchMaxBytes before
// buffering r.
func recordBatchBytes(r *kgo.Record) int64 {
	const batchOverhead = 65 // 61 bytes of batch header and a 4 byte length
	// attributes, timestamp delta and offset delta: a byte each
	n := 3 +
		kbin.VarintLen(int32(len(r.Key))) + len(r.Key) +
		kbin.VarintLen(int32(len(r.Value))) + len(r.Value) +
		kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return batchOverhead + int64(kbin.VarintLen(int32(n))) + int64(n)
}
