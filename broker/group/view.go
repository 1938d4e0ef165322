package group

// What a group shows of itself: its description (DescribeGroups), the
// topics its consumers subscribe to, and the snapshot of its durable state
// that the offsets topic stores and Restore reads back.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SubscribedTopics returns the topics the members of a "consumer" group
// subscribe to, decoded from their metadata for the current protocol; ok
// is false when that is unknown (other protocol types, undecodable
// metadata).
func (g *Group) SubscribedTopics() (topics map[string]bool, ok bool) {
	if g.protocolType != "consumer" {
		return nil, false
	}
	topics = map[string]bool{}
	for _, m := range g.order {
		md := m.metadataFor(g.protocol)
		var meta kmsg.ConsumerMemberMetadata
		if md == nil || meta.ReadFrom(md) != nil {
			return nil, false
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics, true
}

// Description is a group as DescribeGroups shows it.
type Description struct {
	State        State
	ProtocolType string
	Protocol     string // only when Stable
	Members      []MemberDescription
}

// MemberDescription is one member in a Description.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // only when Stable
	Assignment []byte // only when Stable
}

// Describe returns the group's description. As in Kafka, member metadata,
// assignments and the protocol are only shown for a stable group.
func (g *Group) Describe() Description {
	d := Description{State: g.state, ProtocolType: g.protocolType}
	stable := g.state == Stable
	if stable {
		d.Protocol = g.protocol
	}
	for _, m := range g.order {
		md := MemberDescription{MemberID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if stable {
			md.Metadata = m.metadataFor(g.protocol)
			md.Assignment = m.Assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

// Snapshot is the durable part of a group's state, as one GroupMetadata
// record of the offsets topic stores it.
type Snapshot struct {
	ProtocolType string
	Generation   int32
	Protocol     string
	Leader       string
	StateTime    time.Time
	Members      []SnapshotMember
}

// SnapshotMember is one member in a Snapshot.
type SnapshotMember struct {
	MemberID         string
	InstanceID       string
	ClientID         string
	ClientHost       string
	RebalanceTimeout time.Duration
	SessionTimeout   time.Duration
	Subscription     []byte // metadata for the group's protocol
	Assignment       []byte
}

// Snapshot returns the group's durable state. Members are stored only for
// a stable group; a group between generations is stored without members
// so that, reloaded, it waits for them to rejoin.
func (g *Group) Snapshot() Snapshot {
	s := Snapshot{
		ProtocolType: g.protocolType,
		Generation:   g.generation,
		Protocol:     g.protocol,
		Leader:       g.leader,
		StateTime:    g.stateTime,
	}
	if g.state != Stable {
		return s
	}
	for _, m := range g.order {
		s.Members = append(s.Members, SnapshotMember{
			MemberID:         m.ID,
			InstanceID:       m.InstanceID,
			ClientID:         m.ClientID,
			ClientHost:       m.ClientHost,
			RebalanceTimeout: m.RebalanceTimeout,
			SessionTimeout:   m.SessionTimeout,
			Subscription:     m.metadataFor(g.protocol),
			Assignment:       m.Assignment,
		})
	}
	return s
}

// Restore replaces the group's membership with a snapshot read back from
// the offsets topic at time now. A snapshot with members makes a stable
// group whose members must heartbeat within their session timeouts from
// now; one without members makes an empty group.
func (g *Group) Restore(now time.Time, s Snapshot) {
	g.order = nil
	clear(g.byID)
	clear(g.static)
	g.protocolType = s.ProtocolType
	g.generation = s.Generation
	g.protocol = s.Protocol
	g.leader = ""
	g.stateTime = s.StateTime
	if g.stateTime.IsZero() {
		g.stateTime = now
	}
	for _, sm := range s.Members {
		m := &Member{
			ID:                sm.MemberID,
			InstanceID:        sm.InstanceID,
			ClientID:          sm.ClientID,
			ClientHost:        sm.ClientHost,
			SessionTimeout:    sm.SessionTimeout,
			RebalanceTimeout:  sm.RebalanceTimeout,
			ProtocolType:      s.ProtocolType,
			Protocols:         []Protocol{{Name: s.Protocol, Metadata: sm.Subscription}},
			Assignment:        sm.Assignment,
			heartbeatDeadline: now.Add(sm.SessionTimeout),
			synced:            true,
		}
		g.order = append(g.order, m)
		g.byID[m.ID] = m
		if m.InstanceID != "" {
			g.static[m.InstanceID] = m
		}
	}
	if len(g.order) == 0 || s.Protocol == "" {
		g.order = nil
		clear(g.byID)
		clear(g.static)
		g.state = Empty
		g.protocol = ""
		return
	}
	g.state = Stable
	g.leader = s.Leader
	if g.byID[g.leader] == nil {
		g.leader = g.order[0].ID
	}
}

// Loaded is called once a group's records are all read back: a group with
// more members than group.max.size allows (it was lowered) rebalances at
// once, as Kafka does with a group loaded over capacity, and only that
// many members are taken back (see joinKnown).
func (g *Group) Loaded(now time.Time) {
	if g.state == Stable && len(g.order) > g.cfg.MaxGroupSize {
		g.prepareRebalance(now)
	}
}

// SetDead marks the group deleted. The caller has checked it is Empty.
func (g *Group) SetDead(now time.Time) {
	g.setState(now, Dead)
}
