package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumeGroupStopsAtEnd checks that a group member without --follow
// stops at the end of its partitions, as kcat -e does, committing what it
// printed, and with --follow keeps waiting.
func TestConsumeGroupStopsAtEnd(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(3, "audit"), kfake.SeedTopics(2, "empty"))
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "r%d\n", i)
	}
	mustRun(t, in.String(), "produce", "-b", b, "-t", "audit")

	groupRun := func(args ...string) []string {
		t.Helper()
		start := time.Now()
		got := lines(mustRun(t, "", append([]string{"consume", "-b", b, "--group", "g"}, args...)...))
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("%q took %v", args, took)
		}
		slices.Sort(got)
		return got
	}
	// Fewer records than -n: all of them, then it stops.
	if got := groupRun("-t", "audit", "-n", "100"); len(got) != 10 {
		t.Errorf("first run printed %q", got)
	}
	// Everything is committed: nothing left.
	if got := groupRun("-t", "audit"); len(got) != 0 {
		t.Errorf("second run printed %q", got)
	}
	mustRun(t, "new1\nnew2\n", "produce", "-b", b, "-t", "audit")
	if got := groupRun("-t", "audit"); !slices.Equal(got, []string{"new1", "new2"}) {
		t.Errorf("third run printed %q", got)
	}
	// A new group starting at the end, and an empty topic.
	if got := lines(mustRun(t, "", "consume", "-b", b, "--group", "g2", "-t", "audit", "--from", "end")); len(got) != 0 {
		t.Errorf("--from end printed %q", got)
	}
	if got := groupRun("-t", "empty"); len(got) != 0 {
		t.Errorf("empty topic printed %q", got)
	}
	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "consume", "-b", b, "--group", "g", "-t", "nope")

	// With --follow it keeps waiting for records.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", b, "--group", "g3", "-t", "audit", "-f", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the old records", func() bool { return len(lines(out.String())) == 12 })
	select {
	case code := <-done:
		t.Fatalf("--follow exited %d at the end: %s", code, errOut.String())
	case <-time.After(300 * time.Millisecond):
	}
	mustRun(t, "later\n", "produce", "-b", b, "-t", "audit")
	waitFor(t, "a new record", func() bool { return strings.Contains(out.String(), "later\n") })

	// A second member of g3, without --follow, stops at the end whatever
	// part of the three partitions the group gives it.
	start := time.Now()
	if code, _, stderr := runCLI(t, "", "consume", "-b", b, "--group", "g3", "-t", "audit", "--timeout", "20s"); code != 0 || time.Since(start) > 15*time.Second {
		t.Errorf("second member: exit %d after %v: %s", code, time.Since(start), stderr)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("interrupted --follow exited %d: %s", code, errOut.String())
	}
}

// TestConsumeGroupNothingAssigned checks that a member the group assigns
// no partition stops at once without --follow.
func TestConsumeGroupNothingAssigned(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "solo"))
	mustRun(t, "a\n", "produce", "-b", b, "-t", "solo")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", b, "--group", "g", "-t", "solo", "-f", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the first member's record", func() bool { return out.String() == "a\n" })
	// The first member keeps the only partition (cooperative-sticky).
	start := time.Now()
	code, stdout, stderr := runCLI(t, "", "consume", "-b", b, "--group", "g", "-t", "solo", "--timeout", "20s")
	if code != 0 || stdout != "" || time.Since(start) > 15*time.Second {
		t.Errorf("second member: exit %d after %v, stdout %q, stderr %q", code, time.Since(start), stdout, stderr)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("interrupted --follow exited %d: %s", code, errOut.String())
	}
}

func TestGroupEnd(t *testing.T) {
	plan := &consumePlan{
		topic: "t",
		start: map[int32]int64{0: 0, 1: 5, 2: 9},
		end:   map[int32]int64{0: 10, 1: 5, 2: 20},
	}
	reset := kgo.NewOffset().AfterMilli(1700000000000)
	g := newGroupEnd(plan, reset)
	if g.done() {
		t.Fatal("done before joining")
	}
	woken := 0
	g.setWake(func() { woken++ })

	// Assigned, the partitions are behind until their starts are known.
	g.assigned(t.Context(), nil, map[string][]int32{"t": {0, 1, 2}})
	if g.done() || woken != 0 {
		t.Fatal("done before the starts are known")
	}
	// Partition 0 has a committed offset, 1 and 2 none: they start where
	// the plan says.
	got, err := g.adjust(t.Context(), map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().At(7), 1: reset, 2: reset}})
	if err != nil {
		t.Fatal(err)
	}
	if o := got["t"][2].EpochOffset().Offset; o != 9 {
		t.Errorf("partition 2 starts at %d, want the planned 9", o)
	}
	if o := got["t"][0].EpochOffset().Offset; o != 7 {
		t.Errorf("partition 0 starts at %d, want its committed 7", o)
	}
	g.advance(0, 10) // partition 0 at its end; 1 started there
	if g.done() || woken != 0 {
		t.Fatal("done while partition 2 is behind")
	}
	g.advance(3, 100) // not assigned: ignored
	// Partition 2 goes to another member.
	g.lost(t.Context(), nil, map[string][]int32{"t": {2}})
	if !g.done() || woken != 1 {
		t.Fatalf("done %v, woken %d after the last behind partition was lost", g.done(), woken)
	}
	// A later poll is woken at once.
	g.setWake(func() { woken++ })
	if woken != 2 {
		t.Error("setWake when done did not wake")
	}
	// A member the group assigned nothing is done at once.
	g = newGroupEnd(plan, reset)
	g.assigned(t.Context(), nil, map[string][]int32{})
	if !g.done() {
		t.Error("a member without partitions is not done")
	}

	var nilEnd *groupEnd
	if nilEnd.done() {
		t.Error("nil groupEnd (--follow) is done")
	}
	nilEnd.advance(0, 1)
	nilEnd.setWake(func() {})
}
