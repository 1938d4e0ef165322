package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
		req := produceRequest(topic, 0, batch)
		req.SetVersion(version)
		req.Acks = 1
		resp := kmsg.NewPtrProduceResponse()
		rawRoundTrip(t, c, req, resp)
		return resp.Topics[0].Partitions[0]
	}
	// Record batches in Produce v0-v2, as Kafka takes them: zstd is
	// refused there too.
	if p := produce(2, "plain", plain.Build()); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("a record batch in Produce v2: %+v", p)
	}
	if p := produce(2, "plain", zbatch); p.ErrorCode != kerr.UnsupportedCompressionType.Code {
		t.Fatalf("zstd in Produce v2: %+v", p)
	}
	if p := produce(6, "plain", zbatch); p.ErrorCode != kerr.UnsupportedCompressionType.Code { // no ErrorMessage before v8
		t.Fatalf("zstd in Produce v6: %+v", p)
	}
	if p := produce(7, "plain", zbatch); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("zstd in Produce v7: %+v", p)
	}
	// The refused batches were not appended: v7's landed at offset 1. A topic
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
	req := produceRequest("m1", 0, msg)
	req.Acks = 1
	resp := request[*kmsg.ProduceResponse](t, cl, req)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.InvalidRecord.Code || p.ErrorMessage == nil {
		t.Fatalf("message set in Produce v%d: %+v", resp.Version, p)
	} else {
		t.Logf("v%d: %s", resp.Version, *p.ErrorMessage)
	}
}

// legacyMessage is one message of a format 0 or 1 message set.
type legacyMessage struct {
	offset     int64
	magic      int8
	attrs      int8
	ts         int64
	key, value []byte
}

// parseMessageSet reads a message set as a pre-0.11 client does,
// checking each message's CRC.
func parseMessageSet(t *testing.T, set []byte) []legacyMessage {
	t.Helper()
	var out []legacyMessage
	for len(set) > 0 {
		if len(set) < 12 {
			t.Fatalf("%d bytes left for a message's offset and size", len(set))
		}
		size := int(binary.BigEndian.Uint32(set[8:]))
		msg := set[12 : 12+size]
		if crc32.ChecksumIEEE(msg[4:]) != binary.BigEndian.Uint32(msg) {
			t.Fatalf("message at offset %d: bad CRC", binary.BigEndian.Uint64(set))
		}
		m := legacyMessage{offset: int64(binary.BigEndian.Uint64(set)), magic: int8(msg[4]), attrs: int8(msg[5]), ts: -1}
		p := 6
		if m.magic == 1 {
			m.ts = int64(binary.BigEndian.Uint64(msg[p:]))
			p += 8
		}
		for _, dst := range []*[]byte{&m.key, &m.value} {
			n := int32(binary.BigEndian.Uint32(msg[p:]))
			p += 4
			if n >= 0 {
				*dst = msg[p : p+int(n)]
				p += int(n)
			}
		}
		out = append(out, m)
		set = set[12+size:]
	}
	return out
}

