package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/gregor-log/gregor/broker/group"
)

// groupBroker starts a broker whose groups allow short sessions and whose
// offsets topic is small, for fast group tests.
func groupBroker(t *testing.T, dataDir string) *Broker {
	t.Helper()
	return startBroker(t, nil, dataDir, func(c *Config) {
		c.Props["group.min.session.timeout.ms"] = "100"
		c.Props["offsets.topic.num.partitions"] = "4"
	})
}

func request[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func joinReq(group, member string, instance *string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group = group
	req.MemberID = member
	req.InstanceID = instance
	req.SessionTimeoutMillis = 10000
	req.RebalanceTimeoutMillis = 10000
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = []string{"t"}
	p.Metadata = md.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	return req
}

func commitReq(group, member string, gen int32, topic string, partition int32, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rp.LeaderEpoch = 0
	rp.Metadata = kmsg.StringPtr("meta-" + strconv.FormatInt(offset, 10))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func fetchOffset(t *testing.T, cl *kgo.Client, group, topic string, partition int32) kmsg.OffsetFetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.OffsetFetchResponse](t, cl, req)
	wantCode(t, "offset fetch", resp.ErrorCode, nil)
	return resp.Topics[0].Partitions[0]
}

// TestGroupProtocolErrors walks one group through the protocol with raw
// requests, checking the error codes clients depend on.
func TestGroupProtocolErrors(t *testing.T) {
	b := groupBroker(t, "")
	cl := newClient(t, b)
	createTopic(t, cl, "t", 2, nil)

	// FindCoordinator: this broker, single and batched.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "g"
	fc.SetVersion(3)
	fcr := request[*kmsg.FindCoordinatorResponse](t, cl, fc)
	wantCode(t, "find coordinator", fcr.ErrorCode, nil)
	if fcr.NodeID != b.cfg.BrokerID || fcr.Host != "127.0.0.1" || fcr.Port != int32(b.Addr().(*net.TCPAddr).Port) {
		t.Fatalf("coordinator %d %s:%d", fcr.NodeID, fcr.Host, fcr.Port)
	}
	fc = kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"a", "b"}
	fc.SetVersion(4)
	fcr = request[*kmsg.FindCoordinatorResponse](t, cl, fc)
	keys := map[string]bool{}
	for _, co := range fcr.Coordinators {
		if co.NodeID == b.cfg.BrokerID && co.ErrorCode == 0 {
			keys[co.Key] = true
		}
	}
	if len(fcr.Coordinators) != 2 || !keys["a"] || !keys["b"] {
		t.Fatalf("batched find coordinator %+v", fcr.Coordinators)
	}
	fc.CoordinatorType = 1
	fc.CoordinatorKeys = []string{"tx", ""}
	fcr = request[*kmsg.FindCoordinatorResponse](t, cl, fc)
	byKey := map[string]kmsg.FindCoordinatorResponseCoordinator{}
	for _, co := range fcr.Coordinators { // the client may answer keys in any order
		byKey[co.Key] = co
	}
	wantCode(t, "transaction coordinator", byKey["tx"].ErrorCode, nil)
	if byKey["tx"].NodeID != b.cfg.BrokerID {
		t.Fatalf("transaction coordinator %+v", fcr.Coordinators)
	}
	wantCode(t, "transaction coordinator of an empty id", byKey[""].ErrorCode, kerr.InvalidRequest)

	// JoinGroup v4+: MEMBER_ID_REQUIRED, then join with the id.
	jr := request[*kmsg.JoinGroupResponse](t, cl, joinReq("g", "", nil))
	wantCode(t, "first join", jr.ErrorCode, kerr.MemberIDRequired)
	member := jr.MemberID
	jr = request[*kmsg.JoinGroupResponse](t, cl, joinReq("g", member, nil))
	wantCode(t, "join", jr.ErrorCode, nil)
	if jr.Generation != 1 || jr.LeaderID != member || len(jr.Members) != 1 || *jr.Protocol != "range" {
		t.Fatalf("join %+v", jr)
	}
	bad := joinReq("g", "", nil)
	bad.SessionTimeoutMillis = 50
	wantCode(t, "short session", request[*kmsg.JoinGroupResponse](t, cl, bad).ErrorCode, kerr.InvalidSessionTimeout)
	wantCode(t, "empty group", request[*kmsg.JoinGroupResponse](t, cl, joinReq("", "", nil)).ErrorCode, kerr.InvalidGroupID)
	other := joinReq("g", "", nil)
	other.ProtocolType = "connect"
	wantCode(t, "other protocol type", request[*kmsg.JoinGroupResponse](t, cl, other).ErrorCode, kerr.InconsistentGroupProtocol)

	// SyncGroup as leader: our assignment comes back untouched.
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "g", member, 1
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = member, []byte("opaque assignment")
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	sr := request[*kmsg.SyncGroupResponse](t, cl, sync)
	wantCode(t, "sync", sr.ErrorCode, nil)
	if string(sr.MemberAssignment) != "opaque assignment" {
		t.Fatalf("assignment %q", sr.MemberAssignment)
	}
	sync.Generation = 7
	wantCode(t, "sync stale", request[*kmsg.SyncGroupResponse](t, cl, sync).ErrorCode, kerr.IllegalGeneration)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", member, 1
	wantCode(t, "heartbeat", request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode, nil)
	hb.Generation = 0
	wantCode(t, "heartbeat old generation", request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode, kerr.IllegalGeneration)
	hb.MemberID, hb.Generation = "nobody", 1
	wantCode(t, "heartbeat unknown member", request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode, kerr.UnknownMemberID)
	hb.Group = "no-such-group"
	wantCode(t, "heartbeat unknown group", request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode, kerr.UnknownMemberID)

	// Commits: the member's own, a simple one (refused: the group has a
	// member), unknown partitions, oversized metadata.
	cr := request[*kmsg.OffsetCommitResponse](t, cl, commitReq("g", member, 1, "t", 1, 42))
	wantCode(t, "commit", cr.Topics[0].Partitions[0].ErrorCode, nil)
	cr = request[*kmsg.OffsetCommitResponse](t, cl, commitReq("g", "", -1, "t", 1, 43))
	wantCode(t, "simple commit to active group", cr.Topics[0].Partitions[0].ErrorCode, kerr.UnknownMemberID)
	cr = request[*kmsg.OffsetCommitResponse](t, cl, commitReq("g", member, 1, "t", 9, 1))
	wantCode(t, "commit unknown partition", cr.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	cr = request[*kmsg.OffsetCommitResponse](t, cl, commitReq("g", member, 1, "nope", 0, 1))
	wantCode(t, "commit unknown topic", cr.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	big := commitReq("g", member, 1, "t", 0, 1)
	big.Topics[0].Partitions[0].Metadata = kmsg.StringPtr(string(make([]byte, 5000)))
	cr = request[*kmsg.OffsetCommitResponse](t, cl, big)
	wantCode(t, "commit big metadata", cr.Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge)
	got := fetchOffset(t, cl, "g", "t", 1)
	if got.Offset != 42 || *got.Metadata != "meta-42" || got.LeaderEpoch != 0 {
		t.Fatalf("fetched %+v", got)
	}
	if got := fetchOffset(t, cl, "g", "t", 0); got.Offset != -1 {
		t.Fatalf("uncommitted partition %+v", got)
	}

	// Describe, list.
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Groups = []string{"g", "unknown"}
	dr.IncludeAuthorizedOperations = true
	drr := request[*kmsg.DescribeGroupsResponse](t, cl, dr)
	g0 := drr.Groups[0]
	if g0.State != "Stable" || g0.Protocol != "range" || len(g0.Members) != 1 || string(g0.Members[0].MemberAssignment) != "opaque assignment" ||
		g0.Members[0].ClientHost != "/127.0.0.1" || g0.AuthorizedOperations != groupOperations {
		t.Fatalf("described %+v", g0)
	}
	if drr.Groups[1].State != "Dead" || drr.Groups[1].ErrorCode != 0 {
		t.Fatalf("unknown group described %+v", drr.Groups[1])
	}
	lg := kmsg.NewPtrListGroupsRequest()
	lg.StatesFilter = []string{"stable"}
	lgr := request[*kmsg.ListGroupsResponse](t, cl, lg)
	if len(lgr.Groups) != 1 || lgr.Groups[0].Group != "g" || lgr.Groups[0].GroupState != "Stable" {
		t.Fatalf("listed %+v", lgr.Groups)
	}
	lg.StatesFilter = []string{"Empty"}
	if lgr := request[*kmsg.ListGroupsResponse](t, cl, lg); len(lgr.Groups) != 0 {
		t.Fatalf("listed empty groups %+v", lgr.Groups)
	}
	// v5 (KIP-848): every group here is classic; a types filter naming
	// classic in any case lists it, one naming other types lists none.
	lg.StatesFilter = nil
	lg.SetVersion(5)
	for _, tc := range []struct {
		types []string
		want  int
	}{{nil, 1}, {[]string{"CLASSIC"}, 1}, {[]string{"consumer", "Classic"}, 1}, {[]string{"consumer"}, 0}, {[]string{"share", "no-such-type"}, 0}} {
		lg.TypesFilter = tc.types
		lgr := request[*kmsg.ListGroupsResponse](t, cl, lg)
		if len(lgr.Groups) != tc.want {
			t.Fatalf("types filter %q listed %+v, want %d groups", tc.types, lgr.Groups, tc.want)
		}
		if tc.want == 1 && lgr.Groups[0].GroupType != "classic" {
			t.Fatalf("group type %q, want classic", lgr.Groups[0].GroupType)
		}
	}

	// Deleting a group with members, deleting subscribed offsets: refused.
	dg := kmsg.NewPtrDeleteGroupsRequest()
	dg.Groups = []string{"g", "unknown"}
	dgr := request[*kmsg.DeleteGroupsResponse](t, cl, dg)
	wantCode(t, "delete active group", dgr.Groups[0].ErrorCode, kerr.NonEmptyGroup)
	wantCode(t, "delete unknown group", dgr.Groups[1].ErrorCode, kerr.GroupIDNotFound)
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	odt := kmsg.NewOffsetDeleteRequestTopic()
	odt.Topic = "t"
	odp := kmsg.NewOffsetDeleteRequestTopicPartition()
	odp.Partition = 1
	odt.Partitions = append(odt.Partitions, odp)
	od.Topics = append(od.Topics, odt)
	odr := request[*kmsg.OffsetDeleteResponse](t, cl, od)
	wantCode(t, "delete subscribed offset", odr.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)

	// LeaveGroup v3+: batched, with an unknown member.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group = "g"
	for _, id := range []string{member, "ghost"} {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		lv.Members = append(lv.Members, m)
	}
	lvr := request[*kmsg.LeaveGroupResponse](t, cl, lv)
	wantCode(t, "leave", lvr.ErrorCode, nil)
	wantCode(t, "leave member", lvr.Members[0].ErrorCode, nil)
	wantCode(t, "leave ghost", lvr.Members[1].ErrorCode, kerr.UnknownMemberID)

	// Empty now: the offset can go, then the group.
	odr = request[*kmsg.OffsetDeleteResponse](t, cl, od)
	wantCode(t, "delete offset", odr.Topics[0].Partitions[0].ErrorCode, nil)
	if got := fetchOffset(t, cl, "g", "t", 1); got.Offset != -1 {
		t.Fatalf("deleted offset still there: %+v", got)
	}
	dg.Groups = []string{"g"}
	wantCode(t, "delete empty group", request[*kmsg.DeleteGroupsResponse](t, cl, dg).Groups[0].ErrorCode, nil)
	lg.StatesFilter = nil
	if lgr := request[*kmsg.ListGroupsResponse](t, cl, lg); len(lgr.Groups) != 0 {
		t.Fatalf("groups after delete %+v", lgr.Groups)
	}
}

// TestGroupJoinWaitsForRebalance: a second member's JoinGroup is answered
// only when the first rejoins, through the asynchronous handler path.
func TestGroupJoinWaitsForRebalance(t *testing.T) {
	b := groupBroker(t, "")
	cl := newClient(t, b)
	cl2 := newClient(t, b)
	a := request[*kmsg.JoinGroupResponse](t, cl, joinReq("w", "", nil)) // v9: MEMBER_ID_REQUIRED
	a = request[*kmsg.JoinGroupResponse](t, cl, joinReq("w", a.MemberID, nil))
	wantCode(t, "join a", a.ErrorCode, nil)

	done := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		first, err := joinReq("w", "", nil).RequestWith(ctx, cl2)
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		resp, err := joinReq("w", first.MemberID, nil).RequestWith(ctx, cl2)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "w", a.MemberID, a.Generation
	deadline := time.Now().Add(10 * time.Second)
	for request[*kmsg.HeartbeatResponse](t, cl, hb).ErrorCode != kerr.RebalanceInProgress.Code {
		if time.Now().After(deadline) {
			t.Fatal("no rebalance after a second member joined")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("second join answered before the first member rejoined: %+v", r)
	default:
	}
	a2 := request[*kmsg.JoinGroupResponse](t, cl, joinReq("w", a.MemberID, nil))
	r := <-done
	if r == nil || r.ErrorCode != 0 || r.Generation != 2 || a2.Generation != 2 || len(a2.Members) != 2 {
		t.Fatalf("rebalance results %+v %+v", a2, r)
	}
}

// TestGroupConsumersShareTopic: two franz-go group consumers split a topic,
// consume every record once, commit, and a later member of the group
// resumes after the commits.
func TestGroupConsumersShareTopic(t *testing.T) {
	b := groupBroker(t, "")
	admin := newClient(t, b)
	createTopic(t, admin, "share", 6, nil)
	const n = 600
	var mu sync.Mutex
	seen := map[string]int{}
	consume := func(name string) *kgo.Client {
		return newClient(t, b, kgo.ConsumerGroup("share-group"), kgo.ConsumeTopics("share"),
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.SessionTimeout(2*time.Second),
			kgo.HeartbeatInterval(100*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(100*time.Millisecond), kgo.ClientID(name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c1, c2 := consume("c1"), consume("c2")
	var wg sync.WaitGroup
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	for _, cl := range []*kgo.Client{c1, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pollCtx.Err() == nil {
				fs := cl.PollFetches(pollCtx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)]++
					mu.Unlock()
				})
				if err := cl.CommitUncommittedOffsets(ctx); err != nil && pollCtx.Err() == nil {
					t.Errorf("commit: %v", err)
				}
			}
		}()
	}
	// Wait until both members hold partitions in a stable group, then
	// produce: no rebalance happens while the records are consumed.
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Groups = []string{"share-group"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := request[*kmsg.DescribeGroupsResponse](t, admin, dr).Groups[0]
		owned := 0
		for _, m := range d.Members {
			var a kmsg.ConsumerMemberAssignment
			if err := a.ReadFrom(m.MemberAssignment); err == nil {
				for _, tp := range a.Topics {
					owned += len(tp.Partitions)
				}
			}
		}
		if d.State == "Stable" && len(d.Members) == 2 && owned == 6 && d.Protocol == "cooperative-sticky" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group not stable with 2 members owning 6 partitions: %+v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	producer := newClient(t, b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for i := 0; i < n; i++ {
		producer.Produce(ctx, &kgo.Record{Topic: "share", Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopPolling()
	wg.Wait()
	for _, cl := range []*kgo.Client{c1, c2} {
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("final commit: %v", err)
		}
	}
	c1.Close()
	c2.Close()
	var total int64
	for p := int32(0); p < 6; p++ {
		total += fetchOffset(t, admin, "share-group", "share", p).Offset
	}
	if total != n {
		t.Fatalf("committed offsets sum to %d, want %d", total, n)
	}
	for v, k := range seen {
		if k != 1 {
			t.Errorf("record %s consumed %d times", v, k)
		}
	}
	// Produce more; a new member reads only the new records.
	for i := n; i < n+10; i++ {
		producer.Produce(ctx, &kgo.Record{Topic: "share", Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c3 := consume("c3")
	got := 0
	for got < 10 {
		fs := c3.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, _ := strconv.Atoi(string(r.Value)); v < n {
				t.Fatalf("record %d consumed again after its commit", v)
			}
			got++
		})
	}
}

// TestOffsetsSurviveRestart: committed offsets and a static member's
// group are reloaded from __consumer_offsets, which is an internal,
// compacted topic.
func TestOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	func() {
		b := groupBroker(t, dir)
		cl := newClient(t, b)
		createTopic(t, cl, "r", 3, nil)
		for p := int32(0); p < 3; p++ {
			cr := request[*kmsg.OffsetCommitResponse](t, cl, commitReq(fmt.Sprintf("g%d", p), "", -1, "r", p, int64(100+p)))
			wantCode(t, "commit", cr.Topics[0].Partitions[0].ErrorCode, nil)
		}
		jr := request[*kmsg.JoinGroupResponse](t, cl, joinReq("static", "", kmsg.StringPtr("inst")))
		wantCode(t, "static join", jr.ErrorCode, nil)
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.MemberID, sync.Generation, sync.InstanceID = "static", jr.MemberID, jr.Generation, kmsg.StringPtr("inst")
		wantCode(t, "sync", request[*kmsg.SyncGroupResponse](t, cl, sync).ErrorCode, nil)
		cl.Close()
		stopBroker(t, b)
	}()
	b := groupBroker(t, dir)
	cl := newClient(t, b)
	deadline := time.Now().Add(10 * time.Second)
	for p := int32(0); p < 3; p++ {
		for {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.Group = fmt.Sprintf("g%d", p)
			resp := request[*kmsg.OffsetFetchResponse](t, cl, req)
			if resp.ErrorCode == kerr.CoordinatorLoadInProgress.Code && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			wantCode(t, "fetch after restart", resp.ErrorCode, nil)
			if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].Offset != int64(100+p) || resp.Topics[0].Partitions[0].Partition != p {
				t.Fatalf("group g%d after restart: %+v", p, resp.Topics)
			}
			break
		}
	}
	// The static member restarts and rejoins: same generation, no
	// rebalance.
	jr := request[*kmsg.JoinGroupResponse](t, cl, joinReq("static", "", kmsg.StringPtr("inst")))
	wantCode(t, "static rejoin", jr.ErrorCode, nil)
	if jr.Generation != 1 || !jr.SkipAssignment {
		t.Fatalf("static rejoin after restart %+v", jr)
	}
	md := request[*kmsg.MetadataResponse](t, cl, kmsg.NewPtrMetadataRequest())
	found := false
	for _, mt := range md.Topics {
		if mt.Topic != nil && *mt.Topic == group.OffsetsTopic {
			found = true
			if !mt.IsInternal || len(mt.Partitions) != 4 {
				t.Fatalf("offsets topic %+v", mt)
			}
		}
	}
	if !found {
		t.Fatal("no offsets topic in metadata")
	}
	tp, _ := b.store.Topic(group.OffsetsTopic)
	if tp.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("offsets topic configs %v", tp.Configs)
	}
}

// BenchmarkOffsetCommit100Groups measures offset commits per second from
// 100 groups at once: each commit is one OffsetCommit request of 4
// partitions, written to __consumer_offsets (50 partitions) before the
// answer, over 8 client connections. The Kfake variant runs the same
// workload against franz-go's in-memory kfake cluster, so the ratio of the
// two is meaningful on a shared machine.
func BenchmarkOffsetCommit100Groups(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "", b.TempDir()
	br, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- br.Serve() }()
	defer func() {
		br.Close(context.Background())
		<-served
	}()
	benchCommits(b, br.Addr().String())
}

func BenchmarkOffsetCommit100GroupsKfake(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchCommits(b, c.ListenAddrs()[0])
}

func benchCommits(b *testing.B, addr string) {
	const groups, conns, parts = 100, 8, 4
	// Both brokers speak OffsetCommit v8 (kfake would otherwise take v10,
	// with topic ids).
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(int16(kmsg.OffsetCommit), 8)
	clients := make([]*kgo.Client, conns)
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MaxVersions(vs))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		clients[i] = cl
	}
	ctx := context.Background()
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "bench", parts, 1
	ct.Topics = append(ct.Topics, rt)
	if _, err := ct.RequestWith(ctx, clients[0]); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + groups - 1) / groups
	for g := 0; g < groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[g%conns]
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Group = fmt.Sprintf("bench-group-%d", g)
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = "bench"
			for p := int32(0); p < parts; p++ {
				rp := kmsg.NewOffsetCommitRequestTopicPartition()
				rp.Partition = p
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			for i := 0; i < per; i++ {
				for p := range req.Topics[0].Partitions {
					req.Topics[0].Partitions[p].Offset = int64(i)
				}
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					b.Error(err)
					return
				}
				if c := resp.Topics[0].Partitions[0].ErrorCode; c != 0 {
					b.Error(kerr.ErrorForCode(c))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.ReportMetric(float64(per*groups)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(per*groups*parts)/elapsed.Seconds(), "offsets/s")
}

// TestGroupOldAndBatchedVersions covers the version-dependent shapes: a
// JoinGroup before v4 joins without MEMBER_ID_REQUIRED, OffsetCommit v2's
// retention and v0's implicit generation, OffsetFetch v1 (errors per
// partition, no "all topics") and v8 (several groups), LeaveGroup v0.
func TestGroupOldAndBatchedVersions(t *testing.T) {
	b := groupBroker(t, "")
	cl := newClient(t, b)
	createTopic(t, cl, "v", 2, nil)
	// at returns a client that speaks api at most at version v.
	at := func(api kmsg.Key, v int16) *kgo.Client {
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(int16(api), v)
		return newClient(t, b, kgo.MaxVersions(vs))
	}

	jresp := request[*kmsg.JoinGroupResponse](t, at(kmsg.JoinGroup, 3), joinReq("old", "", nil))
	wantCode(t, "join v3", jresp.ErrorCode, nil)
	if jresp.MemberID == "" || jresp.Generation != 1 {
		t.Fatalf("join v3 %+v", jresp)
	}

	c0 := commitReq("simple", "", -1, "v", 0, 7)
	wantCode(t, "commit v0", request[*kmsg.OffsetCommitResponse](t, at(kmsg.OffsetCommit, 0), c0).Topics[0].Partitions[0].ErrorCode, nil)
	c2 := commitReq("simple", "", -1, "v", 1, 9)
	c2.RetentionTimeMillis = 60000
	wantCode(t, "commit v2", request[*kmsg.OffsetCommitResponse](t, at(kmsg.OffsetCommit, 2), c2).Topics[0].Partitions[0].ErrorCode, nil)

	f1 := kmsg.NewPtrOffsetFetchRequest()
	f1.Group = "simple"
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic, ft.Partitions = "v", []int32{0, 1}
	f1.Topics = append(f1.Topics, ft)
	r1 := request[*kmsg.OffsetFetchResponse](t, at(kmsg.OffsetFetch, 1), f1)
	if len(r1.Topics) != 1 || r1.Topics[0].Partitions[0].Offset != 7 || r1.Topics[0].Partitions[1].Offset != 9 {
		t.Fatalf("fetch v1 %+v", r1.Topics)
	}

	f8 := kmsg.NewPtrOffsetFetchRequest()
	for _, g := range []string{"simple", "nobody"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g // null topics: everything committed
		f8.Groups = append(f8.Groups, rg)
	}
	r8 := request[*kmsg.OffsetFetchResponse](t, at(kmsg.OffsetFetch, 8), f8)
	if len(r8.Groups) != 2 || len(r8.Groups[0].Topics) != 1 || len(r8.Groups[0].Topics[0].Partitions) != 2 ||
		r8.Groups[0].Topics[0].Partitions[1].Offset != 9 || len(r8.Groups[1].Topics) != 0 {
		t.Fatalf("fetch v8 %+v", r8.Groups)
	}

	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group, lv.MemberID = "old", jresp.MemberID
	leave0 := at(kmsg.LeaveGroup, 0)
	wantCode(t, "leave v0", request[*kmsg.LeaveGroupResponse](t, leave0, lv).ErrorCode, nil)
	wantCode(t, "leave v0 again", request[*kmsg.LeaveGroupResponse](t, leave0, lv).ErrorCode, kerr.UnknownMemberID)
}

func TestGroupConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Props["group.min.session.timeout.ms"] = "10000"
	cfg.Props["group.max.session.timeout.ms"] = "5000"
	cfg.Props["offsets.topic.num.partitions"] = "0"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "group.min.session.timeout.ms=10000 is above") ||
		!strings.Contains(err.Error(), "offsets.topic.num.partitions") {
		t.Fatalf("want both problems reported, got %v", err)
	}
	cfg = DefaultConfig()
	cfg.Props["offsets.retention.minutes"] = "60"
	cfg.Props["group.initial.rebalance.delay.ms"] = "3000"
	g := cfg.groupConfig()
	if g.NumPartitions != 50 || g.MinSessionTimeout != 6*time.Second || g.MaxSessionTimeout != 30*time.Minute ||
		g.OffsetsRetention != time.Hour || g.InitialRebalanceDelay != 3*time.Second || g.MaxOffsetMetadataBytes != 4096 {
		t.Fatalf("group config %+v", g)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
}
