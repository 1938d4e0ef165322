package broker

import (
	"net"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
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
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	const n = 300
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := heap()
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
	perConn := (int64(heap()) - int64(before)) / n
	t.Logf("heap per idle connection: %d bytes", perConn)
	if perConn > 40<<10 {
		t.Fatalf("each idle connection holds %d bytes of heap, want well under the 64 KiB write buffer", perConn)
	}
}
