package benchpeer

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gregor-log/gregor/appender"
)

// logSlog logs the record every benchmark in this repository logs.
func logSlog(b *testing.B, log *slog.Logger) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		log.Info("request handled",
			"method", "GET",
			"path", "/api/v1/users/42",
			"status", 200,
			"latency", 1234567*time.Nanosecond,
			"user", "u-42")
	}
}

// kafkaGoHandler ships each record the way slog-kafka does: one
// kafka.Writer.WriteMessages call per record on an asynchronous writer,
// keyed by the binary timestamp, with a per-call timeout context. It
// encodes with slog's JSONHandler, which is cheaper than slog-kafka's
// map-then-json.Marshal converter, so it is a lower bound on slog-kafka's
// cost.
type kafkaGoHandler struct {
	w   *kafka.Writer
	enc slog.Handler
	buf *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) { return l.buf.Write(p) }

func newKafkaGoHandler(w *kafka.Writer) *kafkaGoHandler {
	lb := &lockedBuffer{}
	return &kafkaGoHandler{w: w, buf: lb, enc: slog.NewJSONHandler(lb, nil)}
}

func (h *kafkaGoHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.enc.Enabled(ctx, l)
}
func (h *kafkaGoHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *kafkaGoHandler) WithGroup(string) slog.Handler      { return h }

func (h *kafkaGoHandler) Handle(ctx context.Context, r slog.Record) error {
	h.buf.mu.Lock()
	h.buf.buf.Reset()
	err := h.enc.Handle(ctx, r)
	value := bytes.Clone(h.buf.buf.Bytes())
	h.buf.mu.Unlock()
	if err != nil {
		return err
	}
	key, err := r.Time.MarshalBinary()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return h.w.WriteMessages(wctx, kafka.Message{Key: key, Value: value})
}

func newKafkaGoWriter(addr, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Async:        true,
		Balancer:     &kafka.Hash{},
		MaxAttempts:  3,
		BatchTimeout: 5 * time.Millisecond,
	}
}

// BenchmarkKafkaGoAsync: slog-kafka's transport into a gregor broker.
func BenchmarkKafkaGoAsync(b *testing.B) {
	addr := startBroker(b, "peer")
	w := newKafkaGoWriter(addr, "peer")
	defer w.Close()
	logSlog(b, slog.New(newKafkaGoHandler(w)))
	b.StopTimer()
	st := w.Stats()
	b.ReportMetric(float64(st.Errors), "writer-errors")
}

// BenchmarkGregorAppender: the appender's slog handler into the same kind
// of broker, side by side with the peer.
func BenchmarkGregorAppender(b *testing.B) {
	addr := startBroker(b, "ours")
	h, err := appender.NewHandler(appender.WithBrokers(addr), appender.WithTopic("ours"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	logSlog(b, slog.New(h))
	b.StopTimer()
	b.ReportMetric(float64(h.Stats().Dropped)/float64(b.N), "dropped/op")
}
