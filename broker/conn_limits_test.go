package broker

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
)

// apiVersionsWorks reports whether c answers an ApiVersions request within
// wait.
func apiVersionsWorks(t *testing.T, c net.Conn, wait time.Duration) bool {
	t.Helper()
	clientID := "limits"
	req := kmsg.NewPtrApiVersionsRequest()
	if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := wire.ReadFrame(c, nil, 1<<20)
	return err == nil
}

func dial(t *testing.T, b *Broker) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConnectionLimits: past max.connections.per.ip a host's new
// connection is closed at once (and counted); past max.connections the
// broker accepts no more until one closes, and then serves the waiting
// one.
func TestConnectionLimits(t *testing.T) {
	t.Run("per-ip", func(t *testing.T) {
		b := startBroker(t, nil, "", func(c *Config) { c.Props["max.connections.per.ip"] = "2" })
		c1, c2 := dial(t, b), dial(t, b)
		if !apiVersionsWorks(t, c1, 5*time.Second) || !apiVersionsWorks(t, c2, 5*time.Second) {
			t.Fatal("the first two connections are not served")
		}
		if apiVersionsWorks(t, dial(t, b), 2*time.Second) {
			t.Fatal("a third connection from the host was served")
		}
		c1.Close()
		deadline := time.Now().Add(5 * time.Second)
		for !apiVersionsWorks(t, dial(t, b), 2*time.Second) {
			if time.Now().After(deadline) {
				t.Fatal("no connection served after one of two closed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		var m dto.Metric
		if err := b.metrics.connectionsRefused.WithLabelValues("per_ip_limit").Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
			t.Fatalf("gregor_connections_refused_total{reason=per_ip_limit} = %v (%v)", m.GetCounter().GetValue(), err)
		}
	})
	t.Run("total", func(t *testing.T) {
		b := startBroker(t, nil, "", func(c *Config) { c.Props["max.connections"] = "2" })
		c1, c2 := dial(t, b), dial(t, b)
		if !apiVersionsWorks(t, c1, 5*time.Second) || !apiVersionsWorks(t, c2, 5*time.Second) {
			t.Fatal("the first two connections are not served")
		}
		c3 := dial(t, b) // in the listen backlog
		if apiVersionsWorks(t, c3, 500*time.Millisecond) {
			t.Fatal("a third connection was served past max.connections=2")
		}
		c1.Close()
		_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ReadFrame(c3, nil, 1<<20); err != nil {
			t.Fatalf("the waiting connection was not served once one closed: %v", err)
		}
	})
}

// TestConnectionsLeaveRollsTheirFiles: connections stop being accepted a
// fortieth of the open-file limit (at least 50) short of it, so a segment
// roll, which needs an eightieth (at least 25), still finds its file and
// produce goes on (helper-62: 300 connections under ulimit -n 1024 failed
// rolls and flushes).
func TestConnectionsLeaveRollsTheirFiles(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "rolls", 1, map[string]string{"segment.bytes": "1024"})
	produce := func() kmsg.ProduceResponseTopicPartition {
		rb := record.NewBuilder()
		rb.Add(nil, bytes.Repeat([]byte("r"), 2000), nil, time.Now().UnixMilli())
		return rawProduce(t, cl, "rolls", 0, rb.Build())
	}
	produce() // the client's connection, before the limit is lowered
	open, low := lowerOpenFileLimit(t, 150)
	time.Sleep(openFilesRecount + 100*time.Millisecond) // the count is taken afresh

	// This process is the clients too: each connection is two files, where
	// the broker's count, taken afresh near the limit at most every
	// openFilesRecountNear, adds one per connection; dialling slower than
	// that keeps its count true.
	var served, refused []net.Conn
	for range 80 {
		time.Sleep(openFilesRecountNear + 2*time.Millisecond)
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			n, _ := countOpenFiles()
			t.Fatalf("dial with %d served, %d refused, %d of %d files open: %v", len(served), len(refused), n, low, err)
		}
		if apiVersionsWorks(t, c, 2*time.Second) {
			served = append(served, c)
		} else {
			refused = append(refused, c)
		}
	}
	defer func() {
		for _, c := range served {
			c.Close()
		}
	}()
	if len(refused) == 0 {
		t.Fatalf("all %d connections served with %d files left", len(served), low-open)
	}
	for _, c := range refused {
		c.Close()
	}
	time.Sleep(openFilesRecount + 100*time.Millisecond)
	// Rolls still find files: every produce is a new segment.
	for i := range 5 {
		if p := produce(); p.ErrorCode != 0 {
			n, _ := countOpenFiles()
			t.Fatalf("produce %d with %d connections served: %v (%d of %d files open)", i, len(served), kerr.ErrorForCode(p.ErrorCode), n, low)
		}
	}
	t.Logf("%d connections served, %d refused, with %d files to spare", len(served), len(refused), low-open)
}

// lowerOpenFileLimit sets the process's open-file limit to the files open
// now plus spare until the test ends, and returns both; it skips the test
// where that cannot be done.
func lowerOpenFileLimit(t *testing.T, spare int64) (open, limit int64) {
	t.Helper()
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Skip(err)
	}
	open, err := countOpenFiles()
	if err != nil {
		t.Skip(err)
	}
	low := syscall.Rlimit{Cur: uint64(open + spare), Max: saved.Max}
	if low.Cur >= saved.Cur {
		t.Skipf("open-file limit %d already low", saved.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })
	return open, int64(low.Cur)
}
