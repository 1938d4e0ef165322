package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runGregor runs the gregor binary with args and stdin and returns stdout;
// it fails the test on a non-zero exit, printing stderr.
func runGregor(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runGregorErr(stdin, args...)
	if err != nil {
		t.Fatalf("gregor %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// runGregorErr runs the gregor binary and returns stdout, stderr and the
// exit error.
func runGregorErr(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gregorBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestCLIRoundTrip drives `gregor topic create/list/describe/delete`,
// `gregor produce` and `gregor consume` against a broker.
func TestCLIRoundTrip(t *testing.T) {
	t.Parallel()
	b := StartBroker(t, WithArgs("--auto-create-topics=false"))
	cl := b.Client()

	runGregor(t, "", "topic", "create", "cli-topic", "-b", b.Addr,
		"--partitions", "3", "--config", "retention.ms=3600000")
	md := metadataFor(t, cl, "cli-topic")
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("after `topic create`: metadata %+v, want cli-topic with 3 partitions", md.Topics)
	}
	if _, _, err := runGregorErr("", "topic", "create", "cli-topic", "-b", b.Addr, "--partitions", "3"); err == nil {
		t.Errorf("creating an existing topic exited 0")
	}

	if out := runGregor(t, "", "topic", "list", "-b", b.Addr); !strings.Contains(out, "cli-topic") {
		t.Fatalf("`topic list` output lacks cli-topic:\n%s", out)
	}
	desc := runGregor(t, "", "topic", "describe", "cli-topic", "-b", b.Addr)
	if !strings.Contains(desc, "cli-topic") || !strings.Contains(desc, "3600000") {
		t.Fatalf("`topic describe` output lacks the name or retention.ms=3600000:\n%s", desc)
	}

	lines := seqValues("cli", 0, 300)
	runGregor(t, strings.Join(lines, "\n")+"\n", "produce", "-b", b.Addr, "-t", "cli-topic")
	out := runGregor(t, "", "consume", "-b", b.Addr, "-t", "cli-topic", "--from", "beginning", "-n", "300")
	got := nonEmptyLines(out)
	if d := diffStrings(sortedCopy(got), sortedCopy(lines)); d != "" {
		t.Fatalf("`gregor consume` output differs from what `gregor produce` read: %s\n%s", d, tail(out, 2000))
	}
	// Also visible to another client.
	if recs := consumeTopic(t, b.Addr, "cli-topic", len(lines), 30*time.Second); len(recs) != len(lines) {
		t.Fatalf("franz-go read %d records produced by the CLI, want %d", len(recs), len(lines))
	}

	runGregor(t, "", "topic", "delete", "cli-topic", "-b", b.Addr)
	if out := runGregor(t, "", "topic", "list", "-b", b.Addr); strings.Contains(out, "cli-topic") {
		t.Fatalf("`topic list` still shows cli-topic after delete:\n%s", out)
	}
}

// TestConsumeStopsAtCompactedTail: a compacted partition whose last
// records were a tombstone, removed after delete.retention.ms, ends with
// offsets that hold no record. `gregor consume` without --follow stops
// there as kcat -e does, printing the live record, directly and as a group
// member; the member commits the end, so the group has no lag left.
func TestConsumeStopsAtCompactedTail(t *testing.T) {
	t.Parallel()
	const topic = "compacted-tail"
	b := StartBroker(t, WithSet(
		"log.cleaner.backoff.ms=50",
		"log.retention.check.interval.ms=100", // rolls the active segment by segment.ms
		"log.segment.delete.delay.ms=0",
	))
	cl := b.Client()
	createTopic(t, cl, topic, 1, map[string]string{
		"cleanup.policy":            "compact",
		"segment.ms":                "300",
		"min.cleanable.dirty.ratio": "0.01",
		"delete.retention.ms":       "0",
	})
	producer := manualClient(t, b.Addr, kgo.ProducerLinger(0))
	ctx := testCtx(t, 60*time.Second)
	for _, r := range []*kgo.Record{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("b"), Value: []byte("1")},
		{Key: []byte("b")}, // the tombstone
	} {
		r.Topic = topic
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	// Wait until offsets 1 and 2 hold no record, the tombstone removed
	// too, while the partition still ends at 3.
	eventually(t, 30*time.Second, "b and its tombstone compacted away", func() error {
		res := rawFetch(t, cl, topic, 0, 0)
		records := int32(0)
		for _, bi := range res.Batches {
			records += bi.Records
		}
		if records != 1 || len(res.Batches) == 0 || res.Batches[len(res.Batches)-1].LastOffset != 2 {
			return fmt.Errorf("log holds batches %+v: %w", res.Batches, errNotYet)
		}
		return nil
	})
	if end, _ := listOffset(t, cl, topic, 0, -1); end != 3 {
		t.Fatalf("end offset %d, want 3", end)
	}
	for _, args := range [][]string{nil, {"--group", "tail-group"}} {
		start := time.Now()
		out := runGregor(t, "", append([]string{"consume", "-b", b.Addr, "-t", topic, "--format", `%o %k=%v\n`}, args...)...)
		if out != "0 a=1\n" {
			t.Errorf("consume %v printed %q, want %q", args, out, "0 a=1\n")
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("consume %v took %v to stop", args, took)
		}
	}
	if got := committedOffsets(t, cl, "tail-group", topic); got[0] != 3 {
		t.Errorf("tail-group committed %v, want offset 3 for partition 0", got)
	}
}

// TestConsumeIsolationLevel: `gregor consume --isolation-level
// read_committed` prints the records of committed transactions (and
// non-transactional ones) and stops at the last stable offset while a
// transaction is open; read_uncommitted prints everything. Both stop by
// themselves (no --follow), direct and as a group member.
func TestConsumeIsolationLevel(t *testing.T) {
	t.Parallel()
	const topic = "cli-isolation"
	b := StartBroker(t)
	cl := b.Client()
	createTopic(t, cl, topic, 1, nil)
	produceSync(t, manualClient(t, b.Addr), topic, 0, "plain")
	tx := manualClient(t, b.Addr, kgo.TransactionalID("cli-isolation-tx"))
	ctx := testCtx(t, 60*time.Second)
	for _, step := range []struct {
		value string
		end   kgo.TransactionEndTry
	}{{"committed", kgo.TryCommit}, {"aborted", kgo.TryAbort}, {"open", false}} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produceSync(t, tx, topic, 0, step.value)
		if step.value == "open" {
			break // left open: it holds the last stable offset
		}
		if err := tx.EndTransaction(ctx, step.end); err != nil {
			t.Fatalf("end %s: %v", step.value, err)
		}
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--isolation-level", "read_committed"}, []string{"plain", "committed"}},
		{[]string{"--isolation-level", "read_committed", "--group", "cli-isolation-g"}, []string{"plain", "committed"}},
		{nil, []string{"plain", "committed", "aborted", "open"}},
	} {
		out := runGregor(t, "", append([]string{"consume", "-b", b.Addr, "-t", topic, "--timeout", "20s"}, c.args...)...)
		if got := nonEmptyLines(out); !slices.Equal(got, c.want) {
			t.Errorf("consume %v: %q, want %q", c.args, got, c.want)
		}
	}
	if _, errOut, err := runGregorErr("", "consume", "-b", b.Addr, "-t", topic, "--isolation-level", "committed"); err == nil || !strings.Contains(errOut, "read_committed") {
		t.Errorf("a bad --isolation-level: %v, %s", err, errOut)
	}
}
