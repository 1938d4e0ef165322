package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/config"
	"github.com/gregor-log/gregor/internal/kgoopt"
)

// Header keys every record carries.
const (
	HeaderHost       = "host"        // the agent's host name
	HeaderPath       = "path"        // the file the line was read from
	HeaderOffset     = "offset"      // byte offset of the line's start in that file, decimal
	HeaderTruncated  = "truncated"   // "true" when the line was cut to max-line-bytes
	HeaderParseError = "parse-error" // why the parser rejected the line (the value is then the raw line)
)

var trueBytes = []byte("true")

// shipper produces records and routes acknowledgements to the files'
// trackers. Failed records are produced again after a pause (retryLoop),
// except records the broker can never take (too large, invalid), which are
// logged, counted as dropped and passed over.
type shipper struct {
	a  *Agent
	cl *kgo.Client
	// opts made cl; batchMax is producer.batch-max-bytes.
	opts     []kgo.Opt
	batchMax int32
	// small holds the clients of topics whose max.message.bytes is below
	// batchMax (see limits.go): limits by topic, clients by batch size.
	small struct {
		sync.Mutex
		limits  map[string]int32
		clients map[int32]*kgo.Client
	}

	retry struct {
		sync.Mutex
		recs []*kgo.Record
		// purge: topics whose records failed with UNKNOWN_TOPIC_ID (the
		// topic was deleted and created again under a new id): the client
		// keeps failing them until it forgets the old id.
		purge map[string]bool
		// tooLarge: records the main client had refused as too large,
		// for fitTopics.
		tooLarge []*kgo.Record
	}
	retryWake chan struct{} // capacity 1

	// lastAck is when a record was last acknowledged (Unix ns), for
	// stallLoop.
	lastAck atomic.Int64
}

// recRef is a record's link back to its file; it is the record's Context
// so that acknowledgements need no map lookup and no allocation.
type recRef struct {
	context.Context
	st  *fileState
	in  *input
	seq uint64
	// limit is the batch size of the small-batch client the record went
	// through, 0 for the main client.
	limit int32
}

func newShipper(a *Agent, extra []kgo.Opt) (*shipper, error) {
	p := a.cfg.Producer
	s := &shipper{a: a, retryWake: make(chan struct{}, 1)}
	opts := []kgo.Opt{
		kgo.SeedBrokers(a.cfg.Brokers...),
		kgo.ClientID(p.ClientID),
		kgo.DialTimeout(5 * time.Second),
		kgo.ProducerLinger(p.Linger),
		kgo.ProducerBatchMaxBytes(int32(p.BatchMaxBytes)),
		kgo.MaxBufferedBytes(int(p.MaxInFlightBytes)),
		// Small records cost more in structures than in bytes: bound their
		// number too, as if each were at least 256 bytes.
		kgo.MaxBufferedRecords(max(int(p.MaxInFlightBytes)/256, 1024)),
		kgo.AllowAutoTopicCreation(),
		// Never give up on a record: the checkpoint waits for it.
		kgo.UnknownTopicRetries(-1),
		kgo.WithLogger(kgoLogger{a.log}),
	}
	switch p.Acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("producer.acks %q: want all, 1 or 0", p.Acks)
	}
	codec, err := kgoopt.Compression(p.Compression)
	if err != nil || p.Compression == "" {
		return nil, fmt.Errorf("producer.compression %q: want none, gzip, snappy, lz4 or zstd", p.Compression)
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create producer: %w", err)
	}
	s.cl, s.opts, s.batchMax = cl, opts, int32(p.BatchMaxBytes)
	return s, nil
}

