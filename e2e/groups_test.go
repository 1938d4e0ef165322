package e2e

// Consumer groups over the real binary: franz-go members in separate
// processes (internal/benchtools/groupmember) killed with SIGKILL, static
// membership, kcat's balanced consumer, sarama's consumer group, and
// committed offsets across a broker restart.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupSession is the session timeout of the group members in these tests;
// the broker is started with group.min.session.timeout.ms below it.
const groupSession = 3 * time.Second

// groupBrokerSets are the broker properties of the group tests: short
// sessions allowed, a small offsets topic (quick to create).
var groupBrokerSets = []string{"group.min.session.timeout.ms=500", "offsets.topic.num.partitions=8"}

// buildGroupMember builds the groupmember helper into a temp dir.
func buildGroupMember(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "groupmember")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/benchtools/groupmember")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build groupmember: %v\n%s", err, out)
	}
	return bin
}

// memberEvent is one line of groupmember output.
type memberEvent struct {
	kind       string // ASSIGNED, REVOKED, LOST, RECORD, COMMIT
	at         time.Time
	partitions []int32 // ASSIGNED, REVOKED, LOST
	partition  int32   // RECORD, COMMIT
	offset     int64   // RECORD, COMMIT
}

// memberProc is one running groupmember process.
type memberProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *logBuffer
	done   chan struct{} // closed when the process has exited and its output is read

	mu     sync.Mutex
	events []memberEvent
	bad    []string
}

func startMember(t *testing.T, bin, addr, name string, args ...string) *memberProc {
	t.Helper()
	m := &memberProc{name: name, stderr: &logBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(bin, append([]string{"--brokers", addr, "--client-id", name}, args...)...)
	m.cmd.Stderr = m.stderr
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // owned by m: ends when the process's stdout closes
		defer close(m.done)
		m.read(stdout)
		_ = m.cmd.Wait()
	}()
	t.Cleanup(func() {
		m.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("member %s stderr:\n%s", name, tail(m.stderr.String(), 8<<10))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.bad) > 0 {
			t.Errorf("member %s printed unparseable lines: %q", name, m.bad)
		}
	})
	return m
}

func (m *memberProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		ev, err := parseMemberEvent(line)
		m.mu.Lock()
		if err != nil {
			m.bad = append(m.bad, line)
		} else {
			m.events = append(m.events, ev)
		}
		m.mu.Unlock()
	}
}

func parseMemberEvent(line string) (memberEvent, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return memberEvent{}, errors.New("short line")
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return memberEvent{}, err
	}
	ev := memberEvent{kind: f[0], at: time.Unix(0, ns)}
	switch ev.kind {
	case "ASSIGNED", "REVOKED", "LOST":
		if len(f) > 2 {
			for _, s := range strings.Split(f[2], ",") {
				p, err := strconv.Atoi(s)
				if err != nil {
					return memberEvent{}, err
				}
				ev.partitions = append(ev.partitions, int32(p))
			}
		}
	case "RECORD", "COMMIT":
		if len(f) != 4 {
			return memberEvent{}, errors.New("want 4 fields")
		}
		p, err1 := strconv.Atoi(f[2])
		o, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return memberEvent{}, errors.New("bad numbers")
		}
		ev.partition, ev.offset = int32(p), o
	default:
		return memberEvent{}, fmt.Errorf("unknown event %q", ev.kind)
	}
	return ev, nil
}

func (m *memberProc) snapshot() []memberEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]memberEvent(nil), m.events...)
}

// owned replays assignment events up to (and including) time at.
func (m *memberProc) owned(at time.Time) map[int32]bool {
	owned := map[int32]bool{}
	for _, ev := range m.snapshot() {
		if ev.at.After(at) {
			break
		}
		switch ev.kind {
		case "ASSIGNED":
			for _, p := range ev.partitions {
				owned[p] = true
			}
		case "REVOKED", "LOST":
			for _, p := range ev.partitions {
				delete(owned, p)
			}
		}
	}
	return owned
}

// lastCommits is the last acknowledged commit per partition.
func (m *memberProc) lastCommits() map[int32]int64 {
	out := map[int32]int64{}
	for _, ev := range m.snapshot() {
		if ev.kind == "COMMIT" {
			out[ev.partition] = ev.offset
		}
	}
	return out
}

