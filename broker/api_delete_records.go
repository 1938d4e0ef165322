package broker

// DeleteRecords (key 21), versions 0-2.
//
// Moves a partition's log start offset forward to Offset (-1 means the
// high watermark); segments wholly below it are deleted and fetches below
// it get OFFSET_OUT_OF_RANGE. An offset above the high watermark is
// OFFSET_OUT_OF_RANGE. The new log start offset is durable before the
// response. The response carries the partition's new low watermark.
// Internal topics (__consumer_offsets) are refused with
// INVALID_TOPIC_EXCEPTION, as in Kafka: deleting their records would lose
// committed offsets and groups at the next load. So are topics whose
// cleanup.policy lacks delete (compact only), with POLICY_VIOLATION, as in
// Kafka: a compacted changelog keeps the latest record of every key.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DeleteRecords, 0, 2, (*Broker).handleDeleteRecords)
}

func (b *Broker) handleDeleteRecords(_ wire.RequestHeader, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			l, code := b.partitionLog(rt.Topic, rp.Partition)
			switch {
			case code != 0:
				sp.ErrorCode = code
			case isInternalTopic(rt.Topic):
				sp.ErrorCode = kerr.InvalidTopicException.Code
			case !l.Config().CleanupPolicy.Delete():
				// A compacted changelog keeps every key's latest record.
				sp.ErrorCode = kerr.PolicyViolation.Code
			case rp.Offset < -1:
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
			default:
				off := rp.Offset
				if off == -1 {
					off = l.HighWatermark()
				}
				low, err := l.DeleteRecordsBefore(off)
				if err != nil {
					sp.ErrorCode = errorCode(err)
				} else {
					sp.LowWatermark = low
					b.waiters.notify(rt.Topic, rp.Partition) // parked fetches below the new start must hear of it
				}
			}
			b.metrics.countError("DeleteRecords", sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
