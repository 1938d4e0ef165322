package broker

// LeaveGroup (key 13), versions 0-5.
//
// Removes members from a group, which then rebalances (or becomes Empty,
// in a new generation, when the last member leaves). v0-2 name one member
// and answer with one error; v3+ (KIP-345) name several, by member id,
// instance id or both, each with its own error: UNKNOWN_MEMBER_ID for a
// member (or instance) the group does not have, FENCED_INSTANCE_ID for an
// instance id whose member id is not the one given. A member's waiting
// join or sync is answered UNKNOWN_MEMBER_ID. INVALID_GROUP_ID for an
// empty group id; NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS while
// the group's offsets partition is elsewhere or loading.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.LeaveGroup, 0, 5, (*Broker).handleLeaveGroup)
}

func (b *Broker) handleLeaveGroup(hdr wire.RequestHeader, req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrLeaveGroupResponse()
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var members []group.LeaveMember
	if hdr.APIVersion < 3 {
		members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			lm := group.LeaveMember{MemberID: m.MemberID}
			if m.InstanceID != nil {
				lm.InstanceID = *m.InstanceID
			}
			members = append(members, lm)
		}
	}
	errs, err := b.coord.LeaveGroup(req.Group, members)
	if err != nil {
		resp.ErrorCode = groupErr(err)
		b.metrics.countError("LeaveGroup", resp.ErrorCode)
		return resp
	}
	if hdr.APIVersion < 3 {
		resp.ErrorCode = groupErr(errs[0])
		return resp
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = m.MemberID
		rm.InstanceID = m.InstanceID
		rm.ErrorCode = groupErr(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
