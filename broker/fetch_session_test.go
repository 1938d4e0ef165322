package broker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sessionFetch sends a fetch with the given session fields, reading parts
// (partition -> offset) of topic, to the client's fetch connection (the
// same one every time, which a session needs).
func sessionFetch(t *testing.T, cl *kgo.Client, id, epoch int32, topic string, parts map[int32]int64, forget []int32, maxWait int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SessionID = id
	req.SessionEpoch = epoch
	req.MaxWaitMillis = maxWait
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		var ps []int32
		for p := range parts {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for _, p := range ps {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rp.FetchOffset = parts[p]
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic = topic
		ft.Partitions = forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	raw, err := cl.Broker(0).Request(context.Background(), withTopicIDs(t, cl, req))
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*kmsg.FetchResponse)
}

// answered lists the partitions a fetch response carries, with how many
// records each has.
func answered(t *testing.T, resp *kmsg.FetchResponse) map[int32]int {
	t.Helper()
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
			}
			n := 0
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: rt.Topic, Partition: rp.Partition}, &rp, kgo.DefaultDecompressor(), nil)
			n = len(fp.Records)
			out[rp.Partition] = n
		}
	}
	return out
}

func TestFetchSessions(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "s", 3, nil)
	produceN(t, cl, "s", 0, 2)

	// A full fetch with epoch 0 creates a session and answers everything.
	resp := sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0, 1: 0, 2: 0}, nil, 0)
	if resp.ErrorCode != 0 || resp.SessionID <= 0 {
		t.Fatalf("full fetch: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	id := resp.SessionID
	if got := answered(t, resp); fmt.Sprint(got) != "map[0:2 1:0 2:0]" {
		t.Fatalf("full fetch answered %v", got)
	}
	if n := b.fetchSessions.Load(); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}

	// Nothing new: an incremental fetch that moves partition 0 past its
	// records answers no partition at all.
	resp = sessionFetch(t, cl, id, 1, "s", map[int32]int64{0: 2}, nil, 0)
	if resp.ErrorCode != 0 || resp.SessionID != id {
		t.Fatalf("incremental: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	if got := answered(t, resp); len(got) != 0 {
		t.Fatalf("incremental fetch without news answered %v", got)
	}

	// A record for partition 2, which the request does not name, wakes a
	// long poll, and only partition 2 is answered (with its new high
	// watermark and the record).
	done := make(chan *kmsg.FetchResponse, 1)
	go func() { done <- sessionFetch(t, cl, id, 2, "s", nil, nil, 10000) }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	produceN(t, newClient(t, b), "s", 2, 1)
	select {
	case resp = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("long poll not woken by a session partition the request did not name")
	}
	if got := answered(t, resp); fmt.Sprint(got) != "map[2:1]" {
		t.Fatalf("woken fetch answered %v (after %v)", got, time.Since(start))
	}
	hwm := resp.Topics[0].Partitions[0].HighWatermark
	if hwm != 1 {
		t.Fatalf("high watermark %d, want 1", hwm)
	}

	// A stale epoch is refused, and does not advance the session.
	resp = sessionFetch(t, cl, id, 2, "s", nil, nil, 0)
	if resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("stale epoch: error %d", resp.ErrorCode)
	}
	// The client did not move partition 2's offset: the record comes
	// again, as Kafka does.
	resp = sessionFetch(t, cl, id, 3, "s", nil, nil, 0)
	if got := answered(t, resp); fmt.Sprint(got) != "map[2:1]" {
		t.Fatalf("unmoved partition answered %v", got)
	}

	// A new log start offset is news.
	if p := deleteRecords(t, cl, "s", 0, 1); p.ErrorCode != 0 {
		t.Fatalf("delete records: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	resp = sessionFetch(t, cl, id, 4, "s", map[int32]int64{2: 1}, nil, 0)
	if got := answered(t, resp); fmt.Sprint(got) != "map[0:0]" {
		t.Fatalf("after DeleteRecords answered %v", got)
	}
	if ls := resp.Topics[0].Partitions[0].LogStartOffset; ls != 1 {
		t.Fatalf("log start %d, want 1", ls)
	}

	// A forgotten partition is no longer read.
	resp = sessionFetch(t, cl, id, 5, "s", nil, []int32{2}, 0)
	if got := answered(t, resp); len(got) != 0 {
		t.Fatalf("forgetting answered %v", got)
	}
	produceN(t, newClient(t, b), "s", 2, 1)
	resp = sessionFetch(t, cl, id, 6, "s", nil, nil, 300)
	if got := answered(t, resp); len(got) != 0 {
		t.Fatalf("forgotten partition answered %v", got)
	}

	// An unknown session id.
	resp = sessionFetch(t, cl, id+1, 1, "s", nil, nil, 0)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d", resp.ErrorCode)
	}

	// Epoch -1 with the id closes the session and is a sessionless
	// full fetch.
	resp = sessionFetch(t, cl, id, -1, "s", map[int32]int64{1: 0}, nil, 0)
	if resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("closing fetch: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	if got := answered(t, resp); fmt.Sprint(got) != "map[1:0]" {
		t.Fatalf("closing fetch answered %v", got)
	}
	resp = sessionFetch(t, cl, id, 7, "s", nil, nil, 0)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: error %d", resp.ErrorCode)
	}
	if n := b.fetchSessions.Load(); n != 0 {
		t.Fatalf("%d sessions after closing, want 0", n)
	}

	// A session ends with its connection.
	cl2 := newClient(t, b)
	if resp = sessionFetch(t, cl2, 0, 0, "s", map[int32]int64{1: 0}, nil, 0); resp.SessionID <= 0 {
		t.Fatalf("second session not created")
	}
	cl2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.fetchSessions.Load() != 0 || b.waiters.count.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, %d wake-up registrations after the connection closed", b.fetchSessions.Load(), b.waiters.count.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFetchSessionLimits: with no slots a full fetch gets no session; a
// connection that keeps opening sessions keeps only the newest few.
func TestFetchSessionLimits(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) { c.Props["max.incremental.fetch.session.cache.slots"] = "0" })
	cl := newClient(t, b)
	createTopic(t, cl, "s", 1, nil)
	resp := sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0}, nil, 0)
	if resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("no slots: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}

	b = startBroker(t, nil, "", nil)
	cl = newClient(t, b)
	createTopic(t, cl, "s", 1, nil)
	var ids []int32
	for range maxSessionsPerConn + 3 {
		resp := sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0}, nil, 0)
		ids = append(ids, resp.SessionID)
	}
	if n := b.fetchSessions.Load(); n != maxSessionsPerConn {
		t.Fatalf("%d sessions, want %d", n, maxSessionsPerConn)
	}
	if resp := sessionFetch(t, cl, ids[0], 1, "s", nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("oldest session kept: error %d", resp.ErrorCode)
	}
	if resp := sessionFetch(t, cl, ids[len(ids)-1], 1, "s", nil, nil, 0); resp.ErrorCode != 0 {
		t.Fatalf("newest session: error %d", resp.ErrorCode)
	}
}

