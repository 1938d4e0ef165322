package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
	"github.com/gregor-log/gregor/internal/kafkatest"
)

func produceN(t *testing.T, cl *kgo.Client, topic string, partition int32, n int) {
	t.Helper()
	// The records name their partition, so produce with a manual partitioner.
	cl = newClientAt(t, cl, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: bytes.Repeat([]byte{'x'}, 100)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

func listOffset(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64) (int64, int16) {
	t.Helper()
	resp := listOffsetResponse(t, cl, topic, partition, ts)
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// listOffsetResponse sends a one-partition ListOffsets for timestamp ts
// and returns the whole answer.
func listOffsetResponse(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64) *kmsg.ListOffsetsResponse {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// produceRequest is an acks=all produce request (5 s timeout) of records
// to one partition.
func produceRequest(topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// rawProduce sends one acks=all produce request with records for
// topic/partition straight to the broker and returns the partition's
// answer.
func rawProduce(t *testing.T, cl *kgo.Client, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	raw, err := cl.Broker(0).Request(context.Background(), produceRequest(topic, partition, records)) // unsharded
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// fetchRequest is a one-partition fetch from offset, waiting up to maxWait
// ms for at least a byte, up to 1 MiB.
func fetchRequest(topic string, partition int32, offset int64, maxWait int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = maxWait
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func rawFetch(t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64, maxWait int32) *kmsg.FetchResponseTopicPartition {
	t.Helper()
	resp, err := withTopicIDs(t, cl, fetchRequest(topic, partition, offset, maxWait)).RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return &resp.Topics[0].Partitions[0]
}

// deleteRecords sends DeleteRecords for one partition, moving its log
// start to offset, and returns the partition's answer.
func deleteRecords(t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64) kmsg.DeleteRecordsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition = partition
	rp.Offset = offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lo", 1, nil)
	produceN(t, cl, "lo", 0, 10)
	if off, code := listOffset(t, cl, "lo", 0, -1); code != 0 || off != 10 {
		t.Fatalf("latest: %d %v", off, kerr.ErrorForCode(code))
	}
	if off, code := listOffset(t, cl, "lo", 0, -2); code != 0 || off != 0 {
		t.Fatalf("earliest: %d %v", off, kerr.ErrorForCode(code))
	}
	if off, code := listOffset(t, cl, "lo", 0, time.Now().Add(time.Hour).UnixMilli()); code != 0 || off != -1 {
		t.Fatalf("future timestamp: %d %v", off, kerr.ErrorForCode(code))
	}
	if off, code := listOffset(t, cl, "lo", 0, 0); code != 0 || off != 0 {
		t.Fatalf("timestamp 0: %d %v", off, kerr.ErrorForCode(code))
	}
	// A negative timestamp that names nothing special is searched for,
	// as Kafka does: every record is at or after it.
	if off, code := listOffset(t, cl, "lo", 0, -7); code != 0 || off != 0 {
		t.Fatalf("timestamp -7: %d %v", off, kerr.ErrorForCode(code))
	}
	// No tiered storage: -4 (v8) is the log start, -5 (v9, the latest
	// tiered offset) none; v10 carries a timeout for remote lookups. (The
	// client asks at the highest version both sides know: 10.)
	for ts, want := range map[int64]int64{-4: 0, -5: -1} {
		resp := listOffsetResponse(t, cl, "lo", 0, ts)
		p := resp.Topics[0].Partitions[0]
		if resp.Version != 10 || p.ErrorCode != 0 || p.Offset != want || ts == -5 && (p.Timestamp != -1 || p.LeaderEpoch != -1) {
			t.Fatalf("v%d, timestamp %d: offset %d, time %d, epoch %d, %v; want offset %d", resp.Version, ts, p.Offset, p.Timestamp, p.LeaderEpoch, kerr.ErrorForCode(p.ErrorCode), want)
		}
	}

	if p := deleteRecords(t, cl, "lo", 0, 5); p.ErrorCode != 0 || p.LowWatermark != 5 {
		t.Fatalf("delete records: low %d %v", p.LowWatermark, kerr.ErrorForCode(p.ErrorCode))
	}
	if off, _ := listOffset(t, cl, "lo", 0, -2); off != 5 {
		t.Fatalf("earliest after delete: %d", off)
	}
	if p := rawFetch(t, cl, "lo", 0, 0, 0); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below log start: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := rawFetch(t, cl, "lo", 0, 11, 0); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch beyond end: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := rawFetch(t, cl, "lo", 0, 5, 0); p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.LogStartOffset != 5 {
		t.Fatalf("fetch at log start: %v, %d bytes, log start %d", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches), p.LogStartOffset)
	}
}

// TestDeleteRecordsRefusedOnCompactOnlyTopic: as in Kafka, records of a
// topic whose cleanup.policy lacks delete (compact, or empty) cannot be
// deleted (POLICY_VIOLATION), and the log start stays put; compact,delete
// allows it.
func TestDeleteRecordsRefusedOnCompactOnlyTopic(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	for _, policy := range []string{"compact", "", "compact,delete"} {
		topic := "dr-" + strings.ReplaceAll(policy, ",", "-")
		createTopic(t, cl, topic, 1, map[string]string{"cleanup.policy": policy})
		for i := range 3 {
			r := &kgo.Record{Topic: topic, Key: []byte{byte('a' + i)}, Value: []byte("v")}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		p := deleteRecords(t, cl, topic, 0, 2)
		if policy != "compact,delete" {
			if p.ErrorCode != kerr.PolicyViolation.Code {
				t.Fatalf("%s: delete records: low %d %v, want POLICY_VIOLATION", policy, p.LowWatermark, kerr.ErrorForCode(p.ErrorCode))
			}
			if off, _ := listOffset(t, cl, topic, 0, -2); off != 0 {
				t.Fatalf("%s: earliest after a refused delete: %d", policy, off)
			}
			continue
		}
		if p.ErrorCode != 0 || p.LowWatermark != 2 {
			t.Fatalf("%s: delete records: low %d %v", policy, p.LowWatermark, kerr.ErrorForCode(p.ErrorCode))
		}
	}
}

func TestLongPollWokenByProduce(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lp", 1, nil)
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		p := rawFetch(t, cl, "lp", 0, 0, 10000)
		if len(p.RecordBatches) == 0 {
			t.Errorf("long poll returned no records")
		}
		done <- time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond) // let the fetch park; the test asserts it returns long before MaxWait
	producer := newClient(t, b)
	produceN(t, producer, "lp", 0, 1)
	select {
	case d := <-done:
		if d > 5*time.Second {
			t.Fatalf("long poll took %v", d)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("long poll not woken by produce")
	}
}

func TestIdempotentProducerDuplicates(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "idem", 1, nil)
	// A raw idempotent batch sent twice must land once.
	pidResp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
	if err != nil || pidResp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %v", err, kerr.ErrorForCode(pidResp.ErrorCode))
	}
	batch := func(seq int32) []byte {
		rb := record.NewBuilder().SetProducer(pidResp.ProducerID, pidResp.ProducerEpoch, seq)
		rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
		return rb.Build()
	}
	produce := func(records []byte) kmsg.ProduceResponseTopicPartition {
		return rawProduce(t, cl, "idem", 0, records)
	}
	b0 := batch(0)
	if p := produce(append([]byte(nil), b0...)); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("first: %v base %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := produce(append([]byte(nil), b0...)); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("duplicate: %v base %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := produce(batch(5)); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produce(batch(1)); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("next: %v base %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if off, _ := listOffset(t, cl, "idem", 0, -1); off != 2 {
		t.Fatalf("log end %d, want 2", off)
	}
}

func TestBadFramesCloseConnectionAndBrokerKeepsServing(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cases := map[string][]byte{
		"negative length":   {0xff, 0xff, 0xff, 0xfe},
		"2GiB length":       {0x7f, 0xff, 0xff, 0xff},
		"garbage":           append([]byte{0, 0, 0, 20}, bytes.Repeat([]byte{0xab}, 20)...),
		"unknown api key":   {0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff},
		"truncated produce": {0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0},
		// ApiVersions v3 whose body (two empty compact strings) ends with
		// a tagged-field count of 2^32-1: kmsg v1.15.0 looped for minutes.
		"2^32-1 tagged fields": {0, 0, 0, 18, 0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0,
			1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", b.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(frame)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1024)
			for {
				_, err := nc.Read(buf)
				if err == io.EOF || err != nil && !isTimeout(err) {
					break // closed: fine
				}
				if isTimeout(err) {
					t.Fatal("connection neither answered nor closed")
				}
			}
		})
	}
	cl := newClient(t, b)
	createTopic(t, cl, "after", 1, nil)
	produceN(t, cl, "after", 0, 1)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestMetadataAutoCreateAndTopicErrors(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) { c.NumPartitions = 3 })
	cl := newClient(t, b)
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range []string{"auto1", "bad/name"} {
		rt := kmsg.NewMetadataRequestTopic()
		n := n
		rt.Topic = &n
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if tp := resp.Topics[0]; tp.ErrorCode != 0 || len(tp.Partitions) != 3 {
		t.Fatalf("auto1: %v, %d partitions", kerr.ErrorForCode(tp.ErrorCode), len(tp.Partitions))
	}
	if tp := resp.Topics[1]; tp.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("bad/name: %v", kerr.ErrorForCode(tp.ErrorCode))
	}
	// An empty name (and no topic id) is an invalid name, named "" in
	// the answer, at v12 (where a null name with an id looks a topic up
	// by id) as at v1: not UNKNOWN_TOPIC_ID, which v1 does not know.
	for _, v := range []int16{1, 12} {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("")
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if tp := resp.Topics[0]; tp.ErrorCode != kerr.InvalidTopicException.Code || tp.Topic == nil || *tp.Topic != "" {
			t.Fatalf("v%d, empty name: %v, name %v", v, kerr.ErrorForCode(tp.ErrorCode), tp.Topic)
		}
	}
	// CreateTopics with a bad config is refused with INVALID_CONFIG.
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = "badcfg"
	rt.NumPartitions = 1
	rt.ReplicationFactor = 1
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name = "retention.ms"
	v := "soon"
	c.Value = &v
	rt.Configs = append(rt.Configs, c)
	ct.Topics = append(ct.Topics, rt)
	cresp, err := ct.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if cresp.Topics[0].ErrorCode != kerr.InvalidConfig.Code {
		t.Fatalf("bad config: %v", kerr.ErrorForCode(cresp.Topics[0].ErrorCode))
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	func() {
		b := startBroker(t, nil, dir, nil)
		cl := newClient(t, b)
		createTopic(t, cl, "keep", 2, map[string]string{"retention.ms": "3600000"})
		produceN(t, cl, "keep", 1, 25)
		cl.Close()
		stopBroker(t, b)
	}()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	if off, code := listOffset(t, cl, "keep", 1, -1); code != 0 || off != 25 {
		t.Fatalf("after restart: %d %v", off, kerr.ErrorForCode(code))
	}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeTopic
	r.ResourceName = "keep"
	r.ConfigNames = []string{"retention.ms"}
	dc.Resources = append(dc.Resources, r)
	resp, err := dc.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if cs := resp.Resources[0].Configs; len(cs) != 1 || *cs[0].Value != "3600000" {
		t.Fatalf("configs after restart: %+v", cs)
	}
}

// newClientAt returns a client for the same brokers as cl with extra options.
func newClientAt(t *testing.T, cl *kgo.Client, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	seeds := cl.OptValue(kgo.SeedBrokers).([]string)
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestInternalTopicProtected(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"__consumer_offsets"} // v0-5
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	name := "__consumer_offsets"
	dtt.Topic = &name // v6+
	dt.Topics = append(dt.Topics, dtt)
	resp, err := dt.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].ErrorCode; code == 0 {
		t.Fatal("deleting __consumer_offsets was allowed")
	}
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic = "__consumer_offsets"
	cpt.Count = 100
	cp.Topics = append(cp.Topics, cpt)
	cresp, err := cp.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if cresp.Topics[0].ErrorCode != kerr.InvalidPartitions.Code {
		t.Fatalf("growing __consumer_offsets: %v", kerr.ErrorForCode(cresp.Topics[0].ErrorCode))
	}
	rb := record.NewBuilder()
	rb.Add([]byte("k"), []byte("v"), nil, time.Now().UnixMilli())
	if p := rawProduce(t, cl, "__consumer_offsets", 0, rb.Build()); p.ErrorCode == 0 {
		t.Fatal("producing to __consumer_offsets was allowed")
	}
	if code := deleteRecords(t, cl, "__consumer_offsets", 0, -1).ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("DeleteRecords on __consumer_offsets: %v", kerr.ErrorForCode(code))
	}
}

// TestLogAppendTimeTopic produces records carrying old timestamps to a
// topic with message.timestamp.type=LogAppendTime: the produce response
// carries the append time, and a consumer sees that time, marked as log
// append time, on every record, compressed or not. Altering the topic back
// to CreateTime keeps the producer's times for later records.
func TestLogAppendTimeTopic(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lat", 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	old := time.UnixMilli(1_600_000_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := time.Now().UnixMilli()
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression()} {
		pc := newClient(t, b, kgo.ProducerBatchCompression(codec))
		if err := pc.ProduceSync(ctx, &kgo.Record{Topic: "lat", Value: []byte("a"), Timestamp: old},
			&kgo.Record{Topic: "lat", Value: []byte("b"), Timestamp: old}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The produce response, read raw.
	rb := record.NewBuilder()
	rb.Add(nil, []byte("c"), nil, old.UnixMilli())
	p := rawProduce(t, cl, "lat", 0, rb.Build())
	after := time.Now().UnixMilli()
	if p.ErrorCode != 0 || p.LogAppendTime < before || p.LogAppendTime > after {
		t.Fatalf("produce response: %v, LogAppendTime %d outside [%d, %d]", kerr.ErrorForCode(p.ErrorCode), p.LogAppendTime, before, after)
	}

	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ar := kmsg.NewIncrementalAlterConfigsRequestResource()
	ar.ResourceType = kmsg.ConfigResourceTypeTopic
	ar.ResourceName = "lat"
	ac := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	ac.Name = "message.timestamp.type"
	ac.Value = kmsg.StringPtr("CreateTime")
	ar.Configs = append(ar.Configs, ac)
	alter.Resources = append(alter.Resources, ar)
	if aresp, err := alter.RequestWith(ctx, cl); err != nil || aresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter: %v %+v", err, aresp)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lat", Value: []byte("d"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cc := newClient(t, b, kgo.ConsumeTopics("lat"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for len(recs) < 6 && ctx.Err() == nil {
		fs := cc.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != 6 {
		t.Fatalf("consumed %d records", len(recs))
	}
	for _, r := range recs[:5] {
		ts := r.Timestamp.UnixMilli()
		if r.Attrs.TimestampType() != 1 || ts < before || ts > after {
			t.Fatalf("offset %d: timestamp %d type %d, want log append time in [%d, %d]", r.Offset, ts, r.Attrs.TimestampType(), before, after)
		}
	}
	if r := recs[5]; r.Attrs.TimestampType() != 0 || !r.Timestamp.Equal(old) {
		t.Fatalf("after CreateTime: timestamp %v type %d", r.Timestamp, r.Attrs.TimestampType())
	}
}

// TestDescribeLogDirs: the data dir, with each partition's size on disk
// (all topics for a null request, only existing partitions of those asked
// for) and, from v4, the volume's total and available bytes.
func TestDescribeLogDirs(t *testing.T) {
	dataDir := t.TempDir()
	b := startBroker(t, nil, dataDir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "dirs-a", 2, nil)
	createTopic(t, cl, "dirs-b", 1, nil)
	produceN(t, cl, "dirs-a", 1, 10)
	ctx := context.Background()

	// Straight to the broker: kgo's sharded DescribeLogDirs merges the
	// answers and drops the volume sizes.
	req := kmsg.NewPtrDescribeLogDirsRequest()
	resp, err := req.RequestWith(ctx, cl.Broker(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Dirs) != 1 || resp.Dirs[0].Dir != dataDir || resp.Dirs[0].ErrorCode != 0 {
		t.Fatalf("dirs %+v, want one: %s", resp.Dirs, dataDir)
	}
	d := resp.Dirs[0]
	if d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
		t.Fatalf("volume total %d, usable %d", d.TotalBytes, d.UsableBytes)
	}
	sizes := map[string]int64{}
	for _, dt := range d.Topics {
		for _, p := range dt.Partitions {
			sizes[fmt.Sprintf("%s/%d", dt.Topic, p.Partition)] = p.Size
		}
	}
	if sizes["dirs-a/1"] <= 0 || sizes["dirs-a/0"] != 0 || sizes["dirs-b/0"] != 0 {
		t.Fatalf("sizes %v: want dirs-a/1 holding records, the others empty", sizes)
	}
	if _, ok := sizes["__consumer_offsets/0"]; !ok {
		t.Fatalf("a null request lists every topic; got %v", sizes)
	}

	req = kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic = "dirs-a"
	rt.Partitions = []int32{1, 7}
	req.Topics = append(req.Topics, rt)
	rt = kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic = "nope"
	rt.Partitions = []int32{0}
	req.Topics = append(req.Topics, rt)
	if resp, err = req.RequestWith(ctx, cl.Broker(0)); err != nil {
		t.Fatal(err)
	}
	if ts := resp.Dirs[0].Topics; len(ts) != 1 || ts[0].Topic != "dirs-a" || len(ts[0].Partitions) != 1 || ts[0].Partitions[0].Partition != 1 {
		t.Fatalf("asked for dirs-a/1, dirs-a/7 and nope/0: %+v", ts)
	}
}

// TestListOffsetsNotFound: a timestamp after every record, and -3 (max
// timestamp) on an empty partition, find nothing: offset, timestamp and
// leader epoch are all -1, as Kafka answers.
func TestListOffsetsNotFound(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lo", 2, nil)
	produceN(t, cl, "lo", 0, 3)
	for _, c := range []struct {
		partition int32
		ts        int64
	}{{0, time.Now().Add(time.Hour).UnixMilli()}, {1, -3}} {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = c.partition
		rp.Timestamp = c.ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		raw, err := cl.Broker(0).Request(context.Background(), req) // unsharded: kgo fills in epochs of its own
		if err != nil {
			t.Fatal(err)
		}
		p := raw.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 || p.LeaderEpoch != -1 {
			t.Errorf("partition %d at %d: error %d offset %d timestamp %d epoch %d, want 0 -1 -1 -1",
				c.partition, c.ts, p.ErrorCode, p.Offset, p.Timestamp, p.LeaderEpoch)
		}
	}
}

// TestListOffsetsV0 checks the legacy offsets-before answers that old
// tools (Burrow 1.2's sarama OffsetRequest) get from ListOffsets v0: the
// high watermark and segment starts below it, newest first, up to
// MaxNumOffsets; the log start for -2; for a time, the starts of the
// segments all of whose records are at or before it.
func TestListOffsetsV0(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lo0", 1, map[string]string{"segment.bytes": "1000"})
	// Six batches of ~700 bytes, one segment each, timestamped an hour
	// apart from a day ago.
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	hour := time.Hour.Milliseconds()
	for i := range 6 {
		rb := record.NewBuilder()
		rb.Add(nil, bytes.Repeat([]byte{'v'}, 600), nil, base+int64(i)*hour)
		rb.Add(nil, []byte("second"), nil, base+int64(i)*hour)
		if p := rawProduce(t, cl, "lo0", 0, rb.Build()); p.ErrorCode != 0 {
			t.Fatalf("produce: error %d", p.ErrorCode)
		}
	}
	// Offsets 0-11: segments start at 0, 2, 4, 6, 8, 10; the high
	// watermark is 12.
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	listV0 := func(ts int64, maxOffsets int32) ([]int64, int16) {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = 0
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo0"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp, rp.MaxNumOffsets = ts, maxOffsets
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrListOffsetsResponse()
		rawRoundTrip(t, c, req, resp)
		p := resp.Topics[0].Partitions[0]
		return p.OldStyleOffsets, p.ErrorCode
	}
	for _, tc := range []struct {
		ts   int64
		max  int32
		want []int64
	}{
		{-1, 1, []int64{12}},
		{-1, 3, []int64{12, 10, 8}},
		{-1, 100, []int64{12, 10, 8, 6, 4, 2, 0}},
		{-2, 1, []int64{0}},
		{-2, 5, []int64{0}},
		{base + 2*hour, 10, []int64{4, 2, 0}},               // the first three segments are at or before it
		{base + 2*hour - 1, 1, []int64{2}},                  // the first two
		{base - 1, 10, []int64{}},                           // before every record
		{time.Now().UnixMilli() + hour, 2, []int64{12, 10}}, // after everything: the high watermark first
		{-1, 0, []int64{}},
	} {
		got, code := listV0(tc.ts, tc.max)
		if code != 0 || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ListOffsets v0 (%d, max %d) = %v (error %d), want %v", tc.ts, tc.max, got, code, tc.want)
		}
	}
	// Another negative timestamp: nothing is older, as Kafka answers.
	if got, code := listV0(-5, 1); code != 0 || len(got) != 0 {
		t.Errorf("ListOffsets v0 at -5: %v, error %d; want an empty list", got, code)
	}

	// After DeleteRecords, the segment holding the new log start starts
	// there.
	dr := kmsg.NewPtrDeleteRecordsRequest()
	drt := kmsg.NewDeleteRecordsRequestTopic()
	drt.Topic = "lo0"
	drp := kmsg.NewDeleteRecordsRequestTopicPartition()
	drp.Offset = 5
	drt.Partitions = append(drt.Partitions, drp)
	dr.Topics = append(dr.Topics, drt)
	dr.TimeoutMillis = 5000
	if resp, err := dr.RequestWith(context.Background(), cl); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("DeleteRecords: %v %+v", err, resp)
	}
	for _, tc := range []struct {
		ts   int64
		max  int32
		want []int64
	}{
		{-1, 100, []int64{12, 10, 8, 6, 5}},
		{-2, 1, []int64{5}},
	} {
		got, code := listV0(tc.ts, tc.max)
		if code != 0 || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("after DeleteRecords: ListOffsets v0 (%d, max %d) = %v (error %d), want %v", tc.ts, tc.max, got, code, tc.want)
		}
	}
}

// TestProduceMessageSets: Produce v0-v2 requests carry message sets, which
// are converted into v2 batches (record.FromMessageSet, tested there); a
// set that does not convert is CORRUPT_MESSAGE with the reason, and
// nothing of it is appended, while the request's other partitions are.
func TestProduceMessageSets(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ms", 2, nil)
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One magic 1 message: value "hello", timestamp 1000.
	msg := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}
	set := binary.BigEndian.AppendUint64(nil, 0)
	set = binary.BigEndian.AppendUint32(set, uint32(4+len(msg)))
	set = binary.BigEndian.AppendUint32(set, crc32.ChecksumIEEE(msg))
	set = append(set, msg...)
	bad := bytes.Clone(set)
	bad[len(bad)-1] ^= 1
	type partitionRecords struct {
		partition int32
		records   []byte
	}
	produce := func(version int16, parts ...partitionRecords) []kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Version = version
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "ms"
		for _, pr := range parts {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = pr.partition, pr.records
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrProduceResponse()
		rawRoundTrip(t, c, req, resp)
		return resp.Topics[0].Partitions
	}
	for version := int16(0); version <= 2; version++ {
		got := produce(version, partitionRecords{0, set}, partitionRecords{1, bad})
		good, corrupt := got[0], got[1]
		if good.ErrorCode != 0 || good.BaseOffset != int64(version) {
			t.Errorf("Produce v%d: good set: error %d offset %d, want 0 and %d", version, good.ErrorCode, good.BaseOffset, version)
		}
		if corrupt.ErrorCode != kerr.CorruptMessage.Code {
			t.Errorf("Produce v%d: bad CRC: error %d, want CORRUPT_MESSAGE", version, corrupt.ErrorCode)
		}
	}
	// A bad set for a partition that does not exist: the partition is
	// what is wrong.
	if code := produce(2, partitionRecords{7, bad})[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("bad set for partition 7 of 2: error %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}
	if end, code := listOffset(t, cl, "ms", 1, -1); code != 0 || end != 0 {
		t.Fatalf("partition with the bad sets: end %d (error %d), want 0", end, code)
	}
	consumer := newClientAt(t, cl, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"ms": {0: kgo.NewOffset().AtStart()}}))
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(recs) < 3 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	if len(recs) != 3 {
		t.Fatalf("%d records read back, want 3", len(recs))
	}
	for i, r := range recs {
		if string(r.Value) != "hello" || r.Timestamp.UnixMilli() != 1000 || r.Key != nil {
			t.Errorf("record %d: key %q value %q timestamp %d", i, r.Key, r.Value, r.Timestamp.UnixMilli())
		}
	}
}

// rawRoundTrip sends req, at the version it is set to, on c and decodes
// the answer into resp at the same version: for versions kgo would not
// pick.
func rawRoundTrip(t *testing.T, c net.Conn, req kmsg.Request, resp kmsg.Response) {
	t.Helper()
	clientID := "raw"
	if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, err := wire.ReadFrame(c, nil, 64<<20)
	if err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	resp.SetVersion(req.GetVersion())
	body = body[4:] // the correlation id
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		body = body[1:] // the response header's (empty) tagged fields
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
}

// TestListOffsetsRepeatedPartition: a partition named twice in one
// ListOffsets request (v1+) is INVALID_REQUEST in both entries, as in
// Kafka; the other partitions are answered.
func TestListOffsetsRepeatedPartition(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lr", 2, nil)
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "lr"
	for _, p := range []int32{0, 1, 0} {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ListOffsetsResponse](t, cl, req)
	want := []int16{kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code}
	for i, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != want[i] {
			t.Errorf("entry %d (partition %d): %v, want %v", i, p.Partition, kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(want[i]))
		}
	}
}

// TestMetadataAuthorizedOperationsAndTopicIDs: asked for, authorized
// operations are every operation of the resource type (Kafka without an
// authorizer); not asked for, INT32_MIN. At v10 and v11 a topic named by
// id (or with a null name) makes the whole request INVALID_REQUEST, as in
// Kafka; from v12 an id is looked up.
func TestMetadataAuthorizedOperationsAndTopicIDs(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ao", 1, nil)
	c := dial(t, b)
	named := func(v int16, name string, id [16]byte, ops bool) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		rt := kmsg.NewMetadataRequestTopic()
		if name != "" {
			rt.Topic = &name
		}
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
		req.IncludeTopicAuthorizedOperations = ops
		req.IncludeClusterAuthorizedOperations = ops
		resp := kmsg.NewPtrMetadataResponse()
		rawRoundTrip(t, c, req, resp)
		return resp
	}
	for _, v := range []int16{8, 10, 11, 12} {
		resp := named(v, "ao", [16]byte{}, true)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || resp.Topics[0].AuthorizedOperations != topicOperations {
			t.Fatalf("v%d asked: %+v", v, resp.Topics)
		}
		if wantCluster := int32(clusterOperations); v > 10 {
			if resp.AuthorizedOperations != -2147483648 { // not in v11+: the default
				t.Errorf("v%d cluster operations %d", v, resp.AuthorizedOperations)
			}
		} else if resp.AuthorizedOperations != wantCluster {
			t.Errorf("v%d cluster operations %d, want %d", v, resp.AuthorizedOperations, wantCluster)
		}
		resp = named(v, "ao", [16]byte{}, false)
		if resp.Topics[0].AuthorizedOperations != -2147483648 || (v <= 10 && resp.AuthorizedOperations != -2147483648) {
			t.Errorf("v%d not asked: topic %d cluster %d", v, resp.Topics[0].AuthorizedOperations, resp.AuthorizedOperations)
		}
	}
	id := named(12, "ao", [16]byte{}, false).Topics[0].TopicID
	for _, v := range []int16{10, 11} {
		for _, name := range []string{"", "ao"} {
			resp := named(v, name, id, false)
			if len(resp.Brokers) != 0 || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("v%d name %q with id: %d brokers, %+v", v, name, len(resp.Brokers), resp.Topics)
			}
		}
	}
	if resp := named(12, "", id, false); resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "ao" {
		t.Errorf("v12 by id: %+v", resp.Topics)
	}
	// DescribeCluster.
	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.IncludeClusterAuthorizedOperations = true
	if dr := request[*kmsg.DescribeClusterResponse](t, cl, dc); dr.ClusterAuthorizedOperations != clusterOperations {
		t.Errorf("DescribeCluster operations %d", dr.ClusterAuthorizedOperations)
	}
	dc.IncludeClusterAuthorizedOperations = false
	if dr := request[*kmsg.DescribeClusterResponse](t, cl, dc); dr.ClusterAuthorizedOperations != -2147483648 {
		t.Errorf("DescribeCluster not asked: operations %d", dr.ClusterAuthorizedOperations)
	}
}

