package group

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// script drives one Group with a fake clock. Waiters are names; every
// reply is recorded under its waiter's name, and a waiter answered twice
// fails the test.
type script struct {
	t       *testing.T
	g       *Group
	cfg     *Config
	now     time.Time
	ids     int
	joins   map[string]JoinResult
	syncs   map[string]SyncResult
	waiting map[string]bool
}

func newScript(t *testing.T, mutate func(*Config)) *script {
	t.Helper()
	s := &script{
		t:       t,
		now:     time.Unix(1_700_000_000, 0),
		joins:   map[string]JoinResult{},
		syncs:   map[string]SyncResult{},
		waiting: map[string]bool{},
	}
	cfg := DefaultConfig()
	cfg.MinSessionTimeout = time.Second
	cfg.NewMemberID = func(prefix string) string {
		s.ids++
		return fmt.Sprintf("%s-%d", prefix, s.ids)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s.cfg = &cfg
	s.g = NewGroup("g", s.cfg)
	return s
}

func (s *script) collect(replies []Reply) {
	s.t.Helper()
	for _, r := range replies {
		name := r.To.(string)
		if !s.waiting[name] {
			s.t.Fatalf("reply to %q, which is not waiting (answered twice?)", name)
		}
		delete(s.waiting, name)
		switch {
		case r.Join != nil:
			s.joins[name] = *r.Join
		case r.Sync != nil:
			s.syncs[name] = *r.Sync
		default:
			s.t.Fatalf("empty reply to %q", name)
		}
	}
}

// consumerJoin is a typical consumer's join.
func consumerJoin(memberID string, protocols ...string) JoinRequest {
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	req := JoinRequest{
		MemberID:         memberID,
		ClientID:         "client",
		ClientHost:       "/127.0.0.1",
		SessionTimeout:   10 * time.Second,
		RebalanceTimeout: 20 * time.Second,
		ProtocolType:     "consumer",
	}
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, Protocol{Name: p, Metadata: []byte("meta-" + p)})
	}
	return req
}

func (s *script) join(w string, req JoinRequest) {
	s.t.Helper()
	s.waiting[w] = true
	s.collect(s.g.Join(s.now, req, w))
}

func (s *script) sync(w string, req SyncRequest) {
	s.t.Helper()
	s.waiting[w] = true
	s.collect(s.g.Sync(s.now, req, w))
}

func (s *script) advance(d time.Duration) {
	s.t.Helper()
	s.now = s.now.Add(d)
	s.collect(s.g.Tick(s.now))
}

// joined returns a waiter's join answer, failing if it has none or an
// error different from want.
func (s *script) joined(w string, want error) JoinResult {
	s.t.Helper()
	r, ok := s.joins[w]
	if !ok {
		s.t.Fatalf("join %q not answered (state %s)", w, s.g.State())
	}
	if !errors.Is(r.Err, want) && !(want == nil && r.Err == nil) {
		s.t.Fatalf("join %q: error %v, want %v", w, r.Err, want)
	}
	return r
}

func (s *script) synced(w string, want error) SyncResult {
	s.t.Helper()
	r, ok := s.syncs[w]
	if !ok {
		s.t.Fatalf("sync %q not answered (state %s)", w, s.g.State())
	}
	if !errors.Is(r.Err, want) && !(want == nil && r.Err == nil) {
		s.t.Fatalf("sync %q: error %v, want %v", w, r.Err, want)
	}
	return r
}

func (s *script) pending(w string) {
	s.t.Helper()
	if !s.waiting[w] {
		s.t.Fatalf("%q was answered, want it still waiting", w)
	}
}

func (s *script) state(want State) {
	s.t.Helper()
	if s.g.State() != want {
		s.t.Fatalf("state %s, want %s", s.g.State(), want)
	}
}

func (s *script) heartbeat(id string, gen int32, want error) {
	s.t.Helper()
	err := s.g.Heartbeat(s.now, id, "", gen)
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		s.t.Fatalf("heartbeat %s gen %d: %v, want %v", id, gen, err, want)
	}
}