// TestFetchOldVersions: Fetch v0-v3, from clients written before Kafka
// 0.11, get message sets (format 0 before v2, format 1 from it) converted
// from the stored batches, whatever codec the producer used, from the
// offset asked for, without transaction markers; and a long poll at v1
// is woken by a produce.
func TestFetchOldVersions(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	ctx := context.Background()
	cl := newClient(t, b, kgo.ProducerBatchCompression(kgo.GzipCompression()), kgo.ProducerLinger(0))
	createTopic(t, cl, "old", 1, nil)
	base := time.UnixMilli(1_700_000_000_000)
	for i := range 10 {
		r := &kgo.Record{Topic: "old", Value: []byte(fmt.Sprint("v", i)), Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("dropped")}}}
		if i%2 == 1 {
			r.Key = []byte(fmt.Sprint("k", i))
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for version := range int16(4) {
		req := fetchRequest("old", 0, 3, 0)
		req.SetVersion(version)
		resp := kmsg.NewPtrFetchResponse()
		rawRoundTrip(t, c, req, resp)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 10 {
			t.Fatalf("v%d: error %d, high watermark %d", version, p.ErrorCode, p.HighWatermark)
		}
		msgs := parseMessageSet(t, p.RecordBatches)
		if len(msgs) != 7 {
			t.Fatalf("v%d: %d messages from offset 3, want 7", version, len(msgs))
		}
		for j, m := range msgs {
			i := j + 3
			wantMagic, wantTs := int8(0), int64(-1)
			if version >= 2 {
				wantMagic, wantTs = 1, base.UnixMilli()+int64(i)
			}
			var wantKey []byte
			if i%2 == 1 {
				wantKey = []byte(fmt.Sprint("k", i))
			}
			if m.offset != int64(i) || m.magic != wantMagic || m.attrs != 0 || m.ts != wantTs ||
				string(m.value) != fmt.Sprint("v", i) || (m.key == nil) != (wantKey == nil) || string(m.key) != string(wantKey) {
				t.Fatalf("v%d message %d: %+v", version, j, m)
			}
		}
	}

	// A long poll at v1 waits, and is answered when a record arrives.
	req := fetchRequest("old", 0, 10, 5000)
	req.SetVersion(1)
	done := make(chan []legacyMessage, 1)
	go func() {
		resp := kmsg.NewPtrFetchResponse()
		rawRoundTrip(t, c, req, resp)
		done <- parseMessageSet(t, resp.Topics[0].Partitions[0].RecordBatches)
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("a long poll with nothing to read was answered at once")
	default:
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "old", Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case msgs := <-done:
		if len(msgs) != 1 || msgs[0].offset != 10 || string(msgs[0].value) != "late" {
			t.Fatalf("long poll: %+v", msgs)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the long poll was not woken by the produce")
	}

	// A committed transaction: records 11-12, its marker at 13, then a
	// plain record at 14. A fetch at the marker's offset, one batch and
	// one message at a time (partition max bytes 1), reads past it to 14
	// (an old client would otherwise ask for offset 13 forever); ones at
	// 11 and 12 get the transaction's records, one each.
	txc := newClient(t, b, kgo.TransactionalID("old-tx"), kgo.DefaultProduceTopic("old"))
	if err := txc.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txc.ProduceSync(ctx, &kgo.Record{Value: []byte("tx1")}, &kgo.Record{Value: []byte("tx2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txc.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "old", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from int64
		want []string
	}{{13, []string{"after"}}, {11, []string{"tx1"}}, {12, []string{"tx2"}}} {
		req := fetchRequest("old", 0, tc.from, 0)
		req.SetVersion(3)
		req.Topics[0].Partitions[0].PartitionMaxBytes = 1 // a batch, and a message, at a time
		resp := kmsg.NewPtrFetchResponse()
		rawRoundTrip(t, c, req, resp)
		msgs := parseMessageSet(t, resp.Topics[0].Partitions[0].RecordBatches)
		var got []string
		for _, m := range msgs {
			got = append(got, string(m.value))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("Fetch v3 at %d, a message at a time: %q, want %q", tc.from, got, tc.want)
		}
	}
}

// TestRecompressedPastRatioReadable: a topic that recompresses to gzip
// turns 3 MB of one repeated byte into a batch far past the 512x bound
// produce applies; the broker's own batch must stay readable, by an old
// client's down-converted fetch as by a current one.
func TestRecompressedPastRatioReadable(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b, kgo.ProducerBatchMaxBytes(8<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, cl, "rc", 1, map[string]string{"compression.type": "gzip", "max.message.bytes": "8388608"})
	value := bytes.Repeat([]byte{'z'}, 3<<20)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "rc", Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fetchRequest("rc", 0, 0, 0)
	req.SetVersion(2)
	resp := kmsg.NewPtrFetchResponse()
	rawRoundTrip(t, c, req, resp)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("Fetch v2: error %d", p.ErrorCode)
	}
	if msgs := parseMessageSet(t, p.RecordBatches); len(msgs) != 1 || !bytes.Equal(msgs[0].value, value) {
		t.Fatalf("Fetch v2: %d messages", len(msgs))
	}
}
