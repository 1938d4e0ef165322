package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/internal/kafkatest"
)

// requestTimeout bounds every single admin request in these tests.
const requestTimeout = 15 * time.Second

// createTopic creates a topic with the given partition count and topic
// configs (nil for none) and fails the test unless it succeeds.
func createTopic(t testing.TB, cl *kgo.Client, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	if code := createTopicCode(t, cl, topic, partitions, configs); code != 0 {
		t.Fatalf("create topic %s: %v", topic, kerr.ErrorForCode(code))
	}
}

// createTopicCode sends CreateTopics for one topic and returns its error code.
func createTopicCode(t testing.TB, cl *kgo.Client, topic string, partitions int32, configs map[string]string) int16 {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(requestTimeout / time.Millisecond)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		v := configs[k]
		c.Value = &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: request: %v", topic, err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("create topic %s: %d topics in response, want 1", topic, len(resp.Topics))
	}
	return resp.Topics[0].ErrorCode
}

// metadataFor returns the Metadata response for the given topics (all
// topics when none are given) without auto-creating anything.
func metadataFor(t testing.TB, cl *kgo.Client, topics ...string) *kmsg.MetadataResponse {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if len(topics) > 0 {
		for _, tp := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp)
			req.Topics = append(req.Topics, rt)
		}
	} else {
		req.Topics = nil // all topics
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return resp
}

// listOffset sends ListOffsets for one partition at timestamp ts (-2
// earliest, -1 latest, otherwise a timestamp in ms) and returns the offset
// and error code.
func listOffset(t testing.TB, cl *kgo.Client, topic string, partition int32, ts int64) (int64, int16) {
	t.Helper()
	off, _, code := listOffsetTS(t, cl, topic, partition, ts)
	return off, code
}

// listOffsetTS is listOffset that also returns the found record's timestamp.
func listOffsetTS(t testing.TB, cl *kgo.Client, topic string, partition int32, ts int64) (offset, timestamp int64, code int16) {
	t.Helper()
	return listOffsetAt(t, cl, topic, partition, ts, 0)
}

// listOffsetAt sends ListOffsets for one partition at timestamp ts with
// the given isolation level (1: read_committed) and returns the answer.
func listOffsetAt(t testing.TB, cl *kgo.Client, topic string, partition int32, ts int64, isolation int8) (offset, timestamp int64, code int16) {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets %s/%d (isolation %d): %v", topic, partition, isolation, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("list offsets %s/%d (isolation %d): malformed response %+v", topic, partition, isolation, resp)
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.Timestamp, p.ErrorCode
}

// fetchResult is what rawFetch saw for one partition.
type fetchResult struct {
	ErrorCode     int16
	HighWatermark int64
	LogStart      int64
	Batches       []batchInfo
}

// batchInfo is the header of one record batch as found in fetched bytes.
type batchInfo struct {
	BaseOffset int64
	LastOffset int64
	Records    int32
	Codec      int8 // attributes bits 0-2: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
}

// rawFetch sends one Fetch request for a partition at offset with a short
// wait and returns the partition's result, decoding only batch headers.
func rawFetch(t testing.TB, cl *kgo.Client, topic string, partition int32, offset int64) fetchResult {
	t.Helper()
	p := fetchOne(t, cl, topic, partition, offset, 0)
	res := fetchResult{ErrorCode: p.ErrorCode, HighWatermark: p.HighWatermark, LogStart: p.LogStartOffset}
	res.Batches = parseBatchHeaders(p.RecordBatches)
	return res
}

// fetchOne sends one sessionless Fetch for a partition at offset with the
// given isolation level (1: read_committed) and a short wait, and returns
// the partition's answer; a failed request or a top-level error fails the
// test.
func fetchOne(t testing.TB, cl *kgo.Client, topic string, partition int32, offset int64, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 100
	req.MinBytes = 1
	req.MaxBytes = 8 << 20
	req.IsolationLevel = isolation
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rp.PartitionMaxBytes = 4 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	withTopicIDs(t, cl, req)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch %s/%d@%d (isolation %d): %v", topic, partition, offset, isolation, err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("fetch %s/%d@%d (isolation %d): top-level error %v", topic, partition, offset, isolation, kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s/%d@%d (isolation %d): malformed response", topic, partition, offset, isolation)
	}
	return resp.Topics[0].Partitions[0]
}

