package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeleteTopicOffsetsSurviveKill9: a group's committed offsets for a
// deleted topic are gone once DeleteTopics answers, and stay gone when the
// broker is killed with SIGKILL right after: the recreated topic is read
// from its start (the consumer's reset policy), not from the old offset.
// The tombstones themselves must survive; the load-time clean-up of
// offsets of missing partitions (a fallback for a crash before they were
// written) must find nothing to do.
func TestDeleteTopicOffsetsSurviveKill9(t *testing.T) {
	t.Parallel()
	const topic, group = "reuse", "g-reuse"
	b := StartBroker(t, WithSet(groupBrokerSets...))
	values := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + "-" + strconv.Itoa(i)
		}
		return out
	}
	consume := func(want []string) {
		t.Helper()
		cl := rawClient(t, b.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(groupSession), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.FetchMaxWait(100*time.Millisecond))
		defer cl.Close()
		ctx := testCtx(t, 30*time.Second)
		var got []string
		for len(got) < len(want) {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d records: %v", len(got), len(want), got)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("consumed %v, want %v", got, want)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}

	admin := b.Client()
	createTopic(t, admin, topic, 1, nil)
	produceSync(t, manualClient(t, b.Addr), topic, 0, values("old", 100)...)
	consume(values("old", 100))
	if c := committedOffsets(t, admin, group, topic); c[0] != 100 {
		t.Fatalf("committed %v before the delete, want 100", c)
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(requestTimeout / time.Millisecond)
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.TopicNames = []string{topic}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	resp, err := req.RequestWith(ctx, admin)
	cancel()
	if err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	b.Kill9()
	b.Start()

	admin = b.Client()
	eventually(t, 10*time.Second, "offsets partitions loaded, no offsets for the deleted topic", func() error {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		resp, err := req.RequestWith(ctx, admin)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		if len(resp.Topics) != 0 {
			t.Fatalf("offsets after the delete and a kill -9: %+v", resp.Topics)
		}
		return nil
	})
	if strings.Contains(b.Logs(), "deleted offsets of partitions that no longer exist") {
		t.Fatal("the offsets came back after the kill -9 (the load-time clean-up had to delete them)")
	}

	createTopic(t, admin, topic, 1, nil)
	produceSync(t, manualClient(t, b.Addr), topic, 0, values("new", 150)...)
	consume(values("new", 150))
	if c := committedOffsets(t, admin, group, topic); c[0] != 150 {
		t.Fatalf("committed %v after the re-consume, want 150", c)
	}
}
