package broker

// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// For each partition, returns the largest leader epoch at or below the
// requested one and the offset where it ended (the start of the next epoch,
// or the log end offset for the current epoch), from the partition's
// leader-epoch cache. Clients use it after a leader change to detect log
// truncation; followers will use it to truncate. CurrentLeaderEpoch (v2+)
// is checked as for Fetch.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.OffsetForLeaderEpoch, 0, 4, (*Broker).handleOffsetForLeaderEpoch)
}

func (b *Broker) handleOffsetForLeaderEpoch(_ wire.RequestHeader, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch = -1
			sp.EndOffset = -1
			l, code := b.partitionLog(rt.Topic, rp.Partition)
			if code != 0 {
				sp.ErrorCode = code
				b.metrics.countError("OffsetForLeaderEpoch", code)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if ps, ok := b.store.Partition(rt.Topic, rp.Partition); ok && rp.CurrentLeaderEpoch >= 0 {
				if rp.CurrentLeaderEpoch < ps.LeaderEpoch {
					sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				} else if rp.CurrentLeaderEpoch > ps.LeaderEpoch {
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				}
			}
			if sp.ErrorCode == 0 {
				sp.LeaderEpoch, sp.EndOffset = l.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			b.metrics.countError("OffsetForLeaderEpoch", sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