// newMember runs the KIP-394 dance for a dynamic member and returns its id;
// its join is left waiting under name w.
func (s *script) newMember(w string, protocols ...string) string {
	s.t.Helper()
	req := consumerJoin("", protocols...)
	req.RequireKnownMemberID = true
	s.join(w+"-0", req)
	r := s.joined(w+"-0", kerr.MemberIDRequired)
	if r.MemberID == "" {
		s.t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	req.MemberID = r.MemberID
	s.join(w, req)
	return r.MemberID
}

// stableWith makes a stable group of n dynamic members and returns their
// ids in join order (the first is the leader).
func (s *script) stableWith(n int) []string {
	s.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, s.newMember(fmt.Sprintf("j%d", i)))
	}
	// Earlier members must rejoin for the rebalance the later ones
	// started.
	for round := 0; s.g.State() == PreparingRebalance && round < 2; round++ {
		for i, id := range ids {
			w := fmt.Sprintf("j%d", i)
			if _, ok := s.joins[w]; ok {
				w = fmt.Sprintf("rj%d-%d", i, round)
				s.join(w, consumerJoin(id))
			}
		}
	}
	s.state(CompletingRebalance)
	gen := s.g.Generation()
	var as []Assignment
	for _, id := range ids {
		as = append(as, Assignment{MemberID: id, Assignment: []byte("assign-" + id)})
	}
	for i, id := range ids {
		req := SyncRequest{MemberID: id, Generation: gen}
		if id == s.g.Leader() {
			req.Assignments = as
		}
		s.sync(fmt.Sprintf("s%d", i), req)
	}
	s.state(Stable)
	for i, id := range ids {
		if got := string(s.synced(fmt.Sprintf("s%d", i), nil).Assignment); got != "assign-"+id {
			s.t.Fatalf("member %s got assignment %q", id, got)
		}
	}
	return ids
}

func TestJoinSyncSingleMember(t *testing.T) {
	s := newScript(t, nil)
	id := s.newMember("a")
	r := s.joined("a", nil)
	if r.Generation != 1 || r.Leader != id || r.MemberID != id || r.Protocol != "range" || r.ProtocolType != "consumer" {
		t.Fatalf("join result %+v", r)
	}
	if len(r.Members) != 1 || r.Members[0].MemberID != id || string(r.Members[0].Metadata) != "meta-range" {
		t.Fatalf("leader's members %+v", r.Members)
	}
	s.state(CompletingRebalance)
	s.sync("s", SyncRequest{MemberID: id, Generation: 1, ProtocolType: "consumer", Protocol: "range",
		Assignments: []Assignment{{MemberID: id, Assignment: []byte{1, 2, 3}}}})
	if got := s.synced("s", nil).Assignment; string(got) != "\x01\x02\x03" {
		t.Fatalf("assignment %v", got)
	}
	s.state(Stable)
	if !s.g.TakeDirty() {
		t.Fatal("a completed sync must be persisted")
	}
	s.heartbeat(id, 1, nil)
	s.heartbeat(id, 0, kerr.IllegalGeneration)
	s.heartbeat("nobody", 1, kerr.UnknownMemberID)
}

func TestSecondMemberRebalances(t *testing.T) {
	s := newScript(t, nil)
	a := s.newMember("a")
	s.joined("a", nil)
	s.sync("sa", SyncRequest{MemberID: a, Generation: 1, Assignments: []Assignment{{a, []byte("all")}}})
	s.synced("sa", nil)

	b := s.newMember("b")
	s.state(PreparingRebalance)
	s.pending("b")
	s.heartbeat(a, 1, kerr.RebalanceInProgress)
	// A member of the old generation may still commit while it rejoins.
	if err := s.g.CheckCommit(s.now, a, "", 1); err != nil {
		t.Fatalf("commit during rebalance: %v", err)
	}
	s.join("a2", consumerJoin(a))
	ra, rb := s.joined("a2", nil), s.joined("b", nil)
	if ra.Generation != 2 || rb.Generation != 2 || ra.Leader != a || rb.Leader != a {
		t.Fatalf("results %+v %+v", ra, rb)
	}
	if len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(ra.Members), len(rb.Members))
	}
	if err := s.g.CheckCommit(s.now, a, "", 2); !errors.Is(err, kerr.RebalanceInProgress) {
		t.Fatalf("commit between join and sync: %v", err)
	}
	// Between join and sync, as at any time, an unknown member or a
	// stale generation is told so first (Kafka's order): it must rejoin,
	// not retry.
	if err := s.g.CheckCommit(s.now, a, "", 1); !errors.Is(err, kerr.IllegalGeneration) {
		t.Fatalf("stale commit between join and sync: %v", err)
	}
	if err := s.g.CheckCommit(s.now, "ghost", "", 2); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("unknown member's commit between join and sync: %v", err)
	}
	s.heartbeat(b, 2, nil)
	// The follower syncs first and waits for the leader.
	s.sync("sb", SyncRequest{MemberID: b, Generation: 2})
	s.pending("sb")
	s.sync("sa2", SyncRequest{MemberID: a, Generation: 2, Assignments: []Assignment{{a, []byte("x")}, {b, []byte("y")}, {"ghost", []byte("z")}}})
	if string(s.synced("sa2", nil).Assignment) != "x" || string(s.synced("sb", nil).Assignment) != "y" {
		t.Fatal("wrong assignments")
	}
	// A late sync of a stale generation is refused.
	s.sync("old", SyncRequest{MemberID: b, Generation: 1})
	s.synced("old", kerr.IllegalGeneration)
	if err := s.g.CheckCommit(s.now, b, "", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.g.CheckCommit(s.now, b, "", 1); !errors.Is(err, kerr.IllegalGeneration) {
		t.Fatalf("stale commit: %v", err)
	}
}

