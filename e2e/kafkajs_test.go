package e2e

// kafkajs (the Node.js client) against the real binary: admin calls,
// producers with acks=all, acks=1, gzip and idempotence, and a consumer
// group, each run as a node process (e2e/testdata/kafkajs/client.js) that
// prints one JSON line per result. The npm dependencies are installed by
// scripts/install-deps.sh; without node or them the tests skip.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkajsDir returns the directory of the kafkajs scripts, skipping the
// test when node or the kafkajs package is not installed.
func kafkajsDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(moduleRoot, "e2e", "testdata", "kafkajs")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("kafkajs tests need node on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json")); err != nil {
		t.Skipf("kafkajs is not installed in %s (scripts/install-deps.sh runs npm install there; npm missing or offline?): %v", dir, err)
	}
	return dir
}

// jsLine is one JSON line printed by client.js; which fields are set
// depends on Step.
type jsLine struct {
	Step       string             `json:"step"`
	Created    bool               `json:"created"`
	Topic      string             `json:"topic"`
	Topics     []string           `json:"topics"`
	Partition  int32              `json:"partition"`
	Partitions []jsPartition      `json:"partitions"`
	BaseOffset string             `json:"baseOffset"`
	Offset     string             `json:"offset"`
	Error      int16              `json:"error"`
	Key        *string            `json:"key"`
	Value      *string            `json:"value"`
	Headers    map[string]string  `json:"headers"`
	MemberID   string             `json:"memberId"`
	Protocol   string             `json:"protocol"`
	Assignment map[string][]int32 `json:"assignment"`
	Records    int                `json:"records"`
	Why        string             `json:"why"`
}