// produce hands lines (in file order) to the producer as records of st.
// It blocks while the producer's buffer is full, and returns an error only
// when ctx is done; lines not produced then stay unacknowledged, so the
// checkpoint stays before them.
func (s *shipper) produce(ctx context.Context, st *fileState, in *input, path []byte, lines []line) error {
	n := 0
	for _, l := range lines {
		if !l.marker {
			n++
		}
	}
	ents := make([]trackEntry, len(lines))
	for i, l := range lines {
		ents[i] = trackEntry{end: l.end, done: l.marker}
	}
	first := st.ack.add(ents)
	if n == 0 {
		return nil
	}
	// One allocation each for the records, their refs, headers and offset
	// digits of the whole chunk.
	const baseHeaders = 3
	nh := baseHeaders
	if in.enc.kind == config.ParserRaw {
		nh += len(in.enc.fieldKeys)
	}
	recs := make([]kgo.Record, n)
	refs := make([]recRef, n)
	hdrs := make([]kgo.RecordHeader, n*nh)
	digits := make([]byte, 0, n*20)
	now := time.Now()
	bg := context.Background()
	cl, limit := s.clientFor(in.topic)
	j := 0
	for i, l := range lines {
		if l.marker {
			continue
		}
		key, value, perr := in.enc.encode(l.data, path)
		r := &recs[j]
		r.Topic = in.topic
		r.Key = key
		r.Value = value
		r.Timestamp = now
		h := hdrs[j*nh : (j+1)*nh : (j+1)*nh]
		h[0] = kgo.RecordHeader{Key: HeaderHost, Value: s.a.host}
		h[1] = kgo.RecordHeader{Key: HeaderPath, Value: path}
		d0 := len(digits)
		digits = strconv.AppendInt(digits, l.start, 10)
		h[2] = kgo.RecordHeader{Key: HeaderOffset, Value: digits[d0:len(digits):len(digits)]}
		if nh > baseHeaders {
			for k, name := range in.enc.fieldKeys {
				h[baseHeaders+k] = kgo.RecordHeader{Key: name, Value: in.enc.fieldVals[k]}
			}
		}
		if l.truncated {
			h = append(h, kgo.RecordHeader{Key: HeaderTruncated, Value: trueBytes})
		}
		if perr != nil {
			in.m.parseErrors.Inc()
			h = append(h, kgo.RecordHeader{Key: HeaderParseError, Value: []byte(perr.Error())})
		}
		r.Headers = h
		refs[j] = recRef{Context: bg, st: st, in: in, seq: first + uint64(i), limit: limit}
		r.Context = &refs[j]
		cl.Produce(ctx, r, s.promise)
		j++
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// promise receives every record's outcome (on the producer's goroutine;
// it must not block).
func (s *shipper) promise(r *kgo.Record, err error) {
	ref, ok := r.Context.(*recRef)
	if !ok {
		return
	}
	if err == nil {
		ref.st.ack.ack(ref.seq)
		ref.in.m.shipped.Inc()
		s.lastAck.Store(time.Now().UnixNano())
		return
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		// Stopping: the record stays unacknowledged and is read again
		// after the restart.
		return
	case ref.limit == 0 && (errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)):
		// Its batch may have been too large for the topic, not the
		// record: fitTopics decides.
		ref.in.m.retried.Inc()
		s.retryLater([]*kgo.Record{r}, true)
		return
	case permanentProduceError(err):
		s.drop(r, err)
		return
	}
	ref.in.m.retried.Inc()
	s.retry.Lock()
	s.retry.recs = append(s.retry.recs, r)
	if errors.Is(err, kerr.UnknownTopicID) {
		if s.retry.purge == nil {
			s.retry.purge = map[string]bool{}
		}
		s.retry.purge[r.Topic] = true
	}
	s.retry.Unlock()
	s.wakeRetry()
}

// drop passes over a record the broker refuses for good.
func (s *shipper) drop(r *kgo.Record, err error) {
	ref := r.Context.(*recRef)
	ref.in.m.dropped.Inc()
	s.a.log.Error("the broker refuses this record for good; skipping it",
		zap.ByteString("path", headerValue(r, HeaderPath)), zap.ByteString("offset", headerValue(r, HeaderOffset)),
		zap.String("topic", r.Topic), zap.Int("bytes", len(r.Value)), zap.Error(err))
	ref.st.ack.ack(ref.seq)
}

// retryLater queues records for the retry loop: tooLarge ones for
// fitTopics, others to be produced again.
func (s *shipper) retryLater(recs []*kgo.Record, tooLarge bool) {
	s.retry.Lock()
	if tooLarge {
		s.retry.tooLarge = append(s.retry.tooLarge, recs...)
	} else {
		s.retry.recs = append(s.retry.recs, recs...)
	}
	s.retry.Unlock()
	s.wakeRetry()
}

func (s *shipper) wakeRetry() {
	select {
	case s.retryWake <- struct{}{}:
	default:
	}
}

// permanentProduceError reports errors that producing again cannot fix.
func permanentProduceError(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.CorruptMessage) ||
		errors.Is(err, kerr.InvalidTopicException)
}

