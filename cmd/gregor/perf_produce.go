package main

import (
	"context"
	"fmt"
	"io"
	"os"
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
	prf := addProducerFlags(fs, nil)
	records := fs.Int64("records", 0, "number of records to produce (required)")
	recordSize := fs.Int("record-size", 100, "value size in bytes")
	rate := fs.Float64("rate", 0, "records per second over all producers (0: as fast as possible)")
	producers := fs.Int("producers", 1, "number of producing clients")
	txnRecords := fs.Int64("transaction-records", 0, "produce in transactions of this many records per producer, each committed (0: no transactions; needs --acks all)")
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
	case *txnRecords < 0:
		return usagef("--transaction-records must not be negative")
	case *txnRecords > 0 && prf.acks != "all" && prf.acks != "-1":
		return usagef("--transaction-records needs --acks all")
	}
	opts, err := prf.options(fs)
	if err != nil {
		return err
	}
	partitions, err := prf.prepareTopic(ctx, pf.clientFlags, pf.topic)
	if err != nil {
		return err
	}
	stderr = &syncWriter{w: stderr} // the progress line and conn print to it
	conn := newConnReporter(stderr)
	if isTerminal(stderr) {
		conn.prefix = "\r\x1b[K" // over the progress line
	}
	defer conn.stop()
	var requests atomic.Int64
	start := time.Now()
	opts = append(opts, kgo.DefaultProduceTopic(pf.topic), kgo.WithHooks(conn), kgo.WithLogger(conn))
	clients := make([]*kgo.Client, 0, *producers)
	acks := make([]*produceHooks, 0, *producers)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range *producers {
		h := &produceHooks{requests: &requests, base: start}
		copts := append(opts, kgo.WithHooks(h))
		if *txnRecords > 0 {
			copts = append(copts, kgo.TransactionalID(fmt.Sprintf("gregor-perf-%d-%d-%d", os.Getpid(), start.UnixNano(), i)))
		}
		cl, err := pf.newClient(copts...)
		if err != nil {
			return err
		}
		clients = append(clients, cl)
		acks = append(acks, h)
	}

	var (
		counters perfCounters
		latency  latencyHistogram
	)
	self := selfCPU()
	cpu, cpuErr := startBrokerCPU(pf.procRoot, pf.brokerPID, pf.seeds())
	prog := startProgress(stderr, "perf produce", pf.progressEvery, &counters, &latency)
	start = time.Now()
	var wg sync.WaitGroup
	for i, cl := range clients {
		n := *records / int64(len(clients))
		if int64(i) < *records%int64(len(clients)) {
			n++
		}
		w := &perfProducer{
			cl:       cl,
			hooks:    acks[i],
			n:        n,
			pace:     newPacer(*rate / float64(len(clients))),
			values:   newPayloads(*recordSize, prf.compression != "none", i*(1<<20)),
			counters: &counters,
			latency:  &latency,
			txnSize:  *txnRecords,
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
	s.Transactions = counters.txns.Load()
	if n := requests.Load(); n > 0 {
		s.ProduceRequests = n
		s.RecordsPerRequest = float64(s.Records) / float64(n)
	}
	s.finish(elapsed, cpu, cpuErr)
	s.setClientCPU(self)
	if err := s.write(stdout, pf.json); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d record(s) failed; first error: %w", s.Errors, conn.explainTimeout(counters.firstErr()))
	}
	return ctx.Err()
}

// produceHooks are one producing client's kgo hooks. They count produce
// requests (how many records each carried shapes the broker's cost per
// record) and note when the client last read a produce response, so that
// acknowledgements need no clock reading of their own: on a VM a clock
// reading costs tens of nanoseconds, a noticeable share of a client's cost
// per 100-byte record.
type produceHooks struct {
	requests *atomic.Int64 // shared by all clients of a run
	base     time.Time
	lastAck  atomic.Int64 // when the last produce response was read, ns after base
}

