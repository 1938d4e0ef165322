package broker

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
)

// TestVerySlowReaderNotCutOff: a client that reads a large response far
// slower than a sendPiece per write timeout, but steadily, gets all of it,
// whether it goes out with sendfile (Fetch v11) or from memory (Fetch v3,
// converted), although the kernel takes no more of it from the broker for
// longer than the write timeout (a socket is writable again only once
// half its send buffer is free): what the client's TCP acknowledges counts
// as progress. Kafka has no write timeout at all.
func TestVerySlowReaderNotCutOff(t *testing.T) {
	const timeout = time.Second
	b := startBroker(t, nil, "", func(cfg *Config) { cfg.writeTimeout = timeout })
	cl := newClient(t, b)
	createTopic(t, cl, "big", 1, map[string]string{"max.message.bytes": "2000000"})
	for range 2 {
		rb := record.NewBuilder()
		rb.Add(nil, bytes.Repeat([]byte("very slow reader "), 1<<16), nil, time.Now().UnixMilli()) // 1.1 MB
		if p := rawProduce(t, cl, "big", 0, rb.Build()); p.ErrorCode != 0 {
			t.Fatalf("produce: error %d", p.ErrorCode)
		}
	}
	clientID := "very-slow"
	for _, tc := range []struct {
		version      int16
		chunk        int
		every        time.Duration
		partMaxBytes int32
		minWant      int
	}{
		// 32 KiB every 100 ms: a sendPiece in 3.2 s, and half the send
		// buffer (socket.send.buffer.bytes, 512 KiB, doubled) free in
		// 1.6 s, both past the write timeout.
		{11, 32 << 10, 100 * time.Millisecond, 4 << 20, 2 << 20},
		{3, 32 << 10, 100 * time.Millisecond, 4 << 20, 2 << 20},
	} {
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A receive buffer below the loopback MSS would stall on TCP's
		// persist timer, not on the reader.
		_ = c.(*net.TCPConn).SetReadBuffer(128 << 10)
		req := fetchRequest("big", 0, 0, 0)
		req.Version = tc.version
		req.MaxBytes, req.Topics[0].Partitions[0].PartitionMaxBytes = 4<<20, tc.partMaxBytes
		if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
			t.Fatal(err)
		}
		var got, want int
		buf := make([]byte, tc.chunk)
		start := time.Now()
		for want == 0 || got < want {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if want == 0 && got == 0 && n >= 4 {
				want = 4 + int(binary.BigEndian.Uint32(buf))
			}
			got += n
			if err != nil && !(err == io.EOF && got >= want && want > 0) {
				t.Fatalf("v%d, %d bytes every %v: cut off after %d of %d bytes in %v: %v", tc.version, tc.chunk, tc.every, got, want, time.Since(start), err)
			}
			time.Sleep(tc.every)
		}
		if want < tc.minWant || time.Since(start) < 5*timeout {
			t.Fatalf("v%d: %d bytes in %v: not a large, slow response", tc.version, want, time.Since(start))
		}
	}
}

// TestUnsentResponsesBounded: a client that pipelines many requests
// behind a long poll, reading nothing, has the broker hold at most about
// maxUnsentBytes of their answers (then it stops reading from the
// connection) instead of queued.max.requests of them; once the poll ends
// and the client reads, every answer comes, in order.
func TestUnsentResponsesBounded(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "empty", 1, nil)
	cl.Close()

	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	clientID := "pipeliner"
	poll := fetchRequest("empty", 0, 0, 2000)
	poll.Version = 11
	frames := wire.AppendRequest(nil, poll, 1, &clientID)
	const n = 300
	for i := range n {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version = 3
		req.IncludeSynonyms, req.IncludeDocumentation = true, true
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeBroker
		rr.ResourceName = "0"
		req.Resources = append(req.Resources, rr)
		frames = wire.AppendRequest(frames, req, int32(2+i), &clientID)
	}
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // well inside the poll
	b.mu.Lock()
	var unsent int64
	var queued int
	for bc := range b.mu.conns {
		unsent, queued = bc.unsent.Load(), len(bc.queue)
	}
	b.mu.Unlock()
	if queued >= n || unsent > 2*maxUnsentBytes {
		t.Fatalf("behind a long poll: %d answers (%d bytes) held, want about %d bytes", queued, unsent, maxUnsentBytes)
	}
	if unsent < maxUnsentBytes/2 {
		t.Fatalf("only %d bytes held: are the answers that small?", unsent)
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for want := int32(1); want <= n+1; want++ {
		body, err := wire.ReadFrame(c, nil, 16<<20)
		if err != nil {
			t.Fatalf("reading answer %d: %v", want, err)
		}
		if got := int32(binary.BigEndian.Uint32(body)); got != want {
			t.Fatalf("answer %d, want %d", got, want)
		}
	}
	t.Logf("held %d answers, %d bytes, behind the poll", queued, unsent)
}
