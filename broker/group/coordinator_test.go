package group

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/broker/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memLog is an in-memory Log. Replay can be held at its start with gate,
// and Append can be made to fail.
type memLog struct {
	mu      sync.Mutex
	batches [][]byte
	failErr error
	gate    chan struct{} // if set, Replay waits for it to close
}

func (l *memLog) Append(batch []byte) error {
	if _, err := record.Validate(batch); err != nil {
		return fmt.Errorf("append an invalid batch: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failErr != nil {
		return l.failErr
	}
	l.batches = append(l.batches, append([]byte(nil), batch...))
	return nil
}

func (l *memLog) Replay(fn func([]byte) error) error {
	if l.gate != nil {
		<-l.gate
	}
	l.mu.Lock()
	batches := append([][]byte(nil), l.batches...)
	l.mu.Unlock()
	for _, b := range batches {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLog) setFail(err error) {
	l.mu.Lock()
	l.failErr = err
	l.mu.Unlock()
}

func (l *memLog) numBatches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type testCoord struct {
	*Coordinator
	logs []*memLog
}

// newTestCoord starts a coordinator with n partitions over memLogs (the
// given ones, or fresh), all loaded.
func newTestCoord(t *testing.T, n int32, logs []*memLog, mutate func(*Config), now func() time.Time) *testCoord {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NumPartitions = n
	cfg.MinSessionTimeout = 10 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewCoordinator(cfg, Options{Logger: zaptest.NewLogger(t), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tc := &testCoord{Coordinator: c, logs: logs}
	if tc.logs == nil {
		for i := int32(0); i < n; i++ {
			tc.logs = append(tc.logs, &memLog{})
		}
	}
	for p, l := range tc.logs {
		if err := c.LoadPartition(int32(p), l); err != nil {
			t.Fatal(err)
		}
	}
	for p := range tc.logs {
		waitFor(t, fmt.Sprintf("partition %d loaded", p), func() bool { return c.Loaded(int32(p)) })
	}
	return tc
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// joinAsync starts a join and returns where its answer will arrive.
func joinAsync(c *Coordinator, group string, req JoinRequest) chan JoinResult {
	ch := make(chan JoinResult, 1)
	c.JoinGroup(group, req, func(r JoinResult) { ch <- r })
	return ch
}

func syncAsync(c *Coordinator, group string, req SyncRequest) chan SyncResult {
	ch := make(chan SyncResult, 1)
	c.SyncGroup(group, req, func(r SyncResult) { ch <- r })
	return ch
}

func recv[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer to %s", what)
		panic("unreachable")
	}
}

func notYet[T any](t *testing.T, ch chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s answered early: %+v", what, v)
	default:
	}
}

func mustCode(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

// joinOne joins a single-member group and syncs it; returns the member id
// and generation.
func joinOne(t *testing.T, c *Coordinator, group string, sessionTimeout time.Duration) (string, int32) {
	t.Helper()
	req := consumerJoin("")
	req.SessionTimeout = sessionTimeout
	req.RebalanceTimeout = sessionTimeout
	r := recv(t, joinAsync(c, group, req), "join")
	mustCode(t, r.Err, nil)
	s := recv(t, syncAsync(c, group, SyncRequest{MemberID: r.MemberID, Generation: r.Generation,
		Assignments: []Assignment{{r.MemberID, []byte("everything")}}}), "sync")
	mustCode(t, s.Err, nil)
	return r.MemberID, r.Generation
}

func TestCoordinatorCommitFetchReload(t *testing.T) {
	c := newTestCoord(t, 3, nil, nil, nil)
	id, gen := joinOne(t, c.Coordinator, "g1", time.Minute)
	errs, err := c.CommitOffsets("g1", CommitRequest{MemberID: id, Generation: gen, Offsets: []CommitOffset{
		{TopicPartition: TopicPartition{"t", 0}, Offset: 10, LeaderEpoch: 2, Metadata: "hello"},
		{TopicPartition: TopicPartition{"t", 1}, Offset: 20, LeaderEpoch: -1},
		{TopicPartition: TopicPartition{"t", 2}, Offset: 30, Metadata: string(make([]byte, 5000))},
	}})
	mustCode(t, err, nil)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], kerr.OffsetMetadataTooLarge) {
		t.Fatalf("commit errors %v", errs)
	}
	// A simple commit to another group (no members) works; to g1 it does not.
	_, err = c.CommitOffsets("admin", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 5}}})
	mustCode(t, err, nil)
	_, err = c.CommitOffsets("g1", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 5}}})
	mustCode(t, err, kerr.UnknownMemberID)
	_, err = c.CommitOffsets("nope", CommitRequest{MemberID: "m", Generation: 3})
	mustCode(t, err, kerr.IllegalGeneration)

	got, err := c.FetchOffsets("g1", []TopicPartition{{"t", 0}, {"t", 1}, {"t", 2}, {"u", 0}})
	mustCode(t, err, nil)
	if !got[0].Found || got[0].Offset.Offset != 10 || got[0].Metadata != "hello" || got[0].LeaderEpoch != 2 ||
		!got[1].Found || got[1].Offset.Offset != 20 || got[2].Found || got[3].Found {
		t.Fatalf("fetched %+v", got)
	}
	all, _ := c.FetchOffsets("g1", nil)
	if len(all) != 2 || all[0].Partition != 0 || all[1].Partition != 1 {
		t.Fatalf("all offsets %+v", all)
	}
	if none, err := c.FetchOffsets("unknown", nil); err != nil || len(none) != 0 {
		t.Fatalf("unknown group: %v %v", none, err)
	}

	// A second coordinator over the same logs sees the same state: offsets,
	// and the stable group with its member, who can carry on heartbeating.
	c.Close()
	c2 := newTestCoord(t, 3, c.logs, nil, nil)
	got, _ = c2.FetchOffsets("g1", []TopicPartition{{"t", 0}, {"t", 1}})
	if got[0].Offset.Offset != 10 || got[0].Metadata != "hello" || got[0].LeaderEpoch != 2 || got[1].Offset.Offset != 20 {
		t.Fatalf("after reload %+v", got)
	}
	got, _ = c2.FetchOffsets("admin", []TopicPartition{{"t", 0}})
	if got[0].Offset.Offset != 5 {
		t.Fatalf("after reload %+v", got)
	}
	mustCode(t, c2.Heartbeat("g1", id, "", gen), nil)
	d, err := c2.DescribeGroup("g1")
	if err != nil || d.State != Stable || len(d.Members) != 1 || string(d.Members[0].Assignment) != "everything" {
		t.Fatalf("described %+v %v", d, err)
	}
}

