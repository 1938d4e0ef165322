package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// "gregor perf" measures a cluster with franz-go clients: produce and
// consume throughput, end-to-end latency, and the CPU a local broker spent.
// Each run prints a progress line to stderr and a summary to stdout, as
// text or (--json) as one JSON object for scripts.

// perfSubcommands is the dispatch table of "gregor perf".
var perfSubcommands = []subcommand{
	{"produce", "produce records as fast as possible (or at --rate)", runPerfProduce},
	{"consume", "consume records from the start of a topic", runPerfConsume},
	{"e2e", "produce at a fixed rate and measure produce-to-consume latency", runPerfE2E},
}

// runPerf dispatches "gregor perf <subcommand>".
func runPerf(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		// The client's garbage collection, not the broker, set the pace
		// at Go's default of 100: half of perf consume's CPU for 100 B
		// records, and runs of perf produce that went a third slower
		// when a collection fell badly. A benchmark client keeps a
		// larger heap (as Kafka's perf tools run with the JVM's), the
		// same against every broker; GOGC in the environment wins.
		defer debug.SetGCPercent(debug.SetGCPercent(perfGCPercent))
	}
	return runSubcommand(ctx, "perf", perfSubcommands, args, stdin, stdout, stderr)
}

// perfGCPercent is the GOGC perf runs with unless the environment sets it.
const perfGCPercent = 400

// perfFlags are the flags every perf subcommand has.
type perfFlags struct {
	*clientFlags
	topic     string
	brokerPID int
	json      bool
	// procRoot is where the /proc file system is; tests point it elsewhere.
	procRoot string
	// progressEvery is the progress tick; tests shorten it.
	progressEvery time.Duration
}

func addPerfFlags(fs *flag.FlagSet) *perfFlags {
	pf := &perfFlags{clientFlags: addClientFlags(fs), procRoot: "/proc", progressEvery: time.Second}
	fs.StringVar(&pf.topic, "topic", "", "topic (required)")
	fs.StringVar(&pf.topic, "t", "", "topic (shorthand)")
	fs.IntVar(&pf.brokerPID, "broker-pid", 0, "measure the CPU time of this broker process (0: find the local process listening on the bootstrap port; -1: don't)")
	fs.BoolVar(&pf.json, "json", false, "print the summary as one JSON object")
	return pf
}

// producerFlags configure the producing clients of perf produce and e2e.
type producerFlags struct {
	acks          string
	compression   string
	linger        time.Duration
	lingerDefault *time.Duration // nil: the client's default unless --linger is given
	batchMaxBytes int
	idempotent    bool
	maxBuffered   int
	partitions    int
	// timeout is --timeout: how long a record may go unacknowledged
	// before it fails (Kafka's delivery.timeout.ms).
	timeout time.Duration
}

