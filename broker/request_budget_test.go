package broker

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
)

// bigProduce is an acks=1 produce request of about 700 KB to partition 0
// of topic: 7,000 records of 90-96 bytes of fill.
func bigProduce(topic string, fill byte) *kmsg.ProduceRequest {
	rb := record.NewBuilder()
	for i := range 7000 {
		rb.Add(nil, bytes.Repeat([]byte{fill}, 90+i%7), nil, 1000)
	}
	req := produceRequest(topic, 0, rb.Build())
	req.Acks = 1
	return req
}

// TestRequestBudget: with queued.max.request.bytes at 1 MiB, a client
// that has sent the size of a 700 KB produce request and trickles its body
// holds the budget: another connection's 700 KB produce is not read (nor
// answered) until the first request is whole; then both are answered and
// appended. Small requests are never held.
func TestRequestBudget(t *testing.T) {
	// The trickling frame is slow: waiting B would close it after
	// slowCheckAfter (TestRequestBudgetClosesSlowFrames).
	defer func(d time.Duration) { slowCheckAfter = d }(slowCheckAfter)
	slowCheckAfter = time.Hour
	b := startBroker(t, nil, "", func(c *Config) { c.Props["queued.max.request.bytes"] = "1048576" })
	cl := newClient(t, b)
	createTopic(t, cl, "rb", 1, nil)
	frame := func(tag string) []byte {
		req := bigProduce("rb", tag[0])
		req.SetVersion(7)
		id := "budget"
		return wire.AppendRequest(nil, req, 1, &id)
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	answered := func(c net.Conn) chan error {
		ch := make(chan error, 1)
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := wire.ReadFrame(c, nil, 1<<20)
			ch <- err
		}()
		return ch
	}
	fa, fb := frame("a"), frame("b")
	if len(fa) < 600<<10 || len(fa) > 1<<20 {
		t.Fatalf("frame of %d bytes", len(fa))
	}
	a, bc := dial(), dial()
	if _, err := a.Write(fa[:100]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a's size is read and reserved
	if _, err := bc.Write(fb); err != nil {
		t.Fatal(err)
	}
	doneB := answered(bc)
	// Small requests go on meanwhile.
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(t.Context(), cl); err != nil {
		t.Fatalf("metadata while the budget is held: %v", err)
	}
	select {
	case err := <-doneB:
		t.Fatalf("the second large request was answered (%v) while the first held the budget", err)
	case <-time.After(500 * time.Millisecond):
	}
	if got := b.budget.inUse(); got != int64(len(fa)-4) {
		t.Fatalf("budget in use: %d, want %d", got, len(fa)-4)
	}
	doneA := answered(a)
	if _, err := a.Write(fa[100:]); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"first": doneA, "second": doneB} {
		if err := <-ch; err != nil {
			t.Fatalf("%s request: %v", name, err)
		}
	}
	if off, code := listOffset(t, cl, "rb", 0, -1); code != 0 || off != 14000 {
		t.Fatalf("log end %d (code %d), want both requests' 14000 records", off, code)
	}
	if got := b.budget.inUse(); got != 0 {
		t.Fatalf("budget in use after both: %d", got)
	}
}

// claimLargeFrame opens a connection to b and sends the size of a 900 KB
// frame and four bytes of it, which takes 900 KB of the request budget.
func claimLargeFrame(t *testing.T, b *Broker) net.Conn {
	t.Helper()
	c := dial(t, b)
	if _, err := c.Write([]byte{0, 0x0d, 0xbb, 0xa0, 0, 0, 0, 7}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRequestBudgetStalledClient: a client that claims a large frame and
// stops sending holds the budget only budgetBodyTimeout: its connection
// is closed, the budget freed, and a waiting produce goes through.
func TestRequestBudgetStalledClient(t *testing.T) {
	defer func(d time.Duration) { budgetBodyTimeout = d }(budgetBodyTimeout)
	budgetBodyTimeout = 300 * time.Millisecond
	b := startBroker(t, nil, "", func(c *Config) { c.Props["queued.max.request.bytes"] = "1048576" })
	cl := newClient(t, b)
	createTopic(t, cl, "st", 1, nil)
	stalled := claimLargeFrame(t, b) // then nothing
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	resp := request[*kmsg.ProduceResponse](t, cl, bigProduce("st", 'v'))
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %d", code)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the produce took %v: want it held until the stalled frame's %v ran out", took, budgetBodyTimeout)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := stalled.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("stalled connection: read %d, %v; want it closed", n, err)
	}
}