func TestCoordinatorLoadingAndUnloaded(t *testing.T) {
	gate := make(chan struct{})
	l := &memLog{gate: gate}
	cfg := DefaultConfig()
	cfg.NumPartitions = 1
	c, err := NewCoordinator(cfg, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.FetchOffsets("g", nil)
	mustCode(t, err, kerr.NotCoordinator)
	if err := c.LoadPartition(0, l); err != nil {
		t.Fatal(err)
	}
	_, err = c.FetchOffsets("g", nil)
	mustCode(t, err, kerr.CoordinatorLoadInProgress)
	r := recv(t, joinAsync(c, "g", consumerJoin("")), "join while loading")
	mustCode(t, r.Err, kerr.CoordinatorLoadInProgress)
	_, err = c.ListGroups(nil)
	mustCode(t, err, kerr.CoordinatorLoadInProgress)
	close(gate)
	waitFor(t, "loaded", func() bool { return c.Loaded(0) })
	_, err = c.FetchOffsets("g", nil)
	mustCode(t, err, nil)
	c.UnloadPartition(0)
	mustCode(t, c.Heartbeat("g", "m", "", 1), kerr.NotCoordinator)
	if err := c.LoadPartition(7, l); err == nil {
		t.Fatal("loaded a partition out of range")
	}
}

// TestCoordinatorSessionTimeoutFires: the shard's timer, not a request,
// removes a member whose session expires, which completes the join of a
// member waiting for the rebalance.
func TestCoordinatorSessionTimeoutFires(t *testing.T) {
	c := newTestCoord(t, 1, nil, nil, nil)
	a, _ := joinOne(t, c.Coordinator, "g", 100*time.Millisecond)
	breq := consumerJoin("")
	breq.SessionTimeout = time.Minute
	bch := joinAsync(c.Coordinator, "g", breq)
	notYet(t, bch, "second member's join")
	// a never heartbeats nor rejoins.
	start := time.Now()
	b := recv(t, bch, "second member's join")
	mustCode(t, b.Err, nil)
	if b.Generation != 2 || b.Leader != b.MemberID || len(b.Members) != 1 {
		t.Fatalf("%+v", b)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v to expire a 100ms session", took)
	}
	mustCode(t, c.Heartbeat("g", a, "", 1), kerr.UnknownMemberID)
}

func TestCoordinatorUnloadAnswersWaiters(t *testing.T) {
	c := newTestCoord(t, 1, nil, nil, nil)
	joinOne(t, c.Coordinator, "g", time.Minute)
	ch := joinAsync(c.Coordinator, "g", consumerJoin(""))
	notYet(t, ch, "join")
	c.UnloadPartition(0)
	mustCode(t, recv(t, ch, "join").Err, kerr.NotCoordinator)
}

func TestCoordinatorPersistFailure(t *testing.T) {
	c := newTestCoord(t, 1, nil, nil, nil)
	r := recv(t, joinAsync(c.Coordinator, "g", consumerJoin("")), "join")
	c.logs[0].setFail(fmt.Errorf("disk on fire: %w", kerr.KafkaStorageError))
	s := recv(t, syncAsync(c.Coordinator, "g", SyncRequest{MemberID: r.MemberID, Generation: r.Generation}), "sync")
	mustCode(t, s.Err, kerr.NotCoordinator)
	d, _ := c.DescribeGroup("g")
	if d.State != PreparingRebalance {
		t.Fatalf("state %s after a failed write", d.State)
	}
	_, err := c.CommitOffsets("other", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 1}}})
	mustCode(t, err, kerr.NotCoordinator)
	c.logs[0].setFail(fmt.Errorf("too big: %w", kerr.MessageTooLarge))
	_, err = c.CommitOffsets("other", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 1}}})
	mustCode(t, err, kerr.InvalidCommitOffsetSize)
	if got, _ := c.FetchOffsets("other", nil); len(got) != 0 {
		t.Fatalf("a failed commit left offsets %+v", got)
	}
}

