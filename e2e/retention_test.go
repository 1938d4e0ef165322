package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// retentionBroker starts a broker that checks retention every 200ms and
// deletes segment files without delay.
func retentionBroker(t *testing.T) *Broker {
	return StartBroker(t, WithSet(
		"log.retention.check.interval.ms=200",
		"log.segment.delete.delay.ms=0",
	))
}

// TestRetentionBytesWhileConsuming produces continuously into a topic with
// 64 KiB segments and retention.bytes of 256 KiB while a consumer reads
// along. Old segments must be deleted (files gone, log start offset
// advancing) and a fetch below the log start must get OFFSET_OUT_OF_RANGE.
func TestRetentionBytesWhileConsuming(t *testing.T) {
	t.Parallel()
	const topic = "retain-bytes"
	b := retentionBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, 1, map[string]string{
		"segment.bytes":   "65536",
		"retention.bytes": "262144",
		"retention.ms":    "-1",
	})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	// Producer: 1 KiB values, 32 at a time, until told to stop.
	var (
		prodMu  sync.Mutex
		prodErr error
		acked   int64
	)
	producer := manualClient(t, b.Addr)
	wg.Add(1)
	go func() { // owned by this test: ends on cancel
		defer wg.Done()
		val := []byte(strings.Repeat("r", 1024))
		recs := make([]*kgo.Record, 32)
		for ctx.Err() == nil {
			for i := range recs {
				recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: val}
			}
			results := producer.ProduceSync(ctx, recs...)
			prodMu.Lock()
			for _, r := range results {
				if r.Err != nil && !errors.Is(r.Err, context.Canceled) && prodErr == nil {
					prodErr = r.Err
				}
				if r.Err == nil && r.Record.Offset+1 > acked {
					acked = r.Record.Offset + 1
				}
			}
			prodMu.Unlock()
		}
	}()

	// Consumer reading along: its offsets must only go forward (they may
	// jump when it falls behind retention and resets to the log start).
	var (
		consMu   sync.Mutex
		consErr  error
		consumed int64
	)
	consumer := newClient(t, b.Addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(100*time.Millisecond))
	wg.Add(1)
	go func() { // owned by this test: ends on cancel
		defer wg.Done()
		next := int64(-1)
		for ctx.Err() == nil {
			fs := consumer.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				consMu.Lock()
				defer consMu.Unlock()
				if next >= 0 && r.Offset < next && consErr == nil {
					consErr = fmt.Errorf("consumer read offset %d after %d", r.Offset, next-1)
				}
				next = r.Offset + 1
				consumed++
			})
		}
	}()

	// Retention must delete the first segment and advance the log start.
	var logStart int64
	eventually(t, 60*time.Second, "log start offset advances", func() error {
		off, code := listOffset(t, admin, topic, 0, -2)
		if code != 0 {
			return kerr.ErrorForCode(code)
		}
		if off <= 0 {
			return fmt.Errorf("earliest offset still %d: %w", off, errNotYet)
		}
		logStart = off
		return nil
	})
	eventually(t, 30*time.Second, "first segment file deleted", func() error {
		first := filepath.Join(partitionDir(b.DataDir, topic, 0), fmt.Sprintf("%020d.log", 0))
		segs, err := segmentFiles(b.DataDir, topic, 0)
		if err != nil {
			return err
		}
		for _, s := range segs {
			if s == first {
				return fmt.Errorf("%s still present: %w", first, errNotYet)
			}
		}
		return nil
	})
	// Let it run through several more deletions while the consumer reads.
	eventually(t, 60*time.Second, "log start keeps advancing", func() error {
		off, code := listOffset(t, admin, topic, 0, -2)
		if code != 0 {
			return kerr.ErrorForCode(code)
		}
		if off < logStart+3*64 { // at least ~3 more 64 KiB segments of 1 KiB records
			return fmt.Errorf("earliest %d, started at %d: %w", off, logStart, errNotYet)
		}
		logStart = off
		return nil
	})

	// A consumer that is behind (offset 0) gets OFFSET_OUT_OF_RANGE.
	res := rawFetch(t, admin, topic, 0, 0)
	if res.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at offset 0 after retention: error %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(res.ErrorCode))
	}
	// Fetching at the current log start still works.
	start, _ := listOffset(t, admin, topic, 0, -2)
	res = rawFetch(t, admin, topic, 0, start)
	if res.ErrorCode != 0 || len(res.Batches) == 0 {
		t.Fatalf("fetch at log start %d: error %v, %d batches", start, kerr.ErrorForCode(res.ErrorCode), len(res.Batches))
	}
	if res.LogStart < start {
		t.Errorf("fetch reports log start %d, ListOffsets earliest said %d", res.LogStart, start)
	}
	// The total size on disk stays bounded by retention (plus the active
	// segment and one check interval of slack).
	segs, _ := segmentFiles(b.DataDir, topic, 0)
	if len(segs) > 16 {
		t.Errorf("%d segment files on disk; retention.bytes should keep about 5", len(segs))
	}

	cancel()
	wg.Wait()
	prodMu.Lock()
	if prodErr != nil {
		t.Errorf("producer: %v", prodErr)
	}
	t.Logf("acknowledged %d records; log start %d", acked, start)
	prodMu.Unlock()
	consMu.Lock()
	if consErr != nil {
		t.Errorf("consumer: %v", consErr)
	}
	if consumed == 0 {
		t.Errorf("consumer read nothing while retention ran")
	}
	consMu.Unlock()
}

