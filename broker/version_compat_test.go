package broker

import (
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// TestZstdNeedsNewVersions: zstd came with Produce v7 and Fetch v10
// (KIP-110). As from Kafka, an older produce carrying a zstd batch is
// UNSUPPORTED_COMPRESSION_TYPE and nothing is appended, and an older fetch
// from a topic whose compression.type is zstd gets that error instead of
// batches its client cannot decompress. Newer versions work.
func TestZstdNeedsNewVersions(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "plain", 1, nil)
	createTopic(t, cl, "zstd", 1, map[string]string{"compression.type": "zstd"})
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	rb := record.NewBuilder()
	if err := rb.SetCodec(record.CodecZstd); err != nil {
		t.Fatal(err)
	}
	rb.Add(nil, []byte("zstd record"), nil, 1000)
	zbatch := rb.Build()
	plain := record.NewBuilder()
	plain.Add(nil, []byte("plain record"), nil, 1000)
	produce := func(version int16, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(version)
		req.Acks, req.TimeoutMillis = 1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrProduceResponse()
		rawRoundTrip(t, c, req, resp)
		return resp.Topics[0].Partitions[0]
	}
	if p := produce(6, "plain", zbatch); p.ErrorCode != kerr.UnsupportedCompressionType.Code { // no ErrorMessage before v8
		t.Fatalf("zstd in Produce v6: %+v", p)
	}
	if p := produce(7, "plain", zbatch); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("zstd in Produce v7: %+v", p)
	}
	// The v6 batch was not appended: v7's landed at offset 0. A topic
	// recompressing to zstd takes plain batches from old producers.
	if p := produce(5, "zstd", plain.Build()); p.ErrorCode != 0 {
		t.Fatalf("plain batch to a zstd topic in Produce v5: %+v", p)
	}

	fetch := func(version int16, topic string) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(version)
		req.ReplicaID, req.MaxBytes = -1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrFetchResponse()
		rawRoundTrip(t, c, req, resp)
		return resp.Topics[0].Partitions[0]
	}
	if p := fetch(9, "zstd"); p.ErrorCode != kerr.UnsupportedCompressionType.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("Fetch v9 from a zstd topic: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if p := fetch(10, "zstd"); p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("Fetch v10 from a zstd topic: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	// A topic that keeps producers' codecs is served to old fetchers.
	if p := fetch(9, "plain"); p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("Fetch v9 from a plain topic: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
}

// TestMessageSetInBatchRequestInvalid: a format 1 message set in a
// Produce v3+ request is INVALID_RECORD (not retried by clients), as from
// Kafka, not CORRUPT_MESSAGE.
func TestMessageSetInBatchRequestInvalid(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "m1", 1, nil)
	// One format 1 message: offset, size, CRC, magic 1, attributes,
	// timestamp, key -1, value "v".
	msg := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'v'}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = 1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "m1"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = msg
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ProduceResponse](t, cl, req)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.InvalidRecord.Code || p.ErrorMessage == nil {
		t.Fatalf("message set in Produce v%d: %+v", resp.Version, p)
	} else {
		t.Logf("v%d: %s", resp.Version, *p.ErrorMessage)
	}
}