func TestLeaderLeavingMissedInPlan(t *testing.T) {
	s := newScript(t, nil)
	ids := s.stableWith(3)
	gen := s.g.Generation()
	errs, replies := s.g.Leave(s.now, []LeaveMember{{MemberID: ids[0]}, {MemberID: "ghost"}})
	s.collect(replies)
	if errs[0] != nil || !errors.Is(errs[1], kerr.UnknownMemberID) {
		t.Fatalf("leave errors %v", errs)
	}
	s.state(PreparingRebalance)
	s.join("r1", consumerJoin(ids[1]))
	s.pending("r1")
	s.join("r2", consumerJoin(ids[2]))
	r1 := s.joined("r1", nil)
	if r1.Leader != ids[1] || r1.Generation != gen+1 || len(r1.Members) != 2 {
		t.Fatalf("new leader result %+v", r1)
	}
	// The leader leaves a member out of its plan: it gets an empty
	// consumer assignment rather than nothing.
	s.sync("l", SyncRequest{MemberID: ids[1], Generation: gen + 1, Assignments: []Assignment{{ids[1], []byte("all")}}})
	s.sync("f", SyncRequest{MemberID: ids[2], Generation: gen + 1})
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(s.synced("f", nil).Assignment); err != nil || len(a.Topics) != 0 {
		t.Fatalf("left-out member's assignment: %v %+v", err, a)
	}
	// Everyone leaves: the group is empty in a new generation.
	_, replies = s.g.Leave(s.now, []LeaveMember{{MemberID: ids[1]}, {MemberID: ids[2]}})
	s.collect(replies)
	s.state(Empty)
	if s.g.Generation() != gen+2 || !s.g.TakeDirty() {
		t.Fatalf("generation %d after everyone left", s.g.Generation())
	}
	if err := s.g.CheckCommit(s.now, "", "", -1); err != nil {
		t.Fatalf("simple commit to an empty group: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	s := newScript(t, nil)
	ids := s.stableWith(2)
	gen := s.g.Generation()
	for i := 0; i < 2; i++ {
		s.advance(4 * time.Second)
		s.heartbeat(ids[0], gen, nil)
	}
	s.state(Stable)
	s.advance(2 * time.Second)
	// ids[1] never heartbeated: gone after its 10s session.
	s.state(PreparingRebalance)
	if len(s.g.Members()) != 1 {
		t.Fatalf("%d members", len(s.g.Members()))
	}
	s.heartbeat(ids[1], gen, kerr.UnknownMemberID)
	s.heartbeat(ids[0], gen, kerr.RebalanceInProgress)
	s.join("r", consumerJoin(ids[0]))
	if r := s.joined("r", nil); r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("%+v", r)
	}
	if !s.g.NextDeadline().After(s.now) {
		t.Fatal("next deadline not in the future")
	}
}

// TestRebalanceTimeoutDropsSilentMember: a member that keeps heartbeating
// but never rejoins, and one that does nothing at all, cannot hold the
// others past the rebalance timeout.
func TestRebalanceTimeoutDropsSilentMember(t *testing.T) {
	s := newScript(t, func(c *Config) { c.MaxSessionTimeout = time.Hour })
	for i := 0; i < 3; i++ {
		req := consumerJoin("")
		req.SessionTimeout = time.Minute // longer than the 20s rebalance timeout
		req.InstanceID = ""
		s.join(fmt.Sprintf("j%d", i), req)
	}
	// Without KIP-394 the members join directly; the first completes
	// alone, the others start a second rebalance.
	first := s.joined("j0", nil)
	s.pending("j1")
	s.pending("j2")
	if got := s.g.NextDeadline(); !got.Equal(s.now.Add(20 * time.Second)) {
		t.Fatalf("next deadline %v, want the rebalance timeout", got.Sub(s.now))
	}
	for i := 0; i < 6; i++ {
		s.advance(3 * time.Second)
		s.heartbeat(first.MemberID, 1, kerr.RebalanceInProgress)
	}
	s.pending("j1")
	s.advance(3 * time.Second) // 21s: past the rebalance timeout
	r1 := s.joined("j1", nil)
	s.joined("j2", nil)
	if r1.Generation != 2 || len(s.g.Members()) != 2 {
		t.Fatalf("generation %d with %d members", r1.Generation, len(s.g.Members()))
	}
	s.heartbeat(first.MemberID, 1, kerr.UnknownMemberID)
}

func TestSyncTimeoutDropsLeader(t *testing.T) {
	s := newScript(t, nil)
	a := s.newMember("a")
	s.joined("a", nil)
	s.sync("sa", SyncRequest{MemberID: a, Generation: 1, Assignments: []Assignment{{a, nil}}})
	b := s.newMember("b")
	s.join("a2", consumerJoin(a))
	s.joined("b", nil)
	// The follower syncs; the leader heartbeats but never syncs.
	s.sync("sb", SyncRequest{MemberID: b, Generation: 2})
	for i := 0; i < 6; i++ {
		s.advance(3 * time.Second)
		s.heartbeat(a, 2, nil)
	}
	s.pending("sb")
	s.advance(3 * time.Second)
	s.synced("sb", kerr.RebalanceInProgress)
	s.state(PreparingRebalance)
	if len(s.g.Members()) != 1 || s.g.Members()[0].ID != b {
		t.Fatal("the leader that never synced should be gone")
	}
	s.join("b2", consumerJoin(b))
	if r := s.joined("b2", nil); r.Leader != b || r.Generation != 3 {
		t.Fatalf("%+v", r)
	}
}

func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	s := newScript(t, nil)
	join := func(w, memberID, instance string) {
		req := consumerJoin(memberID, "cooperative-sticky", "range")
		req.InstanceID = instance
		req.RequireKnownMemberID = true // static members skip KIP-394 anyway
		s.join(w, req)
	}
	join("a", "", "ia")
	a := s.joined("a", nil)
	if a.MemberID != "ia-1" {
		t.Fatalf("static member id %q", a.MemberID)
	}
	s.sync("sa", SyncRequest{MemberID: a.MemberID, Generation: 1, Assignments: []Assignment{{a.MemberID, []byte("A")}}})
	join("b", "", "ib")
	join("a2", a.MemberID, "ia")
	b := s.joined("b", nil)
	s.sync("sa2", SyncRequest{MemberID: a.MemberID, Generation: 2, Assignments: []Assignment{{a.MemberID, []byte("A2")}, {b.MemberID, []byte("B2")}}})
	s.sync("sb", SyncRequest{MemberID: b.MemberID, Generation: 2})
	s.state(Stable)
	s.g.TakeDirty()

	// The leader's process restarts: it rejoins by instance id without a
	// member id. Same generation, no rebalance, and (KIP-814) it is told
	// to keep the current assignment.
	join("a3", "", "ia")
	r := s.joined("a3", nil)
	s.state(Stable)
	if r.Generation != 2 || r.MemberID == a.MemberID || r.Leader != r.MemberID || !r.SkipAssignment || len(r.Members) != 2 {
		t.Fatalf("static rejoin %+v", r)
	}
	if !s.g.TakeDirty() {
		t.Fatal("the new member id must be persisted")
	}
	s.heartbeat(b.MemberID, 2, nil)
	if err := s.g.Heartbeat(s.now, a.MemberID, "ia", 2); !errors.Is(err, kerr.FencedInstanceID) {
		t.Fatalf("old member id: %v", err)
	}
	if err := s.g.CheckCommit(s.now, a.MemberID, "ia", 2); !errors.Is(err, kerr.FencedInstanceID) {
		t.Fatalf("old member id commit: %v", err)
	}
	s.sync("sa3", SyncRequest{MemberID: r.MemberID, InstanceID: "ia", Generation: 2})
	if got := string(s.synced("sa3", nil).Assignment); got != "A2" {
		t.Fatalf("rejoined static member got %q", got)
	}
	// The follower restarts too, with protocols that no longer allow the
	// group's protocol: that needs a rebalance.
	req := consumerJoin("", "roundrobin")
	req.InstanceID = "ib"
	s.join("b3", req)
	s.joined("b3", kerr.InconsistentGroupProtocol)
	req = consumerJoin("", "range")
	req.InstanceID = "ib"
	s.join("b4", req)
	s.state(PreparingRebalance)
	s.pending("b4")
	errs, replies := s.g.Leave(s.now, []LeaveMember{{InstanceID: "ib", MemberID: b.MemberID}})
	s.collect(replies)
	if !errors.Is(errs[0], kerr.FencedInstanceID) {
		t.Fatalf("leave with a stale member id: %v", errs[0])
	}
}

