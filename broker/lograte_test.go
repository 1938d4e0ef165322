package broker

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gregor-log/gregor/broker/wire"
	"github.com/gregor-log/gregor/internal/vfs"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(10 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	step := func(key string, at time.Duration, wantOK bool, wantHeld int) {
		t.Helper()
		if ok, held := l.allow(key, t0.Add(at)); ok != wantOK || held != wantHeld {
			t.Fatalf("%s at %v: %v %d, want %v %d", key, at, ok, held, wantOK, wantHeld)
		}
	}
	step("a", 0, true, 0)
	for i := range 25 {
		step("a", time.Duration(i)*400*time.Millisecond, false, 0)
	}
	step("b", time.Second, true, 0) // another key is not held back
	step("a", 10*time.Second, true, 25)
	step("a", 19*time.Second, false, 0)
	step("a", 40*time.Second, true, 1)

	// Many keys: idle ones are pruned once there are enough of them,
	// recent ones kept.
	for i := range limiterPruneAt {
		l.allow(fmt.Sprint("k", i), t0.Add(45*time.Second)) // prunes b, keeps a
	}
	if _, ok := l.keys["b"]; ok || l.keys["a"] == nil {
		t.Fatalf("after pruning at 45 s: b kept or a gone")
	}
	step("a", 46*time.Second, false, 0)
	// Still full (every key was let through this interval, and it was
	// pruned this interval): new keys share one entry, whose first use
	// was the last k above.
	step("extra1", 46*time.Second, false, 0)
	step("extra2", 47*time.Second, false, 0)
	if _, ok := l.keys["extra1"]; ok || len(l.keys) != limiterPruneAt {
		t.Fatalf("a new key was added to a full map: %d keys", len(l.keys))
	}
	step("fresh", 61*time.Second, true, 0) // prunes every other key
	if n := len(l.keys); n != 1 {
		t.Fatalf("%d keys kept after pruning, want only fresh", n)
	}
	step("a", 61*time.Second, true, 0) // pruned: its held count went with it

	if got := refusalKey("10.1.2.3:51234", 1, 2); got != "10.1.2.3/1/2" {
		t.Errorf("refusalKey = %q", got)
	}
	if got := refusalKey("[::1]:9", 2, 0); got != "::1/2/0" {
		t.Errorf("refusalKey = %q", got)
	}
}

// TestRefusalsLoggedOncePerInterval: a client that reconnects again and
// again with a request version gregor does not serve (Fetch v14) is
// refused every time, and logged once.
func TestRefusalsLoggedOncePerInterval(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	b := startBrokerLogged(t, nil, "", nil, zap.New(core))
	clientID := "old"
	req := fetchRequest("t", 0, 0, 0)
	req.Version = 14
	frame := wire.AppendRequest(nil, req, 1, &clientID)
	for range 20 {
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("Fetch v14 answered (%d bytes, %v), want the connection closed", n, err)
		}
		c.Close()
	}
	lines := logs.FilterMessageSnippet("closing connection").All()
	if len(lines) != 1 {
		t.Fatalf("%d refusal lines for 20 refusals, want 1: %v", len(lines), lines)
	}
	if f := lines[0].ContextMap(); f["api_key"] != int16(1) || f["api_version"] != int16(14) {
		t.Errorf("refusal logged as %v", f)
	}
}

// TestOversizeFramesLoggedOncePerInterval: a client that keeps
// reconnecting with a frame over socket.request.max.bytes is closed every
// time and logged once (helper-62: 60,958 lines in 15 s).
func TestOversizeFramesLoggedOncePerInterval(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	b := startBrokerLogged(t, nil, "", nil, zap.New(core))
	for range 20 {
		c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{0x7f, 0xff, 0xff, 0x00}); err != nil { // 2 GiB
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("a 2 GiB frame answered (%d bytes, %v), want the connection closed", n, err)
		}
		c.Close()
	}
	if lines := logs.FilterMessage("closing connection").All(); len(lines) != 1 {
		t.Fatalf("%d lines for 20 oversize frames, want 1: %v", len(lines), lines)
	}
}

// TestProducerIDFailuresLoggedOncePerInterval: while the metadata store
// cannot be written, every InitProducerId is refused with
// COORDINATOR_NOT_AVAILABLE, and the failure is logged once per interval,
// not once per client retry.
func TestProducerIDFailuresLoggedOncePerInterval(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBrokerLogged(t, efs, "", nil, zap.New(core))
	t.Cleanup(efs.Clear) // before the broker closes
	efs.FailOn(vfs.OpWrite, "meta.log", syscall.EIO)
	efs.FailOn(vfs.OpWrite, "meta.json", syscall.EIO)
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 20 { // raw requests: kgo would retry the refusal itself
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = 4
		resp := kmsg.NewPtrInitProducerIDResponse()
		rawRoundTrip(t, c, req, resp)
		if resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
			t.Fatalf("InitProducerId with the metadata store failing: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	if lines := logs.FilterMessageSnippet("allocate producer id").All(); len(lines) != 1 {
		t.Fatalf("%d lines for 20 refused InitProducerIds, want 1: %v", len(lines), lines)
	}
}

// TestAutoCreateRefusalsLoggedOnce: out of descriptors, a Metadata
// request naming hundreds of new topics gets each refused, and the
// refusals are logged once, naming their code without kerr's generic
// text, not once a topic.
func TestAutoCreateRefusalsLoggedOnce(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	b := startBrokerLogged(t, nil, "", nil, zap.New(core))
	c, err := net.DialTimeout("tcp", b.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Accepted (and kept) before the limit drops.
	rawRoundTrip(t, c, kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrApiVersionsResponse())
	lowerOpenFileLimit(t, 50) // under the 100 kept for connections and rolls
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	req.AllowAutoTopicCreation = true
	for i := range 300 {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("auto.%d", i))
		req.Topics = append(req.Topics, rt)
	}
	resp := kmsg.NewPtrMetadataResponse()
	rawRoundTrip(t, c, req, resp)
	for _, rt := range resp.Topics {
		if rt.ErrorCode != kerr.InvalidPartitions.Code {
			t.Fatalf("%s: %v, want INVALID_PARTITIONS", *rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	lines := logs.FilterMessage("auto-create topic").All()
	if len(lines) != 1 {
		t.Fatalf("%d lines for 300 refused topics, want 1", len(lines))
	}
	fields := lines[0].ContextMap()
	if fields["code"] != "INVALID_PARTITIONS" || strings.Contains(fmt.Sprint(fields["error"]), "below 1") {
		t.Fatalf("logged %v", fields)
	}
	if _, ok := b.store.Topic("auto.0"); ok {
		t.Fatal("a topic was created out of descriptors")
	}
}
