package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetForEpoch asks OffsetForLeaderEpoch (v4, current epoch 0) for
// epoch 0 of a partition.
func offsetForEpoch(t *testing.T, cl *kgo.Client, topic string, partition int32) (int32, int64) {
	t.Helper()
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = partition, 0, 0
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic, rt.Partitions = topic, []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID, req.Topics = -1, []kmsg.OffsetForLeaderEpochRequestTopic{rt}
	p := request[*kmsg.OffsetForLeaderEpochResponse](t, cl, req).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("%s-%d: %v", topic, partition, kerr.ErrorForCode(p.ErrorCode))
	}
	return p.LeaderEpoch, p.EndOffset
}

// TestOffsetForLeaderEpochWithoutRecords: the current leader epoch is
// recorded at the log end when the broker leads a partition, as Kafka
// does on becoming leader, so OffsetForLeaderEpoch answers (epoch, log end)
// for a partition nothing was written to (new, or added by
// CreatePartitions) and for one emptied by DeleteRecords, across a
// restart (whose recovery drops the epoch entry starting at the end). A
// consumer validating its position would otherwise see -1/-1 and report
// truncation.
func TestOffsetForLeaderEpochWithoutRecords(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ole", 1, nil)
	createTopic(t, cl, "emptied", 1, nil)
	produceN(t, cl, "emptied", 0, 8)
	if p := deleteRecords(t, cl, "emptied", 0, -1); p.ErrorCode != 0 || p.LowWatermark != 8 {
		t.Fatalf("delete records: %d %v", p.LowWatermark, kerr.ErrorForCode(p.ErrorCode))
	}
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "ole", 2
	cp.Topics = append(cp.Topics, cpt)
	if r := request[*kmsg.CreatePartitionsResponse](t, cl, cp); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v", kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			topic     string
			partition int32
			end       int64
		}{{"ole", 0, 0}, {"ole", 1, 0}, {"emptied", 0, 8}} {
			if epoch, end := offsetForEpoch(t, cl, c.topic, c.partition); epoch != 0 || end != c.end {
				t.Errorf("%s: %s-%d: epoch %d end %d, want 0 %d", when, c.topic, c.partition, epoch, end, c.end)
			}
		}
	}
	check("before restart")
	cl.Close()
	stopBroker(t, b)
	b = startBroker(t, nil, dir, nil)
	cl = newClient(t, b)
	check("after restart")
}
