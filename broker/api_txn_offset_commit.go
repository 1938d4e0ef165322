package broker

// TxnOffsetCommit (key 28), versions 0-3.
//
// Commits a group's offsets inside a producer's transaction: they are held
// by the transaction and applied to the group only when it commits (an
// abort drops them). The transaction must have added the group with
// AddOffsetsToTxn (INVALID_TXN_STATE otherwise). v3 names the member and
// generation, checked as OffsetCommit checks them (ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS).
// Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION and
// OFFSET_METADATA_TOO_LARGE; the others apply to every partition.
// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2. v4+ is not offered.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.TxnOffsetCommit, 0, 3, (*Broker).handleTxnOffsetCommit)
}

func (b *Broker) handleTxnOffsetCommit(hdr wire.RequestHeader, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	maxMeta := int(min(b.cfg.prop("offset.metadata.max.bytes"), 1<<31-1))
	var offsets []txn.Offset
	type slot struct{ topic, partition int }
	var index []slot
	for ti, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		t, known := b.store.Topic(rt.Topic)
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !known || rp.Partition < 0 || rp.Partition >= t.Partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > maxMeta:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				o := txn.Offset{TopicPartition: txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, Offset: rp.Offset, LeaderEpoch: -1}
				if hdr.APIVersion >= 2 {
					o.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				offsets = append(offsets, o)
				index = append(index, slot{ti, pi})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(offsets) > 0 {
		generation, member, instance := int32(-1), "", ""
		if hdr.APIVersion >= 3 {
			generation, member = req.Generation, req.MemberID
			if req.InstanceID != nil {
				instance = *req.InstanceID
			}
		}
		err := b.txns.CommitOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, member, instance, generation, offsets)
		code := fencedCode(errorCode(err), hdr.APIVersion < 2)
		for _, s := range index {
			resp.Topics[s.topic].Partitions[s.partition].ErrorCode = code
		}
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			if sp.ErrorCode != 0 {
				b.metrics.countError("TxnOffsetCommit", sp.ErrorCode)
			}
		}
	}
	return resp
}