func TestCoordinatorDeleteGroupAndOffsets(t *testing.T) {
	c := newTestCoord(t, 2, nil, nil, nil)
	id, gen := joinOne(t, c.Coordinator, "g", time.Minute)
	_, err := c.CommitOffsets("g", CommitRequest{MemberID: id, Generation: gen, Offsets: []CommitOffset{
		{TopicPartition: TopicPartition{"t", 0}, Offset: 1}, {TopicPartition: TopicPartition{"u", 0}, Offset: 2}}})
	mustCode(t, err, nil)
	mustCode(t, c.DeleteGroup("g"), kerr.NonEmptyGroup)
	mustCode(t, c.DeleteGroup("missing"), kerr.GroupIDNotFound)
	// Not a decodable consumer subscription: every topic counts as
	// subscribed while the group has members.
	errs, err := c.DeleteOffsets("g", []TopicPartition{{"t", 0}})
	mustCode(t, err, nil)
	mustCode(t, errs[0], kerr.GroupSubscribedToTopic)
	_, err = c.DeleteOffsets("missing", []TopicPartition{{"t", 0}})
	mustCode(t, err, kerr.GroupIDNotFound)

	errs, err = c.LeaveGroup("g", []LeaveMember{{MemberID: id}})
	if err != nil || errs[0] != nil {
		t.Fatalf("leave: %v %v", errs, err)
	}
	errs, err = c.DeleteOffsets("g", []TopicPartition{{"t", 0}})
	if err != nil || errs[0] != nil {
		t.Fatalf("delete offsets: %v %v", errs, err)
	}
	got, _ := c.FetchOffsets("g", nil)
	if len(got) != 1 || got[0].Topic != "u" {
		t.Fatalf("after OffsetDelete %+v", got)
	}
	ls, _ := c.ListGroups([]State{Empty})
	if len(ls) != 1 || ls[0].GroupID != "g" || ls[0].ProtocolType != "consumer" {
		t.Fatalf("listed %+v", ls)
	}
	mustCode(t, c.DeleteGroup("g"), nil)
	if d, _ := c.DescribeGroup("g"); d.State != Dead {
		t.Fatalf("deleted group is %s", d.State)
	}
	// Deleted stays deleted across a reload.
	c.Close()
	c2 := newTestCoord(t, 2, c.logs, nil, nil)
	if ls, _ := c2.ListGroups(nil); len(ls) != 0 {
		t.Fatalf("after reload %+v", ls)
	}
	if got, _ := c2.FetchOffsets("g", nil); len(got) != 0 {
		t.Fatalf("offsets of a deleted group after reload %+v", got)
	}
}

func TestCoordinatorOffsetExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := newTestCoord(t, 1, nil, func(cfg *Config) { cfg.OffsetsRetention = time.Hour }, clock.Now)
	_, err := c.CommitOffsets("old", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 1}}})
	mustCode(t, err, nil)
	clock.Add(50 * time.Minute)
	_, err = c.CommitOffsets("new", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 1}}})
	mustCode(t, err, nil)
	clock.Add(15 * time.Minute)
	c.shards[0].expireOffsets()
	if ls, _ := c.ListGroups(nil); len(ls) != 1 || ls[0].GroupID != "new" {
		t.Fatalf("after expiry %+v", ls)
	}
	c.Close()
	c2 := newTestCoord(t, 1, c.logs, nil, clock.Now)
	if ls, _ := c2.ListGroups(nil); len(ls) != 1 || ls[0].GroupID != "new" {
		t.Fatalf("after reload %+v", ls)
	}
}

// TestCoordinatorManyGroupsConcurrently commits from many goroutines over
// several partitions (run with -race).
func TestCoordinatorManyGroupsConcurrently(t *testing.T) {
	c := newTestCoord(t, 4, nil, nil, nil)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := fmt.Sprintf("group-%d", i)
			for j := 0; j < 50; j++ {
				if _, err := c.CommitOffsets(group, CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: int64(j)}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		got, _ := c.FetchOffsets(fmt.Sprintf("group-%d", i), nil)
		if len(got) != 1 || got[0].Offset.Offset != 49 {
			t.Fatalf("group-%d: %+v", i, got)
		}
	}
	total := 0
	for _, l := range c.logs {
		total += l.numBatches()
	}
	if total != 20*50 {
		t.Fatalf("%d batches written, want %d", total, 20*50)
	}
}

func BenchmarkCommitMemLog(b *testing.B) {
	cfg := DefaultConfig()
	cfg.NumPartitions = 1
	c, err := NewCoordinator(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.LoadPartition(0, discardLog{}); err != nil {
		b.Fatal(err)
	}
	for !c.Loaded(0) {
		time.Sleep(time.Millisecond)
	}
	req := CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"topic", 0}, Offset: 1}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req.Offsets[0].Offset = int64(i)
		if _, err := c.CommitOffsets("g", req); err != nil {
			b.Fatal(err)
		}
	}
}

type discardLog struct{}

func (discardLog) Append([]byte) error             { return nil }
func (discardLog) Replay(func([]byte) error) error { return nil }
