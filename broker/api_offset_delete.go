package broker

// OffsetDelete (key 47), version 0.
//
// Deletes a group's committed offsets for some partitions (tombstones in
// __consumer_offsets). A consumer group with members keeps the offsets of
// topics its members subscribe to: those partitions get
// GROUP_SUBSCRIBED_TO_TOPIC; a non-empty group of another protocol type
// gets NON_EMPTY_GROUP. Unknown topics or partitions get
// UNKNOWN_TOPIC_OR_PARTITION; an unknown group GROUP_ID_NOT_FOUND, an
// empty group id INVALID_GROUP_ID; NOT_COORDINATOR and
// COORDINATOR_LOAD_IN_PROGRESS while the group's offsets partition is
// elsewhere or loading.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.OffsetDelete, 0, 0, (*Broker).handleOffsetDelete)
}

func (b *Broker) handleOffsetDelete(_ wire.RequestHeader, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	type slot struct{ topic, partition int }
	var parts []group.TopicPartition
	var index []slot
	for ti, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		t, known := b.store.Topic(rt.Topic)
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			if !known || rp.Partition < 0 || rp.Partition >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				parts = append(parts, group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
				index = append(index, slot{ti, pi})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	errs, err := b.coord.DeleteOffsets(req.Group, parts)
	if err != nil {
		resp.ErrorCode = groupErr(err)
		resp.Topics = nil
		b.metrics.countError("OffsetDelete", resp.ErrorCode)
		return resp
	}
	for i, s := range index {
		resp.Topics[s.topic].Partitions[s.partition].ErrorCode = groupErr(errs[i])
	}
	return resp
}
