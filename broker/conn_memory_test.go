package broker

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// TestIdleConnectionsHoldNoWriteBuffer: a connection that is answered and
// then falls idle gives its 64 KiB response buffer back, so thousands of
// idle client connections cost little heap. Before, every connection held
// one from accept: about 75 KiB of heap each here, against about 16 KiB now.
func TestIdleConnectionsHoldNoWriteBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	b := startBroker(t, nil, "", nil)
	const n = 300
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := heapInuse()
	for range n {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = "idle", "1"
		rawRoundTrip(t, c, req, kmsg.NewPtrApiVersionsResponse())
	}
	perConn := (int64(heapInuse()) - int64(before)) / n
	t.Logf("heap per idle connection: %d bytes", perConn)
	if perConn > 40<<10 {
		t.Fatalf("each idle connection holds %d bytes of heap, want well under the 64 KiB write buffer", perConn)
	}
}

// TestIdleConnectionsHoldNoLargeRequestBuffer: a connection that sent one
// large produce request and then only small ones, or fell idle, does not
// keep a buffer the size of the large one once idle for frameKeepIdle:
// low-rate producers that once sent a big batch would each hold it (about
// 900 KB each here before).
func TestIdleConnectionsHoldNoLargeRequestBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "big", 1, nil)
	produceReq := func(valueSize, n int) *kmsg.ProduceRequest {
		rb := record.NewBuilder()
		value := make([]byte, valueSize)
		for range n {
			rb.Add(nil, value, nil, time.Now().UnixMilli())
		}
		req := kmsg.NewPtrProduceRequest()
		req.Version = 7
		req.Acks = 1
		req.TimeoutMillis = 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "big"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = rb.Build()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}
	large, small := produceReq(1000, 900), produceReq(100, 1)
	const n = 40
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := heapInuse()
	for i := range n {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		rawRoundTrip(t, c, large, kmsg.NewPtrProduceResponse())
		if i%2 == 0 {
			rawRoundTrip(t, c, small, kmsg.NewPtrProduceResponse())
		}
	}
	time.Sleep(frameKeepIdle + 500*time.Millisecond) // they let go once idle that long
	perConn := (int64(heapInuse()) - int64(before)) / n
	t.Logf("heap per connection after a 900 KB produce: %d bytes", perConn)
	if perConn > 100<<10 {
		t.Fatalf("each connection holds %d bytes of heap after its large request", perConn)
	}
}

// heapInuse is the heap in use after two collections.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