// TestConsumeWithFetchSessions: franz-go's consumer uses sessions; every
// record of many partitions comes back once, in order, while records keep
// arriving.
func TestConsumeWithFetchSessions(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	const parts, perPart = 40, 50
	defer cl.Close()
	createTopic(t, cl, "many", parts, nil)
	cons := newClient(t, b, kgo.ConsumeTopics("many"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	prod := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	go func() {
		for i := range perPart {
			for p := range int32(parts) {
				prod.Produce(context.Background(), &kgo.Record{Topic: "many", Partition: p, Value: []byte(fmt.Sprint(i))}, nil)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	next := make(map[int32]int64)
	total := 0
	sawSession := false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for total < parts*perPart {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", total, parts*perPart)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("%s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] || string(r.Value) != fmt.Sprint(r.Offset) {
				t.Fatalf("partition %d: offset %d value %q, want offset %d", r.Partition, r.Offset, r.Value, next[r.Partition])
			}
			next[r.Partition]++
			total++
		})
		if b.fetchSessions.Load() > 0 {
			sawSession = true
		}
	}
	if !sawSession {
		t.Fatal("the consumer never held a fetch session")
	}
}

// TestEmptyFetchAnsweredAtOnce: a fetch of no partitions at all, without
// a session, creating one, or in one whose partitions were all forgotten,
// is answered at once however long MaxWait is, as in Kafka; a session
// that still has partitions long-polls.
func TestEmptyFetchAnsweredAtOnce(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "e", 1, nil)
	quick := func(what string, f func() *kmsg.FetchResponse) *kmsg.FetchResponse {
		t.Helper()
		start := time.Now()
		resp := f()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: answered after %v, MaxWait 5 s", what, took)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("%s: %v", what, kerr.ErrorForCode(resp.ErrorCode))
		}
		return resp
	}
	quick("sessionless, no partitions", func() *kmsg.FetchResponse { return sessionFetch(t, cl, 0, -1, "e", nil, nil, 5000) })
	quick("new session, no partitions", func() *kmsg.FetchResponse { return sessionFetch(t, cl, 0, 0, "e", nil, nil, 5000) })
	resp := sessionFetch(t, cl, 0, 0, "e", map[int32]int64{0: 0}, nil, 0)
	id := resp.SessionID
	start := time.Now()
	sessionFetch(t, cl, id, 1, "e", nil, nil, 1000)
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("a session with a partition and no news answered after %v, want the 1 s MaxWait", took)
	}
	quick("session with every partition forgotten", func() *kmsg.FetchResponse { return sessionFetch(t, cl, id, 2, "e", nil, []int32{0}, 5000) })
}

