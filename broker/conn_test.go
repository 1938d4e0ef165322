package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestPipelinedResponsesKeepOrder sends random mixes of pipelined requests
// on one connection: long polls that wait (on an empty partition), fetches
// that answer at once, produces, metadata and ApiVersions. Responses are
// written either by the connection's reader (when nothing is queued ahead)
// or by its writer goroutine; whichever does, they must come back in
// request order, each exactly once, and a quick request pipelined behind a
// long poll must not wait for more than the long poll.
func TestPipelinedResponsesKeepOrder(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "empty", 1, nil)
	createTopic(t, cl, "data", 1, nil)
	produceN(t, cl, "data", 0, 3)

	fetch := func(topic string, wait time.Duration) *kmsg.FetchRequest {
		req := fetchRequest(topic, 0, 0, int32(wait/time.Millisecond))
		req.Version = 11
		return req
	}
	produce := func() *kmsg.ProduceRequest {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 7
		req.Acks = 1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "data"
		rp := kmsg.NewProduceRequestTopicPartition()
		rb := record.NewBuilder()
		rb.Add(nil, []byte("pipelined"), nil, time.Now().UnixMilli())
		rp.Records = rb.Build()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}
	metadata := func() *kmsg.MetadataRequest {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 9
		return req
	}
	apiVersions := func() *kmsg.ApiVersionsRequest {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName = "conn-test"
		req.ClientSoftwareVersion = "1"
		return req
	}

	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	clientID := "conn-test"
	const longPoll = 150 * time.Millisecond
	corr := int32(0)
	for round := range 30 {
		var frames []byte
		first, n := corr+1, 1+rng.IntN(12)
		polls := 0
		for range n {
			corr++
			var req kmsg.Request
			switch k := rng.IntN(10); {
			case k < 2:
				req = fetch("empty", longPoll)
				polls++
			case k < 4:
				req = fetch("data", 5*time.Second) // data is there: answered at once
			case k < 6:
				req = produce()
			case k < 8:
				req = metadata()
			default:
				req = apiVersions()
			}
			frames = wire.AppendRequest(frames, req, corr, &clientID)
		}
		start := time.Now()
		if _, err := c.Write(frames); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for want := first; want <= corr; want++ {
			body, err := wire.ReadFrame(c, nil, 1<<20)
			if err != nil {
				t.Fatalf("round %d: reading response %d: %v", round, want, err)
			}
			if got := int32(binary.BigEndian.Uint32(body)); got != want {
				t.Fatalf("round %d: response with correlation id %d, want %d", round, got, want)
			}
		}
		// Long polls on one connection are answered in turn, each after
		// its wait; nothing else should add more than a little.
		if took, limit := time.Since(start), time.Duration(polls)*longPoll+2*time.Second; took > limit {
			t.Fatalf("round %d: %d requests (%d long polls) took %v", round, n, polls, took)
		}
	}
}

