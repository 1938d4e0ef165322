package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tailCheckAfter is how long a consume without --follow polls without a
// record before it looks whether what is left of its partitions holds any
// record at all (see emptyUpTo).
var tailCheckAfter = time.Second

// emptyUpTo reports whether partition of topic holds no record (control
// records included) at offsets from to end-1. Compaction leaves such
// ranges: a tombstone removed after delete.retention.ms, say, leaves an
// empty batch or a gap at the end of a partition. The client's fetch
// position steps over them without returning anything, so a consume that
// waited for a record at end-1 would wait forever (kcat and the Java
// consumer go by their fetch position instead). It reads the range with
// fetches of its own, from the partition's leader, and also returns the
// leader's epoch (for a commit at end).
func emptyUpTo(ctx context.Context, cl *kgo.Client, topic string, partition int32, from, end int64) (empty bool, epoch int32, err error) {
	t, err := topicMetadata(ctx, cl, topic)
	if err != nil {
		return false, 0, err
	}
	leader := int32(-1)
	for _, p := range t.Partitions {
		if p.Partition == partition {
			leader, epoch = p.Leader, p.LeaderEpoch
		}
	}
	if leader < 0 {
		return false, 0, fmt.Errorf("%s[%d] has no leader", topic, partition)
	}
	for pos := from; pos < end; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1 // no fetch session
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, t.TopicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, pos, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
		if err != nil {
			return false, 0, err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return false, 0, err
		}
		var got *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if p := &resp.Topics[i].Partitions[j]; p.Partition == partition {
					got = p
				}
			}
		}
		if got == nil {
			return false, 0, fmt.Errorf("fetch %s[%d]: not in the answer", topic, partition)
		}
		if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
			return false, 0, fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			KeepControlRecords: true,
			Offset:             pos,
			Topic:              topic,
			Partition:          partition,
		}, got, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return false, 0, fp.Err
		}
		for _, r := range fp.Records {
			if r.Offset >= pos && r.Offset < end {
				return false, 0, nil
			}
		}
		if next <= pos {
			return false, 0, nil // nothing read: not known to be empty
		}
		pos = next
	}
	return true, epoch, nil
}