// TestFetchChunksOutOfTopicOrder: partitions read in an order other than
// the one the response encodes them in, because a topic is named twice in
// the request or a session's partitions of one topic are apart, get their
// own records. (The splice of record chunks into the response panicked,
// taking the broker down, when a chunk's placeholder came before the
// previous one's.)
func TestFetchChunksOutOfTopicOrder(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "oa", 2, nil)
	createTopic(t, cl, "ob", 1, nil)
	counts := map[string]int{"oa/0": 1, "ob/0": 2, "oa/1": 3}
	for tp, n := range counts {
		var topic string
		var p int32
		fmt.Sscanf(strings.Replace(tp, "/", " ", 1), "%s %d", &topic, &p)
		produceN(t, cl, topic, p, n)
	}
	names := map[[16]byte]string{} // v13+ answers name topics by id
	for _, topic := range []string{"oa", "ob"} {
		r := withTopicIDs(t, cl, &kmsg.FetchRequest{Topics: []kmsg.FetchRequestTopic{{Topic: topic}}})
		names[r.Topics[0].TopicID] = topic
	}
	check := func(what string, resp *kmsg.FetchResponse) {
		t.Helper()
		got := map[string]int{}
		for _, rt := range resp.Topics {
			if rt.Topic == "" {
				rt.Topic = names[rt.TopicID]
			}
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					t.Fatalf("%s: %s/%d: %v", what, rt.Topic, rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
				}
				fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: rt.Topic, Partition: rp.Partition}, &rp, kgo.DefaultDecompressor(), nil)
				if fp.Err != nil {
					t.Fatalf("%s: %s/%d: %v", what, rt.Topic, rp.Partition, fp.Err)
				}
				got[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] += len(fp.Records)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(counts) {
			t.Fatalf("%s: records per partition %v, want %v", what, got, counts)
		}
	}
	// Sessionless, topic oa named twice around ob.
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	for _, tp := range []struct {
		topic string
		p     int32
	}{{"oa", 0}, {"ob", 0}, {"oa", 1}} {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = tp.topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = tp.p, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	withTopicIDs(t, cl, req)
	for _, v := range []int16{4, 11, 12, 13} {
		r := *req
		r.Version = v
		raw, err := cl.Broker(0).Request(context.Background(), &r)
		if err != nil {
			t.Fatalf("v%d: %v (the broker died?)", v, err)
		}
		check(fmt.Sprintf("sessionless v%d", v), raw.(*kmsg.FetchResponse))
	}
	// A session whose oa partitions are apart: oa/0 returns records
	// first and moves to the end, behind ob/0.
	resp := sessionFetch(t, cl, 0, 0, "oa", map[int32]int64{0: 0}, nil, 0)
	id := resp.SessionID
	resp = sessionFetch(t, cl, id, 1, "ob", map[int32]int64{0: 0}, nil, 0)
	resp = sessionFetch(t, cl, id, 2, "oa", map[int32]int64{1: 0, 0: 0}, nil, 0)
	check("session", resp)
}