// TestRequestBudgetClosesSlowFrames: a client that claims a large frame
// and sends it a byte at a time holds the budget only until another
// connection has waited slowCheckAfter for it: at that rate its frame
// would not be whole within budgetBodyTimeout, so its connection is
// closed (and says why in the log), and the waiting produce goes through
// long before budgetBodyTimeout.
func TestRequestBudgetClosesSlowFrames(t *testing.T) {
	defer func(a, w time.Duration) { slowCheckAfter, slowWindow = a, w }(slowCheckAfter, slowWindow)
	slowCheckAfter, slowWindow = 100*time.Millisecond, 100*time.Millisecond
	core, logs := observer.New(zap.InfoLevel)
	b := startBrokerLogged(t, nil, "", func(c *Config) { c.Props["queued.max.request.bytes"] = "1048576" }, zap.New(core))
	cl := newClient(t, b)
	createTopic(t, cl, "slow", 1, nil)
	// Then a byte every 50 ms: alive, but 900 KB would take half a day.
	slow := claimLargeFrame(t, b)
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := slow.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	time.Sleep(50 * time.Millisecond) // its size is read and reserved
	start := time.Now()
	resp := request[*kmsg.ProduceResponse](t, cl, bigProduce("slow", 'v'))
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the produce took %v: the slow frame held the budget", took)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := slow.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("slow connection: read %d, %v; want it closed", n, err)
	}
	if lines := logs.FilterMessageSnippet("arrives too slowly").All(); len(lines) != 1 {
		t.Fatalf("%d log lines for the closed slow frame, want 1", len(lines))
	}
}

// TestRequestBudgetDeadlineCleared: with connections.max.idle.ms=0 (no
// idle deadline), the deadline a large frame's body had does not outlive
// it: the connection, quiet for longer after the frame, still serves.
func TestRequestBudgetDeadlineCleared(t *testing.T) {
	defer func(d time.Duration) { budgetBodyTimeout = d }(budgetBodyTimeout)
	// Long enough for the 17 MB frame to arrive on a loaded machine under
	// the race detector (200 ms was not, once).
	budgetBodyTimeout = time.Second
	b := startBroker(t, nil, "", func(c *Config) { c.Props["connections.max.idle.ms"] = "0" })
	cl := newClient(t, b)
	createTopic(t, cl, "dc", 25, nil)
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A frame over maxReusedFrame: the connection does not keep its
	// buffer, so nothing else resets the read deadline after it (the
	// same batch to 25 partitions, 7,000 records each).
	huge := bigProduce("dc", 'x')
	huge.SetVersion(7)
	for p := int32(1); p < 25; p++ {
		rp := huge.Topics[0].Partitions[0]
		rp.Partition = p
		huge.Topics[0].Partitions = append(huge.Topics[0].Partitions, rp)
	}
	hugeResp := kmsg.NewPtrProduceResponse()
	rawRoundTrip(t, c, huge, hugeResp)
	for _, p := range hugeResp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("large produce, partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	time.Sleep(budgetBodyTimeout + 500*time.Millisecond)
	resp := kmsg.NewPtrProduceResponse()
	next := bigProduce("dc", 'y')
	next.SetVersion(7)
	rawRoundTrip(t, c, next, resp)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 7000 {
		t.Fatalf("second produce on the connection: %+v", p)
	}
}

// TestSlowHolderRules: which frames a waiter's check closes, by the bytes
// that came in each window: a trickle and a frame sent but for its last
// bytes are closed, as is a steady stream too slow to finish within
// budgetBodyTimeout once it has held slowProjectAfter; a request starting
// slowly (TCP slow start on a 400 ms round trip) and an honest 500 KB/s
// one are not, nor a frame read whole.
func TestSlowHolderRules(t *testing.T) {
	rb := newRequestBudget(1 << 40)
	type step struct {
		at      time.Duration // since the reservation
		arrived int64         // bytes of the frame arrived by then
	}
	cases := []struct {
		name    string
		size    int64
		steps   []step
		evictAt time.Duration // 0: never
	}{
		{"trickle", 89 << 20, []step{{time.Second, 1}, {2 * time.Second, 2}}, time.Second},
		{"all but the last byte", 89 << 20, []step{{time.Second, 89<<20 - 1}, {2 * time.Second, 89<<20 - 1}}, 2 * time.Second},
		{"steady but too slow", 89 << 20, []step{{time.Second, 20 << 10}, {3 * time.Second, 60 << 10}, {5 * time.Second, 100 << 10}, {6 * time.Second, 120 << 10}}, 5 * time.Second},
		{"slow start", 8 << 20, []step{{time.Second, 100 << 10}, {2 * time.Second, 900 << 10}, {3 * time.Second, 4 << 20}, {4 * time.Second, 8<<20 - 1}}, 0},
		{"500 KB/s", 8 << 20, []step{{time.Second, 500 << 10}, {6 * time.Second, 3000 << 10}, {12 * time.Second, 6000 << 10}, {16 * time.Second, 8<<20 - 1}}, 0},
		{"read whole", 8 << 20, []step{{time.Second, 8 << 20}, {30 * time.Second, 8 << 20}}, 0},
	}
	for _, c := range cases {
		var read atomic.Int64
		read.Store(1000) // earlier frames
		evictedAt := time.Duration(0)
		var now time.Duration
		h := &frameHolder{read: &read, ahead: func() int64 { return 0 }, evict: func() { evictedAt = now }}
		if _, err := rb.reserveFrame(int(c.size), h); err != nil {
			t.Fatal(err)
		}
		t0 := h.since
		for _, s := range c.steps {
			now = s.at
			read.Store(1000 + s.arrived)
			rb.mu.Lock()
			rb.evictSlowLocked(t0.Add(s.at))
			rb.mu.Unlock()
			if evictedAt != 0 {
				break
			}
		}
		if evictedAt != c.evictAt {
			t.Errorf("%s: closed at %v, want %v (0: never)", c.name, evictedAt, c.evictAt)
		}
		rb.releaseFrame(c.size, h)
	}
}