func headerValue(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// stallAfter is how long records may wait without any acknowledgement
// before stallLoop warns.
var stallAfter = 30 * time.Second // a variable for tests

// stallLoop warns, at most every stallAfter, while records wait and none
// has been acknowledged for stallAfter: the producer retries forever
// without a word when the broker is unreachable or the topic does not
// exist (auto-creation off), and the files then only fall behind.
func (s *shipper) stallLoop(ctx context.Context) {
	s.lastAck.Store(time.Now().UnixNano())
	t := time.NewTicker(stallAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		waiting := s.cl.BufferedProduceRecords()
		since := time.Since(time.Unix(0, s.lastAck.Load()))
		if waiting > 0 && since >= stallAfter {
			s.a.log.Warn("no record acknowledged; is the broker reachable, and does the topic exist (auto-creation may be off)?",
				zap.Int64("records_waiting", waiting), zap.Duration("since_last_ack", since.Round(time.Second)),
				zap.Strings("topics", s.a.topics()))
		}
	}
}

// retryLoop produces failed records again, a second after they failed,
// until ctx is done.
func (s *shipper) retryLoop(ctx context.Context) {
	const pause = time.Second
	t := time.NewTimer(pause)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.retryWake:
		}
		t.Reset(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.retry.Lock()
		recs, purge, tooLarge := s.retry.recs, s.retry.purge, s.retry.tooLarge
		s.retry.recs, s.retry.purge, s.retry.tooLarge = nil, nil, nil
		s.retry.Unlock()
		if len(tooLarge) > 0 {
			s.fitTopics(ctx, tooLarge)
		}
		if len(purge) > 0 {
			// Records still buffered for these topics fail (and come back
			// here); the next produce looks the topic up afresh.
			topics := slices.Sorted(maps.Keys(purge))
			s.a.log.Warn("topic deleted and created again; forgetting its old id", zap.Strings("topics", topics))
			s.cl.PurgeTopicsFromProducing(topics...)
		}
		if len(recs) > 0 {
			s.a.log.Warn("producing failed records again", zap.Int("records", len(recs)))
		}
		for _, r := range recs {
			cl, limit := s.clientFor(r.Topic)
			r.Context.(*recRef).limit = limit
			cl.Produce(ctx, r, s.promise)
		}
	}
}

// flush waits until every produced record is acknowledged or ctx is done.
func (s *shipper) flush(ctx context.Context) error {
	for _, cl := range s.allClients() {
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush producer: %w", err)
		}
	}
	return nil
}

func (s *shipper) close() {
	for _, cl := range s.allClients() {
		cl.Close()
	}
}

// kgoLogger routes franz-go's logs (warnings and errors only) to zap.
type kgoLogger struct{ log *zap.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, _ := keyvals[i].(string)
		fields = append(fields, zap.Any(k, keyvals[i+1]))
	}
	switch level {
	case kgo.LogLevelError:
		l.log.Error("kafka client: "+msg, fields...)
	default:
		l.log.Warn("kafka client: "+msg, fields...)
	}
}
