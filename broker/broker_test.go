package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/internal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startBroker runs a broker on a free loopback port over fs (the OS when
// nil) and stops it at cleanup.
func startBroker(t testing.TB, fs vfs.FS, dataDir string, mutate func(*Config)) *Broker {
	t.Helper()
	return startBrokerLogged(t, fs, dataDir, mutate, nil)
}

// startBrokerLogged is startBroker with the broker logging to log (the
// test's log when nil).
func startBrokerLogged(t testing.TB, fs vfs.FS, dataDir string, mutate func(*Config), log *zap.Logger) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg.DataDir = dataDir
	if mutate != nil {
		mutate(&cfg)
	}
	if log == nil {
		log = zap.NewNop() // benchmarks print what tests log
		if _, bench := t.(*testing.B); !bench {
			log = zaptest.NewLogger(t)
		}
	}
	b, err := New(cfg, Options{FS: fs, Logger: log})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close broker: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return b
}

// stopBroker closes b, as a clean shutdown does, failing t if that takes
// over 10 s or fails; for tests that restart a broker on the same data dir.
func stopBroker(t testing.TB, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func newClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr().String())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	if err := kerr.ErrorForCode(createTopicCode(t, cl, name, partitions, configs)); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// createTopicCode creates a topic and returns the answer's error code.
func createTopicCode(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]string) int16 {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		v := v
		c.Value = &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].ErrorCode
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			b := startBroker(t, nil, "", nil)
			cl := newClient(t, b, kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			createTopic(t, cl, "t", 3, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const n = 3000
			for i := 0; i < n; i++ {
				r := &kgo.Record{Topic: "t", Partition: int32(i % 3), Key: []byte(strconv.Itoa(i % 3)), Value: []byte(strconv.Itoa(i))}
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			consumer := newClient(t, b, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			next := map[int32]int{}
			got := 0
			for got < n {
				fs := consumer.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("poll: %v (got %d)", err, got)
				}
				fs.EachRecord(func(r *kgo.Record) {
					v, _ := strconv.Atoi(string(r.Value))
					if v%3 != int(r.Partition) || v/3 != next[r.Partition] {
						t.Fatalf("partition %d offset %d: value %d, want %d", r.Partition, r.Offset, v, next[r.Partition]*3+int(r.Partition))
					}
					if r.Offset != int64(next[r.Partition]) {
						t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
					}
					next[r.Partition]++
					got++
				})
			}
		})
	}
}

func TestSecondBrokerOnSameDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	startBroker(t, nil, dir, nil)
	cfg := DefaultConfig()
	cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "", dir
	if b, err := New(cfg, Options{}); err == nil {
		b.Close(context.Background())
		t.Fatal("second broker opened a locked data dir")
	} else if !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
}