// addProducerFlags adds the producer flags. lingerDefault is --linger's
// default; nil leaves the client's own (franz-go's 10 ms), so that perf
// produce runs franz-go as its users get it.
func addProducerFlags(fs *flag.FlagSet, lingerDefault *time.Duration) *producerFlags {
	pf := &producerFlags{lingerDefault: lingerDefault}
	fs.StringVar(&pf.acks, "acks", "all", "acknowledgements: all or 1")
	fs.StringVar(&pf.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	lingerHelp := "how long a partition's batch may wait for more records (default: the client's own, 10ms)"
	if lingerDefault != nil {
		pf.linger = *lingerDefault
		lingerHelp = "how long a partition's batch may wait for more records"
	}
	fs.DurationVar(&pf.linger, "linger", pf.linger, lingerHelp)
	fs.IntVar(&pf.batchMaxBytes, "batch-max-bytes", 0, "largest record batch (0: client default, about 1 MB)")
	fs.BoolVar(&pf.idempotent, "idempotent", true, "idempotent producer (needs --acks all)")
	fs.IntVar(&pf.maxBuffered, "max-buffered-records", 0, "records a producer may have buffered or in flight (0: the client default, 50000)")
	fs.IntVar(&pf.partitions, "partitions", 0, "create the topic with this many partitions if it does not exist (0: it must exist)")
	fs.DurationVar(&pf.timeout, "timeout", 2*time.Minute, "fail a record the cluster has not acknowledged this long after it was produced, as Kafka's delivery.timeout.ms")
	return pf
}

// options validates the flags and returns the kgo options they stand for.
func (pf *producerFlags) options(fs *flag.FlagSet) ([]kgo.Opt, error) {
	idempotentSet, lingerSet := false, false
	fs.Visit(func(f *flag.Flag) {
		idempotentSet = idempotentSet || f.Name == "idempotent"
		lingerSet = lingerSet || f.Name == "linger"
	})
	var opts []kgo.Opt
	switch pf.acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		if !pf.idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
	case "1":
		if idempotentSet && pf.idempotent {
			return nil, usagef("--idempotent needs --acks all")
		}
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, usagef("--acks %q: want all or 1", pf.acks)
	}
	codec, err := parseCompression(pf.compression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	if pf.linger < 0 || pf.linger > time.Minute {
		return nil, usagef("--linger %v out of range", pf.linger)
	}
	if lingerSet || pf.lingerDefault != nil {
		opts = append(opts, kgo.ProducerLinger(pf.linger))
	}
	if pf.batchMaxBytes < 0 || pf.batchMaxBytes > 1<<30 {
		return nil, usagef("--batch-max-bytes %d out of range", pf.batchMaxBytes)
	}
	if pf.batchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(pf.batchMaxBytes)))
	}
	if pf.maxBuffered < 0 {
		return nil, usagef("--max-buffered-records must not be negative")
	}
	if pf.maxBuffered > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(pf.maxBuffered))
	}
	if pf.partitions < 0 || pf.partitions > 1<<20 {
		return nil, usagef("--partitions %d out of range", pf.partitions)
	}
	if pf.timeout < time.Second { // franz-go's least
		return nil, usagef("--timeout %v: want at least 1s", pf.timeout)
	}
	opts = append(opts, kgo.RecordDeliveryTimeout(pf.timeout))
	return opts, nil
}

// prepareTopic creates the topic if --partitions asks for it, and returns
// its partitions.
func (pf *producerFlags) prepareTopic(ctx context.Context, cf *clientFlags, topic string) ([]int32, error) {
	cl, err := cf.newClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if pf.partitions > 0 {
		return ensureTopic(ctx, cl, topic, int32(pf.partitions))
	}
	t, err := topicMetadata(ctx, cl, topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("%w (pass --partitions to create it)", err)
	}
	if err != nil {
		return nil, err
	}
	return partitionIDs(t), nil
}

// perfSummary is the result of a perf run.
type perfSummary struct {
	Command       string  `json:"command"`
	Topic         string  `json:"topic"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Errors        int64   `json:"errors"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	// MBPerSec counts MB as 2^20 bytes of keys and values, as Kafka's perf
	// tools do.
	MBPerSec    float64 `json:"mb_per_sec"`
	RecordSize  int     `json:"record_size,omitempty"`
	Partitions  int     `json:"partitions,omitempty"`
	Acks        string  `json:"acks,omitempty"`
	Compression string  `json:"compression,omitempty"`

	// ProduceRequests is how many produce requests carried the records.
	ProduceRequests   int64   `json:"produce_requests,omitempty"`
	RecordsPerRequest float64 `json:"records_per_request,omitempty"`
	// Transactions is how many transactions were committed
	// (--transaction-records).
	Transactions int64 `json:"transactions,omitempty"`

	ProduceLatency *latencySummary `json:"produce_latency_ms,omitempty"`
	E2ELatency     *latencySummary `json:"e2e_latency_ms,omitempty"`

	BrokerPIDs                 []int    `json:"broker_pids,omitempty"`
	BrokerCPUSeconds           *float64 `json:"broker_cpu_seconds,omitempty"`
	BrokerCPUSecondsPerMillion *float64 `json:"broker_cpu_seconds_per_million_records,omitempty"`
	BrokerCPUUnavailable       string   `json:"broker_cpu_unavailable,omitempty"`

	// ClientCPUSecondsPerMillion is this process's own CPU (the clients
	// and perf's bookkeeping): on a machine shared with the broker it
	// bounds the throughput that can be measured.
	ClientCPUSecondsPerMillion *float64 `json:"client_cpu_seconds_per_million_records,omitempty"`
}