func TestStaticMemberFencedWhileWaiting(t *testing.T) {
	s := newScript(t, nil)
	req := consumerJoin("")
	req.InstanceID = "i"
	s.join("a", req)
	a := s.joined("a", nil)
	// The sync of the old incarnation is waiting for nothing (it is the
	// leader); make it wait by adding a second member first.
	other := s.newMember("o")
	_ = other
	s.join("a-rejoin", consumerJoin(a.MemberID))
	s.joined("o", nil)
	s.sync("so", SyncRequest{MemberID: other, Generation: 2})
	s.pending("so")
	// A new incarnation of the static member arrives: the group is
	// completing, so it rebalances; the follower's sync is told so.
	s.join("a2", req)
	s.synced("so", kerr.RebalanceInProgress)
	s.state(PreparingRebalance)
	// The old incarnation's sync is fenced.
	s.sync("old", SyncRequest{MemberID: a.MemberID, InstanceID: "i", Generation: 2})
	s.synced("old", kerr.FencedInstanceID)
}

func TestProtocolSelection(t *testing.T) {
	s := newScript(t, nil)
	a := s.newMember("a", "cooperative-sticky", "range")
	s.joined("a", nil)
	if s.g.Protocol() != "cooperative-sticky" {
		t.Fatalf("protocol %q", s.g.Protocol())
	}
	s.sync("sa", SyncRequest{MemberID: a, Generation: 1})
	// A member that only speaks range narrows the group to range.
	s.newMember("b", "range", "roundrobin")
	s.join("a2", consumerJoin(a, "cooperative-sticky", "range"))
	if r := s.joined("a2", nil); r.Protocol != "range" {
		t.Fatalf("protocol %q", r.Protocol)
	}
	// Nothing in common, or another protocol type: refused.
	s.join("c", consumerJoin("", "roundrobin"))
	s.joined("c", kerr.InconsistentGroupProtocol)
	other := consumerJoin("", "range")
	other.ProtocolType = "connect"
	s.join("d", other)
	s.joined("d", kerr.InconsistentGroupProtocol)
	none := consumerJoin("")
	none.Protocols = nil
	s.join("e", none)
	s.joined("e", kerr.InconsistentGroupProtocol)
}

