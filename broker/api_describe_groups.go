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

// Kafka's bitfields of the ACL operations each resource type supports
// (AclEntry.supportedOperations), which it answers as a resource's
// authorized operations when it has no authorizer. The bit numbers are
// AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
// DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
// IDEMPOTENT_WRITE 12.
const (
	groupOperations   = 1<<3 | 1<<6 | 1<<8
	topicOperations   = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11
	clusterOperations = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
)

func (b *Broker) handleDescribeGroups(_ wire.RequestHeader, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	var seen onceSet
	for _, id := range req.Groups {
		if len(req.Groups) > 1 && !seen.first(id) {
			continue // answered once (see onceSet)
		}
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
