package broker

// ListGroups (key 16), versions 0-5.
//
// Lists the groups this broker coordinates with their protocol type and
// (v4+) state, filtered by state names (v4+, case-insensitive; names that
// are not group states match nothing). v5 (KIP-848) adds each group's
// type and a filter on it: every group here is a "classic" one (the
// consumer group protocol of KIP-848 is not offered), so a filter naming
// classic (in any case) lists them all and one naming only other types
// ("consumer", "share", or names that are no type) lists none, as Kafka
// does. While an offsets partition is still loading, the groups known so
// far come with COORDINATOR_LOAD_IN_PROGRESS.

import (
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ListGroups, 0, 5, (*Broker).handleListGroups)
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
	if len(req.TypesFilter) > 0 && !hasClassic(req.TypesFilter) {
		return resp // only types no group here has
	}
	groups, err := b.coord.ListGroups(states)
	resp.ErrorCode = groupErr(err)
	sort.Slice(groups, func(i, j int) bool { return groups[i].GroupID < groups[j].GroupID })
	for _, g := range groups {
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group = g.GroupID
		sg.ProtocolType = g.ProtocolType
		sg.GroupState = g.State.String()
		sg.GroupType = classicGroupType
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// classicGroupType is the type (ListGroups v5, KIP-848) of every group
// this broker coordinates.
const classicGroupType = "classic"

// hasClassic reports whether a ListGroups types filter names the classic
// group type, in any case.
func hasClassic(types []string) bool {
	for _, t := range types {
		if strings.EqualFold(t, classicGroupType) {
			return true
		}
	}
	return false
}