func TestJoinValidation(t *testing.T) {
	s := newScript(t, func(c *Config) {
		c.MaxGroupSize = 2
		c.MaxMemberMetadataBytes = 100
		c.MaxSessionTimeout = time.Minute
	})
	req := consumerJoin("")
	req.SessionTimeout = 500 * time.Millisecond
	s.join("short", req)
	s.joined("short", kerr.InvalidSessionTimeout)
	req.SessionTimeout = 2 * time.Minute
	s.join("long", req)
	s.joined("long", kerr.InvalidSessionTimeout)

	big := consumerJoin("")
	big.Protocols[0].Metadata = make([]byte, 101)
	s.join("big", big)
	s.joined("big", kerr.InvalidRequest)

	s.join("unknown", consumerJoin("made-up"))
	s.joined("unknown", kerr.UnknownMemberID)

	s.newMember("a")
	s.newMember("b")
	s.join("c", consumerJoin(""))
	s.joined("c", kerr.GroupMaxSizeReached)
}

// TestPendingMemberExpires: a member given an id by MEMBER_ID_REQUIRED that
// never comes back holds the join phase only until its session timeout.
func TestPendingMemberExpires(t *testing.T) {
	s := newScript(t, nil)
	a := s.newMember("a")
	s.joined("a", nil)
	s.sync("sa", SyncRequest{MemberID: a, Generation: 1})
	b := s.newMember("b")
	req := consumerJoin("")
	req.RequireKnownMemberID = true
	s.join("ghost", req)
	s.joined("ghost", kerr.MemberIDRequired)
	s.join("a2", consumerJoin(a))
	s.pending("a2")
	if s.g.NumPending() != 1 {
		t.Fatal("expected one pending member")
	}
	s.advance(10 * time.Second)
	s.joined("a2", nil)
	if r := s.joined("b", nil); r.MemberID != b || len(s.g.Members()) != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestInitialRebalanceDelay(t *testing.T) {
	s := newScript(t, func(c *Config) { c.InitialRebalanceDelay = 3 * time.Second })
	s.join("a", consumerJoin(""))
	s.advance(2 * time.Second)
	s.pending("a")
	s.join("b", consumerJoin(""))
	s.advance(2 * time.Second) // 4s: the delay was extended by b
	s.pending("a")
	s.advance(time.Second)
	if r := s.joined("a", nil); r.Generation != 1 || len(r.Members) != 2 {
		t.Fatalf("%+v", r)
	}
	s.joined("b", nil)
}

func TestRejoinsInCompletingAndStable(t *testing.T) {
	s := newScript(t, nil)
	ids := s.stableWith(2)
	gen := s.g.Generation()
	leader, follower := ids[0], ids[1]
	// A follower rejoining with unchanged protocols gets the current
	// generation back at once.
	s.join("f", consumerJoin(follower))
	if r := s.joined("f", nil); r.Generation != gen || len(r.Members) != 0 {
		t.Fatalf("%+v", r)
	}
	s.state(Stable)
	// The leader rejoining starts a rebalance.
	s.join("l", consumerJoin(leader))
	s.state(PreparingRebalance)
	s.join("f2", consumerJoin(follower))
	s.joined("l", nil)
	s.state(CompletingRebalance)
	// A member that lost its join answer asks again: same answer.
	s.join("f3", consumerJoin(follower))
	if r := s.joined("f3", nil); r.Generation != gen+1 {
		t.Fatalf("%+v", r)
	}
	// Changed protocols in CompletingRebalance: rebalance again.
	s.join("f4", consumerJoin(follower, "range", "roundrobin"))
	s.state(PreparingRebalance)
	s.join("l2", consumerJoin(leader))
	if r := s.joined("f4", nil); r.Generation != gen+2 {
		t.Fatalf("%+v", r)
	}
}

// TestHundredsOfMembers: 500 members join one rebalance; one of them
// never rejoins the next, and the other 499 carry on at the rebalance
// timeout.
func TestHundredsOfMembers(t *testing.T) {
	const n = 500
	s := newScript(t, nil)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.newMember(fmt.Sprintf("j%d", i))
	}
	// The first completed alone; the rest wait for it to rejoin.
	s.join("r0", consumerJoin(ids[0]))
	r := s.joined("r0", nil)
	if r.Generation != 2 || len(r.Members) != n {
		t.Fatalf("leader: generation %d, %d members", r.Generation, len(r.Members))
	}
	for i := 1; i < n; i++ {
		if got := s.joined(fmt.Sprintf("j%d", i), nil); got.Generation != 2 || len(got.Members) != 0 {
			t.Fatalf("member %d: %+v", i, got)
		}
	}
	var plan []Assignment
	for _, id := range ids {
		plan = append(plan, Assignment{MemberID: id, Assignment: []byte(id)})
	}
	for i, id := range ids {
		req := SyncRequest{MemberID: id, Generation: 2}
		if i == 0 {
			req.Assignments = plan
		}
		s.sync(fmt.Sprintf("s%d", i), req)
	}
	for i, id := range ids {
		if got := s.synced(fmt.Sprintf("s%d", i), nil); string(got.Assignment) != id {
			t.Fatalf("member %d got %q", i, got.Assignment)
		}
	}
	// Rebalance: everyone but the last rejoins.
	s.join("x0", consumerJoin(ids[0]))
	for i := 1; i < n-1; i++ {
		s.heartbeat(ids[i], 2, kerr.RebalanceInProgress)
		s.join(fmt.Sprintf("x%d", i), consumerJoin(ids[i]))
	}
	s.pending("x0")
	s.advance(20 * time.Second)
	if got := s.joined("x0", nil); got.Generation != 3 || len(got.Members) != n-1 {
		t.Fatalf("after timeout: generation %d, %d members", got.Generation, len(got.Members))
	}
}

