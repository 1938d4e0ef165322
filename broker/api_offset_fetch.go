package broker

// OffsetFetch (key 9), versions 0-8.
//
// Returns a group's committed offsets with their metadata and leader
// epoch (v5+); a partition with none gets offset -1. From v2 a null topic
// list asks for every committed offset of the group; v8 (KIP-709) asks for
// several groups at once. An unknown group has no offsets (no error).
// Group errors (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) are the
// top-level error from v2 and each partition's before. With RequireStable
// (v7+), a partition whose offset an open transaction has committed but
// not yet ended is UNSTABLE_OFFSET_COMMIT (retriable), as in Kafka. v9+ (KIP-848
// member epochs, topic ids) are not offered.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.OffsetFetch, 0, 8, (*Broker).handleOffsetFetch)
}

func (b *Broker) handleOffsetFetch(hdr wire.RequestHeader, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetFetchResponse()
	if hdr.APIVersion >= 8 {
		var seen onceSet
		for _, rg := range req.Groups {
			if rg.Topics == nil && len(req.Groups) > 1 && !seen.first(rg.Group) {
				continue // all of a group's offsets, asked again: answered once (see onceSet)
			}
			var topics []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				topics = make([]kmsg.OffsetFetchRequestTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group = rg.Group
			parts, err := b.fetchGroupOffsets(rg.Group, topics, req.RequireStable)
			if err != nil {
				sg.ErrorCode = groupErr(err)
				b.metrics.countError("OffsetFetch", sg.ErrorCode)
			} else {
				for _, t := range parts {
					st := kmsg.NewOffsetFetchResponseGroupTopic()
					st.Topic = t.Topic
					for _, p := range t.Partitions {
						sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
						sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
						st.Partitions = append(st.Partitions, sp)
					}
					sg.Topics = append(sg.Topics, st)
				}
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}
	topics := req.Topics
	if hdr.APIVersion < 2 && topics == nil {
		topics = []kmsg.OffsetFetchRequestTopic{} // null means "all" only from v2
	}
	parts, err := b.fetchGroupOffsets(req.Group, topics, hdr.APIVersion >= 7 && req.RequireStable)
	if err != nil {
		code := groupErr(err)
		b.metrics.countError("OffsetFetch", code)
		if hdr.APIVersion >= 2 {
			resp.ErrorCode = code
			return resp
		}
		// v0-1 have no top-level error: put it on every partition.
		for _, t := range req.Topics {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetFetchResponseTopicPartition()
				sp.Partition, sp.Offset, sp.ErrorCode = p, -1, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	resp.Topics = parts
	return resp
}

// fetchGroupOffsets answers one group's offset fetch; topics nil means all
// committed offsets. requireStable refuses the offsets an open
// transaction is changing.
func (b *Broker) fetchGroupOffsets(groupID string, topics []kmsg.OffsetFetchRequestTopic, requireStable bool) ([]kmsg.OffsetFetchResponseTopic, error) {
	var want []group.TopicPartition
	if topics != nil {
		want = []group.TopicPartition{}
		for _, t := range topics {
			for _, p := range t.Partitions {
				want = append(want, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	got, err := b.coord.FetchOffsets(groupID, want)
	if err != nil {
		return nil, err
	}
	var out []kmsg.OffsetFetchResponseTopic
	for _, f := range got {
		if len(out) == 0 || out[len(out)-1].Topic != f.Topic {
			st := kmsg.NewOffsetFetchResponseTopic()
			st.Topic = f.Topic
			out = append(out, st)
		}
		sp := kmsg.NewOffsetFetchResponseTopicPartition()
		sp.Partition = f.Partition
		sp.Offset = -1
		sp.Metadata = kmsg.StringPtr("")
		switch {
		case requireStable && b.txns.PendingOffset(groupID, txn.TopicPartition{Topic: f.Topic, Partition: f.Partition}):
			sp.ErrorCode = kerr.UnstableOffsetCommit.Code
			b.metrics.countError("OffsetFetch", sp.ErrorCode)
		case f.Found:
			sp.Offset = f.Offset.Offset
			sp.LeaderEpoch = f.LeaderEpoch
			sp.Metadata = kmsg.StringPtr(f.Metadata)
		}
		st := &out[len(out)-1]
		st.Partitions = append(st.Partitions, sp)
	}
	return out, nil
}