func (m *memberProc) kill9() time.Time {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	return time.Now()
}

// stop asks the member to leave the group and exit, killing it after
// timeout.
func (m *memberProc) stop(timeout time.Duration) {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(timeout):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// describeGroup returns the group as DescribeGroups shows it, with each
// member's assigned partitions of topic decoded.
func describeGroup(t testing.TB, cl *kgo.Client, group, topic string) (kmsg.DescribeGroupsResponseGroup, map[string][]int32) {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("describe group: %v", err)
	}
	g := resp.Groups[0]
	owned := map[string][]int32{}
	for _, m := range g.Members {
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(m.MemberAssignment); err != nil {
			continue
		}
		for _, tp := range a.Topics {
			if tp.Topic == topic {
				owned[m.MemberID] = append(owned[m.MemberID], tp.Partitions...)
			}
		}
	}
	return g, owned
}

// checkExclusive returns nil if the members' partitions cover [0, n)
// exactly once with every member owning some.
func checkExclusive(owned map[string][]int32, members, n int) error {
	if len(owned) != members {
		return fmt.Errorf("%d members own partitions, want %d: %v", len(owned), members, owned)
	}
	seen := map[int32]string{}
	for m, ps := range owned {
		if len(ps) == 0 {
			return fmt.Errorf("member %s owns nothing: %v", m, owned)
		}
		for _, p := range ps {
			if other, dup := seen[p]; dup {
				return fmt.Errorf("partition %d owned by %s and %s", p, other, m)
			}
			seen[p] = m
		}
	}
	if len(seen) != n {
		return fmt.Errorf("%d of %d partitions owned: %v", len(seen), n, owned)
	}
	return nil
}

