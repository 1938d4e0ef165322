package broker

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeleteTopicRemovesCommittedOffsets is the probe's repro: a group
// commits offset 100 on a topic, the topic is deleted and created again
// with 150 records, and the group must read all 150 (its reset policy,
// earliest) instead of resuming at the old offset 100. With a restart
// between the delete and the re-consume, the removal must come back from
// the offsets topic.
func TestDeleteTopicRemovesCommittedOffsets(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			testDeleteTopicRemovesCommittedOffsets(t, restart)
		})
	}
}

func testDeleteTopicRemovesCommittedOffsets(t *testing.T, restart bool) {
	const topic, grp = "reuse", "g-reuse"
	dir := t.TempDir()
	b := groupBroker(t, dir)
	admin := newClient(t, b)
	createTopic(t, admin, topic, 1, nil)
	produceValues(t, b, topic, "old", 100)
	checkValues(t, consumeAsGroup(t, b, grp, topic, 100), "old", 100)
	if o := fetchOffset(t, admin, grp, topic, 0); o.Offset != 100 {
		t.Fatalf("committed %d before the delete, want 100", o.Offset)
	}

	dt := kmsg.NewPtrDeleteTopicsRequest()
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	dt.Topics = append(dt.Topics, rt)
	dt.TopicNames = []string{topic}
	dresp := request[*kmsg.DeleteTopicsResponse](t, admin, dt)
	wantCode(t, "delete topic", dresp.Topics[0].ErrorCode, nil)

	// By the time DeleteTopics answers, the offset is gone, and the group,
	// left empty with nothing, with it.
	checkGone := func(when string) {
		t.Helper()
		if o := fetchOffsetLoaded(t, admin, grp, topic, 0); o.Offset != -1 {
			t.Fatalf("%s: %s still has offset %d for %s-0", when, grp, o.Offset, topic)
		}
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups = []string{grp}
		if d := request[*kmsg.DescribeGroupsResponse](t, admin, dg).Groups[0]; d.State != "Dead" {
			t.Fatalf("%s: group %s is %s, want Dead", when, grp, d.State)
		}
	}
	checkGone("after the delete")
	// A commit to the deleted topic is refused, as Kafka does.
	cr := request[*kmsg.OffsetCommitResponse](t, admin, commitReq(grp, "", -1, topic, 0, 100))
	wantCode(t, "commit to the deleted topic", cr.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)

	if restart {
		admin.Close()
		stopBroker(t, b)
		b = groupBroker(t, dir)
		admin = newClient(t, b)
		checkGone("after the restart")
	}

	createTopic(t, admin, topic, 1, nil)
	produceValues(t, b, topic, "new", 150)
	checkValues(t, consumeAsGroup(t, b, grp, topic, 150), "new", 150)
	if o := fetchOffset(t, admin, grp, topic, 0); o.Offset != 150 {
		t.Fatalf("committed %d after the re-consume, want 150", o.Offset)
	}
}

// produceValues produces prefix-0 ... prefix-(n-1) to partition 0 of
// topic, in order, with a client of its own (so no metadata cached from
// before a delete).
func produceValues(t *testing.T, b *Broker, topic, prefix string, n int) {
	t.Helper()
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: []byte(prefix + "-" + strconv.Itoa(i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// consumeAsGroup consumes topic as a member of group, starting at the
// committed offset or, with none, at the earliest, until it has want
// records (failing after 20 s), then commits and leaves. It returns the
// values read, in order.
func consumeAsGroup(t *testing.T, b *Broker, group, topic string, want int) []string {
	t.Helper()
	cl := newClient(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(2*time.Second), kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("group %s consumed %d records of %s, want %d: %v", group, len(got), topic, want, got)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return got
}

// checkValues fails t unless got is exactly prefix-0 ... prefix-(n-1).
func checkValues(t *testing.T, got []string, prefix string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d: %v", len(got), n, got)
	}
	for i, v := range got {
		if want := prefix + "-" + strconv.Itoa(i); v != want {
			t.Fatalf("record %d is %q, want %q (consumed %v)", i, v, want, got)
		}
	}
}

// fetchOffsetLoaded is fetchOffset, waiting while the group's offsets
// partition is still loading (after a restart).
func fetchOffsetLoaded(t *testing.T, cl *kgo.Client, group, topic string, partition int32) kmsg.OffsetFetchResponseTopicPartition {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic = topic
		rt.Partitions = []int32{partition}
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.OffsetFetchResponse](t, cl, req)
		if resp.ErrorCode == kerr.CoordinatorLoadInProgress.Code && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		wantCode(t, "offset fetch", resp.ErrorCode, nil)
		return resp.Topics[0].Partitions[0]
	}
}