// TestRepeatedEntriesAnsweredOnce: a request that names the same topic,
// config resource or group many times is answered once for it (Kafka
// answers Metadata from a set of topics): otherwise a request of a few
// MB naming a large resource again and again made the broker build a
// response of gigabytes (helper-37: 3.35 GB of memory for one
// DescribeConfigs).
func TestRepeatedEntriesAnsweredOnce(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "rep", 3, nil)
	const n = 1000
	// Straight to the broker: kgo's own sharding of group requests must
	// not merge the repeats first.
	direct := func(req kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := cl.Broker(0).Request(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		return resp
	}

	md := kmsg.NewPtrMetadataRequest()
	for range n {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("rep")
		md.Topics = append(md.Topics, rt)
	}
	if resp := direct(md).(*kmsg.MetadataResponse); len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 3 {
		t.Errorf("metadata: %d topics", len(resp.Topics))
	}

	dc := kmsg.NewPtrDescribeConfigsRequest()
	for range n {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "rep"
		dc.Resources = append(dc.Resources, r)
	}
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName, r.ConfigNames = kmsg.ConfigResourceTypeTopic, "rep", []string{"retention.ms"}
	dc.Resources = append(dc.Resources, r) // another question about it: answered
	if resp := direct(dc).(*kmsg.DescribeConfigsResponse); len(resp.Resources) != 2 || resp.Resources[0].ErrorCode != 0 {
		t.Errorf("describe configs: %d resources", len(resp.Resources))
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	for range n {
		dg.Groups = append(dg.Groups, "g-rep")
	}
	if resp := direct(dg).(*kmsg.DescribeGroupsResponse); len(resp.Groups) != 1 {
		t.Errorf("describe groups: %d groups", len(resp.Groups))
	}

	of := kmsg.NewPtrOffsetFetchRequest()
	for range n {
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "g-rep"
		of.Groups = append(of.Groups, g)
	}
	if resp := direct(of).(*kmsg.OffsetFetchResponse); len(resp.Groups) != 1 {
		t.Errorf("offset fetch: %d groups", len(resp.Groups))
	}
}

// withTopicIDs fills in the topic ids of a fetch (see
// kafkatest.FillFetchTopicIDs), failing the test when it cannot.
func withTopicIDs(t testing.TB, cl *kgo.Client, req *kmsg.FetchRequest) *kmsg.FetchRequest {
	t.Helper()
	if err := kafkatest.FillFetchTopicIDs(context.Background(), cl, req); err != nil {
		t.Fatal(err)
	}
	return req
}
