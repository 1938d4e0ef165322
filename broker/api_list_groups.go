package broker

// ListGroups (key 16), versions 0-4.
//
// Lists the groups this broker coordinates with their protocol type and
// (v4+) state, filtered by state names (v4+, case-insensitive; names that
// are not group states match nothing). While an offsets partition is
// still loading, the groups known so far come with
// COORDINATOR_LOAD_IN_PROGRESS. v5 (group type filter, KIP-848) is not
// offered.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ListGroups, 0, 4, (*Broker).handleListGroups)
}

func (b *Broker) handleListGroups(_ wire.RequestHeader, req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrListGroupsResponse()
	var states []group.State
	for _, name := range req.StatesFilter {
		if s, ok := group.ParseState(name); ok {
			states = append(states, s)
		}
	}
	if len(req.StatesFilter) > 0 && len(states) == 0 {
		return resp // only unknown states: nothing matches
	}
	groups, err := b.coord.ListGroups(states)
	resp.ErrorCode = groupErr(err)
	sort.Slice(groups, func(i, j int) bool { return groups[i].GroupID < groups[j].GroupID })
	for _, g := range groups {
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group = g.GroupID
		sg.ProtocolType = g.ProtocolType
		sg.GroupState = g.State.String()
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}
