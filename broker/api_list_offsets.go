package broker

// ListOffsets (key 2), versions 0-10.
//
// Timestamp -2 is the log start offset, -1 the high watermark (the last
// stable offset for isolation level read_committed, v2+), -3 (v7) the
// offset and time of the record with the largest timestamp. There is no
// tiered storage: -4 (v8, the earliest local offset) is the log start
// offset, and -5 (v9, KIP-1005, the latest offset in remote storage) is
// -1, as Kafka answers with remote storage off; v10's timeout (for remote
// lookups, KIP-1075) has nothing to bound. Any other
// timestamp returns the first offset whose record timestamp is at or after
// it, or -1 when none is (or, read_committed, when it is not stable yet). v0, which Kafka 4 no longer serves but tools such as Burrow 1.2 still
// send, answers a list of old-style offsets instead: see
// storage.Log.OffsetsBefore. From v1 a partition named twice is
// INVALID_REQUEST in both entries, as in Kafka.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ListOffsets, 0, 10, (*Broker).handleListOffsets)
	markFrameReusable(kmsg.ListOffsets)
}

func (b *Broker) handleListOffsets(_ wire.RequestHeader, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := kmsg.NewPtrListOffsetsResponse()
	dup := repeatedPartitions(req)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset = -1, -1
			if dup[topicPartition{rt.Topic, rp.Partition}] {
				sp.ErrorCode = kerr.InvalidRequest.Code
			} else {
				sp.ErrorCode = b.listOffset(req.Version, req.Version >= 2 && req.IsolationLevel == 1, rt.Topic, &rp, &sp)
			}
			b.metrics.countError("ListOffsets", sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// repeatedPartitions returns the partitions a ListOffsets request (v1+)
// names more than once, which Kafka answers with INVALID_REQUEST in every
// entry; nil when there are none (the usual case, found without a map for
// a request naming one partition).
func repeatedPartitions(req *kmsg.ListOffsetsRequest) map[topicPartition]bool {
	if req.Version == 0 || len(req.Topics) == 0 || len(req.Topics) == 1 && len(req.Topics[0].Partitions) <= 1 {
		return nil
	}
	seen := map[topicPartition]bool{}
	var dup map[topicPartition]bool
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			if seen[tp] {
				if dup == nil {
					dup = map[topicPartition]bool{}
				}
				dup[tp] = true
			}
			seen[tp] = true
		}
	}
	return dup
}

func (b *Broker) listOffset(version int16, committed bool, topic string, rp *kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	l, code := b.partitionLog(topic, rp.Partition)
	if code != 0 {
		return code
	}
	st, _ := b.store.Partition(topic, rp.Partition)
	if rp.CurrentLeaderEpoch >= 0 {
		if rp.CurrentLeaderEpoch < st.LeaderEpoch {
			return kerr.FencedLeaderEpoch.Code
		}
		if rp.CurrentLeaderEpoch > st.LeaderEpoch {
			return kerr.UnknownLeaderEpoch.Code
		}
	}
	sp.LeaderEpoch = st.LeaderEpoch
	if version == 0 {
		if rp.Timestamp < -2 {
			// No segment is older than that: an empty list, as
			// Kafka's legacy lookup answers.
			sp.OldStyleOffsets = []int64{}
			return 0
		}
		offsets, err := l.OffsetsBefore(rp.Timestamp, rp.MaxNumOffsets, time.Now().UnixMilli())
		if err != nil {
			return errorCode(err)
		}
		sp.OldStyleOffsets = offsets
		return 0
	}
	end := l.HighWatermark()
	if committed {
		end = l.LastStableOffset()
	}
	switch rp.Timestamp {
	case -2, -4: // earliest; -4 is the earliest local offset (no tiered storage here)
		sp.Offset = l.LogStartOffset()
	case -1:
		sp.Offset = end
	case -5: // the latest tiered offset: none without tiered storage
		sp.LeaderEpoch = -1
	case -3:
		sp.Offset, sp.Timestamp = l.MaxTimestamp()
		if sp.Offset < 0 || sp.Offset >= end {
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = -1, -1, -1 // none, as Kafka answers
		}
	default:
		// Any other timestamp, negative ones included, is searched for,
		// as Kafka does: the first record at or after it.
		off, ts, err := l.OffsetForTimestamp(rp.Timestamp)
		if err != nil {
			return errorCode(err)
		}
		if off < 0 || off >= end {
			off, ts, sp.LeaderEpoch = -1, -1, -1 // no such record: no epoch either, as Kafka answers
		}
		sp.Offset, sp.Timestamp = off, ts
	}
	return 0
}
