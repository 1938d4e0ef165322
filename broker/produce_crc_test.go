package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// TestProduceCRCsCheckedWhileReading sends, over a real connection, one
// produce request of several MB (larger than the reader's scan chunk)
// whose partitions hold good batches, a batch with a flipped bit, and a
// batch with a bad CRC behind a good one. The connection checks CRCs as
// the frame arrives (wire.ProduceScanner); what it cannot vouch for is
// validated in full, so each partition is answered as if it came alone.
func TestProduceCRCsCheckedWhileReading(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "crc", 4, nil)

	batch := func(n int, tag string) []byte {
		rb := record.NewBuilder()
		for i := range n {
			rb.Add(nil, bytes.Repeat([]byte(fmt.Sprintf("%s-%d|", tag, i)), 60), nil, time.Now().UnixMilli())
		}
		return rb.Build()
	}
	good0 := batch(2000, "p0") // ~1 MB each
	flipped := batch(2000, "p1")
	flipped[len(flipped)/2] ^= 0x01
	good2a, bad2 := batch(100, "p2a"), batch(100, "p2b")
	bad2[record.HeaderSize+3] ^= 0x80
	good3 := append(batch(1500, "p3a"), batch(1500, "p3b")...)

	req := kmsg.NewPtrProduceRequest()
	req.Acks = 1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "crc"
	for i, recs := range [][]byte{good0, flipped, append(good2a, bad2...), good3} {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = int32(i)
		rp.Records = recs
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl.Broker(0))
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{0, kerr.CorruptMessage.Code, kerr.CorruptMessage.Code, 0}
	for i, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != want[i] {
			t.Errorf("partition %d: %v, want %v", p.Partition, kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(want[i]))
		}
	}
	for p, n := range map[int32]int64{0: 2000, 1: 0, 2: 0, 3: 3000} {
		if end, _ := listOffset(t, cl, "crc", p, -1); end != n {
			t.Errorf("partition %d: end offset %d, want %d", p, end, n)
		}
	}
	// What was stored reads back whole.
	f := rawFetch(t, cl, "crc", 0, 0, 0)
	if f.ErrorCode != 0 || !bytes.Contains(f.RecordBatches, []byte("p0-1999|")) {
		t.Errorf("partition 0 fetch: %v, %d bytes", kerr.ErrorForCode(f.ErrorCode), len(f.RecordBatches))
	}
}
