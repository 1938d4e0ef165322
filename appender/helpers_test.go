package appender

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker"
)

// testBroker is an in-process gregor broker on a loopback port.
type testBroker struct {
	t    testing.TB
	addr string
	dir  string
	b    *broker.Broker
	done chan error
}

// startBroker starts an in-process broker; it is closed when the test ends.
// props are Kafka broker properties.
func startBroker(t testing.TB, props map[string]string) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, addr: "127.0.0.1:0", dir: t.TempDir()}
	tb.start(props)
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBroker) start(props map[string]string) {
	tb.t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen = tb.addr
	cfg.HTTPAddr = ""
	cfg.DataDir = tb.dir
	cfg.AutoCreateTopics = false
	if props != nil {
		cfg.Props = props
	}
	b, err := broker.New(cfg, broker.Options{})
	if err != nil {
		tb.t.Fatalf("start broker: %v", err)
	}
	tb.b = b
	tb.addr = b.Addr().String()
	tb.done = make(chan error, 1)
	go func() { tb.done <- b.Serve() }()
}

// stop closes the broker (idempotent).
func (tb *testBroker) stop() {
	if tb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.b.Close(ctx); err != nil {
		tb.t.Errorf("close broker: %v", err)
	}
	<-tb.done
	tb.b = nil
}

// createTopic creates topic with the given partitions and configs.
func createTopic(t testing.TB, addr, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		c.Value = &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// consumeAll reads topic from the start until n records arrived or the
// timeout passed.
func consumeAll(t testing.TB, addr, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// waitFor polls cond until it is true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closeCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