// committedOffsets fetches a group's committed offsets for topic.
func committedOffsets(t testing.TB, cl *kgo.Client, group, topic string) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := map[int32]int64{}
	for _, tp := range resp.Topics {
		if tp.Topic == topic {
			for _, p := range tp.Partitions {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out
}

// TestGroupKill9Member runs three members of one group in their own
// processes on a 12-partition topic, for range and cooperative-sticky:
// every partition is owned by exactly one member; after one member is
// killed with SIGKILL its partitions are reassigned within the session
// timeout (plus a heartbeat and a rebalance), every record is consumed,
// and nothing the killed member committed is consumed again.
func TestGroupKill9Member(t *testing.T) {
	t.Parallel()
	bin := buildGroupMember(t)
	for _, balancer := range []string{"range", "cooperative-sticky"} {
		t.Run(balancer, func(t *testing.T) {
			t.Parallel()
			testKill9Member(t, bin, balancer)
		})
	}
}

func testKill9Member(t *testing.T, bin, balancer string) {
	const (
		partitions = 12
		perPart    = 150
		group      = "kill9"
		topic      = "kill9"
	)
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)

	var members []*memberProc
	for i := 0; i < 3; i++ {
		members = append(members, startMember(t, bin, b.Addr, fmt.Sprintf("m%d", i),
			"--group", group, "--topic", topic, "--balancer", balancer,
			"--session-timeout", groupSession.String(), "--heartbeat", "200ms",
			"--delay", "4ms", "--commit-every", "10"))
	}
	// Every partition owned by exactly one member, as the broker sees it.
	eventually(t, 60*time.Second, "3 members own the 12 partitions exclusively", func() error {
		g, owned := describeGroup(t, admin, group, topic)
		if g.State != "Stable" {
			return fmt.Errorf("group is %s", g.State)
		}
		if g.Protocol != balancer {
			return fmt.Errorf("protocol %q", g.Protocol)
		}
		return checkExclusive(owned, 3, partitions)
	})
	// Records arrive once the group is stable; each member needs a few
	// seconds for its share, and the victim is killed part way.
	producer := manualClient(t, b.Addr)
	for p := int32(0); p < partitions; p++ {
		vals := make([]string, perPart)
		for i := range vals {
			vals[i] = fmt.Sprintf("%d-%d", p, i)
		}
		produceSync(t, producer, topic, p, vals...)
	}
	victim, survivors := members[0], members[1:]
	eventually(t, 60*time.Second, "the victim commits part of its share", func() error {
		if len(victim.lastCommits()) == 0 {
			return errNotYet
		}
		return nil
	})
	killedAt := victim.kill9()
	committed := victim.lastCommits()
	t.Logf("%s: killed m0 after it committed %v", balancer, committed)
	unfinished := false
	for _, off := range committed {
		unfinished = unfinished || off < perPart
	}
	if !unfinished {
		t.Fatalf("m0 finished its share before the kill; the test proves nothing (committed %v)", committed)
	}

	// Its partitions move to the survivors.
	var reassigned time.Duration
	eventually(t, 30*time.Second, "survivors own every partition", func() error {
		now := time.Now()
		union := map[int32]bool{}
		for _, m := range survivors {
			for p := range m.owned(now) {
				union[p] = true
			}
		}
		if len(union) != partitions {
			return fmt.Errorf("survivors own %d partitions", len(union))
		}
		// When did it become true? The latest assignment event.
		var last time.Time
		for _, m := range survivors {
			for _, ev := range m.snapshot() {
				if ev.kind == "ASSIGNED" && ev.at.After(last) {
					last = ev.at
				}
			}
		}
		reassigned = last.Sub(killedAt)
		return nil
	})
	t.Logf("%s: partitions reassigned %v after the kill (session timeout %v)", balancer, reassigned, groupSession)
	if reassigned > groupSession+3*time.Second {
		t.Errorf("reassignment took %v, session timeout is %v", reassigned, groupSession)
	}
	g, owned := describeGroup(t, admin, group, topic)
	if err := checkExclusive(owned, 2, partitions); err != nil || g.State != "Stable" {
		t.Errorf("after the kill: %s: %v", g.State, err)
	}

	// Everything is consumed; nothing committed before the kill again.
	eventually(t, 60*time.Second, "every record consumed", func() error {
		seen := map[[2]int64]bool{}
		for _, m := range members {
			for _, ev := range m.snapshot() {
				if ev.kind == "RECORD" {
					seen[[2]int64{int64(ev.partition), ev.offset}] = true
				}
			}
		}
		if len(seen) != partitions*perPart {
			return fmt.Errorf("%d of %d records consumed", len(seen), partitions*perPart)
		}
		return nil
	})
	for _, m := range survivors {
		for _, ev := range m.snapshot() {
			if ev.kind != "RECORD" || !ev.at.After(killedAt) {
				continue
			}
			if c, ok := committed[ev.partition]; ok && ev.offset < c {
				t.Errorf("%s consumed %d/%d after the kill, but m0 had committed up to %d", m.name, ev.partition, ev.offset, c)
			}
		}
	}
	eventually(t, 30*time.Second, "all offsets committed", func() error {
		got := committedOffsets(t, admin, group, topic)
		for p := int32(0); p < partitions; p++ {
			if got[p] != perPart {
				return fmt.Errorf("partition %d committed at %d", p, got[p])
			}
		}
		return nil
	})
}

// TestGroupStaticMembersRejoin: a static member (group.instance.id) that
// restarts within its session timeout gets its partitions back in the
// same generation, without a rebalance: the other member keeps consuming
// untouched.
func TestGroupStaticMembersRejoin(t *testing.T) {
	t.Parallel()
	const topic, group = "static", "static-group"
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()
	createTopic(t, admin, topic, 4, nil)

	type member struct {
		cl      *kgo.Client
		mu      sync.Mutex
		revoked int
		owned   int
	}
	start := func(instance string) *member {
		m := &member{}
		m.cl = rawClient(t, b.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.InstanceID(instance), kgo.ClientID(instance),
			kgo.Balancers(kgo.CooperativeStickyBalancer()),
			kgo.SessionTimeout(30*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				m.owned += len(a[topic])
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				m.mu.Lock()
				m.revoked += len(r[topic])
				m.owned -= len(r[topic])
				m.mu.Unlock()
			}),
		)
		t.Cleanup(m.cl.Close)
		return m
	}
	ctx := testCtx(t, 60*time.Second)
	poll := func(ctx context.Context, m *member) {
		for ctx.Err() == nil {
			m.cl.PollFetches(ctx)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	leader := start("static-a") // joins first: the leader
	wg.Add(1)
	go func() { defer wg.Done(); poll(pollCtx, leader) }()
	eventually(t, 30*time.Second, "the first member owns everything", func() error {
		if _, gen := leader.cl.GroupMetadata(); gen < 1 {
			return errNotYet
		}
		return nil
	})
	follower := start("static-b")
	followerCtx, stopFollower := context.WithCancel(pollCtx)
	followerDone := make(chan struct{})
	go func() { defer close(followerDone); poll(followerCtx, follower) }()
	var gen int32
	eventually(t, 30*time.Second, "two members share the topic", func() error {
		g, owned := describeGroup(t, admin, group, topic)
		if g.State != "Stable" {
			return fmt.Errorf("group is %s", g.State)
		}
		if err := checkExclusive(owned, 2, 4); err != nil {
			return err
		}
		_, lg := leader.cl.GroupMetadata()
		_, fg := follower.cl.GroupMetadata()
		if lg != fg {
			return fmt.Errorf("generations %d and %d", lg, fg)
		}
		leader.mu.Lock()
		defer leader.mu.Unlock()
		if leader.owned != 2 {
			return fmt.Errorf("leader owns %d", leader.owned)
		}
		gen = lg
		return nil
	})
	leader.mu.Lock()
	revokedBefore := leader.revoked
	leader.mu.Unlock()
	oldID, _ := follower.cl.GroupMetadata()

	// The follower's process "restarts": a static member leaves no
	// LeaveGroup behind, and its successor joins with the same instance id.
	stopFollower()
	<-followerDone
	follower.cl.Close()
	restarted := start("static-b")
	wg.Add(1)
	go func() { defer wg.Done(); poll(pollCtx, restarted) }()
	eventually(t, 30*time.Second, "the restarted member owns its partitions again", func() error {
		restarted.mu.Lock()
		defer restarted.mu.Unlock()
		if restarted.owned != 2 {
			return fmt.Errorf("owns %d", restarted.owned)
		}
		return nil
	})
	newID, newGen := restarted.cl.GroupMetadata()
	if newGen != gen || newID == oldID {
		t.Fatalf("restarted static member: generation %d (was %d), member id %q (was %q)", newGen, gen, newID, oldID)
	}
	if _, lg := leader.cl.GroupMetadata(); lg != gen {
		t.Fatalf("leader moved to generation %d from %d", lg, gen)
	}
	leader.mu.Lock()
	if leader.revoked != revokedBefore {
		t.Errorf("the leader had partitions revoked: a rebalance happened")
	}
	leader.mu.Unlock()
	g, owned := describeGroup(t, admin, group, topic)
	if err := checkExclusive(owned, 2, 4); err != nil || g.State != "Stable" {
		t.Fatalf("after the static rejoin: %s: %v", g.State, err)
	}
}

// TestGroupKcatBalancedConsumer runs kcat's balanced consumer (librdkafka)
// twice in one group, with a broker restart between: the second run reads
// only what was produced after the first committed.
func TestGroupKcatBalancedConsumer(t *testing.T) {
	t.Parallel()
	const topic, group = "kcat-group", "kcat-g"
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()
	createTopic(t, admin, topic, 3, nil)
	producer := manualClient(t, b.Addr)
	var first []string
	for p := int32(0); p < 3; p++ {
		for i := 0; i < 20; i++ {
			first = append(first, fmt.Sprintf("first-%d-%d", p, i))
		}
		produceSync(t, producer, topic, p, first[len(first)-20:]...)
	}
	consume := func() []string {
		out := runKcat(t, "", "-b", b.Addr, "-G", group, "-e", "-q", "-f", `%s\n`,
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic)
		return nonEmptyLines(out)
	}
	got := consume()
	sort.Strings(got)
	sort.Strings(first)
	if strings.Join(got, ",") != strings.Join(first, ",") {
		t.Fatalf("first kcat run read %d records, want %d: %v", len(got), len(first), got)
	}
	eventually(t, 10*time.Second, "kcat's commits", func() error {
		c := committedOffsets(t, admin, group, topic)
		for p := int32(0); p < 3; p++ {
			if c[p] != 20 {
				return fmt.Errorf("partition %d committed at %d", p, c[p])
			}
		}
		return nil
	})

	b.Restart()
	producer = manualClient(t, b.Addr)
	produceSync(t, producer, topic, 1, "second-1", "second-2")
	got = consume()
	if strings.Join(got, ",") != "second-1,second-2" {
		t.Fatalf("second kcat run read %v, want only the two new records", got)
	}
}

// saramaHandler counts what a sarama consumer-group session consumes and
// marks every message.
type saramaHandler struct {
	mu   sync.Mutex
	seen map[string]int
	want int
	done chan struct{}
	once sync.Once
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.mu.Lock()
		h.seen[string(msg.Value)]++
		n := len(h.seen)
		h.mu.Unlock()
		s.MarkMessage(msg, "")
		if n == h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// TestGroupSaramaConsumerGroup consumes a topic with two sarama consumer
// group members and checks the offsets they commit.
func TestGroupSaramaConsumerGroup(t *testing.T) {
	t.Parallel()
	const topic, group, n = "sarama-group", "sarama-g", 200
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()
	createTopic(t, admin, topic, 4, nil)
	producer := manualClient(t, b.Addr)
	for p := int32(0); p < 4; p++ {
		vals := make([]string, n/4)
		for i := range vals {
			vals[i] = fmt.Sprintf("%d-%d", p, i)
		}
		produceSync(t, producer, topic, p, vals...)
	}
	cfg := saramaConfig(false)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = groupSession
	cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	h := &saramaHandler{seen: map[string]int{}, want: n, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		cg, err := sarama.NewConsumerGroup([]string{b.Addr}, group, cfg)
		if err != nil {
			t.Fatalf("sarama consumer group: %v", err)
		}
		wg.Add(1)
		go func() { // owned by the test: ends when ctx is cancelled
			defer wg.Done()
			defer cg.Close()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					t.Errorf("sarama consume: %v", err)
					return
				}
			}
		}()
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		t.Fatalf("sarama consumed %d of %d", len(h.seen), n)
	}
	g, owned := describeGroup(t, admin, group, topic)
	if g.State == "Stable" && len(g.Members) == 2 {
		if err := checkExclusive(owned, 2, 4); err != nil {
			t.Errorf("sarama group: %v", err)
		}
	}
	cancel()
	wg.Wait() // Close commits the marked offsets
	c := committedOffsets(t, admin, group, topic)
	for p := int32(0); p < 4; p++ {
		if c[p] != n/4 {
			t.Errorf("partition %d committed at %d, want %d", p, c[p], n/4)
		}
	}
}

// TestGroupOffsetsSurviveRestart commits with a franz-go group consumer,
// restarts the broker (gracefully, then with SIGKILL), and checks that a
// new member resumes exactly after the commit each time.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	t.Parallel()
	const topic, group = "restart-group", "restart-g"
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()
	createTopic(t, admin, topic, 2, nil)
	producer := manualClient(t, b.Addr)
	next := 0
	produce := func(k int) {
		for i := 0; i < k; i++ {
			produceSync(t, producer, topic, int32(next%2), strconv.Itoa(next))
			next++
		}
	}
	consumeAll := func(want int) []int {
		cl := rawClient(t, b.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(groupSession),
			kgo.HeartbeatInterval(200*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond))
		defer cl.Close()
		ctx := testCtx(t, 30*time.Second)
		var got []int
		for len(got) < want {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %v, want %d records", got, want)
			}
			fs.EachRecord(func(r *kgo.Record) {
				v, _ := strconv.Atoi(string(r.Value))
				got = append(got, v)
			})
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		return got
	}
	check := func(got []int, from, to int) {
		t.Helper()
		sort.Ints(got)
		if len(got) != to-from || got[0] != from || got[len(got)-1] != to-1 {
			t.Fatalf("consumed %v, want %d..%d", got, from, to-1)
		}
	}
	produce(10)
	check(consumeAll(10), 0, 10)
	b.Restart()
	producer = manualClient(t, b.Addr)
	produce(6)
	check(consumeAll(6), 10, 16)
	b.Kill9()
	b.Start()
	producer = manualClient(t, b.Addr)
	produce(4)
	check(consumeAll(4), 16, 20)
	if c := committedOffsets(t, b.Client(), group, topic); c[0]+c[1] != 20 {
		t.Fatalf("committed %v", c)
	}
}