// TestFetchRepeatedPartitionAnsweredOnce: a sessionless fetch naming a
// partition twice (in one topic entry or in two) gets one answer for it,
// as from Kafka.
func TestFetchRepeatedPartitionAnsweredOnce(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "rp", 2, nil)
	produceN(t, cl, "rp", 0, 3)
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	for _, parts := range [][]int32{{0, 0, 1}, {0}} {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "rp"
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	raw, err := cl.Broker(0).Request(context.Background(), withTopicIDs(t, cl, req))
	if err != nil {
		t.Fatal(err)
	}
	answered := map[int32]int{}
	for _, rt := range raw.(*kmsg.FetchResponse).Topics {
		for _, rp := range rt.Partitions {
			answered[rp.Partition]++
		}
	}
	if answered[0] != 1 || answered[1] != 1 || len(answered) != 2 {
		t.Fatalf("partitions answered %v, want each once", answered)
	}
}

// TestHasRepeat covers both ways of looking for a repeated partition.
func TestHasRepeat(t *testing.T) {
	build := func(n int, repeat bool) (*kmsg.FetchRequest, int) {
		req := kmsg.NewPtrFetchRequest()
		for _, topic := range []string{"a", "b"} {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			for p := range n {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = int32(p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		if repeat {
			last := req.Topics[0].Partitions[n-1]
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.Partitions = "a", []kmsg.FetchRequestTopicPartition{last}
			req.Topics = append(req.Topics, rt)
		}
		total := 0
		for _, rt := range req.Topics {
			total += len(rt.Partitions)
		}
		return req, total
	}
	for _, n := range []int{3, 40} {
		for _, repeat := range []bool{false, true} {
			req, total := build(n, repeat)
			if got := hasRepeat(req, total); got != repeat {
				t.Errorf("%d partitions per topic, repeat %v: hasRepeat %v", n, repeat, got)
			}
		}
	}
}

// TestFetchSessionSizeBound: a session may hold at most the partitions the
// broker hosts plus sessionPartitionSlack (partitions that do not exist
// cost memory like real ones). A full fetch naming more gets no session; a
// session grown past the bound by an incremental fetch is closed with
// FETCH_SESSION_ID_NOT_FOUND, which makes clients start again without one.
func TestFetchSessionSizeBound(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "s", 2, nil)
	bound := b.maxSessionPartitions()
	if bound < sessionPartitionSlack+2 {
		t.Fatalf("bound %d with 2 partitions hosted", bound)
	}
	many := map[int32]int64{}
	for p := range int32(bound + 1) {
		many[p] = 0 // all but two unknown
	}
	resp := sessionFetch(t, cl, 0, 0, "s", many, nil, 0)
	if resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("full fetch of %d partitions: error %d, session %d; want answered without a session", len(many), resp.ErrorCode, resp.SessionID)
	}
	if n := b.fetchSessions.Load(); n != 0 {
		t.Fatalf("%d sessions", n)
	}

	resp = sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0, 1: 0}, nil, 0)
	id := resp.SessionID
	if resp.ErrorCode != 0 || id == 0 {
		t.Fatalf("small session: error %d, session %d", resp.ErrorCode, id)
	}
	delete(many, 0)
	delete(many, 1)
	resp = sessionFetch(t, cl, id, 1, "s", many, nil, 0)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("session grown to %d partitions: error %d, want FETCH_SESSION_ID_NOT_FOUND", len(many)+2, resp.ErrorCode)
	}
	if n := b.fetchSessions.Load(); n != 0 {
		t.Fatalf("%d sessions after closing the grown one", n)
	}
	if resp := sessionFetch(t, cl, id, 2, "s", nil, nil, 0); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session answered: error %d", resp.ErrorCode)
	}

	// Forgetting many partitions at once keeps the rest, in order.
	resp = sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0, 1: 0, 7: 0, 9: 0}, nil, 0)
	id = resp.SessionID
	resp = sessionFetch(t, cl, id, 1, "s", nil, []int32{0, 7, 9, 9, 12}, 0)
	if resp.ErrorCode != 0 {
		t.Fatalf("forget: error %d", resp.ErrorCode)
	}
	var s *fetchSession
	b.mu.Lock()
	for c := range b.mu.conns {
		c.sessions.mu.Lock()
		if c.sessions.mu.m[id] != nil {
			s = c.sessions.mu.m[id]
		}
		c.sessions.mu.Unlock()
	}
	b.mu.Unlock()
	if s == nil {
		t.Fatal("session not found")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.parts) != 1 || s.parts[0].tp.partition != 1 || len(s.index) != 1 {
		t.Fatalf("after forgetting 0, 7 and 9: %d parts, %d indexed", len(s.parts), len(s.index))
	}
}
