package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errConsumeStalled means perf consume saw no record for --timeout.
var errConsumeStalled = errors.New("no records arrived")

// runPerfConsume reads a topic from the start of every partition until it
// has --records records (default: all the topic held when it started) and
// reports throughput.
func runPerfConsume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("perf consume", "", stderr)
	pf := addPerfFlags(fs)
	records := fs.Int64("records", 0, "stop after this many records (0: all records present at the start)")
	fetchMaxBytes := fs.Int("fetch-max-bytes", 0, "most bytes a fetch response may carry (0: client default, 50 MiB)")
	fetchMaxPartitionBytes := fs.Int("fetch-max-partition-bytes", 0, "most bytes a fetch may carry per partition (0: client default, 1 MiB)")
	idle := fs.Duration("timeout", 10*time.Second, "fail when no record arrives for this long")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case pf.topic == "":
		return usagef("--topic is required")
	case *records < 0:
		return usagef("--records must not be negative")
	case *fetchMaxBytes < 0 || *fetchMaxBytes > 1<<30:
		return usagef("--fetch-max-bytes %d out of range", *fetchMaxBytes)
	case *fetchMaxPartitionBytes < 0 || *fetchMaxPartitionBytes > 1<<30:
		return usagef("--fetch-max-partition-bytes %d out of range", *fetchMaxPartitionBytes)
	case *idle <= 0:
		return usagef("--timeout must be positive")
	}

	plan, err := planConsume(ctx, pf.clientFlags, pf.topic, -1, startSpec{kind: startBeginning}, false)
	if err != nil {
		return err
	}
	target := *records
	if target == 0 {
		for p, start := range plan.start {
			target += plan.end[p] - start
		}
		if target == 0 {
			return fmt.Errorf("topic %s is empty", pf.topic)
		}
	}
	opts := []kgo.Opt{kgo.ConsumePartitions(plan.kgoOffsets(nil))}
	if *fetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(int32(*fetchMaxBytes)))
	}
	if *fetchMaxPartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(*fetchMaxPartitionBytes)))
	}
	self := selfCPU()
	cpu, cpuErr := startBrokerCPU(pf.procRoot, pf.brokerPID, pf.seeds())
	cl, err := pf.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var counters perfCounters
	prog := startProgress(stderr, "perf consume", pf.progressEvery, &counters, nil)
	start := time.Now()
	runErr := consumeCount(ctx, cl, target, *idle, &counters)
	elapsed := time.Since(start)
	prog.Stop()

	s := &perfSummary{
		Command:    "consume",
		Topic:      pf.topic,
		Records:    counters.records.Load(),
		Bytes:      counters.bytes.Load(),
		Errors:     counters.errors.Load(),
		Partitions: len(plan.start),
	}
	s.finish(elapsed, cpu, cpuErr)
	s.setClientCPU(self)
	if err := s.write(stdout, pf.json); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return runErr
}

// consumeCount polls until target records arrived, failing when none
// arrives for idle or a fetch fails.
func consumeCount(ctx context.Context, cl *kgo.Client, target int64, idle time.Duration, c *perfCounters) error {
	for c.records.Load() < target {
		pollCtx, cancel := context.WithTimeout(ctx, idle)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		// Records past the target arrived in the last fetch; they are
		// not counted, so that --records N reports N.
		var n, bytes int64
		want := target - c.records.Load()
		fetches.EachRecord(func(r *kgo.Record) {
			if n < want {
				n++
				bytes += int64(len(r.Key) + len(r.Value))
			}
		})
		c.records.Add(n)
		c.bytes.Add(bytes)
		if fetchErr := firstFetchError(fetches, context.DeadlineExceeded); fetchErr != nil {
			c.fail(fetchErr)
			return fetchErr
		}
		if n == 0 && pollCtx.Err() != nil {
			return fmt.Errorf("%w for %s (have %d of %d)", errConsumeStalled, idle, c.records.Load(), target)
		}
	}
	return nil
}
