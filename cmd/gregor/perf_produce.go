package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runPerfProduce produces --records records of --record-size bytes from
// --producers clients, each at its share of --rate (0: as fast as the
// cluster takes them), and reports throughput and produce latency (from
// handing a record to the client until the cluster acknowledged it).
func runPerfProduce(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("perf produce", "", stderr)
	pf := addPerfFlags(fs)
	prf := addProducerFlags(fs)
	records := fs.Int64("records", 0, "number of records to produce (required)")
	recordSize := fs.Int("record-size", 100, "value size in bytes")
	rate := fs.Float64("rate", 0, "records per second over all producers (0: as fast as possible)")
	producers := fs.Int("producers", 1, "number of producing clients")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case pf.topic == "":
		return usagef("--topic is required")
	case *records <= 0:
		return usagef("--records must be positive")
	case *recordSize < 0 || *recordSize > maxPerfRecordSize:
		return usagef("--record-size %d out of range", *recordSize)
	case *rate < 0:
		return usagef("--rate must not be negative")
	case *producers < 1 || *producers > 1024:
		return usagef("--producers %d out of range", *producers)
	}
	opts, err := prf.options(fs)
	if err != nil {
		return err
	}
	partitions, err := prf.prepareTopic(ctx, pf.clientFlags, pf.topic)
	if err != nil {
		return err
	}
	var requests produceRequestCounter
	opts = append(opts, kgo.DefaultProduceTopic(pf.topic), kgo.WithHooks(&requests))
	clients := make([]*kgo.Client, 0, *producers)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for range *producers {
		cl, err := pf.newClient(opts...)
		if err != nil {
			return err
		}
		clients = append(clients, cl)
	}

	var (
		counters perfCounters
		latency  latencyHistogram
	)
	cpu, cpuErr := startBrokerCPU(pf.procRoot, pf.brokerPID, pf.seeds())
	prog := startProgress(stderr, "perf produce", pf.progressEvery, &counters, &latency)
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range clients {
		n := *records / int64(len(clients))
		if int64(i) < *records%int64(len(clients)) {
			n++
		}
		w := &perfProducer{
			cl:       cl,
			n:        n,
			pace:     newPacer(*rate / float64(len(clients))),
			values:   newPayloads(*recordSize, prf.compression != "none", i*(1<<20)),
			counters: &counters,
			latency:  &latency,
		}
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	prog.Stop()

	s := &perfSummary{
		Command:        "produce",
		Topic:          pf.topic,
		Records:        counters.records.Load(),
		Bytes:          counters.bytes.Load(),
		Errors:         counters.errors.Load(),
		RecordSize:     *recordSize,
		Partitions:     len(partitions),
		Acks:           prf.acks,
		Compression:    prf.compression,
		ProduceLatency: latency.summary(),
	}
	if n := requests.n.Load(); n > 0 {
		s.ProduceRequests = n
		s.RecordsPerRequest = float64(s.Records) / float64(n)
	}
	s.finish(elapsed, cpu, cpuErr)
	if err := s.write(stdout, pf.json); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d record(s) failed; first error: %w", s.Errors, counters.firstErr())
	}
	return ctx.Err()
}

// produceRequestCounter counts the produce requests the clients sent: how
// many records each carried shapes the broker's cost per record.
type produceRequestCounter struct{ n atomic.Int64 }

func (c *produceRequestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		c.n.Add(1)
	}
}

// perfProducer produces n records through one client.
type perfProducer struct {
	cl       *kgo.Client
	n        int64
	pace     *pacer
	values   *payloads
	counters *perfCounters
	latency  *latencyHistogram
}

// run produces the records and flushes; failures are counted, not
// returned.
func (p *perfProducer) run(ctx context.Context) {
	for range p.n {
		if p.pace.wait(ctx) != nil {
			break
		}
		r := &kgo.Record{Value: p.values.next()}
		p.produce(ctx, r)
	}
	if err := p.cl.Flush(ctx); err != nil && ctx.Err() == nil {
		p.counters.fail(fmt.Errorf("flush: %w", err))
	}
}

// produce hands r to the client and accounts for its outcome.
func (p *perfProducer) produce(ctx context.Context, r *kgo.Record) {
	enqueued := time.Now()
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			p.counters.fail(err)
			return
		}
		p.latency.record(time.Since(enqueued))
		p.counters.records.Add(1)
		p.counters.bytes.Add(int64(len(r.Key) + len(r.Value)))
	})
}
