package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestConsumeOptionChecks covers consume's and produce's flag checks
// that need no cluster.
func TestConsumeOptionChecks(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "-t", "x", "--partition", "-5"}, "--partition -5 out of range"},
		{[]string{"consume", "-t", "x", "--partition", "-2"}, "--partition -2 out of range"},
		{[]string{"consume", "-t", "x", "--partition", "4294967296"}, "out of range"},
		{[]string{"consume", "-t", "x", "--from-beginning", "--from", "end"}, "--from-beginning and --from end name different starts"},
		{[]string{"consume", "-t", "x", "-n", "2", "--max-messages", "3"}, "-n and --max-messages are one setting"},
		{[]string{"topic", "list", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"produce", "-t", "x", "-k", `\`}, "lone"},
		{[]string{"produce", "-t", "x", "-k", `\q`}, `unknown escape \q`},
		{[]string{"produce", "-t", "x", "-k", `\n`}, "cannot contain a newline"},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("gregor %q: exit %d, stderr %q; want a usage error with %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestProduceKeySeparatorEscapes(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "tabs"))
	mustRun(t, "k1\tv1\nnokey\nk3\tv\t3\n", "produce", "-b", b, "-t", "tabs", "-k", `\t`)
	mustRun(t, `k4\v4`+"\n", "produce", "-b", b, "-t", "tabs", "-k", `\\`)
	got := lines(mustRun(t, "", "consume", "-b", b, "-t", "tabs", "-Z", "--format", `%k|%v\n`))
	want := []string{"k1|v1", "NULL|nokey", "k3|v\t3", "k4|v4"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestConsumeConsoleConsumerFlags: kafka-console-consumer's names work,
// --from-beginning (the default start) and --max-messages (-n).
func TestConsumeConsoleConsumerFlags(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "cc"))
	mustRun(t, "a\nb\nc\n", "produce", "-b", b, "-t", "cc")
	got := lines(mustRun(t, "", "consume", "-b", b, "-t", "cc", "--from-beginning", "--max-messages", "2"))
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestConsumeFromOutOfRange checks that an offset outside a partition is
// reported on stderr with where consuming starts instead.
func TestConsumeFromOutOfRange(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(2, "short"))
	mustRun(t, "a\nb\nc\n", "produce", "-b", b, "-t", "short", "--partition", "0")

	code, stdout, stderr := runCLI(t, "", "consume", "-b", b, "-t", "short", "--from", "100")
	want := []string{
		"gregor consume: offset 100 is out of range in short[0], which holds offsets 0 to 2; starting at 3, its end",
		"gregor consume: offset 100 is out of range in short[1], which is empty (its next offset is 0); starting at 0, its end",
	}
	if code != 0 || stdout != "" || !slices.Equal(lines(stderr), want) {
		t.Errorf("exit %d, stdout %q, stderr\n%s\nwant\n%s", code, stdout, stderr, strings.Join(want, "\n"))
	}
	// In range: no notice.
	code, stdout, stderr = runCLI(t, "", "consume", "-b", b, "-t", "short", "--partition", "0", "--from", "1")
	if code != 0 || stdout != "b\nc\n" || stderr != "" {
		t.Errorf("in range: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// With --follow the notice says where it resumes, and it does.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", b, "-t", "short", "--partition", "0", "--from", "100", "-f", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the notice", func() bool { return strings.Contains(errOut.String(), "starting at 3, its end") })
	waitFor(t, "a new record", func() bool {
		mustRun(t, "new\n", "produce", "-b", b, "-t", "short", "--partition", "0")
		return strings.HasPrefix(out.String(), "new\n")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("follow exited %d: %s", code, errOut.String())
	}
}

func TestConsumePlanOutOfRange(t *testing.T) {
	p := &consumePlan{
		topic:    "t",
		earliest: map[int32]int64{0: 10, 1: 0, 2: 5},
		end:      map[int32]int64{0: 20, 1: 50, 2: 5},
	}
	spec, _ := parseStartSpec("3")
	p.start = map[int32]int64{}
	for part := range p.end {
		p.start[part] = spec.resolve(p.earliest[part], p.end[part], -1)
	}
	want := []string{
		"offset 3 is out of range in t[0], which holds offsets 10 to 19; starting at 10, its first record",
		"offset 3 is out of range in t[2], which is empty (its next offset is 5); starting at 5, its end",
	}
	if got := p.outOfRange(spec); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if s, _ := parseStartSpec("-100"); p.outOfRange(s) != nil {
		t.Error("-N is never out of range")
	}
}
