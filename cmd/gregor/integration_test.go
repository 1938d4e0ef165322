package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests drive the commands against franz-go's in-process kfake
// cluster, so they do not depend on gregor's broker.

// newCluster starts a one-broker kfake cluster and returns its address.
func newCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, stdin, args...)
	if code != 0 {
		t.Fatalf("gregor %q: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	return stdout
}

// mustFail runs a command that must exit 1 with wantErr in its stderr.
func mustFail(t *testing.T, wantErr string, args ...string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, "", args...)
	if code != 1 || !strings.Contains(stderr, wantErr) {
		t.Fatalf("gregor %q: exit %d, stderr %q, stdout %q; want exit 1 with %q", args, code, stderr, stdout, wantErr)
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestTopicCommands(t *testing.T) {
	t.Parallel()
	b := newCluster(t)

	out := mustRun(t, "", "topic", "create", "orders", "-b", b, "--partitions", "3", "--config", "retention.ms=1000")
	if !strings.Contains(out, "created topic orders with 3 partition(s)") {
		t.Errorf("create: %q", out)
	}
	mustFail(t, "TOPIC_ALREADY_EXISTS", "topic", "create", "orders", "-b", b)
	if code, _, stderr := runCLI(t, "", "topic", "create", "dup", "-b", b, "--config", "retention.ms=1", "--config", "retention.ms=2"); code != 2 || !strings.Contains(stderr, "--config retention.ms: given twice") {
		t.Errorf("a config given twice: exit %d, %q", code, stderr)
	}
	mustRun(t, "", "topic", "create", "orders", "-b", b, "--if-not-exists")
	mustRun(t, "", "topic", "create", "--bootstrap-server", b, "audit")

	if got := lines(mustRun(t, "", "topic", "list", "-b", b)); !slices.Equal(got, []string{"audit", "orders"}) {
		t.Errorf("list = %q", got)
	}

	mustRun(t, strings.Repeat("x\n", 7), "produce", "-b", b, "-t", "orders", "--partition", "1")
	desc := mustRun(t, "", "topic", "describe", "orders", "-b", b)
	for _, want := range []string{"Topic: orders", "Partitions: 3", "retention.ms=1000", "PARTITION", "EARLIEST"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	// Partition 1 holds the 7 records: earliest 0, latest 7, some bytes;
	// partition 0 is empty.
	row1 := func() []string {
		for _, l := range lines(desc) {
			if f := strings.Fields(l); len(f) == 9 && f[0] == "1" {
				return f
			}
		}
		return nil
	}()
	if len(row1) != 9 {
		t.Errorf("describe: no partition 1 row:\n%s", desc)
	} else if size, err := strconv.Atoi(row1[7]); !slices.Equal(row1[:7], []string{"1", "0", "0", "0", "0", "0", "7"}) ||
		err != nil || size <= 0 || row1[8] != "-" {
		t.Errorf("describe: partition 1 row wrong:\n%s", desc)
	}
	if !containsFields(desc, "0", "0", "0", "0", "0", "0", "0", "0", "-") {
		t.Errorf("describe: partition 0 row wrong:\n%s", desc)
	}
	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "describe", "nope", "-b", b)

	mustRun(t, "", "topic", "alter-config", "orders", "-b", b, "--set", "retention.ms=2000", "--set", "segment.bytes=1048576")
	desc = mustRun(t, "", "topic", "describe", "orders", "-b", b)
	if !strings.Contains(desc, "retention.ms=2000") || !strings.Contains(desc, "segment.bytes=1048576") {
		t.Errorf("alter-config not applied:\n%s", desc)
	}
	mustRun(t, "", "topic", "alter-config", "orders", "-b", b, "--delete", "retention.ms")
	if desc = mustRun(t, "", "topic", "describe", "orders", "-b", b); strings.Contains(desc, "retention.ms=2000") {
		t.Errorf("alter-config --delete not applied:\n%s", desc)
	}

	mustRun(t, "", "topic", "add-partitions", "orders", "-b", b, "--partitions", "5")
	if desc = mustRun(t, "", "topic", "describe", "orders", "-b", b); !strings.Contains(desc, "Partitions: 5") {
		t.Errorf("add-partitions not applied:\n%s", desc)
	}
	mustFail(t, "INVALID_PARTITIONS", "topic", "add-partitions", "orders", "-b", b, "--partitions", "2")

	mustRun(t, "", "topic", "delete", "orders", "-b", b)
	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "delete", "orders", "-b", b)
	mustRun(t, "", "topic", "delete", "orders", "-b", b, "--if-exists")
	if got := lines(mustRun(t, "", "topic", "list", "-b", b)); !slices.Equal(got, []string{"audit"}) {
		t.Errorf("list after delete = %q", got)
	}
}

// containsFields reports whether some line of s has exactly these
// whitespace-separated fields.
func containsFields(s string, fields ...string) bool {
	for _, l := range lines(s) {
		if slices.Equal(strings.Fields(l), fields) {
			return true
		}
	}
	return false
}

func TestProduceConsume(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(4, "lines"))

	var in strings.Builder
	var want []string
	for i := range 1000 {
		fmt.Fprintf(&in, "key-%d:value-%d\n", i, i)
		want = append(want, fmt.Sprintf("key-%d|value-%d|src=test,n=1", i, i))
	}
	out := mustRun(t, in.String(), "produce", "-b", b, "-t", "lines", "-k", ":", "--header", "src=test", "--header", "n=1")
	if !strings.Contains(out, "produced 1000 record(s) to lines") {
		t.Errorf("produce: %q", out)
	}

	got := lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "--format", `%k|%v|%h\n`))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %d records, want %d; first %q", len(got), len(want), got[:min(3, len(got))])
	}

	// Every partition's offsets run from 0 without gaps.
	total := 0
	for p := range 4 {
		offs := lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "--partition", strconv.Itoa(p), "--format", `%t %p %o\n`))
		for i, l := range offs {
			if l != fmt.Sprintf("lines %d %d", p, i) {
				t.Fatalf("partition %d line %d = %q", p, i, l)
			}
		}
		total += len(offs)
	}
	if total != 1000 {
		t.Errorf("partitions hold %d records", total)
	}

	if n := len(lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "-n", "10"))); n != 10 {
		t.Errorf("-n 10 printed %d", n)
	}
	if n := len(lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "--from", "-2"))); n != 8 {
		t.Errorf("--from -2 over 4 partitions printed %d", n)
	}
	if out := mustRun(t, "", "consume", "-b", b, "-t", "lines", "--from", "end"); out != "" {
		t.Errorf("--from end printed %q", out)
	}
	if n := len(lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "--from", "@0"))); n != 1000 {
		t.Errorf("--from @0 printed %d", n)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if out := mustRun(t, "", "consume", "-b", b, "-t", "lines", "--from", "@"+future); out != "" {
		t.Errorf("--from @future printed %q", out)
	}
	first := lines(mustRun(t, "", "consume", "-b", b, "-t", "lines", "--partition", "0", "--from", "5", "-n", "1", "--format", `%o %T\n`))
	if len(first) != 1 || !strings.HasPrefix(first[0], "5 ") {
		t.Errorf("--from 5: %q", first)
	}
	ts, _ := strconv.ParseInt(strings.Fields(first[0])[1], 10, 64)
	if age := time.Since(time.UnixMilli(ts)); age < 0 || age > time.Minute {
		t.Errorf("timestamp %d is %v old", ts, age)
	}

	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "consume", "-b", b, "-t", "nope")
	mustFail(t, "has no partition 9", "consume", "-b", b, "-t", "lines", "--partition", "9")
}

