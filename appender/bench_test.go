package appender

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The benchmarks log the same record through each logger: a message and
// five fields, as a request log line would have.

// processCPU is the CPU time the whole process has used, all threads.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerOp reports the process CPU time per operation since start as
// "cpu-ns/op". On a shared machine wall time per op swings with other
// load; CPU time per op much less. It counts every goroutine, the
// appender's shipper included.
func cpuPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

func logZap(b *testing.B, log *zap.Logger) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		log.Info("request handled",
			zap.String("method", "GET"),
			zap.String("path", "/api/v1/users/42"),
			zap.Int("status", 200),
			zap.Duration("latency", 1234567*time.Nanosecond),
			zap.String("user", "u-42"))
	}
}

func logSlog(b *testing.B, log *slog.Logger) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		log.Info("request handled",
			"method", "GET",
			"path", "/api/v1/users/42",
			"status", 200,
			"latency", 1234567*time.Nanosecond,
			"user", "u-42")
	}
}

// discardSink completes every record at once: the appender's cost without
// the network, the analogue of writing to io.Discard.
func discardSink(e *entry) { e.s.finish(e, nil) }

func benchShipperOpts(extra ...Option) []Option {
	return append([]Option{WithBrokers("127.0.0.1:1"), WithTopic("bench"), withSink(sinkFunc(discardSink)),
		WithHost("bench-host"), WithService("bench")}, extra...)
}

func reportStats(b *testing.B, st Stats) {
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
}

func BenchmarkZapIODiscard(b *testing.B) {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	logZap(b, zap.New(core))
}

func BenchmarkZapAppender(b *testing.B) {
	core, err := NewCore(benchShipperOpts()...)
	if err != nil {
		b.Fatal(err)
	}
	defer core.Close(context.Background())
	logZap(b, zap.New(core))
	b.StopTimer()
	reportStats(b, core.Stats())
}

func BenchmarkSlogIODiscard(b *testing.B) {
	logSlog(b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

func BenchmarkSlogAppender(b *testing.B) {
	h, err := NewHandler(benchShipperOpts()...)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	logSlog(b, slog.New(h))
	b.StopTimer()
	reportStats(b, h.Stats())
}

// brokerForBench returns the address of the broker to ship to: the one in
// $GREGOR_BENCH_BROKER (a real `gregor broker` process; see
// scripts/bench-appender.sh) or an in-process one.
func brokerForBench(b *testing.B, topic string) string {
	addr := os.Getenv("GREGOR_BENCH_BROKER")
	if addr == "" {
		addr = startBroker(b, nil).addr
	}
	createTopic(b, addr, topic, 1, nil)
	return addr
}

var benchTopicSeq atomic.Int64

// BenchmarkThroughput logs b.N records from GOMAXPROCS goroutines through
// each front end into a real broker, with the block policy so that nothing
// is dropped, and reports records/s from the first log call until Close
// returns with every record acknowledged.
func BenchmarkThroughput(b *testing.B) {
	for _, fe := range []string{"slog", "zap"} {
		for _, codec := range []string{"none", "lz4", "snappy"} {
			b.Run(fe+"/compression="+codec, func(b *testing.B) {
				topic := fmt.Sprintf("bench-%d-%d", os.Getpid(), benchTopicSeq.Add(1))
				addr := brokerForBench(b, topic)
				sh, err := NewShipper(WithBrokers(addr), WithTopic(topic), WithCompression(codec),
					WithBlockOnFull(10*time.Second), WithService("bench"))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				cpu := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					if fe == "zap" {
						log := zap.New(sh.Core())
						for pb.Next() {
							log.Info("request handled",
								zap.String("method", "GET"),
								zap.String("path", "/api/v1/users/42"),
								zap.Int("status", 200),
								zap.Duration("latency", 1234567*time.Nanosecond),
								zap.String("user", "u-42"))
						}
						return
					}
					log := slog.New(sh.Handler())
					for pb.Next() {
						log.Info("request handled",
							"method", "GET",
							"path", "/api/v1/users/42",
							"status", 200,
							"latency", 1234567*time.Nanosecond,
							"user", "u-42")
					}
				})
				if err := sh.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				st := sh.Stats()
				if st.Sent != int64(b.N) {
					b.Fatalf("sent %d of %d: %+v", st.Sent, b.N, st)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
				cpuPerOp(b, cpu)
				b.ReportMetric(float64(st.SentBytes)/elapsed.Seconds()/1e6, "MB/s")
			})
		}
	}
}
