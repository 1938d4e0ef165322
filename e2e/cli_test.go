package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
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
