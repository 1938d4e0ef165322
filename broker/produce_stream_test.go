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

// TestProduceStreamedAsItArrives sends, over one connection, produce
// requests of several MB whose partitions hold good batches, a batch with
// a flipped bit, a bad batch behind a good one, and several batches. The
// first is read into a buffer grown as it arrives and handled whole; the
// ones after it reuse the buffer, and each partition is appended as soon
// as its records are in (produceStream). Either way each partition is
// answered as if it came alone, and appended once.
func TestProduceStreamedAsItArrives(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "crc", 6, nil)

	// One timestamp for every record: with the clock's, a batch built
	// slowly (under -race on a busy machine) got two-byte timestamp
	// deltas, so a later round's frame outgrew the buffer the first one
	// left and was read whole, not streamed.
	ts := time.Now().UnixMilli()
	batch := func(n int, tag string) []byte {
		rb := record.NewBuilder()
		for i := range n {
			rb.Add(nil, bytes.Repeat([]byte(fmt.Sprintf("%s-%d|", tag, i)), 45), nil, ts)
		}
		return rb.Build()
	}
	request := func(round int) *kmsg.ProduceRequest {
		tag := func(p string) string { return fmt.Sprintf("r%d%s", round, p) }
		good0 := batch(2000, tag("p0")) // ~1 MB each
		flipped := batch(2000, tag("p1"))
		flipped[len(flipped)/2] ^= 0x01
		bad2 := batch(100, tag("p2"))
		bad2[record.HeaderSize+3] ^= 0x80
		good3 := batch(2000, tag("p3"))
		two := append(batch(100, tag("p5a")), batch(100, tag("p5b"))...)
		req := kmsg.NewPtrProduceRequest()
		req.Acks = 1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "crc"
		for i, recs := range [][]byte{good0, flipped, bad2, good3, {}, two} {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(i)
			rp.Records = recs
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return req
	}
	// From Produce v3 a partition carries exactly one batch, as Kafka's
	// validateRecords requires: none or two are INVALID_RECORD.
	want := []int16{0, kerr.CorruptMessage.Code, kerr.CorruptMessage.Code, 0, kerr.InvalidRecord.Code, kerr.InvalidRecord.Code}
	for round := range 3 {
		resp, err := request(round).RequestWith(context.Background(), cl.Broker(0))
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range resp.Topics[0].Partitions {
			if p.Partition != int32(i) || p.ErrorCode != want[i] {
				t.Errorf("round %d: partition %d: %v, want partition %d %v", round, p.Partition, kerr.ErrorForCode(p.ErrorCode), i, kerr.ErrorForCode(want[i]))
			}
			// Kafka answers errors of the records themselves without
			// the log start offset; a success carries it.
			wantLSO := int64(-1)
			if p.ErrorCode == 0 {
				wantLSO = 0
			}
			if p.LogStartOffset != wantLSO {
				t.Errorf("round %d: partition %d: log start offset %d in a %v answer", round, i, p.LogStartOffset, kerr.ErrorForCode(p.ErrorCode))
			}
		}
		if p := resp.Topics[0].Partitions[3]; p.BaseOffset != int64(2000*round) {
			t.Errorf("round %d: partition 3 at base offset %d, want %d", round, p.BaseOffset, 2000*round)
		}
		for p, n := range map[int32]int64{0: 2000, 1: 0, 2: 0, 3: 2000, 5: 0} {
			if end, _ := listOffset(t, cl, "crc", p, -1); end != n*int64(round+1) {
				t.Errorf("round %d: partition %d: end offset %d, want %d", round, p, end, n*int64(round+1))
			}
		}
	}
	// Rounds 1 and 2 were read into the buffer round 0 left: their 5
	// non-empty partitions each were handed over as they arrived.
	if n := b.streamedPartitions.Load(); n != 10 {
		t.Errorf("%d partitions streamed, want 10", n)
	}
	f := rawFetch(t, cl, "crc", 0, 2000, 0)
	if f.ErrorCode != 0 || !bytes.Contains(f.RecordBatches, []byte("r1p0-1999|")) {
		t.Errorf("partition 0 fetch: %v, %d bytes", kerr.ErrorForCode(f.ErrorCode), len(f.RecordBatches))
	}
}
