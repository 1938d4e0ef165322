package broker

// DeleteGroups (key 42), versions 0-2.
//
// Deletes groups and their committed offsets (tombstones in
// __consumer_offsets). Only an empty group can be deleted: one with
// members gets NON_EMPTY_GROUP, an unknown group GROUP_ID_NOT_FOUND.
// Per-group errors also include NOT_COORDINATOR and
// COORDINATOR_LOAD_IN_PROGRESS.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DeleteGroups, 0, 2, (*Broker).handleDeleteGroups)
}

func (b *Broker) handleDeleteGroups(_ wire.RequestHeader, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	for _, id := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = id
		if err := b.coord.DeleteGroup(id); err != nil {
			sg.ErrorCode = groupErr(err)
			b.metrics.countError("DeleteGroups", sg.ErrorCode)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}