// selfCPU returns the CPU time this process has used, -1 if unknown.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setClientCPU fills ClientCPUSecondsPerMillion from before, selfCPU's
// reading when the clients started.
func (s *perfSummary) setClientCPU(before time.Duration) {
	now := selfCPU()
	if before < 0 || now < 0 || s.Records == 0 {
		return
	}
	perM := (now - before).Seconds() / float64(s.Records) * 1e6
	s.ClientCPUSecondsPerMillion = &perM
}

// finish fills the derived fields: rates and broker CPU figures.
func (s *perfSummary) finish(elapsed time.Duration, cpu *brokerCPU, cpuErr error) {
	s.Seconds = elapsed.Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MBPerSec = float64(s.Bytes) / (1 << 20) / s.Seconds
	}
	if cpu == nil {
		if cpuErr != nil {
			s.BrokerCPUUnavailable = cpuErr.Error()
		}
		return
	}
	used, err := cpu.used()
	if err != nil {
		s.BrokerCPUUnavailable = err.Error()
		return
	}
	secs := used.Seconds()
	s.BrokerPIDs = cpu.pids
	s.BrokerCPUSeconds = &secs
	if s.Records > 0 {
		perM := secs / float64(s.Records) * 1e6
		s.BrokerCPUSecondsPerMillion = &perM
	}
}

// write prints the summary as text or JSON.
func (s *perfSummary) write(w io.Writer, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encode summary: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "perf %s %s: %d records in %.3f s = %.0f records/s, %.2f MB/s",
		s.Command, s.Topic, s.Records, s.Seconds, s.RecordsPerSec, s.MBPerSec)
	var details []string
	if s.RecordSize > 0 {
		details = append(details, fmt.Sprintf("%d B records", s.RecordSize))
	}
	if s.Partitions > 0 {
		details = append(details, fmt.Sprintf("%d partition(s)", s.Partitions))
	}
	if s.Acks != "" {
		details = append(details, "acks="+s.Acks)
	}
	if s.Compression != "" {
		details = append(details, "compression="+s.Compression)
	}
	if len(details) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(details, ", "))
	}
	b.WriteByte('\n')
	if s.Errors > 0 {
		fmt.Fprintf(&b, "errors: %d\n", s.Errors)
	}
	writeLatency := func(name string, l *latencySummary) {
		if l != nil {
			fmt.Fprintf(&b, "%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f over %d)\n",
				name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
		}
	}
	if s.ProduceRequests > 0 {
		fmt.Fprintf(&b, "produce requests: %d (%.1f records each)\n", s.ProduceRequests, s.RecordsPerRequest)
	}
	if s.Transactions > 0 {
		fmt.Fprintf(&b, "transactions committed: %d\n", s.Transactions)
	}
	writeLatency("produce", s.ProduceLatency)
	writeLatency("end-to-end", s.E2ELatency)
	switch {
	case s.BrokerCPUSeconds != nil:
		pids := make([]string, len(s.BrokerPIDs))
		for i, pid := range s.BrokerPIDs {
			pids[i] = strconv.Itoa(pid)
		}
		fmt.Fprintf(&b, "broker CPU: %.2f s (pid %s)", *s.BrokerCPUSeconds, strings.Join(pids, ","))
		if s.BrokerCPUSecondsPerMillion != nil {
			fmt.Fprintf(&b, " = %.3f s per million records", *s.BrokerCPUSecondsPerMillion)
		}
		b.WriteByte('\n')
	case s.BrokerCPUUnavailable != "":
		fmt.Fprintf(&b, "broker CPU: not measured (%s)\n", s.BrokerCPUUnavailable)
	}
	if s.ClientCPUSecondsPerMillion != nil {
		fmt.Fprintf(&b, "client CPU (this process): %.3f s per million records\n", *s.ClientCPUSecondsPerMillion)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// perfCounters are the running totals a perf run reports progress from;
// safe for concurrent use.
type perfCounters struct {
	records, bytes, errors atomic.Int64
	txns                   atomic.Int64 // transactions committed

	mu struct {
		sync.Mutex
		firstErr error
	}
}

// fail counts a failed record and remembers the first error.
func (c *perfCounters) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.mu.firstErr == nil {
		c.mu.firstErr = err
	}
	c.mu.Unlock()
}

func (c *perfCounters) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.firstErr
}