// TestIdleConnectionsClosed checks connections.max.idle.ms: a connection
// that keeps sending requests stays open past the limit, and one that goes
// quiet is closed after between the limit and 9/8 of it (the deadline is
// extended lazily, see conn.arm).
func TestIdleConnectionsClosed(t *testing.T) {
	const idle = 400 * time.Millisecond
	b := startBroker(t, nil, "", func(cfg *Config) {
		cfg.Props["connections.max.idle.ms"] = "400"
	})
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	clientID := "idle-test"
	roundTrip := func(corr int32) {
		t.Helper()
		req := kmsg.NewPtrApiVersionsRequest()
		if _, err := c.Write(wire.AppendRequest(nil, req, corr, &clientID)); err != nil {
			t.Fatalf("request %d: %v", corr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ReadFrame(c, nil, 1<<20); err != nil {
			t.Fatalf("response %d: %v", corr, err)
		}
	}
	// Busy for three times the limit.
	start := time.Now()
	for corr := int32(1); time.Since(start) < 3*idle; corr++ {
		roundTrip(corr)
		time.Sleep(idle / 10)
	}
	roundTrip(1000)
	quiet := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	took := time.Since(quiet)
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("read on an idle connection: %d bytes, %v; want it closed by the broker", n, err)
	}
	// The reader's deadline may have been set up to idle/8 before the
	// last request; allow scheduling slack on top of 9/8.
	if took < idle-idle/8 || took > idle+idle/8+time.Second {
		t.Fatalf("idle connection closed after %v, want about %v", took, idle)
	}
}

// TestLongPollReleasedWhenClientLeaves: a client that sends long-polling
// fetches and goes away gets its connection, and the goroutines of its
// polls, released at once, not when the polls' wait is up; a pipelined
// request after a long poll is dropped with it. (Before, the connection
// stayed in CLOSE-WAIT for up to the 5 minutes a poll may wait.)
func TestLongPollReleasedWhenClientLeaves(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "empty", 1, nil)
	cl.Close()
	conns := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.mu.conns)
	}
	clientID := "leaver"
	for i := range 5 {
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		req := fetchRequest("empty", 0, 0, 120_000)
		req.Version = 11
		frames := wire.AppendRequest(nil, req, 1, &clientID)
		if i%2 == 1 {
			frames = wire.AppendRequest(frames, kmsg.NewPtrMetadataRequest(), 2, &clientID)
		}
		if _, err := c.Write(frames); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // the poll is waiting
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for conns() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := conns(); n > 0 {
		t.Fatalf("%d connections still open 5 s after their clients left mid long poll", n)
	}
}

// TestSlowReaderKeepsResponse: the write timeout cuts off a client that
// reads nothing of a response, not one that reads a large response
// slowly but steadily (the deadline is extended after every sendPiece
// sent). Run with a 400 ms timeout over a 7.5 MB fetch response, each
// client's receive buffer kept small so the kernel cannot hold the
// response for it.
func TestSlowReaderKeepsResponse(t *testing.T) {
	const timeout = 400 * time.Millisecond
	b := startBroker(t, nil, "", func(cfg *Config) { cfg.writeTimeout = timeout })
	cl := newClient(t, b)
	createTopic(t, cl, "big", 1, map[string]string{"max.message.bytes": "2000000"})
	value := bytes.Repeat([]byte("slow reader "), 1<<17) // 1.5 MB
	for range 5 {
		rb := record.NewBuilder()
		rb.Add(nil, value, nil, time.Now().UnixMilli())
		if p := rawProduce(t, cl, "big", 0, rb.Build()); p.ErrorCode != 0 {
			t.Fatalf("produce: error %d", p.ErrorCode)
		}
	}
	clientID := "slow"
	fetch := func(rcvbuf int) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
		req := fetchRequest("big", 0, 0, 0)
		req.Version = 11
		req.MaxBytes, req.Topics[0].Partitions[0].PartitionMaxBytes = 32<<20, 32<<20
		if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Steady: 256 KiB, then a 30 ms pause (up to 8 MB/s), 7.5 MB in
	// several times the timeout; each sendPiece goes in well under it.
	slow := fetch(512 << 10)
	defer slow.Close()
	var got int
	buf := make([]byte, 256<<10)
	start := time.Now()
	var want int
	for {
		_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		chunk := buf
		if want > 0 {
			chunk = buf[:min(len(buf), want-got)]
		}
		n, err := io.ReadFull(slow, chunk)
		got += n
		if want == 0 && got >= 4 {
			want = 4 + int(binary.BigEndian.Uint32(buf))
		}
		if got >= want && want > 0 {
			break
		}
		if err != nil {
			t.Fatalf("steady slow reader cut off after %d of %d bytes, %v: %v", got, want, time.Since(start), err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	steady := time.Since(start)
	if want < 7<<20 || steady < 2*timeout {
		t.Fatalf("read %d bytes in %v: not a large, slow response", want, time.Since(start))
	}

	// Stalled: reads nothing; closed after the timeout.
	stalled := fetch(64 << 10)
	defer stalled.Close()
	time.Sleep(2*timeout + timeout/4 + 500*time.Millisecond)
	_ = stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, stalled)
	if err == nil && n >= int64(want) {
		t.Fatalf("stalled reader got the whole response (%d bytes)", n)
	}
	t.Logf("stalled reader: %d bytes, then %v; steady read took %v", n, err, steady)
}

// TestHandlerPanicClosesOnlyItsConnection: a panic in a request's
// handler (a bug) is logged and counted, and closes that connection; the
// broker goes on serving others.
func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "hp", 1, nil)
	key := int16(kmsg.ListGroups)
	saved := apis[key]
	defer func() { apis[key] = saved }()
	bad := saved
	bad.handle = func(*Broker, *conn, wire.RequestHeader, kmsg.Request, *pending) { panic("boom") }
	apis[key] = bad

	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	clientID := "raw"
	req := kmsg.NewPtrListGroupsRequest()
	if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := wire.ReadFrame(c, nil, 1<<20); err == nil {
		t.Fatal("a response to the request whose handler panicked")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection stayed open after its handler panicked")
	}
	var m dto.Metric
	if err := b.metrics.handlerPanics.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Errorf("gregor_handler_panics_total %v, want 1", n)
	}
	apis[key] = saved
	produceN(t, cl, "hp", 0, 1) // the broker still serves
	if off, code := listOffset(t, cl, "hp", 0, -1); code != 0 || off != 1 {
		t.Fatalf("after the panic: end offset %d, %v", off, kerr.ErrorForCode(code))
	}
}