// jsPartition is a partition in a metadata, offsets or committed line.
type jsPartition struct {
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Error     int16   `json:"error"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
	Low       string  `json:"low"`
	High      string  `json:"high"`
	Offset    string  `json:"offset"`
}

// nodeProc is one running `node client.js STEP`.
type nodeProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *logBuffer
	done   chan struct{} // closed once stdout is drained and the process reaped

	mu      sync.Mutex
	lines   []jsLine
	bad     []string
	waitErr error // valid after done is closed
}

// startNode starts client.js STEP against addr with the extra environment
// (KEY=value). The process is killed when the test ends, and its stderr is
// printed if the test failed.
func startNode(t testing.TB, dir, addr, step string, env ...string) *nodeProc {
	t.Helper()
	name := step
	for _, kv := range env {
		if id, ok := strings.CutPrefix(kv, "CLIENT_ID="); ok {
			name += " (" + id + ")"
		}
	}
	p := &nodeProc{name: name, stderr: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("node", "client.js", step)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), append([]string{"GREGOR_BROKER=" + addr, "KAFKAJS_NO_PARTITIONER_WARNING=1"}, env...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node client.js %s: %v", step, err)
	}
	go func() { // owned by p: ends when the process's stdout closes
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var l jsLine
			err := json.Unmarshal(sc.Bytes(), &l)
			p.mu.Lock()
			if err != nil {
				p.bad = append(p.bad, sc.Text())
			} else {
				p.lines = append(p.lines, l)
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.waitErr = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("node client.js %s (%s) stderr:\n%s", step, strings.Join(env, " "), tail(p.stderr.String(), 16<<10))
		}
	})
	return p
}

func (p *nodeProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// finish closes the process's stdin (which ends a consume step) and waits
// for it as wait does.
func (p *nodeProc) finish(timeout time.Duration) error {
	_ = p.stdin.Close()
	return p.wait(timeout)
}

// wait waits up to timeout for the process to exit by itself (killing it
// then); it returns an error unless it exited 0 and printed only JSON lines.
func (p *nodeProc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("node client.js %s did not exit within %v", p.name, timeout)
	}
	if p.waitErr != nil {
		var msg string
		for _, l := range p.snapshot() {
			if l.Step == "error" {
				msg = l.Why
			}
		}
		return fmt.Errorf("node client.js %s: %v %s", p.name, p.waitErr, msg)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		return fmt.Errorf("node client.js %s printed non-JSON lines: %q", p.name, p.bad)
	}
	return nil
}

func (p *nodeProc) snapshot() []jsLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]jsLine(nil), p.lines...)
}

// linesOf returns the lines of one step kind.
func linesOf(lines []jsLine, step string) []jsLine {
	var out []jsLine
	for _, l := range lines {
		if l.Step == step {
			out = append(out, l)
		}
	}
	return out
}

// runNodeStep runs one client.js step to completion and returns its lines,
// failing the test if it fails.
func runNodeStep(t testing.TB, dir, addr, step string, env ...string) []jsLine {
	t.Helper()
	p := startNode(t, dir, addr, step, env...)
	if err := p.finish(90 * time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, tail(p.stderr.String(), 8<<10))
	}
	return p.snapshot()
}

// advertisedAPIs returns the API keys the broker advertises in ApiVersions.
func advertisedAPIs(t testing.TB, cl *kgo.Client) map[int16]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("api versions: %v", err)
	}
	out := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		out[k.ApiKey] = true
	}
	return out
}

// skipWithoutGroupAPIs skips the test unless the broker advertises the
// classic consumer group APIs.
func skipWithoutGroupAPIs(t testing.TB, cl *kgo.Client) {
	t.Helper()
	have := advertisedAPIs(t, cl)
	var missing []string
	for _, k := range []kmsg.Key{kmsg.FindCoordinator, kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat,
		kmsg.LeaveGroup, kmsg.OffsetCommit, kmsg.OffsetFetch} {
		if !have[int16(k)] {
			missing = append(missing, fmt.Sprintf("%s (%d)", k.Name(), k))
		}
	}
	if len(missing) > 0 {
		t.Skipf("broker does not advertise the group APIs %s in ApiVersions (issue 3)", strings.Join(missing, ", "))
	}
}

// jsProduced is what one kafkajs producer run sent: record i has key
// "k<i>", value "<prefix>-<i>" and header seq=<i>.
type jsProduced struct {
	prefix string
	count  int
	gzip   bool
}

// TestKafkajs drives kafkajs's admin, producer and consumer-group APIs
// against one broker and cross-checks every result with franz-go.
func TestKafkajs(t *testing.T) {
	t.Parallel()
	dir := kafkajsDir(t)
	const (
		topic      = "js.events_v1-x" // dots, underscores and dashes
		doomed     = "js-doomed"
		partitions = 3
	)
	b := StartBroker(t, WithSet(groupBrokerSets...))
	admin := b.Client()

	// Admin: create, create again, metadata, list.
	lines := runNodeStep(t, dir, b.Addr, "admin-create", "TOPICS="+topic+","+doomed, "PARTITIONS="+strconv.Itoa(partitions))
	if c := linesOf(lines, "created"); len(c) != 1 || !c[0].Created {
		t.Fatalf("kafkajs createTopics: %+v, want true", c)
	}
	if c := linesOf(lines, "created-again"); len(c) != 1 || c[0].Created {
		t.Fatalf("kafkajs createTopics of existing topics: %+v, want false", c)
	}
	md := linesOf(lines, "metadata")
	if len(md) != 2 {
		t.Fatalf("kafkajs fetchTopicMetadata returned %d topics, want 2: %+v", len(md), md)
	}
	brokerID := metadataFor(t, admin).Brokers[0].NodeID
	for _, m := range md {
		if len(m.Partitions) != partitions {
			t.Fatalf("kafkajs metadata of %s: %d partitions, want %d", m.Topic, len(m.Partitions), partitions)
		}
		for i, p := range m.Partitions {
			if p.Partition != int32(i) || p.Leader != brokerID || p.Error != 0 ||
				len(p.Replicas) != 1 || len(p.ISR) != 1 || p.ISR[0] != brokerID {
				t.Fatalf("kafkajs metadata of %s partition %d: %+v (broker id %d)", m.Topic, i, p, brokerID)
			}
		}
	}
	if l := linesOf(lines, "list"); len(l) != 1 || !contains(l[0].Topics, topic) || !contains(l[0].Topics, doomed) {
		t.Fatalf("kafkajs listTopics: %+v, want %s and %s", l, topic, doomed)
	}

	// Producers: acks=all with gzip, acks=1 uncompressed, idempotent.
	runs := []struct {
		jsProduced
		env []string
	}{
		{jsProduced{"gzip", 1200, true}, []string{"ACKS=-1", "COMPRESSION=gzip", "BATCH=200"}},
		{jsProduced{"acks1", 500, false}, []string{"ACKS=1", "COMPRESSION=none", "BATCH=50"}},
		{jsProduced{"idem", 500, true}, []string{"ACKS=-1", "COMPRESSION=gzip", "IDEMPOTENT=1", "BATCH=100"}},
	}
	total := 0
	for _, r := range runs {
		env := append([]string{"TOPIC=" + topic, "PREFIX=" + r.prefix, "COUNT=" + strconv.Itoa(r.count)}, r.env...)
		lines := runNodeStep(t, dir, b.Addr, "produce", env...)
		acked := linesOf(lines, "acked")
		if len(acked) == 0 {
			t.Fatalf("kafkajs producer %s: no acknowledgements", r.prefix)
		}
		for _, a := range acked {
			if a.Error != 0 {
				t.Fatalf("kafkajs producer %s: partition %d acknowledged with error %v", r.prefix, a.Partition, kerr.ErrorForCode(a.Error))
			}
		}
		total += r.count
	}

	// franz-go reads back exactly what kafkajs wrote, with keys, headers
	// and the codec each producer asked for.
	got := consumeTopic(t, b.Addr, topic, total, 60*time.Second)
	checkJSRecords(t, got, runs[0].jsProduced, runs[1].jsProduced, runs[2].jsProduced)

	// fetchTopicOffsets agrees with ListOffsets.
	offs := linesOf(runNodeStep(t, dir, b.Addr, "admin-offsets", "TOPICS="+topic), "offsets")
	if len(offs) != 1 || len(offs[0].Partitions) != partitions {
		t.Fatalf("kafkajs fetchTopicOffsets: %+v", offs)
	}
	ends := map[int32]int64{}
	var sum int64
	for _, p := range offs[0].Partitions {
		end, code := listOffset(t, admin, topic, p.Partition, -1)
		if code != 0 {
			t.Fatalf("list offsets p%d: %v", p.Partition, kerr.ErrorForCode(code))
		}
		if p.High != strconv.FormatInt(end, 10) || p.Offset != p.High || p.Low != "0" {
			t.Fatalf("kafkajs offsets of p%d: low %s high %s offset %s, want 0/%d/%d", p.Partition, p.Low, p.High, p.Offset, end, end)
		}
		ends[p.Partition] = end
		sum += end
	}
	if sum != int64(total) {
		t.Fatalf("end offsets add up to %d, want %d", sum, total)
	}

	t.Run("group", func(t *testing.T) {
		skipWithoutGroupAPIs(t, admin)
		testKafkajsGroup(t, dir, b, admin, topic, partitions, total, ends)
	})

	// Delete: the topic is gone for kafkajs and franz-go alike.
	lines = runNodeStep(t, dir, b.Addr, "admin-delete", "TOPICS="+doomed)
	if l := linesOf(lines, "list"); len(l) != 1 || contains(l[0].Topics, doomed) || !contains(l[0].Topics, topic) {
		t.Fatalf("kafkajs listTopics after delete: %+v", l)
	}
	if m := metadataFor(t, admin, doomed); len(m.Topics) != 1 || m.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata of deleted topic: %+v", m.Topics)
	}
}

// testKafkajsGroup consumes the topic with kafkajs group members: one
// member reads all `total` records exactly once, in order, and commits the
// end offsets; after franz-go adds more records, two members sharing the
// group split the partitions, resume from the commits (nothing old is read
// again) and read every new record.
func testKafkajsGroup(t *testing.T, dir string, b *Broker, admin *kgo.Client, topic string, partitions, total int, ends map[int32]int64) {
	const group = "js-group"
	one := startNode(t, dir, b.Addr, "consume", "TOPIC="+topic, "GROUP="+group, "EXIT_AFTER="+strconv.Itoa(total), "CLIENT_ID=js-solo")
	if err := one.wait(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	lines := one.snapshot()
	next := map[int32]int64{}
	for _, r := range linesOf(lines, "record") {
		off, err := strconv.ParseInt(r.Offset, 10, 64)
		if err != nil {
			t.Fatalf("record offset %q: %v", r.Offset, err)
		}
		if off != next[r.Partition] {
			t.Fatalf("kafkajs member read p%d@%d, want offset %d (exactly once, in order)", r.Partition, off, next[r.Partition])
		}
		next[r.Partition]++
	}
	for p, end := range ends {
		if next[p] != end {
			t.Fatalf("kafkajs member read p%d up to %d, want %d", p, next[p], end)
		}
	}
	checkJSCommitted(t, lines, topic, ends)
	if got := committedOffsets(t, admin, group, topic); !equalOffsets(got, ends) {
		t.Fatalf("OffsetFetch after the kafkajs member left: %v, want %v", got, ends)
	}

	// More records, from franz-go with keys (gzip: kafkajs has no snappy,
	// franz-go's default codec).
	const more = 600
	producer := b.Client(kgo.ProducerBatchCompression(kgo.GzipCompression()))
	recs := make([]*kgo.Record, more)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("fk%d", i)), Value: []byte(fmt.Sprintf("franz-%d", i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("franz-go produce: %v", err)
	}
	newEnds := map[int32]int64{}
	for p := int32(0); p < int32(partitions); p++ {
		end, _ := listOffset(t, admin, topic, p, -1)
		newEnds[p] = end
	}

	members := []*nodeProc{
		startNode(t, dir, b.Addr, "consume", "TOPIC="+topic, "GROUP="+group, "CLIENT_ID=js-a"),
		startNode(t, dir, b.Addr, "consume", "TOPIC="+topic, "GROUP="+group, "CLIENT_ID=js-b"),
	}
	eventually(t, 60*time.Second, "two kafkajs members share the partitions and read every new record", func() error {
		g, owned := describeGroup(t, admin, group, topic)
		if g.State != "Stable" {
			return fmt.Errorf("group is %s", g.State)
		}
		if err := checkExclusive(owned, 2, partitions); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, m := range members {
			if c := linesOf(m.snapshot(), "crash"); len(c) > 0 {
				t.Fatalf("kafkajs member %s crashed: %s", m.name, c[0].Why)
			}
			for _, r := range linesOf(m.snapshot(), "record") {
				if r.Value != nil {
					seen[*r.Value] = true
				}
			}
		}
		if len(seen) < more {
			return fmt.Errorf("%d of %d new records read", len(seen), more)
		}
		return nil
	})
	seen := map[string]int{}
	for _, m := range members {
		if err := m.finish(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, r := range linesOf(m.snapshot(), "record") {
			v := ""
			if r.Value != nil {
				v = *r.Value
			}
			if !strings.HasPrefix(v, "franz-") {
				t.Fatalf("member read p%d@%s = %q from before the committed offsets", r.Partition, r.Offset, v)
			}
			seen[v]++
		}
	}
	for i := 0; i < more; i++ {
		if seen[fmt.Sprintf("franz-%d", i)] == 0 {
			t.Fatalf("record franz-%d never read by the two members", i)
		}
	}
	if got := committedOffsets(t, admin, group, topic); !equalOffsets(got, newEnds) {
		t.Fatalf("committed offsets after both members left: %v, want %v", got, newEnds)
	}
}

// checkJSRecords checks that records hold exactly what the kafkajs
// producer runs sent: every value once, its key and seq header, and gzip
// batches where asked.
func checkJSRecords(t *testing.T, recs []*kgo.Record, runs ...jsProduced) {
	t.Helper()
	want := map[string]jsProduced{}
	n := 0
	for _, r := range runs {
		want[r.prefix] = r
		n += r.count
	}
	if len(recs) != n {
		t.Fatalf("read %d records, want %d", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		v := string(r.Value)
		prefix, num, ok := strings.Cut(v, "-")
		run, known := want[prefix]
		i, err := strconv.Atoi(num)
		if !ok || !known || err != nil || i < 0 || i >= run.count {
			t.Fatalf("unexpected value %q at p%d@%d", v, r.Partition, r.Offset)
		}
		if seen[v] {
			t.Fatalf("value %q read twice", v)
		}
		seen[v] = true
		if string(r.Key) != "k"+num {
			t.Fatalf("%s: key %q, want %q", v, r.Key, "k"+num)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "seq" || string(r.Headers[0].Value) != num {
			t.Fatalf("%s: headers %+v, want seq=%s", v, r.Headers, num)
		}
		codec := r.Attrs.CompressionType()
		if run.gzip && codec != 1 || !run.gzip && codec != 0 {
			t.Fatalf("%s: stored with codec %d, want gzip=%v", v, codec, run.gzip)
		}
	}
}

// checkJSCommitted checks the committed offsets a consume step printed.
func checkJSCommitted(t *testing.T, lines []jsLine, topic string, want map[int32]int64) {
	t.Helper()
	c := linesOf(lines, "committed")
	if len(c) != 1 || c[0].Topic != topic {
		t.Fatalf("kafkajs fetchOffsets: %+v", c)
	}
	got := map[int32]int64{}
	for _, p := range c[0].Partitions {
		off, err := strconv.ParseInt(p.Offset, 10, 64)
		if err != nil {
			t.Fatalf("committed offset %q: %v", p.Offset, err)
		}
		got[p.Partition] = off
	}
	if !equalOffsets(got, want) {
		t.Fatalf("kafkajs fetchOffsets: %v, want %v", got, want)
	}
}

func equalOffsets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

// TestKafkajsTransactions: kafkajs's transactional producer commits a
// transaction with records and a group offset (sendOffsets: AddOffsetsToTxn
// and TxnOffsetCommit) and aborts another; its read_committed consumer gets
// exactly the committed records, and the group has the offset.
func TestKafkajsTransactions(t *testing.T) {
	t.Parallel()
	dir := kafkajsDir(t)
	const (
		topic = "js-txn"
		input = "js-txn-in"
		group = "js-txn-eos"
		count = 50
	)
	b := StartBroker(t, WithSet(groupBrokerSets...))
	cl := b.Client()
	createTopic(t, cl, topic, 2, nil)
	createTopic(t, cl, input, 1, nil)
	lines := runNodeStep(t, dir, b.Addr, "txn", "TOPIC="+topic, "INPUT="+input, "COUNT="+strconv.Itoa(count),
		"ABORTED=20", "TXN_ID=js-txn-id", "GROUP="+group, "OFFSET=42", "READER=js-txn-reader")
	var got []string
	for _, l := range lines {
		if l.Step == "record" && l.Value != nil {
			got = append(got, *l.Value)
		}
	}
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf("committed-%d", i)
	}
	if d := diffStrings(sortedCopy(got), sortedCopy(want)); d != "" {
		t.Fatalf("kafkajs read_committed consumer: %s", d)
	}
	if off := committedOffsets(t, cl, group, input); off[0] != 42 {
		t.Fatalf("offsets committed in the transaction: %v, want 42 on partition 0", off)
	}
	// read_uncommitted sees the aborted records too.
	if recs := consumeTopic(t, b.Addr, topic, count+20, 30*time.Second); len(recs) != count+20 {
		t.Fatalf("read_uncommitted: %d records, want %d", len(recs), count+20)
	}
}
