package broker

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// TestFetchConversionLimits: records converted for Fetch v0-v3 come out of
// a budget as large as queued.max.request.bytes, held until the answer is
// written: a fetch of two partitions that would need more answers the
// second without records (it comes with the next fetch) and gives it all
// back; message.downconversion.enable=false refuses such fetches with
// UNSUPPORTED_VERSION (v4 and later are served); fetch.max.bytes caps
// what any fetch returns.
func TestFetchConversionLimits(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) {
		c.Props["queued.max.request.bytes"] = "1048576"
		c.Props["fetch.max.bytes"] = "600000"
	})
	cl := newClient(t, b)
	createTopic(t, cl, "old", 2, nil)
	createTopic(t, cl, "noconv", 1, map[string]string{"message.downconversion.enable": "false"})
	value := bytes.Repeat([]byte("x"), 100_000)
	for _, tp := range []struct {
		topic string
		part  int32
	}{{"old", 0}, {"old", 1}, {"noconv", 0}} {
		for range 5 {
			rb := record.NewBuilder()
			rb.Add(nil, value, nil, time.Now().UnixMilli())
			if p := rawProduce(t, cl, tp.topic, tp.part, rb.Build()); p.ErrorCode != 0 {
				t.Fatalf("produce %s-%d: %v", tp.topic, tp.part, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// v2: no MaxBytes; each partition asks for 10 MB. Converting one
	// partition's 500 KB needs about 1.1 MB of the 1 MiB budget (it goes
	// alone); the second partition waits for the next fetch.
	req := fetchRequest("old", 0, 0, 0)
	rp := req.Topics[0].Partitions[0]
	rp.Partition = 1
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
	for i := range req.Topics[0].Partitions {
		req.Topics[0].Partitions[i].PartitionMaxBytes = 10 << 20
	}
	req.SetVersion(2)
	resp := kmsg.NewPtrFetchResponse()
	rawRoundTrip(t, c, req, resp)
	parts := resp.Topics[0].Partitions
	if len(parts) != 2 || parts[0].ErrorCode != 0 || parts[1].ErrorCode != 0 {
		t.Fatalf("v2 fetch: %+v", parts)
	}
	if n := len(parseMessageSet(t, parts[0].RecordBatches)); n != 5 {
		t.Fatalf("partition 0: %d messages, want 5", n)
	}
	if len(parts[1].RecordBatches) != 0 {
		t.Fatalf("partition 1: %d bytes converted past the budget", len(parts[1].RecordBatches))
	}
	// Written: the budget is back, and partition 1 comes alone.
	deadline := time.Now().Add(5 * time.Second)
	for b.convBudget.inUse() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the conversion budget still held", b.convBudget.inUse())
		}
		time.Sleep(10 * time.Millisecond)
	}
	one := fetchRequest("old", 1, 0, 0)
	one.Topics[0].Partitions[0].PartitionMaxBytes = 10 << 20
	one.SetVersion(2)
	resp = kmsg.NewPtrFetchResponse()
	rawRoundTrip(t, c, one, resp)
	if n := len(parseMessageSet(t, resp.Topics[0].Partitions[0].RecordBatches)); n != 5 {
		t.Fatalf("partition 1 alone: %d messages, want 5", n)
	}

	// message.downconversion.enable=false: refused below v4 only.
	for _, version := range []int16{1, 3, 4, 11} {
		req := fetchRequest("noconv", 0, 0, 0)
		req.SetVersion(version)
		resp := kmsg.NewPtrFetchResponse()
		rawRoundTrip(t, c, req, resp)
		p := resp.Topics[0].Partitions[0]
		want := int16(0)
		if version < 4 {
			want = kerr.UnsupportedVersion.Code
		}
		if p.ErrorCode != want || (want == 0) != (len(p.RecordBatches) > 0) {
			t.Fatalf("v%d from a topic without down-conversion: error %v, %d bytes", version, kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
		}
	}

	// fetch.max.bytes (600 KB) caps a v11 fetch asking for 50 MB.
	big := fetchRequest("old", 0, 0, 0)
	rp = big.Topics[0].Partitions[0]
	rp.Partition = 1
	big.Topics[0].Partitions = append(big.Topics[0].Partitions, rp)
	big.MaxBytes = 50 << 20
	for i := range big.Topics[0].Partitions {
		big.Topics[0].Partitions[i].PartitionMaxBytes = 50 << 20
	}
	big.SetVersion(11)
	resp = kmsg.NewPtrFetchResponse()
	rawRoundTrip(t, c, big, resp)
	total := 0
	for _, p := range resp.Topics[0].Partitions {
		total += len(p.RecordBatches)
	}
	if total == 0 || total > 600_000 {
		t.Fatalf("v11 fetch under fetch.max.bytes=600000: %d bytes", total)
	}
}