func (h *produceHooks) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		h.requests.Add(1)
	}
}

// OnBrokerRead runs once a response is read and before the client handles
// it, so before the promises of the records it acknowledges.
func (h *produceHooks) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil {
		h.lastAck.Store(int64(time.Since(h.base)))
	}
}

// since returns the time from base until the client's latest produce
// response was read, less enqueued. In a record's promise that is at least
// the time until its own acknowledgement was read, and at most the time
// until the promise runs.
func (h *produceHooks) since(enqueued time.Duration) time.Duration {
	return time.Duration(h.lastAck.Load()) - enqueued
}

// stampedRecord is a record and the time it was handed to the client, in
// one allocation. The record's Context is the stamp, so its promise finds
// the time again. (The record's Timestamp cannot serve: the client
// truncates it to milliseconds.)
type stampedRecord struct {
	rec   kgo.Record
	stamp recordStamp
}

type recordStamp struct {
	context.Context
	enqueued time.Duration // after the producer's hooks' base
}

// perfProducer produces n records through one client.
type perfProducer struct {
	cl       *kgo.Client
	hooks    *produceHooks // installed on cl
	n        int64
	pace     *pacer
	values   *payloads
	counters *perfCounters
	latency  *latencyHistogram
	ack      func(*kgo.Record, error) // onAck, made once
	// txnSize, if positive, is how many records go in each transaction.
	txnSize int64
}

// run produces the records and flushes; failures are counted, not
// returned. With txnSize, every txnSize records (and the rest at the end)
// are one transaction, committed once flushed.
func (p *perfProducer) run(ctx context.Context) {
	inTxn := int64(0)
	for range p.n {
		if p.pace.wait(ctx) != nil {
			break
		}
		if p.txnSize > 0 && inTxn == 0 {
			if err := p.cl.BeginTransaction(); err != nil {
				p.counters.fail(fmt.Errorf("begin transaction: %w", err))
				return
			}
		}
		p.produce(ctx, p.values.next())
		if inTxn++; p.txnSize > 0 && inTxn == p.txnSize {
			if !p.commit(ctx) {
				return
			}
			inTxn = 0
		}
	}
	if p.txnSize > 0 && inTxn > 0 {
		p.commit(ctx)
		return
	}
	if err := p.cl.Flush(ctx); err != nil && ctx.Err() == nil {
		p.counters.fail(fmt.Errorf("flush: %w", err))
	}
}

// commit flushes and commits the open transaction.
func (p *perfProducer) commit(ctx context.Context) bool {
	if err := p.cl.Flush(ctx); err != nil {
		p.counters.fail(fmt.Errorf("flush: %w", err))
		return false
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.counters.fail(fmt.Errorf("commit transaction: %w", err))
		return false
	}
	p.counters.txns.Add(1)
	return true
}

// produce hands a record of value to the client, stamped with the time it
// does so: one clock reading gives both the record's CreateTime (which the
// client would otherwise read itself) and its enqueue time.
func (p *perfProducer) produce(ctx context.Context, value []byte) {
	if p.ack == nil {
		p.ack = p.onAck
	}
	sr := &stampedRecord{stamp: recordStamp{Context: ctx, enqueued: time.Since(p.hooks.base)}}
	sr.rec = kgo.Record{Value: value, Timestamp: p.hooks.base.Add(sr.stamp.enqueued), Context: &sr.stamp}
	p.cl.Produce(ctx, &sr.rec, p.ack)
}

// onAck accounts for a record's outcome. The client runs one client's
// promises one at a time.
func (p *perfProducer) onAck(r *kgo.Record, err error) {
	if err != nil {
		p.counters.fail(err)
		return
	}
	if st, ok := r.Context.(*recordStamp); ok {
		p.latency.record(p.hooks.since(st.enqueued))
	}
	p.counters.records.Add(1)
	p.counters.bytes.Add(int64(len(r.Key) + len(r.Value)))
}
