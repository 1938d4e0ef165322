package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumeGroupCommittedBelowLogStart checks that a group member whose
// committed offset was deleted (DeleteRecords, retention) says so and
// starts where --from says, with and without --follow.
func TestConsumeGroupCommittedBelowLogStart(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "low"))
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "r%d\n", i)
	}
	mustRun(t, in.String(), "produce", "-b", b, "-t", "low")
	for _, g := range []string{"g", "gf"} {
		if got := lines(mustRun(t, "", "consume", "-b", b, "--group", g, "-t", "low", "-n", "3")); len(got) != 3 {
			t.Fatalf("group %s first run printed %q", g, got)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "low"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = 7
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("delete records: %v %+v", err, resp)
	}

	const notice = "the group's committed offset 3 in low[0] is below the partition's first offset 7"
	code, stdout, stderr := runCLI(t, "", "consume", "-b", b, "--group", "g", "-t", "low")
	if code != 0 || strings.Join(lines(stdout), ",") != "r7,r8,r9" || !strings.Contains(stderr, notice) {
		t.Errorf("without --follow: exit %d, printed %q, stderr %q", code, lines(stdout), stderr)
	}
	code, stdout, stderr = runCLI(t, "", "consume", "-b", b, "--group", "gf", "-t", "low", "--follow", "-n", "3")
	if code != 0 || strings.Join(lines(stdout), ",") != "r7,r8,r9" || !strings.Contains(stderr, notice) {
		t.Errorf("--follow: exit %d, printed %q, stderr %q", code, lines(stdout), stderr)
	}
	// Committed past the deleted records now: no notice.
	mustRun(t, "r10\n", "produce", "-b", b, "-t", "low")
	code, stdout, stderr = runCLI(t, "", "consume", "-b", b, "--group", "g", "-t", "low")
	if code != 0 || strings.Join(lines(stdout), ",") != "r10" || strings.Contains(stderr, "below") {
		t.Errorf("after: exit %d, printed %q, stderr %q", code, lines(stdout), stderr)
	}
}

// TestConsumeGroupCommitsItsStart: a new group member that starts at the
// end and prints nothing commits that position, as a Kafka consumer
// commits its position, so the next run does not replay the topic from
// --from's default (beginning); with and without --follow.
func TestConsumeGroupCommitsItsStart(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(2, "st"))
	mustRun(t, "a\nb\nc\nd\n", "produce", "-b", b, "-t", "st")
	if got := lines(mustRun(t, "", "consume", "-b", b, "--group", "g", "-t", "st", "--from", "end")); len(got) != 0 {
		t.Fatalf("--from end printed %q", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", b, "--group", "gf", "-t", "st", "--from", "end", "-f", "--fetch-max-wait", "100ms"},
			strings.NewReader(""), &out, &errOut)
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The member commits where it starts as soon as it knows, though no
	// record comes (a cancel before it knows would leave nothing to commit).
	waitFor(t, "the --follow member to commit its start", func() bool {
		got, err := committedOffsets(t.Context(), cl, "gf")
		return err == nil && len(got) == 2 && got[topicPartition{"st", 0}].offset+got[topicPartition{"st", 1}].offset == 4
	})
	cancel()
	if code := <-done; code != 0 || out.String() != "" {
		t.Fatalf("--follow member: exit %d, printed %q, stderr %q", code, out.String(), errOut.String())
	}
	mustRun(t, "e\n", "produce", "-b", b, "-t", "st")
	for _, g := range []string{"g", "gf"} {
		if got := lines(mustRun(t, "", "consume", "-b", b, "--group", g, "-t", "st")); strings.Join(got, ",") != "e" {
			t.Errorf("group %s after starting at the end: printed %q, want only the new record", g, got)
		}
	}
}