func TestCommitRules(t *testing.T) {
	s := newScript(t, nil)
	if err := s.g.CheckCommit(s.now, "", "", -1); err != nil {
		t.Fatalf("simple commit to a new group: %v", err)
	}
	ids := s.stableWith(1)
	if err := s.g.CheckCommit(s.now, "", "", -1); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("simple commit to an active group: %v", err)
	}
	if err := s.g.CheckCommit(s.now, ids[0], "", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.g.CheckCommit(s.now, "ghost", "", 1); !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatal(err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := newScript(t, nil)
	req := consumerJoin("")
	req.InstanceID = "static-1"
	s.join("a", req)
	a := s.joined("a", nil)
	s.sync("sa", SyncRequest{MemberID: a.MemberID, Generation: 1, Assignments: []Assignment{{a.MemberID, []byte("A")}}})
	snap := s.g.Snapshot()
	lr, err := decodeRecord(groupKey("g"), groupValue(snap))
	if err != nil || !lr.isGroup || lr.group != "g" || lr.snapshot == nil {
		t.Fatalf("decode: %v %+v", err, lr)
	}
	g2 := NewGroup("g", s.cfg)
	g2.Restore(s.now, *lr.snapshot)
	if g2.State() != Stable || g2.Generation() != 1 || g2.Leader() != a.MemberID || g2.Protocol() != "range" {
		t.Fatalf("restored %s gen %d leader %q protocol %q", g2.State(), g2.Generation(), g2.Leader(), g2.Protocol())
	}
	m := g2.Members()[0]
	if m.InstanceID != "static-1" || string(m.Assignment) != "A" || m.SessionTimeout != 10*time.Second || m.RebalanceTimeout != 20*time.Second {
		t.Fatalf("restored member %+v", m)
	}
	if err := g2.Heartbeat(s.now, a.MemberID, "static-1", 1); err != nil {
		t.Fatalf("heartbeat after restore: %v", err)
	}
	// A restarted static member rejoins the restored group without a
	// rebalance.
	var replies []Reply
	replies = g2.Join(s.now, req, "again")
	if len(replies) != 1 || replies[0].Join.Err != nil || replies[0].Join.Generation != 1 || g2.State() != Stable {
		t.Fatalf("static rejoin after restore: %+v state %s", replies, g2.State())
	}

	o := Offset{Offset: 42, LeaderEpoch: 3, Metadata: "m", CommitTime: time.UnixMilli(1000)}
	lr, err = decodeRecord(offsetKey("g", TopicPartition{"t", 7}), offsetValue(o))
	if err != nil || !lr.isOffset || lr.tp != (TopicPartition{"t", 7}) || *lr.offset != o {
		t.Fatalf("offset round trip: %v %+v", err, lr)
	}
	o.ExpireTime = time.UnixMilli(5000)
	o.LeaderEpoch = -1 // v1 has no leader epoch
	lr, _ = decodeRecord(offsetKey("g", TopicPartition{"t", 7}), offsetValue(o))
	if *lr.offset != o {
		t.Fatalf("v1 offset round trip: %+v", *lr.offset)
	}
	if _, err := decodeRecord([]byte{0, 9, 0}, nil); !errors.Is(err, errUnknownRecord) {
		t.Fatalf("unknown key version: %v", err)
	}
}

func TestExpiredOffsets(t *testing.T) {
	s := newScript(t, nil)
	retention := time.Hour
	// An offsets-only group: by commit time.
	s.g.SetOffset(TopicPartition{"t", 0}, Offset{Offset: 1, CommitTime: s.now})
	s.g.SetOffset(TopicPartition{"t", 1}, Offset{Offset: 1, CommitTime: s.now.Add(30 * time.Minute)})
	s.g.SetOffset(TopicPartition{"t", 2}, Offset{Offset: 1, CommitTime: s.now, ExpireTime: s.now.Add(time.Minute)})
	if got := s.g.ExpiredOffsets(s.now.Add(2*time.Minute), retention); len(got) != 1 || got[0].Partition != 2 {
		t.Fatalf("expired %v", got)
	}
	if got := s.g.ExpiredOffsets(s.now.Add(61*time.Minute), retention); len(got) != 2 {
		t.Fatalf("expired %v", got)
	}
	// A consumer group: from when it became empty.
	ids := s.stableWith(1)
	s.now = s.now.Add(2 * time.Hour)
	// Stable, with subscriptions we cannot decode ("meta-range" is not a
	// ConsumerMemberMetadata): nothing expires.
	if got := s.g.ExpiredOffsets(s.now, retention); len(got) != 0 {
		t.Fatalf("stable group expired %v", got)
	}
	_, replies := s.g.Leave(s.now, []LeaveMember{{MemberID: ids[0]}})
	s.collect(replies)
	s.state(Empty)
	if got := s.g.ExpiredOffsets(s.now.Add(59*time.Minute), retention); len(got) != 1 {
		t.Fatalf("just-emptied group expired %v", got) // only the explicit expiry
	}
	if got := s.g.ExpiredOffsets(s.now.Add(61*time.Minute), retention); len(got) != 3 {
		t.Fatalf("expired %v", got)
	}
}

func TestSubscribedTopics(t *testing.T) {
	s := newScript(t, nil)
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = []string{"a", "b"}
	req := consumerJoin("")
	req.Protocols = []Protocol{{Name: "range", Metadata: md.AppendTo(nil)}}
	s.join("a", req)
	id := s.joined("a", nil).MemberID
	s.sync("s", SyncRequest{MemberID: id, Generation: 1})
	got, ok := s.g.SubscribedTopics()
	if !ok || !got["a"] || !got["b"] || len(got) != 2 {
		t.Fatalf("%v %v", got, ok)
	}
	s.g.SetOffset(TopicPartition{"a", 0}, Offset{CommitTime: s.now})
	s.g.SetOffset(TopicPartition{"gone", 0}, Offset{CommitTime: s.now})
	if exp := s.g.ExpiredOffsets(s.now.Add(2*time.Hour), time.Hour); len(exp) != 1 || exp[0].Topic != "gone" {
		t.Fatalf("stable group expired %v", exp)
	}
}

func TestAbandonAndPersistFailed(t *testing.T) {
	s := newScript(t, nil)
	s.stableWith(1)
	b := s.newMember("b")
	_ = b
	replies := s.g.Abandon(kerr.NotCoordinator)
	s.collect(replies)
	if r := s.joined("b", kerr.NotCoordinator); r.Err == nil {
		t.Fatal("abandoned join not answered")
	}

	s2 := newScript(t, nil)
	id := s2.newMember("a")
	s2.joined("a", nil)
	s2.waiting["sa"] = true
	replies = s2.g.Sync(s2.now, SyncRequest{MemberID: id, Generation: 1}, "sa")
	s2.collect(s2.g.PersistFailed(s2.now, replies, kerr.CoordinatorNotAvailable))
	s2.synced("sa", kerr.CoordinatorNotAvailable)
	s2.state(PreparingRebalance)
}

func TestParseState(t *testing.T) {
	for _, st := range []State{Empty, PreparingRebalance, CompletingRebalance, Stable, Dead} {
		if got, ok := ParseState(st.String()); !ok || got != st {
			t.Fatalf("%s", st)
		}
	}
	if got, ok := ParseState("stable"); !ok || got != Stable {
		t.Fatal("case-insensitive")
	}
	if _, ok := ParseState("Reconciling"); ok {
		t.Fatal("unknown state parsed")
	}
}

func TestPartitionFor(t *testing.T) {
	cases := []struct {
		group string
		n     int32
		want  int32
	}{
		{"", 50, 0},
		{"a", 50, 97 % 50},
		{"ab", 50, (97*31 + 98) % 50},
		// Java's most famous hash: "polygenelubricants".hashCode() is
		// Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
		{"polygenelubricants", 50, 0},
	}
	for _, c := range cases {
		if got := PartitionFor(c.group, c.n); got != c.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", c.group, c.n, got, c.want)
		}
	}
	if h := javaStringHashCode("polygenelubricants"); h != -1<<31 {
		t.Fatalf("hash %d", h)
	}
	// Outside the BMP, Java hashes the UTF-16 surrogate pair.
	if h := javaStringHashCode("\U0001F600"); h != 0xD83D*31+0xDE00 {
		t.Fatalf("surrogate hash %d", h)
	}
}

