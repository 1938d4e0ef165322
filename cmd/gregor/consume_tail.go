package main

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tailCheckAfter is how long a consume without --follow polls without a
// record before it looks whether what is left of its partitions holds any
// record at all (see emptyUpTo).
var tailCheckAfter = time.Second

// emptyTails returns, of the partitions of topic in from (each read up
// to that offset), those that hold no record (control records included)
// from there up to their offset in ends, with their leader's epoch (for a
// commit at the end). Compaction leaves such ranges: a tombstone removed
// after delete.retention.ms, say, leaves an empty batch or a gap at the
// end of a partition. The client's fetch position steps over them without
// returning anything, so a consume that waited for a record at end-1
// would wait forever (kcat and the Java consumer go by their fetch
// position instead). It looks the leaders up once and reads each range
// with fetches of its own; a partition it cannot read is left out.
// committed reads as read_committed does: aborted records do not count.
func emptyTails(ctx context.Context, cl *kgo.Client, topic string, from, ends map[int32]int64, committed bool) map[int32]int32 {
	if len(from) == 0 {
		return nil
	}
	t, err := topicMetadata(ctx, cl, topic)
	if err != nil {
		return nil
	}
	empty := map[int32]int32{}
	for _, p := range t.Partitions {
		pos, ok := from[p.Partition]
		if !ok || p.Leader < 0 {
			continue
		}
		if emptyUpTo(ctx, cl.Broker(int(p.Leader)), t, p.Partition, pos, ends[p.Partition], committed) {
			empty[p.Partition] = p.LeaderEpoch
		}
	}
	return empty
}

// emptyUpTo reports whether partition of t holds no record at offsets
// from to end-1, reading them from its leader. An error is "no".
func emptyUpTo(ctx context.Context, leader *kgo.Broker, t *kmsg.MetadataResponseTopic, partition int32, from, end int64, committed bool) bool {
	topic := *t.Topic
	for pos := from; pos < end; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1 // no fetch session
		iso := kgo.ReadUncommitted()
		if committed {
			req.IsolationLevel, iso = 1, kgo.ReadCommitted()
		}
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, t.TopicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, pos, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, leader)
		if err != nil || resp.ErrorCode != 0 {
			return false
		}
		var got *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if p := &resp.Topics[i].Partitions[j]; p.Partition == partition {
					got = p
				}
			}
		}
		if got == nil || got.ErrorCode != 0 {
			return false
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			KeepControlRecords: true,
			IsolationLevel:     iso,
			Offset:             pos,
			Topic:              topic,
			Partition:          partition,
		}, got, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return false
		}
		for _, r := range fp.Records {
			if r.Offset >= pos && r.Offset < end {
				return false
			}
		}
		if next <= pos {
			return false // nothing read: not known to be empty
		}
		pos = next
	}
	return true
}