// TestRetentionMs: segments whose records are older than retention.ms are
// deleted, and reads below the new log start get OFFSET_OUT_OF_RANGE.
func TestRetentionMs(t *testing.T) {
	t.Parallel()
	const topic = "retain-ms"
	b := retentionBroker(t)
	cl := manualClient(t, b.Addr, kgo.ProducerLinger(0))
	createTopic(t, cl, topic, 1, map[string]string{
		"segment.bytes": "16384",
		"retention.ms":  "1000",
	})
	// Several segments' worth, then wait for them to age out. The active
	// segment is never deleted, so roll one more in after the wait.
	big := strings.Repeat("m", 1000)
	var vals []string
	for i := 0; i < 100; i++ {
		vals = append(vals, fmt.Sprintf("%03d-%s", i, big))
	}
	produceSync(t, cl, topic, 0, vals...)
	eventually(t, 30*time.Second, "old segments deleted by retention.ms", func() error {
		off, code := listOffset(t, cl, topic, 0, -2)
		if code != 0 {
			return kerr.ErrorForCode(code)
		}
		if off == 0 {
			return fmt.Errorf("earliest still 0: %w", errNotYet)
		}
		return nil
	})
	if res := rawFetch(t, cl, topic, 0, 0); res.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at 0: error %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(res.ErrorCode))
	}
	if end, _ := listOffset(t, cl, topic, 0, -1); end != 100 {
		t.Fatalf("latest offset %d, want 100 (retention must not change the log end)", end)
	}
}

// TestDeleteRecordsOutOfRange: after DeleteRecords, ListOffsets earliest
// reports the new log start, fetches below it get OFFSET_OUT_OF_RANGE and
// fetches at it return the remaining records. The log start survives a
// restart.
func TestDeleteRecordsOutOfRange(t *testing.T) {
	t.Parallel()
	const topic = "delrec"
	b := StartBroker(t)
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, topic, 2, nil)
	want := seqValues("d", 0, 100)
	for i := 0; i < 10; i++ { // several batches
		produceSync(t, cl, topic, 0, want[i*10:(i+1)*10]...)
	}

	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition = 0
	rp.Offset = 55 // mid-batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("delete records: malformed response")
	}
	dp := resp.Topics[0].Partitions[0]
	if dp.ErrorCode != 0 || dp.LowWatermark != 55 {
		t.Fatalf("delete records: error %v, low watermark %d, want 55", kerr.ErrorForCode(dp.ErrorCode), dp.LowWatermark)
	}

	check := func() {
		t.Helper()
		if off, code := listOffset(t, cl, topic, 0, -2); code != 0 || off != 55 {
			t.Fatalf("earliest offset %d (code %d), want 55", off, code)
		}
		for _, at := range []int64{0, 10, 54} {
			if res := rawFetch(t, cl, topic, 0, at); res.ErrorCode != kerr.OffsetOutOfRange.Code {
				t.Fatalf("fetch at %d below log start: error %v, want OFFSET_OUT_OF_RANGE", at, kerr.ErrorForCode(res.ErrorCode))
			}
		}
		if res := rawFetch(t, cl, topic, 0, 200); res.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Fatalf("fetch at 200 beyond log end: error %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(res.ErrorCode))
		}
		checkRecords(t, consumePartition(t, b.Addr, topic, 0, 55, 45, 30*time.Second), want[55:], 55)
	}
	check()
	b.Kill9()
	b.Start()
	check()
	b.Restart()
	check()
}