func TestProduceOptions(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(2, "opts"))
	// Every codec and acks setting; a line without the separator is all
	// value with a null key; blank lines are records; CRLF is stripped.
	for i, args := range [][]string{
		{"--compression", "gzip"},
		{"--compression", "snappy", "--acks", "1"},
		{"--compression", "lz4", "--acks", "0"},
		{"--compression", "zstd", "-k", "="},
	} {
		stdin := fmt.Sprintf("a=%d\r\n\nno-sep-%d", i, i)
		out := mustRun(t, stdin, append([]string{"produce", "-b", b, "-t", "opts", "--partition", "1"}, args...)...)
		if !strings.Contains(out, "produced 3 record(s)") {
			t.Errorf("%q: %q", args, out)
		}
	}
	got := lines(mustRun(t, "", "consume", "-b", b, "-t", "opts", "--partition", "1", "--format", `[%k][%v]\n`))
	want := []string{
		"[][a=0]", "[][]", "[][no-sep-0]",
		"[][a=1]", "[][]", "[][no-sep-1]",
		"[][a=2]", "[][]", "[][no-sep-2]",
		"[a][3]", "[][]", "[][no-sep-3]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if out := mustRun(t, "", "produce", "-b", b, "-t", "opts"); !strings.Contains(out, "produced 0 record(s)") {
		t.Errorf("empty input: %q", out)
	}
}