// TestProtocolSelectionByVote: every member votes for the first protocol
// in its own order that all members support, and the most votes win, as
// in Kafka, whoever is leader; a tie goes to the leader's preference.
func TestProtocolSelectionByVote(t *testing.T) {
	s := newScript(t, nil)
	a := s.newMember("a", "range", "roundrobin")
	s.joined("a", nil)
	if s.g.Protocol() != "range" {
		t.Fatalf("protocol %q", s.g.Protocol())
	}
	s.sync("sa", SyncRequest{MemberID: a, Generation: 1})
	// One follower prefers roundrobin: a tie, the leader's choice.
	b := s.newMember("b", "roundrobin", "range")
	s.join("a2", consumerJoin(a, "range", "roundrobin"))
	if r := s.joined("a2", nil); r.Protocol != "range" {
		t.Fatalf("tie: protocol %q, want the leader's range", r.Protocol)
	}
	s.joined("b", nil)
	// Two of three prefer roundrobin: it wins over the leader's range.
	s.newMember("c", "roundrobin", "range")
	s.join("a3", consumerJoin(a, "range", "roundrobin"))
	s.join("b3", consumerJoin(b, "roundrobin", "range"))
	if r := s.joined("a3", nil); r.Protocol != "roundrobin" {
		t.Fatalf("majority: protocol %q, want roundrobin", r.Protocol)
	}
}

