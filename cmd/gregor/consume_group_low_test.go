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
