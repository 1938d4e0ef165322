package broker

// OffsetCommit (key 8), versions 0-8.
//
// Commits offsets for a group. The offsets of one request are written to
// the group's partition of __consumer_offsets as one record batch before
// the answer, so they survive a restart and are all-or-nothing. A member
// commits in its current generation (ILLEGAL_GENERATION otherwise),
// including while a rebalance waits for it to rejoin, but not between join
// and sync (REBALANCE_IN_PROGRESS); a commit also counts as a heartbeat. A
// commit with generation -1 (always at v0) comes from outside group
// management (a tool, or a consumer assigning partitions itself) and is
// allowed only while the group has no members (UNKNOWN_MEMBER_ID
// otherwise); it creates the group if needed. Committed offsets keep their
// metadata string and leader epoch (v6+). Retention: v1's per-partition
// timestamp is the commit time; v2-v4's retention time sets an explicit
// expiry; otherwise offsets expire offsets.retention.minutes after their
// group became empty. Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION,
// OFFSET_METADATA_TOO_LARGE (offset.metadata.max.bytes); whole-request
// errors (on every partition): the group errors above, FENCED_INSTANCE_ID,
// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, and
// INVALID_COMMIT_OFFSET_SIZE when the batch is too large to write. v9+
// (KIP-848 member epochs, topic ids) are not offered.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.OffsetCommit, 0, 8, (*Broker).handleOffsetCommit)
}

func (b *Broker) handleOffsetCommit(hdr wire.RequestHeader, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetCommitResponse()
	now := time.Now()
	cr := group.CommitRequest{MemberID: req.MemberID, Generation: req.Generation}
	if hdr.APIVersion == 0 {
		cr.Generation = -1
	}
	if req.InstanceID != nil {
		cr.InstanceID = *req.InstanceID
	}
	var expire time.Time
	if hdr.APIVersion >= 2 && hdr.APIVersion <= 4 && req.RetentionTimeMillis >= 0 {
		expire = time.UnixMilli(now.UnixMilli() + req.RetentionTimeMillis)
	}
	// index maps the offsets passed to the coordinator back to their
	// place in the response.
	type slot struct{ topic, partition int }
	var index []slot
	for ti, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		t, known := b.store.Topic(rt.Topic)
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			if !known || rp.Partition < 0 || rp.Partition >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				co := group.CommitOffset{
					TopicPartition: group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition},
					Offset:         rp.Offset,
					LeaderEpoch:    -1,
					ExpireTime:     expire,
				}
				if hdr.APIVersion >= 6 {
					co.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					co.Metadata = *rp.Metadata
				}
				if hdr.APIVersion == 1 && rp.Timestamp >= 0 {
					co.CommitTime = time.UnixMilli(rp.Timestamp)
				}
				cr.Offsets = append(cr.Offsets, co)
				index = append(index, slot{ti, pi})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(cr.Offsets) > 0 {
		errs, err := b.coord.CommitOffsets(req.Group, cr)
		for i, s := range index {
			e := err
			if e == nil {
				e = errs[i]
			}
			resp.Topics[s.topic].Partitions[s.partition].ErrorCode = groupErr(e)
		}
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			if sp.ErrorCode != 0 {
				b.metrics.countError("OffsetCommit", sp.ErrorCode)
			}
		}
	}
	return resp
}