func TestProduceFails(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "one"))
	// The partition does not exist.
	code, stdout, stderr := runCLI(t, "a\nb\n", "produce", "-b", b, "-t", "one", "--partition", "3")
	if code != 1 || !strings.Contains(stderr, "2 of 2 record(s) failed") || !strings.Contains(stdout, "produced 0 record(s)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConsumeFollow(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(2, "live"))
	mustRun(t, "old\n", "produce", "-b", b, "-t", "live")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", b, "-t", "live", "--from", "end", "-f", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	// The consumer starts at the end it saw; keep producing until it is
	// running and has printed the new records.
	waitFor(t, "followed records", func() bool {
		mustRun(t, "new\n", "produce", "-b", b, "-t", "live")
		return strings.Contains(out.String(), "new\n")
	})
	if strings.Contains(out.String(), "old") {
		t.Errorf("--from end printed an old record: %q", out.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("interrupted follow exited %d: %s", code, errOut.String())
	}

	// With -n, follow stops after n records.
	go func() {
		done <- run(t.Context(), []string{"consume", "-b", b, "-t", "live", "-f", "-n", "3", "--from", "end", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	for {
		mustRun(t, "x\ny\n", "produce", "-b", b, "-t", "live")
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("follow -n exited %d: %s", code, errOut.String())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestProduceInterrupted(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "t"))
	// stdin that never ends: cancellation must still stop the command.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"produce", "-b", b, "-t", "t"}, pr, &out, &errOut) }()
	if _, err := pw.WriteString("one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "records acknowledged", func() bool {
		return strings.Contains(mustRun(t, "", "topic", "describe", "t", "-b", b), " 2 ")
	})
	cancel()
	if code := <-done; code != 1 || !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	pw.Close() // ends the reader goroutine blocked on the pipe
}

func TestPerf(t *testing.T) {
	t.Parallel()
	b := newCluster(t)

	var s perfSummary
	decode := func(out string) {
		t.Helper()
		s = perfSummary{}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("summary %q: %v", out, err)
		}
	}
	decode(mustRun(t, "", "perf", "produce", "-b", b, "-t", "perf", "--records", "3000", "--record-size", "64",
		"--partitions", "3", "--producers", "2", "--json"))
	if s.Command != "produce" || s.Records != 3000 || s.Bytes != 3000*64 || s.Errors != 0 || s.Partitions != 3 ||
		s.ProduceLatency == nil || s.ProduceLatency.Count != 3000 || s.RecordsPerSec <= 0 {
		t.Errorf("produce summary %+v", s)
	}
	// kfake runs in this process, which the /proc lookup must find.
	if !slices.Equal(s.BrokerPIDs, []int{os.Getpid()}) || s.BrokerCPUSeconds == nil {
		t.Errorf("broker CPU: pids %v, unavailable %q", s.BrokerPIDs, s.BrokerCPUUnavailable)
	}

	decode(mustRun(t, "", "perf", "produce", "-b", b, "-t", "perf", "--records", "500", "--compression", "zstd",
		"--acks", "1", "--rate", "20000", "--linger", "1ms", "--broker-pid", "-1", "--json"))
	if s.Records != 500 || s.Compression != "zstd" || s.BrokerCPUSeconds != nil {
		t.Errorf("compressed produce summary %+v", s)
	}

	decode(mustRun(t, "", "perf", "produce", "-b", b, "-t", "perf-txn", "--partitions", "2", "--records", "450",
		"--acks", "all", "--transaction-records", "100", "--broker-pid", "-1", "--json"))
	if s.Records != 450 || s.Transactions != 5 || s.Errors != 0 {
		t.Errorf("transactional produce summary %+v", s)
	}
	if code, _, stderr := runCLI(t, "", "perf", "produce", "-b", b, "-t", "perf-txn", "--records", "1", "--acks", "1", "--transaction-records", "1"); code != 2 || !strings.Contains(stderr, "--transaction-records needs --acks all") {
		t.Errorf("--transaction-records with --acks 1: exit %d, %q", code, stderr)
	}

	decode(mustRun(t, "", "perf", "consume", "-b", b, "-t", "perf", "--json"))
	if s.Command != "consume" || s.Records != 3500 || s.Bytes != 3000*64+500*100 {
		t.Errorf("consume summary %+v", s)
	}
	decode(mustRun(t, "", "perf", "consume", "-b", b, "-t", "perf", "--records", "100", "--fetch-max-bytes", "65536", "--json"))
	if s.Records != 100 {
		t.Errorf("consume --records 100 summary %+v", s)
	}
	mustFail(t, "no records arrived", "perf", "consume", "-b", b, "-t", "perf", "--records", "100000", "--timeout", "200ms")

	decode(mustRun(t, "", "perf", "e2e", "-b", b, "-t", "e2e", "--partitions", "2", "--rate", "2000",
		"--duration", "300ms", "--warmup", "100ms", "--record-size", "32", "--json"))
	if s.Command != "e2e" || s.Records < 300 || s.Errors != 0 || s.E2ELatency == nil || s.ProduceLatency == nil ||
		s.E2ELatency.Count != uint64(s.Records) {
		t.Errorf("e2e summary %+v", s)
	}

	// The text summary.
	out := mustRun(t, "", "perf", "produce", "-b", b, "-t", "perf", "--records", "10")
	for _, want := range []string{"perf produce perf: 10 records in", "records/s", "produce latency ms: p50", "broker CPU: "} {
		if !strings.Contains(out, want) {
			t.Errorf("text summary lacks %q:\n%s", want, out)
		}
	}
	mustFail(t, "pass --partitions to create it", "perf", "produce", "-b", b, "-t", "missing", "--records", "1")
}

func TestProgressLine(t *testing.T) {
	var c perfCounters
	var h latencyHistogram
	var out syncBuffer
	c.records.Store(1000)
	c.bytes.Store(1 << 20)
	h.record(time.Millisecond)
	p := startProgress(&out, "perf test", time.Millisecond, &c, &h)
	waitFor(t, "a progress line", func() bool { return strings.Contains(out.String(), "\n") })
	p.Stop()
	l := lines(out.String())[0]
	for _, want := range []string{"perf test:", "1000 records", "records/s", "MB/s", "p99 1.0"} {
		if !strings.Contains(l, want) {
			t.Errorf("progress line %q lacks %q", l, want)
		}
	}
}

// TestConsumeGroup consumes in three runs of one group, each stopping after
// -n records: together they print every record exactly once, and the
// group's committed offsets cover what was printed.
func TestConsumeGroup(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(3, "grouped"))
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "v-%d\n", i)
	}
	mustRun(t, in.String(), "produce", "-b", b, "-t", "grouped")
	seen := map[string]bool{}
	for run, n := range []int{300, 300, 400} {
		got := lines(mustRun(t, "", "consume", "-b", b, "-t", "grouped", "--group", "g", "-n", strconv.Itoa(n)))
		if len(got) != n {
			t.Fatalf("run %d: %d records, want %d", run, len(got), n)
		}
		for _, v := range got {
			if seen[v] {
				t.Fatalf("run %d: %s printed again", run, v)
			}
			seen[v] = true
		}
	}
	if len(seen) != 1000 {
		t.Fatalf("%d distinct records", len(seen))
	}
	for _, c := range []struct{ want, flag, value string }{
		{"--partition cannot be used with --group", "--partition", "0"},
		{"with --group, --from must be", "--from", "5"},
	} {
		code, _, stderr := runCLI(t, "", "consume", "-b", b, "-t", "grouped", "--group", "g", c.flag, c.value)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s %s with --group: exit %d, stderr %q; want a usage error", c.flag, c.value, code, stderr)
		}
	}
}

