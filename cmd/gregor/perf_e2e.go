package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errRecordsMissing means perf e2e did not get back every record it
// produced.
var errRecordsMissing = errors.New("records missing")

// e2eStampSize is the bytes at the start of each e2e value holding the
// send time: nanoseconds since the run's monotonic base, little endian.
const e2eStampSize = 8

// runPerfE2E produces at a fixed rate for a duration while a consumer in
// the same process reads the topic from its end; every value carries its
// send time, so the consumer measures produce-to-consume latency on one
// monotonic clock. Records sent during --warmup are consumed but not
// measured.
func runPerfE2E(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("perf e2e", "", stderr)
	pf := addPerfFlags(fs)
	// No lingering by default: e2e measures the cluster's latency, not the
	// client's batching delay.
	noLinger := time.Duration(0)
	prf := addProducerFlags(fs, &noLinger)
	rate := fs.Float64("rate", 5000, "records per second")
	duration := fs.Duration("duration", 20*time.Second, "how long to measure")
	warmup := fs.Duration("warmup", time.Second, "produce this long before measuring")
	recordSize := fs.Int("record-size", 100, fmt.Sprintf("value size in bytes (at least %d)", e2eStampSize))
	fetchMaxWait := fs.Duration("fetch-max-wait", 0, "how long the broker may hold a fetch waiting for data (0: client default)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long to wait for the last records after producing")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case pf.topic == "":
		return usagef("--topic is required")
	case *rate <= 0:
		return usagef("--rate must be positive")
	case *duration <= 0:
		return usagef("--duration must be positive")
	case *warmup < 0:
		return usagef("--warmup must not be negative")
	case *recordSize < e2eStampSize || *recordSize > maxPerfRecordSize:
		return usagef("--record-size %d out of range (at least %d)", *recordSize, e2eStampSize)
	case *drain <= 0:
		return usagef("--drain-timeout must be positive")
	}
	opts, err := prf.options(fs)
	if err != nil {
		return err
	}
	if _, err := prf.prepareTopic(ctx, pf.clientFlags, pf.topic); err != nil {
		return err
	}
	plan, err := planConsume(ctx, pf.clientFlags, pf.topic, -1, startSpec{kind: startEnd}, false)
	if err != nil {
		return err
	}

	consumerOpts := []kgo.Opt{kgo.ConsumePartitions(plan.kgoOffsets(nil))}
	if *fetchMaxWait > 0 {
		consumerOpts = append(consumerOpts, kgo.FetchMaxWait(*fetchMaxWait))
	}
	consumerClient, err := pf.newClient(consumerOpts...)
	if err != nil {
		return err
	}
	defer consumerClient.Close()
	base := time.Now()
	acks := &produceHooks{requests: new(atomic.Int64), base: base}
	producerClient, err := pf.newClient(append(opts, kgo.DefaultProduceTopic(pf.topic), kgo.WithHooks(acks))...)
	if err != nil {
		return err
	}
	defer producerClient.Close()

	r := &e2eReader{
		cl:          consumerClient,
		base:        base,
		measureFrom: *warmup,
	}
	var produced perfCounters // acknowledged records, all of them
	var produceLatency latencyHistogram
	cpu, cpuErr := startBrokerCPU(pf.procRoot, pf.brokerPID, pf.seeds())
	prog := startProgress(stderr, "perf e2e", pf.progressEvery, &r.counters, &r.latency)
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.run(readCtx) })
	defer func() {
		stopReading()
		wg.Wait()
	}()

	// Produce.
	w := &perfProducer{
		cl:       producerClient,
		hooks:    acks,
		pace:     newPacer(*rate),
		values:   newPayloads(*recordSize, true, 0),
		counters: &produced,
		latency:  &produceLatency,
	}
	stopAt := base.Add(*warmup + *duration)
	for time.Now().Before(stopAt) {
		if w.pace.wait(ctx) != nil {
			break
		}
		v := w.values.next()
		binary.LittleEndian.PutUint64(v, uint64(time.Since(base)))
		w.produce(ctx, v)
	}
	flushErr := producerClient.Flush(ctx)
	measured := time.Since(base) - *warmup

	// Wait for the consumer to see every acknowledged record.
	drainDeadline := time.Now().Add(*drain)
	for r.received.Load() < produced.records.Load() && time.Now().Before(drainDeadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	stopReading()
	wg.Wait()
	prog.Stop()

	s := &perfSummary{
		Command:        "e2e",
		Topic:          pf.topic,
		Records:        r.counters.records.Load(),
		Bytes:          r.counters.bytes.Load(),
		Errors:         produced.errors.Load() + r.counters.errors.Load(),
		RecordSize:     *recordSize,
		Partitions:     len(plan.start),
		Acks:           prf.acks,
		Compression:    prf.compression,
		ProduceLatency: produceLatency.summary(),
		E2ELatency:     r.latency.summary(),
	}
	s.finish(min(measured, *duration), cpu, cpuErr)
	if err := s.write(stdout, pf.json); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case produced.errors.Load() > 0:
		return fmt.Errorf("%d record(s) failed to produce; first error: %w", produced.errors.Load(), produced.firstErr())
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	case r.counters.errors.Load() > 0:
		return r.counters.firstErr()
	case r.received.Load() < produced.records.Load():
		return fmt.Errorf("%w: produced %d, consumed %d within %s", errRecordsMissing,
			produced.records.Load(), r.received.Load(), *drain)
	}
	return nil
}

// e2eReader consumes the e2e records and measures their latency.
type e2eReader struct {
	cl          *kgo.Client
	base        time.Time
	measureFrom time.Duration // records stamped earlier are warmup

	received atomic.Int64     // all records, warmup included
	counters perfCounters     // measured records
	latency  latencyHistogram // of measured records
}

// run consumes until ctx is done.
func (r *e2eReader) run(ctx context.Context) {
	for {
		fetches := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		now := time.Since(r.base)
		fetches.EachError(func(topic string, partition int32, err error) {
			r.counters.fail(fmt.Errorf("fetch %s[%d]: %w", topic, partition, err))
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			r.received.Add(1)
			if len(rec.Value) < e2eStampSize {
				return
			}
			sent := time.Duration(binary.LittleEndian.Uint64(rec.Value))
			if sent < r.measureFrom {
				return
			}
			r.latency.record(now - sent)
			r.counters.records.Add(1)
			r.counters.bytes.Add(int64(len(rec.Key) + len(rec.Value)))
		})
	}
}