// progress prints a live progress line to w until stopped: every tick,
// overwriting itself with "\r" when w is a terminal, else a new line every
// five ticks.
type progress struct {
	w       io.Writer
	label   string
	tty     bool
	every   time.Duration
	c       *perfCounters
	latency *latencyHistogram // may be nil
	stop    chan struct{}
	done    chan struct{}
}

// startProgress starts the goroutine printing the progress line; the
// caller must call stop.
func startProgress(w io.Writer, label string, every time.Duration, c *perfCounters, latency *latencyHistogram) *progress {
	p := &progress{
		w: w, label: label, tty: isTerminal(w), every: every, c: c, latency: latency,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.run()
	return p
}

func (p *progress) run() {
	defer close(p.done)
	ticker := time.NewTicker(p.every)
	defer ticker.Stop()
	start := time.Now()
	lastAt, lastRecords, lastBytes := start, int64(0), int64(0)
	ticks := 0
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticker.C:
			ticks++
			if !p.tty && ticks%5 != 0 {
				continue
			}
			records, bytes := p.c.records.Load(), p.c.bytes.Load()
			secs := now.Sub(lastAt).Seconds()
			line := fmt.Sprintf("%s: %6.1f s  %d records  %.0f records/s  %.2f MB/s",
				p.label, now.Sub(start).Seconds(), records,
				float64(records-lastRecords)/secs, float64(bytes-lastBytes)/(1<<20)/secs)
			if p.latency != nil && p.latency.Count() > 0 {
				line += fmt.Sprintf("  p50 %.3f ms  p99 %.3f ms",
					float64(p.latency.quantile(0.5))/1e6, float64(p.latency.quantile(0.99))/1e6)
			}
			if errs := p.c.errors.Load(); errs > 0 {
				line += fmt.Sprintf("  %d errors", errs)
			}
			lastAt, lastRecords, lastBytes = now, records, bytes
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(p.w, line)
			}
		}
	}
}

// Stop stops the progress line and waits for its goroutine.
func (p *progress) Stop() {
	close(p.stop)
	<-p.done
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	if sw, ok := w.(*syncWriter); ok {
		w = sw.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// maxPerfRecordSize bounds --record-size: values are cut from randomPool.
const maxPerfRecordSize = 4 << 20

// randomPool is shared random bytes that record values are cut from. It
// is large enough that the values in one batch never repeat (a batch is at
// most a few MB).
var randomPool = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	r := rand.New(rand.NewChaCha8([32]byte{'g', 'r', 'e', 'g', 'o', 'r'}))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
})

// payloads makes the record values of one producing goroutine; not safe
// for concurrent use. Without compression every record shares one random
// value (the broker cannot tell). With compression each record gets its
// own value: its first half random bytes from randomPool, its second half
// zeros, so a batch compresses about 2:1, no better.
type payloads struct {
	size   int
	unique bool
	fixed  []byte
	pos    int
}

func newPayloads(size int, unique bool, start int) *payloads {
	pool := randomPool()
	p := &payloads{size: size, unique: unique, pos: start % (len(pool) - size)}
	if !unique {
		p.fixed = pool[:size:size]
	}
	return p
}

// next returns a value the caller may keep (and, when unique, modify).
func (p *payloads) next() []byte {
	if !p.unique {
		return p.fixed
	}
	pool := randomPool()
	v := make([]byte, p.size)
	half := (p.size + 1) / 2
	if p.pos+half > len(pool) {
		p.pos = 0
	}
	copy(v, pool[p.pos:p.pos+half])
	p.pos += half
	return v
}

// pacer spaces events at a fixed rate; rate 0 means no limit. Not safe for
// concurrent use.
type pacer struct {
	interval time.Duration
	next     time.Time
	timer    *time.Timer
}

func newPacer(perSecond float64) *pacer {
	if perSecond <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / perSecond)}
}

// wait blocks until the next event is due (or ctx is done). An event that
// is late is due at once, so a stall is followed by a catch-up burst and
// the average rate holds.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.IsZero() {
		p.next = now
	}
	due := p.next
	p.next = p.next.Add(p.interval)
	d := due.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	case <-p.timer.C:
		return nil
	}
}