// refusingCluster starts a kfake cluster with topic "full" that refuses
// every produce with a retriable error, as a broker with a full disk does.
func refusingCluster(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "full"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.KafkaStorageError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return c.ListenAddrs()[0]
}

// TestProduceRefusedTimesOut: when the cluster refuses every produce with
// an error the client retries (a full disk), produce and perf produce say
// why while they retry, and fail at --timeout naming it, instead of
// retrying silently (perf produce had no --timeout).
func TestProduceRefusedTimesOut(t *testing.T) {
	t.Parallel()
	b := refusingCluster(t)
	for _, tc := range []struct {
		stdin   string
		args    []string
		wantErr string
	}{
		{"a\nb\n", []string{"produce", "-t", "full", "--timeout", "1s"}, "2 of 2 record(s) failed"},
		{"", []string{"perf", "produce", "-t", "full", "--records", "20", "--acks", "1", "--timeout", "1s", "--broker-pid", "-1"}, "20 record(s) failed"},
	} {
		start := time.Now()
		code, _, stderr := runCLI(t, tc.stdin, append(tc.args, "-b", b)...)
		for _, want := range []string{
			"gregor: the cluster refused records for partition 0: KAFKA_STORAGE_ERROR: Disk error when trying to access log file on the disk; retrying\n",
			tc.wantErr + "; first error: records have timed out before they were able to be produced (the cluster's last answer: KAFKA_STORAGE_ERROR",
		} {
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", tc.args[:2], code, stderr, want)
			}
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("%s took %v to give up with --timeout 1s", tc.args[:2], took)
		}
	}
}