// TestShutdownDoesNotWaitForStalledReader: a client that reads nothing of
// a large fetch answer holds a clean shutdown for shutdownWriteTimeout,
// not for the write timeout or the shutdown deadline (helper-36: 31 s).
func TestShutdownDoesNotWaitForStalledReader(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "big", 1, map[string]string{"max.message.bytes": "2000000"})
	value := bytes.Repeat([]byte("stalled reader "), 100_000) // 1.5 MB
	for range 8 {
		rb := record.NewBuilder()
		rb.Add(nil, value, nil, time.Now().UnixMilli())
		if p := rawProduce(t, cl, "big", 0, rb.Build()); p.ErrorCode != 0 {
			t.Fatalf("produce: error %d", p.ErrorCode)
		}
	}
	cl.Close()
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	req := fetchRequest("big", 0, 0, 0)
	req.Version = 11
	req.MaxBytes, req.Topics[0].Partitions[0].PartitionMaxBytes = 32<<20, 32<<20
	clientID := "stalled"
	if _, err := c.Write(wire.AppendRequest(nil, req, 1, &clientID)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the answer fills the socket buffers
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > shutdownWriteTimeout+3*time.Second {
		t.Fatalf("shutdown took %v with a stalled reader", took)
	} else {
		t.Logf("shutdown took %v with a stalled reader", took)
	}
}

// TestShutdownStopsReadingRequests: a client that keeps sending produce
// requests back to back does not hold a clean shutdown until its
// deadline (helper-65: 30 s, acknowledging 156 MB after SIGTERM): the
// broker answers what it read and reads no more.
func TestShutdownStopsReadingRequests(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "pipe", 1, nil)
	cl.Close()
	// A slow disk: the client's requests pile up in the socket, so the
	// reader never finds it empty (which would end it).
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpWrite && strings.Contains(path, "pipe-0") {
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})
	t.Cleanup(efs.Clear)
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rb := record.NewBuilder()
	rb.Add(nil, bytes.Repeat([]byte("x"), 1000), nil, time.Now().UnixMilli())
	batch := rb.Build()
	clientID := "pipeliner"
	sent := make(chan struct{})
	go func() { // until the broker closes the connection
		defer close(sent)
		for id := int32(1); ; id++ {
			if _, err := c.Write(wire.AppendRequest(nil, produceRequest("pipe", 0, batch), id, &clientID)); err != nil {
				return
			}
		}
	}()
	answered := make(chan int)
	go func() {
		n := 0
		defer func() { answered <- n }()
		for {
			if _, err := wire.ReadFrame(c, nil, 1<<20); err != nil {
				return
			}
			if n++; n == 200 {
				answered <- n
			}
		}
	}()
	select {
	case <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("200 produce answers did not come")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Fatalf("shutdown took %v with a client sending requests back to back", took)
	}
	total := <-answered
	<-sent
	t.Logf("shutdown took %v; %d answers in all", took, total)
}