// TestLoweredMaxSizeShrinksGroup: a group read back with more members
// than group.max.size now allows rebalances at once, as in Kafka, and
// only that many members are taken back: the last to rejoin gets
// GROUP_MAX_SIZE_REACHED and is dropped.
func TestLoweredMaxSizeShrinksGroup(t *testing.T) {
	s := newScript(t, nil)
	ids := s.stableWith(3)
	snap := s.g.Snapshot()
	small := *s.cfg
	small.MaxGroupSize = 2
	g := NewGroup("g", &small)
	g.Restore(s.now, snap)
	g.Loaded(s.now)
	if g.State() != PreparingRebalance {
		t.Fatalf("restored over capacity: %s, want PreparingRebalance", g.State())
	}
	var got []Reply
	for _, id := range ids {
		got = append(got, g.Join(s.now, consumerJoin(id, "range"), id)...)
	}
	var maxed, joined int
	for _, r := range got {
		if r.Join == nil {
			continue
		}
		switch {
		case errors.Is(r.Join.Err, kerr.GroupMaxSizeReached):
			maxed++
			if r.To != ids[2] {
				t.Errorf("%v refused, want the last to rejoin (%s)", r.To, ids[2])
			}
		case r.Join.Err == nil:
			joined++
		default:
			t.Errorf("join %v: %v", r.To, r.Join.Err)
		}
	}
	if maxed != 1 || joined != 2 || len(g.Members()) != 2 || g.State() != CompletingRebalance {
		t.Fatalf("%d refused, %d joined, %d members, %s", maxed, joined, len(g.Members()), g.State())
	}
}