// parseBatchHeaders walks v2 record batches and returns their headers. A
// trailing partial batch (allowed in fetch responses) is ignored.
func parseBatchHeaders(b []byte) []batchInfo {
	var out []batchInfo
	for len(b) >= 61 {
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		length := int32(binary.BigEndian.Uint32(b[8:12]))
		if length < 49 || int(length)+12 > len(b) {
			break
		}
		lastDelta := int32(binary.BigEndian.Uint32(b[23:27]))
		n := int32(binary.BigEndian.Uint32(b[57:61]))
		codec := int8(binary.BigEndian.Uint16(b[21:23]) & 0x07)
		out = append(out, batchInfo{BaseOffset: base, LastOffset: base + int64(lastDelta), Records: n, Codec: codec})
		b = b[12+int(length):]
	}
	return out
}

// produceSync produces values to topic/partition with the client (which
// must use a partitioner that honours Record.Partition when partition >= 0)
// and returns the records with their assigned offsets.
func produceSync(t testing.TB, cl *kgo.Client, topic string, partition int32, values ...string) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
	return recs
}

// manualClient returns a default (idempotent, acks=all) producer that
// writes each record to the partition set in Record.Partition.
func manualClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, addr, append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
}

// consumePartition reads topic/partition from offset `from` until it has n
// records or the timeout passes, and returns what it got.
func consumePartition(t testing.TB, addr, topic string, partition int32, from int64, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := rawClient(t, addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {partition: kgo.NewOffset().At(from)},
		}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	defer cl.Close()
	return pollN(t, cl, n, timeout)
}

// consumeTopic reads every partition of topic from the start until it has
// n records or the timeout passes.
func consumeTopic(t testing.TB, addr, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := rawClient(t, addr,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	defer cl.Close()
	return pollN(t, cl, n, timeout)
}

// pollN polls until n records arrived or the timeout passed. Fetch errors
// fail the test.
func pollN(t testing.TB, cl *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		failed := false
		fs.EachError(func(topic string, p int32, err error) {
			t.Errorf("fetch %s/%d: %v", topic, p, err)
			failed = true
		})
		if failed {
			return out
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// noMoreRecords checks that reading topic/partition from offset `from`
// yields nothing within wait.
func noMoreRecords(t testing.TB, addr, topic string, partition int32, from int64, wait time.Duration) {
	t.Helper()
	got := consumePartition(t, addr, topic, partition, from, 1, wait)
	if len(got) > 0 {
		t.Fatalf("%s/%d: unexpected record at offset %d (value %q) beyond the expected end %d",
			topic, partition, got[0].Offset, got[0].Value, from)
	}
}

// values returns the string values of records.
func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// seqValues returns n values "prefix-000000".. for unique, ordered payloads.
func seqValues(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d", prefix, from+i)
	}
	return out
}

// checkRecords asserts recs are exactly want, in order, at offsets
// firstOffset, firstOffset+1, ...
func checkRecords(t testing.TB, recs []*kgo.Record, want []string, firstOffset int64) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Value) != want[i] || r.Offset != firstOffset+int64(i) {
			t.Fatalf("record %d: got %q at offset %d, want %q at offset %d",
				i, r.Value, r.Offset, want[i], firstOffset+int64(i))
		}
	}
}

// sortedCopy returns a sorted copy of s.
func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// diffStrings reports the first difference between two string slices.
func diffStrings(got, want []string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d items, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("item %d: got %q, want %q", i, got[i], want[i])
		}
	}
	return ""
}

// nonEmptyLines splits s into lines and drops empty ones.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// withTopicIDs fills in the topic ids of a fetch (see
// kafkatest.FillFetchTopicIDs), failing the test when it cannot.
func withTopicIDs(t testing.TB, cl *kgo.Client, req *kmsg.FetchRequest) *kmsg.FetchRequest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := kafkatest.FillFetchTopicIDs(ctx, cl, req); err != nil {
		t.Fatal(err)
	}
	return req
}
