package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errLineTooLong reports an input line above --max-line-bytes.
var errLineTooLong = errors.New("line too long")

// runProduce reads lines from stdin and produces each as one record. With
// a key separator, the part of a line before its first separator is the
// key and the rest the value; a line without the separator is all value
// with a null key. A trailing "\r\n" or "\n" is not part of the record.
// At EOF it flushes, prints how many records the cluster acknowledged and
// fails if any record failed.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("produce", "", stderr)
	cf := addClientFlags(fs)
	var topic, keySep string
	fs.StringVar(&topic, "topic", "", "topic to produce to (required)")
	fs.StringVar(&topic, "t", "", "topic to produce to (shorthand)")
	fs.StringVar(&keySep, "key-separator", "", "split each line into key and value at the first occurrence of this string")
	fs.StringVar(&keySep, "k", "", "key separator (shorthand)")
	partition := fs.Int("partition", -1, "produce every record to this partition (-1: the client's partitioner)")
	acksFlag := fs.String("acks", "all", "acknowledgements to wait for: all, 1 or 0")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	var headerFlags stringList
	fs.Var(&headerFlags, "header", "add header key=value to every record (repeatable)")
	maxLine := fs.Int("max-line-bytes", 16<<20, "longest accepted input line")
	deliveryTimeout := fs.Duration("timeout", 2*time.Minute, "fail a record the cluster has not acknowledged this long after it was read")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if topic == "" {
		return usagef("--topic is required")
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
	if *maxLine <= 0 {
		return usagef("--max-line-bytes must be positive")
	}
	if *deliveryTimeout <= 0 {
		return usagef("--timeout must be positive")
	}

	conn := newConnReporter(stderr)
	defer conn.stop()
	opts := []kgo.Opt{
		kgo.WithHooks(conn),
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
	produceLine := func(line []byte) {
		r := &kgo.Record{Value: line, Headers: headers}
		if len(sep) > 0 {
			if k, v, ok := bytes.Cut(line, sep); ok {
				r.Key, r.Value = k, v
			}
		}
		if *partition >= 0 {
			r.Partition = int32(*partition)
		}
		res.sent.Add(1)
		cl.Produce(ctx, r, res.promise)
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
				produceLine(line)
			}
			if b.err != nil {
				if !errors.Is(b.err, io.EOF) {
					readErr = fmt.Errorf("read stdin: %w", b.err)
				}
				break read
			}
		}
	}
	flushErr := cl.Flush(ctx)

	fmt.Fprintf(stdout, "produced %d record(s) to %s\n", res.acked.Load(), topic)
	switch {
	case res.failed.Load() > 0:
		return fmt.Errorf("%d of %d record(s) failed; first error: %w", res.failed.Load(), res.sent.Load(), res.firstErr())
	case readErr != nil:
		return readErr
	case ctx.Err() != nil:
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
	r   *bufio.Reader
	max int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its "\n" or "\r\n"; a last line
// without a newline is returned too. It returns io.EOF after the last line.
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(line)+len(chunk) > lr.max+2 { // +2: room for the line ending, checked below
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, lr.max)
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
		if len(line) > lr.max {
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, lr.max)
		}
		return line, nil
	}
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
