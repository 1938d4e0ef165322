package e2e

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzDefaultProducerMillion produces 1,000,000 records across 8
// partitions with franz-go's default producer (idempotent, acks=all, default
// partitioner) while a consumer reads concurrently, then checks the history:
// every acknowledged record read exactly once, at its acknowledged offset,
// in produce order per partition.
func TestFranzDefaultProducerMillion(t *testing.T) {
	t.Parallel()
	const (
		topic      = "million"
		partitions = 8
		total      = 1_000_000
	)
	n := total
	if testing.Short() {
		n = 100_000
	}
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)

	// The consumer runs concurrently with the producer so fetches long-poll
	// and are woken by appends.
	type consumed struct {
		reads []read
	}
	done := make(chan consumed, 1)
	exited := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer func() {
		cancel()
		<-exited // the consumer goroutine must not outlive the test
	}()
	consumer := newClient(t, b.Addr,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	go func() { // owned by this test: ends when n records arrived or ctx ends
		defer close(exited)
		reads := make([]read, 0, n)
		for len(reads) < n {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				break
			}
			fs.EachError(func(tp string, p int32, err error) {
				t.Errorf("consume %s/%d: %v", tp, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) {
				reads = append(reads, read{partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			})
		}
		done <- consumed{reads: reads}
	}()

	producer := b.Client() // franz-go defaults: idempotent, acks=all
	h := newHistory()
	start := time.Now()
	for i := 0; i < n; i++ {
		seq := int64(i)
		r := &kgo.Record{Topic: topic, Value: []byte(strconv.FormatInt(seq, 10))}
		producer.Produce(ctx, r, func(r *kgo.Record, err error) {
			h.ack(r.Partition, r.Offset, seq, err)
		})
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatalf("flush producer: %v", err)
	}
	t.Logf("produced %d records in %v", n, time.Since(start))

	var c consumed
	select {
	case c = <-done:
	case <-ctx.Done():
		t.Fatalf("consumer did not finish: %v", ctx.Err())
	}
	t.Logf("consumed %d records in %v", len(c.reads), time.Since(start))

	if got := h.ackedCount(); got != n {
		t.Errorf("acknowledged %d records, want %d", got, n)
	}
	if len(c.reads) != n {
		t.Errorf("read %d records, want %d", len(c.reads), n)
	}
	for _, p := range h.check(c.reads) {
		t.Error(p)
	}

	// Every partition got records and the log end offsets add up.
	var sum int64
	for p := int32(0); p < partitions; p++ {
		end, code := listOffset(t, admin, topic, p, -1)
		if code != 0 {
			t.Fatalf("list offsets p%d: error code %d", p, code)
		}
		if end == 0 {
			t.Errorf("partition %d got no records", p)
		}
		sum += end
	}
	if sum != int64(n) {
		t.Errorf("sum of log end offsets = %d, want %d", sum, n)
	}
}

// TestConcurrentProducers has eight clients of three kinds produce into one
// topic at once (franz-go defaults: idempotent, acks=all; acks=1 without
// idempotence, lz4; idempotent with zstd and a 5 ms linger), keyed so that
// every client writes to every partition, while a consumer reads
// concurrently. For each client, every acknowledged record is read exactly
// once, at its acknowledged offset, in that client's order per partition,
// and the partitions hold nothing else.
func TestConcurrentProducers(t *testing.T) {
	t.Parallel()
	const (
		topic      = "concurrent"
		partitions = 6
		producers  = 8
		seqBase    = 10_000_000 // seq = producer*seqBase + i
	)
	perProducer := 25_000
	if testing.Short() {
		perProducer = 5_000
	}
	total := producers * perProducer
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reads := make(chan []read, 1)
	exited := make(chan struct{})
	defer func() {
		cancel()
		<-exited // the consumer goroutine must not outlive the test
	}()
	consumer := newClient(t, b.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	go func() { // owned by this test: ends when every record arrived or ctx ends
		defer close(exited)
		var out []read
		for len(out) < total {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				break
			}
			fs.EachError(func(tp string, p int32, err error) { t.Errorf("consume %s/%d: %v", tp, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				out = append(out, read{partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			})
		}
		reads <- out
	}()

	kinds := [][]kgo.Opt{
		nil, // franz-go defaults
		{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(kgo.Lz4Compression())},
		{kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerLinger(5 * time.Millisecond)},
		nil,
	}
	histories := make([]*history, producers)
	var wg sync.WaitGroup
	for p := range producers {
		histories[p] = newHistory()
		cl := newClient(t, b.Addr, kinds[p%len(kinds)]...)
		h := histories[p]
		wg.Go(func() {
			for i := range perProducer {
				seq := int64(p*seqBase + i)
				r := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 97)), Value: []byte(strconv.FormatInt(seq, 10))}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) { h.ack(r.Partition, r.Offset, seq, err) })
			}
			if err := cl.Flush(ctx); err != nil {
				t.Errorf("producer %d: flush: %v", p, err)
			}
		})
	}
	wg.Wait()

	var all []read
	select {
	case all = <-reads:
	case <-ctx.Done():
		t.Fatalf("consumer did not finish: %v", ctx.Err())
	}
	if len(all) != total {
		t.Errorf("read %d records, want %d", len(all), total)
	}
	byProducer := make([][]read, producers)
	for _, r := range all {
		seq, err := strconv.ParseInt(r.value, 10, 64)
		if err != nil || seq/seqBase >= producers {
			t.Fatalf("p%d@%d: unexpected value %q", r.partition, r.offset, r.value)
		}
		byProducer[seq/seqBase] = append(byProducer[seq/seqBase], r)
	}
	for p, h := range histories {
		if got := h.ackedCount(); got != perProducer {
			t.Errorf("producer %d: %d records acknowledged, want %d", p, got, perProducer)
		}
		for _, problem := range h.check(byProducer[p]) {
			t.Errorf("producer %d: %s", p, problem)
		}
	}
	var sum int64
	for p := int32(0); p < partitions; p++ {
		end, code := listOffset(t, admin, topic, p, -1)
		if code != 0 {
			t.Fatalf("list offsets p%d: error code %d", p, code)
		}
		sum += end
	}
	if sum != int64(total) {
		t.Errorf("sum of log end offsets = %d, want %d", sum, total)
	}
}
