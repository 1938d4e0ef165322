package broker

// FindCoordinator (key 10), versions 0-4.
//
// Says which broker coordinates a group: the leader of the group's
// partition of __consumer_offsets, abs(javaHashCode(group)) %
// partitions as Kafka computes it (a standalone broker always names
// itself). v4 (KIP-699) answers several keys in one request. A
// transaction coordinator (key type 1) is the leader of
// __transaction_state's one partition: this broker. An empty
// transactional id is INVALID_REQUEST, as are other key types. v5-6
// (transaction-abort errors, share groups) are not offered.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.FindCoordinator, 0, 4, (*Broker).handleFindCoordinator)
}

func (b *Broker) handleFindCoordinator(hdr wire.RequestHeader, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	if hdr.APIVersion < 4 {
		co := b.findCoordinator(req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = co.ErrorCode, co.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = co.NodeID, co.Host, co.Port
		return resp
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, b.findCoordinator(req.CoordinatorType, key))
	}
	return resp
}

func (b *Broker) findCoordinator(keyType int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	co := kmsg.NewFindCoordinatorResponseCoordinator()
	co.Key = key
	co.NodeID = -1
	fail := func(err *kerr.Error, msg string) kmsg.FindCoordinatorResponseCoordinator {
		co.ErrorCode = err.Code
		co.ErrorMessage = &msg
		b.metrics.countError("FindCoordinator", err.Code)
		return co
	}
	switch keyType {
	case 0: // group
	case 1: // transactional id
		if key == "" {
			return fail(kerr.InvalidRequest, "empty transactional id")
		}
	default:
		return fail(kerr.InvalidRequest, "unknown coordinator key type")
	}
	topic, p := txn.StateTopic, int32(0)
	if keyType == 0 {
		topic, p = group.OffsetsTopic, b.coord.PartitionFor(key)
	}
	st, ok := b.store.Partition(topic, p)
	if !ok || st.Leader < 0 {
		return fail(kerr.CoordinatorNotAvailable, "the coordinator's partition has no leader")
	}
	for _, br := range b.store.Brokers() {
		if br.ID == st.Leader {
			co.NodeID, co.Host, co.Port = br.ID, br.Host, br.Port
			return co
		}
	}
	return fail(kerr.CoordinatorNotAvailable, "the leader of the coordinator's partition is not available")
}
