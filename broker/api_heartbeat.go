package broker

// Heartbeat (key 12), versions 0-4.
//
// Keeps a member's session alive. REBALANCE_IN_PROGRESS tells the member
// to rejoin; UNKNOWN_MEMBER_ID (removed, e.g. after its session timed
// out), ILLEGAL_GENERATION (an old generation) and FENCED_INSTANCE_ID (a
// static member replaced by a newer incarnation) tell it it is out.
// INVALID_GROUP_ID for an empty group id; NOT_COORDINATOR and
// COORDINATOR_LOAD_IN_PROGRESS while the group's offsets partition is
// elsewhere or loading.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.Heartbeat, 0, 4, (*Broker).handleHeartbeat)
}

func (b *Broker) handleHeartbeat(_ wire.RequestHeader, req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := kmsg.NewPtrHeartbeatResponse()
	var err error
	if req.Group == "" {
		err = fmt.Errorf("empty group id: %w", kerr.InvalidGroupID)
	} else {
		instance := ""
		if req.InstanceID != nil {
			instance = *req.InstanceID
		}
		err = b.coord.Heartbeat(req.Group, req.MemberID, instance, req.Generation)
	}
	resp.ErrorCode = groupErr(err)
	if err != nil { // REBALANCE_IN_PROGRESS too, as Kafka counts it
		b.metrics.countError("Heartbeat", resp.ErrorCode)
	}
	return resp
}
