package broker

// DescribeGroups (key 15), versions 0-5.
//
// Describes groups: state (Empty, PreparingRebalance, CompletingRebalance,
// Stable, Dead), protocol type, and members with their client id, host and
// instance id (v4+). As in Kafka, the protocol and each member's metadata
// and assignment are shown only for a Stable group, and an unknown group
// is described as Dead with no error. Without an authorizer every
// operation is allowed: v3+ report READ, DELETE and DESCRIBE when asked.
// Per-group errors: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS. v6
// (GROUP_ID_NOT_FOUND for unknown groups) is not offered.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeGroups, 0, 5, (*Broker).handleDescribeGroups)
}

// groupOperations is Kafka's bitfield of the ACL operations on a group:
// READ (3), DELETE (6), DESCRIBE (8).
const groupOperations = 1<<3 | 1<<6 | 1<<8

func (b *Broker) handleDescribeGroups(_ wire.RequestHeader, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	for _, id := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = id
		d, err := b.coord.DescribeGroup(id)
		if err != nil {
			sg.ErrorCode = groupErr(err)
			b.metrics.countError("DescribeGroups", sg.ErrorCode)
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		sg.State = d.State.String()
		sg.ProtocolType = d.ProtocolType
		sg.Protocol = d.Protocol
		if req.IncludeAuthorizedOperations {
			sg.AuthorizedOperations = groupOperations
		}
		for _, m := range d.Members {
			sm := kmsg.NewDescribeGroupsResponseGroupMember()
			sm.MemberID = m.MemberID
			if m.InstanceID != "" {
				sm.InstanceID = kmsg.StringPtr(m.InstanceID)
			}
			sm.ClientID = m.ClientID
			sm.ClientHost = m.ClientHost
			sm.ProtocolMetadata = m.Metadata
			sm.MemberAssignment = m.Assignment
			sg.Members = append(sg.Members, sm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}
