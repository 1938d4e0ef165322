package appender

import (
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zapcore"

	"github.com/gregor-log/gregor/internal/vfs"
)

// Option changes how a Shipper, Core or Handler is built. Options apply in
// order on top of DefaultConfig (or the Config given to WithConfig); the
// result is validated once, and every problem is reported together.
type Option func(*settings)

// settings is what the options build: the Config plus what only code can
// supply.
type settings struct {
	cfg         Config
	kgoOpts     []kgo.Opt
	zapEncoder  *zapcore.EncoderConfig
	replaceAttr func(groups []string, a slog.Attr) slog.Attr
	onError     func(error)
	fs          vfs.FS   // spill file system; tests swap it
	sink        testSink // tests and benchmarks: replaces kgo
}

// testSink replaces the kgo client in tests and benchmarks. produce must
// eventually call Shipper.finish on every entry; close is called by
// Shipper.Close in place of the client's Close and must finish every
// entry it still holds.
type testSink interface {
	produce(*entry)
	close()
}

// sinkFunc is a testSink that needs no close.
type sinkFunc func(*entry)

func (f sinkFunc) produce(e *entry) { f(e) }
func (sinkFunc) close()             {}

func newSettings(opts []Option) settings {
	s := settings{cfg: DefaultConfig(), fs: vfs.OS}
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// WithConfig replaces the whole configuration (for example the appender
// section of pipeline.yaml). Options after it refine it.
func WithConfig(cfg Config) Option { return func(s *settings) { s.cfg = cfg } }

// WithBrokers sets the seed brokers (host:port).
func WithBrokers(addrs ...string) Option {
	return func(s *settings) { s.cfg.Brokers = append([]string(nil), addrs...) }
}

// WithTopic sets the topic records go to.
func WithTopic(topic string) Option { return func(s *settings) { s.cfg.Topic = topic } }

// WithClientID sets the Kafka client id.
func WithClientID(id string) Option { return func(s *settings) { s.cfg.ClientID = id } }

// WithService sets the "service" header.
func WithService(name string) Option { return func(s *settings) { s.cfg.Service = name } }

// WithHost sets the "host" header (default os.Hostname()).
func WithHost(host string) Option { return func(s *settings) { s.cfg.Host = host } }

// WithLevel sets the minimum level shipped. zap levels map onto slog's:
// debug -4, info 0, warn 4, error 8, dpanic 12, panic 16, fatal 20. The level
// can be changed later with Shipper.SetLevel.
func WithLevel(l slog.Level) Option { return func(s *settings) { s.cfg.Level = l.String() } }

// WithKeyField takes each record's key from the named field or attribute.
func WithKeyField(name string) Option { return func(s *settings) { s.cfg.KeyField = name } }

// WithAddSource makes the slog handler add the caller's source location.
func WithAddSource(on bool) Option { return func(s *settings) { s.cfg.AddSource = on } }

// WithBuffer bounds the records held in memory, in bytes and in count.
func WithBuffer(maxBytes int64, maxRecords int) Option {
	return func(s *settings) { s.cfg.BufferBytes, s.cfg.BufferRecords = maxBytes, maxRecords }
}

// WithDropOnFull drops (and counts) records while the buffer is full. It is
// the default.
func WithDropOnFull() Option { return func(s *settings) { s.cfg.OnFull = OnFullDrop } }

// WithBlockOnFull makes a log call wait up to timeout for room, then drop.
func WithBlockOnFull(timeout time.Duration) Option {
	return func(s *settings) { s.cfg.OnFull, s.cfg.BlockTimeout = OnFullBlock, timeout }
}

// WithSpillOnFull writes records that do not fit in memory to spill files
// in dir (at most maxBytes in total), shipped in order once possible.
func WithSpillOnFull(dir string, maxBytes int64) Option {
	return func(s *settings) { s.cfg.OnFull, s.cfg.SpillDir, s.cfg.SpillMaxBytes = OnFullSpill, dir, maxBytes }
}

// WithMaxRecordBytes sets the largest encoded record accepted.
func WithMaxRecordBytes(n int) Option { return func(s *settings) { s.cfg.MaxRecordBytes = n } }

// WithBatchMaxBytes sets the largest batch sent to the broker.
func WithBatchMaxBytes(n int32) Option { return func(s *settings) { s.cfg.BatchMaxBytes = n } }

// WithLinger sets how long a batch may wait for more records.
func WithLinger(d time.Duration) Option { return func(s *settings) { s.cfg.Linger = d } }

// WithCompression sets the batch codec: none, gzip, snappy, lz4 or zstd.
func WithCompression(codec string) Option { return func(s *settings) { s.cfg.Compression = codec } }

// WithAcks sets the acknowledgements awaited: all, leader or none.
func WithAcks(acks string) Option { return func(s *settings) { s.cfg.Acks = acks } }

// WithDeliveryTimeout bounds how long a record may wait for the broker.
func WithDeliveryTimeout(d time.Duration) Option {
	return func(s *settings) { s.cfg.DeliveryTimeout = d }
}

// WithSyncTimeout bounds how long Sync waits.
func WithSyncTimeout(d time.Duration) Option { return func(s *settings) { s.cfg.SyncTimeout = d } }

// WithKgoOptions appends franz-go client options (TLS, SASL, a logger, …)
// after the appender's own, so they win. Options that change producing
// semantics (acks, batch size, partitioner) are the caller's responsibility.
func WithKgoOptions(opts ...kgo.Opt) Option {
	return func(s *settings) { s.kgoOpts = append(s.kgoOpts, opts...) }
}

// WithZapEncoderConfig sets the zap JSON encoder configuration used by
// NewCore (default zap.NewProductionEncoderConfig()).
func WithZapEncoderConfig(ec zapcore.EncoderConfig) Option {
	return func(s *settings) { s.zapEncoder = &ec }
}

// WithReplaceAttr sets the slog handler's ReplaceAttr function, with the
// meaning slog.HandlerOptions gives it.
func WithReplaceAttr(fn func(groups []string, a slog.Attr) slog.Attr) Option {
	return func(s *settings) { s.replaceAttr = fn }
}

// WithErrorHandler receives problems the appender cannot return to a log
// call: delivery failures (at most one report per second, with the count),
// spill file errors and spill corruption. It is called from the shipper's
// goroutine and must not block or log through this appender.
func WithErrorHandler(fn func(error)) Option { return func(s *settings) { s.onError = fn } }

// withFS makes the spill files live on fs (tests).
func withFS(fs vfs.FS) Option { return func(s *settings) { s.fs = fs } }

// withSink replaces the producer (tests and benchmarks).
func withSink(sink testSink) Option { return func(s *settings) { s.sink = sink } }
