// Package group owns the classic consumer-group protocol on the broker: the
// per-group state machine (Group: members, generations, rebalances, static
// membership, session and rebalance timeouts), committed offsets, their
// encoding as records of the internal topic __consumer_offsets, and the
// Coordinator that drives the groups of the offsets partitions this broker
// leads, persists their state through a small Log interface and replays it
// on load.
//
// The state machine does no I/O and reads no clock: every event carries the
// time, answers that must wait for a rebalance are handed back as Replies
// addressed to opaque Waiters, and NextDeadline says when the group next
// needs a Tick. Tests drive it as plain function calls.
//
// The package does not own the Kafka protocol (broker's api_*.go files
// translate requests to and from these types) nor the partition log
// (broker/storage, behind the Log interface).
package group

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a group's state, named as DescribeGroups and ListGroups report
// it.
type State int8

// Group states. A group starts Empty. A member joining or leaving moves it
// to PreparingRebalance, where every member must (re)join within the
// rebalance timeout; then it is CompletingRebalance until the leader sends
// the assignment in SyncGroup, then Stable. Dead is a deleted group.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

// String returns Kafka's name for the state.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// ParseState parses a state name case-insensitively (ListGroups filters).
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if equalFold(n, name) {
			return State(i), true
		}
	}
	return 0, false
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b))
}

// Waiter is where a held-back JoinGroup or SyncGroup answer goes: the
// group keeps it and hands it back in a Reply when the answer is ready. It
// is opaque to the group and never called by it.
type Waiter any

// Reply is an answer to a held-back request. Exactly one of Join and Sync
// is set.
type Reply struct {
	To   Waiter
	Join *JoinResult
	Sync *SyncResult
}

// Protocol is one assignment protocol a member supports, with the member's
// metadata for it (for consumers, its subscription). Metadata is opaque.
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup, already decoded.
type JoinRequest struct {
	MemberID   string // empty on a member's first join
	InstanceID string // group.instance.id; empty for a dynamic member
	ClientID   string
	ClientHost string
	// SessionTimeout must lie within the configured bounds.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for this member to
	// rejoin (JoinGroup v0 has none: use SessionTimeout).
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []Protocol // in the member's order of preference
	// RequireKnownMemberID (JoinGroup v4+, KIP-394): a new dynamic member
	// gets MEMBER_ID_REQUIRED and an id to rejoin with, so members that
	// never come back cost nothing but a short-lived pending id.
	RequireKnownMemberID bool
}

// JoinResult answers a JoinGroup.
type JoinResult struct {
	Err          error // a kerr error (possibly wrapped), or nil
	MemberID     string
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	// SkipAssignment (KIP-814) tells a static leader that rejoined a
	// stable group that the current assignment stands.
	SkipAssignment bool
	// Members lists every member with its metadata for Protocol; only the
	// leader gets it.
	Members []JoinMember
}

// JoinMember is one member as the leader sees it in a JoinGroup answer.
type JoinMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte
}

// SyncRequest is a SyncGroup, already decoded.
type SyncRequest struct {
	MemberID   string
	InstanceID string
	Generation int32
	// ProtocolType and Protocol (v5+) are checked against the group's when
	// not empty.
	ProtocolType string
	Protocol     string
	// Assignments come from the leader only; followers send none.
	Assignments []Assignment
}

// Assignment is the leader's assignment for one member; opaque bytes.
type Assignment struct {
	MemberID   string
	Assignment []byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// LeaveMember names one member leaving (LeaveGroup v3+ names several, by
// member id, instance id or both).
type LeaveMember struct {
	MemberID   string
	InstanceID string
}

// Member is one group member. Its exported fields are a read-only view for
// describing the group.
type Member struct {
	ID               string
	InstanceID       string
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []Protocol
	Assignment       []byte

	joinWaiter Waiter
	syncWaiter Waiter
	// heartbeatDeadline is when the member is removed unless it
	// heartbeats; not applied while a join or sync of it is waiting.
	heartbeatDeadline time.Time
	// synced reports the member sent SyncGroup in the current generation.
	synced bool
}

// metadataFor returns the member's metadata for a protocol.
func (m *Member) metadataFor(protocol string) []byte {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *Member) supports(protocol string) bool {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

// Group is one consumer group: its members and generation and its
// committed offsets. It does no I/O; a Group is not safe for concurrent use
// (the Coordinator serialises events per offsets partition).
type Group struct {
	id  string
	cfg *Config

	state        State
	stateTime    time.Time // when the group entered its state
	protocolType string
	protocol     string // chosen in the current generation; "" when Empty
	generation   int32
	leader       string

	order   []*Member // in join order; the first is leader when one is needed
	byID    map[string]*Member
	static  map[string]*Member   // instance id -> member
	pending map[string]time.Time // KIP-394 ids handed out, with their expiry

	rebalanceDeadline time.Time // PreparingRebalance: members that have not rejoined by then are removed
	joinReadyAt       time.Time // initial rebalance delay: no completion before
	syncDeadline      time.Time // after a join: members that have not synced by then are removed

	offsets map[TopicPartition]Offset

	// dirty is set when the group's durable state changed and must be
	// written (see TakeDirty).
	dirty bool
	out   []Reply
}

// NewGroup returns an empty group. cfg must stay valid and unchanged for the
// group's life.
func NewGroup(id string, cfg *Config) *Group {
	return &Group{
		id:      id,
		cfg:     cfg,
		byID:    map[string]*Member{},
		static:  map[string]*Member{},
		pending: map[string]time.Time{},
		offsets: map[TopicPartition]Offset{},
	}
}

// ID returns the group id.
func (g *Group) ID() string { return g.id }

// State returns the group's state.
func (g *Group) State() State { return g.state }

// Generation returns the current generation.
func (g *Group) Generation() int32 { return g.generation }

// Leader returns the leader's member id, or "".
func (g *Group) Leader() string { return g.leader }

// ProtocolType returns the group's protocol type ("consumer" for
// consumers), or "" for a group used only to store offsets.
func (g *Group) ProtocolType() string { return g.protocolType }

// Protocol returns the protocol chosen for the current generation.
func (g *Group) Protocol() string { return g.protocol }

// Members returns the members in join order. The caller must not modify
// them.
func (g *Group) Members() []*Member { return g.order }

// NumPending returns how many KIP-394 member ids are handed out but not yet
// joined.
func (g *Group) NumPending() int { return len(g.pending) }

// TakeDirty reports whether the group's durable state (generation, leader,
// protocol, members and assignments) changed since the last call, and
// clears the flag. The coordinator writes a Snapshot when it is set.
func (g *Group) TakeDirty() bool {
	d := g.dirty
	g.dirty = false
	return d
}

// Disposable reports whether the group holds nothing worth keeping: empty,
// no offsets, no pending members and nothing ever written for it.
func (g *Group) Disposable() bool {
	return g.state == Empty && len(g.order) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 &&
		g.generation == 0 && g.protocolType == ""
}

func (g *Group) flush() []Reply {
	out := g.out
	g.out = nil
	return out
}

func (g *Group) replyJoin(w Waiter, r JoinResult) {
	if w != nil {
		g.out = append(g.out, Reply{To: w, Join: &r})
	}
}

func (g *Group) replySync(w Waiter, r SyncResult) {
	if w != nil {
		g.out = append(g.out, Reply{To: w, Sync: &r})
	}
}

func (g *Group) setState(now time.Time, s State) {
	g.state = s
	g.stateTime = now
}

// metadataSize is what a join costs in member metadata.
func metadataSize(ps []Protocol) int {
	n := 0
	for _, p := range ps {
		n += len(p.Name) + len(p.Metadata)
	}
	return n
}

// Join handles a JoinGroup. The answer comes back in the returned replies,
// addressed to w, either at once or when the rebalance completes; replies
// to other held-back requests may come with it.
func (g *Group) Join(now time.Time, req JoinRequest, w Waiter) []Reply {
	if err := g.checkJoin(req); err != nil {
		g.replyJoin(w, JoinResult{Err: err, MemberID: req.MemberID, Generation: -1})
		return g.flush()
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.MemberID == "" {
		g.joinNew(now, req, w)
	} else {
		g.joinKnown(now, req, w)
	}
	return g.flush()
}

func (g *Group) checkJoin(req JoinRequest) error {
	if req.SessionTimeout < g.cfg.MinSessionTimeout || req.SessionTimeout > g.cfg.MaxSessionTimeout {
		return fmt.Errorf("session timeout %v outside [%v, %v]: %w", req.SessionTimeout, g.cfg.MinSessionTimeout, g.cfg.MaxSessionTimeout, kerr.InvalidSessionTimeout)
	}
	if n := metadataSize(req.Protocols); n > g.cfg.MaxMemberMetadataBytes {
		return fmt.Errorf("member metadata is %d bytes, the limit is %d: %w", n, g.cfg.MaxMemberMetadataBytes, kerr.InvalidRequest)
	}
	if g.state == Dead {
		return fmt.Errorf("group %q is being deleted: %w", g.id, kerr.CoordinatorNotAvailable)
	}
	if !g.supportsProtocols(req.MemberID, req.ProtocolType, req.Protocols) {
		return fmt.Errorf("protocol type %q and protocols %v are not compatible with the group's: %w", req.ProtocolType, protocolNames(req.Protocols), kerr.InconsistentGroupProtocol)
	}
	return nil
}

func protocolNames(ps []Protocol) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// supportsProtocols reports whether a member (re)joining with these
// protocols can be in the group: the protocol type must be the group's and
// one of its protocols must be supported by every other member.
func (g *Group) supportsProtocols(memberID, protocolType string, protocols []Protocol) bool {
	if protocolType == "" || len(protocols) == 0 {
		return false
	}
	others := 0
	for _, m := range g.order {
		if m.ID != memberID {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for _, m := range g.order {
			if m.ID != memberID && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// awaitingJoin counts the members whose join waits for the rebalance.
func (g *Group) awaitingJoin() int {
	n := 0
	for _, m := range g.order {
		if m.joinWaiter != nil {
			n++
		}
	}
	return n
}

func (g *Group) full() bool {
	return len(g.order)+len(g.pending) >= g.cfg.MaxGroupSize
}

func (g *Group) joinNew(now time.Time, req JoinRequest, w Waiter) {
	if req.InstanceID != "" {
		if old := g.static[req.InstanceID]; old != nil {
			g.replaceStatic(now, old, req, w)
			return
		}
		if g.full() {
			g.replyJoin(w, JoinResult{Err: fmt.Errorf("group %q has %d members: %w", g.id, g.cfg.MaxGroupSize, kerr.GroupMaxSizeReached), Generation: -1})
			return
		}
		g.addMember(now, g.cfg.NewMemberID(req.InstanceID), req, w)
		return
	}
	if g.full() {
		g.replyJoin(w, JoinResult{Err: fmt.Errorf("group %q has %d members: %w", g.id, g.cfg.MaxGroupSize, kerr.GroupMaxSizeReached), Generation: -1})
		return
	}
	id := g.cfg.NewMemberID(req.ClientID)
	if req.RequireKnownMemberID {
		g.pending[id] = now.Add(req.SessionTimeout)
		g.replyJoin(w, JoinResult{Err: kerr.MemberIDRequired, MemberID: id, Generation: -1})
		return
	}
	g.addMember(now, id, req, w)
}

func (g *Group) joinKnown(now time.Time, req JoinRequest, w Waiter) {
	if _, ok := g.pending[req.MemberID]; ok && req.InstanceID == "" {
		delete(g.pending, req.MemberID)
		g.addMember(now, req.MemberID, req, w)
		return
	}
	if err := g.checkMember(req.MemberID, req.InstanceID); err != nil {
		g.replyJoin(w, JoinResult{Err: err, MemberID: req.MemberID, Generation: -1})
		return
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		if m.joinWaiter == nil && g.awaitingJoin() >= g.cfg.MaxGroupSize {
			// More members than group.max.size (it was lowered): as in
			// Kafka, the last to rejoin are dropped.
			g.removeMembers([]*Member{m}, kerr.GroupMaxSizeReached)
			g.replyJoin(w, JoinResult{Err: fmt.Errorf("group %q has %d members: %w", g.id, g.cfg.MaxGroupSize, kerr.GroupMaxSizeReached), Generation: -1})
			g.tryCompleteJoin(now)
			return
		}
		g.updateMember(m, req, w)
		g.tryCompleteJoin(now)
	case CompletingRebalance:
		if sameProtocols(m, req) {
			// The member lost our answer; give it again.
			g.replyJoin(w, g.joinResultFor(m, false))
			return
		}
		g.updateMember(m, req, w)
		g.prepareRebalance(now)
	case Stable:
		if m.ID != g.leader && sameProtocols(m, req) {
			// A follower rejoining with nothing new gets the current
			// generation; only the leader can ask for a rebalance by
			// rejoining (it may have seen metadata change).
			g.replyJoin(w, g.joinResultFor(m, false))
			return
		}
		g.updateMember(m, req, w)
		g.prepareRebalance(now)
	default:
		g.replyJoin(w, JoinResult{Err: kerr.UnknownMemberID, MemberID: req.MemberID, Generation: -1})
	}
}

// checkMember checks a request naming a member: a known instance id with a
// different member id is a fenced zombie; an unknown member is unknown.
func (g *Group) checkMember(memberID, instanceID string) error {
	if instanceID != "" {
		if m := g.static[instanceID]; m != nil && m.ID != memberID {
			return fmt.Errorf("instance %q is member %q, not %q: %w", instanceID, m.ID, memberID, kerr.FencedInstanceID)
		}
	}
	if g.byID[memberID] == nil {
		return fmt.Errorf("member %q is not in group %q: %w", memberID, g.id, kerr.UnknownMemberID)
	}
	return nil
}

func sameProtocols(m *Member, req JoinRequest) bool {
	if m.ProtocolType != req.ProtocolType || len(m.Protocols) != len(req.Protocols) {
		return false
	}
	for i, p := range m.Protocols {
		if p.Name != req.Protocols[i].Name || !bytes.Equal(p.Metadata, req.Protocols[i].Metadata) {
			return false
		}
	}
	return true
}

func (g *Group) addMember(now time.Time, id string, req JoinRequest, w Waiter) {
	m := &Member{
		ID:                id,
		InstanceID:        req.InstanceID,
		ClientID:          req.ClientID,
		ClientHost:        req.ClientHost,
		SessionTimeout:    req.SessionTimeout,
		RebalanceTimeout:  req.RebalanceTimeout,
		ProtocolType:      req.ProtocolType,
		Protocols:         req.Protocols,
		joinWaiter:        w,
		heartbeatDeadline: now.Add(req.SessionTimeout),
	}
	if len(g.order) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.order = append(g.order, m)
	g.byID[id] = m
	if m.InstanceID != "" {
		g.static[m.InstanceID] = m
	}
	if g.leader == "" {
		g.leader = id
	}
	if g.state == PreparingRebalance {
		if !g.joinReadyAt.IsZero() {
			g.joinReadyAt = minTime(now.Add(g.cfg.InitialRebalanceDelay), g.rebalanceDeadline)
		}
		g.tryCompleteJoin(now)
		return
	}
	g.prepareRebalance(now)
}

// updateMember takes a rejoining member's new protocols and timeouts and
// makes w its join waiter. An older join still waiting is answered with
// REBALANCE_IN_PROGRESS: the member has given up on it.
func (g *Group) updateMember(m *Member, req JoinRequest, w Waiter) {
	m.ProtocolType = req.ProtocolType
	m.Protocols = req.Protocols
	m.SessionTimeout = req.SessionTimeout
	m.RebalanceTimeout = req.RebalanceTimeout
	if m.joinWaiter != nil {
		g.replyJoin(m.joinWaiter, JoinResult{Err: kerr.RebalanceInProgress, MemberID: m.ID, Generation: -1})
	}
	m.joinWaiter = w
}

// replaceStatic handles a static member rejoining without its member id
// (typically a restarted process, KIP-345): it gets a new member id, the
// old id is fenced, and if the group is stable and its protocol choice
// stands, the group carries on in the same generation without a rebalance.
func (g *Group) replaceStatic(now time.Time, m *Member, req JoinRequest, w Waiter) {
	oldID := m.ID
	newID := g.cfg.NewMemberID(req.InstanceID)
	fenced := fmt.Errorf("instance %q rejoined as a new member: %w", req.InstanceID, kerr.FencedInstanceID)
	if m.joinWaiter != nil {
		g.replyJoin(m.joinWaiter, JoinResult{Err: fenced, MemberID: oldID, Generation: -1})
		m.joinWaiter = nil
	}
	if m.syncWaiter != nil {
		g.replySync(m.syncWaiter, SyncResult{Err: fenced})
		m.syncWaiter = nil
	}
	delete(g.byID, oldID)
	m.ID = newID
	g.byID[newID] = m
	if g.leader == oldID {
		g.leader = newID
	}
	m.ClientID, m.ClientHost = req.ClientID, req.ClientHost
	m.heartbeatDeadline = now.Add(req.SessionTimeout)
	oldProtocols := m.Protocols
	m.ProtocolType = req.ProtocolType
	m.Protocols = req.Protocols
	m.SessionTimeout = req.SessionTimeout
	m.RebalanceTimeout = req.RebalanceTimeout

	switch g.state {
	case Stable:
		if g.selectProtocol() == g.protocol {
			// Keep the old metadata for the current protocol so the
			// group's record and what the leader was told still agree;
			// the new preferences apply from the next rebalance.
			if md := metadataIn(oldProtocols, g.protocol); md != nil && metadataIn(m.Protocols, g.protocol) == nil {
				m.Protocols = append(m.Protocols, Protocol{Name: g.protocol, Metadata: md})
			}
			g.dirty = true
			g.replyJoin(w, g.joinResultFor(m, true))
			return
		}
		m.joinWaiter = w
		g.prepareRebalance(now)
	case CompletingRebalance:
		// The leader may be assigning to the old id; start over.
		m.joinWaiter = w
		g.prepareRebalance(now)
	case PreparingRebalance:
		m.joinWaiter = w
		g.tryCompleteJoin(now)
	default:
		m.joinWaiter = w
		g.prepareRebalance(now)
	}
}

func metadataIn(ps []Protocol, name string) []byte {
	for _, p := range ps {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// joinResultFor is the current generation's JoinGroup answer for m. The
// leader gets the member list; skip marks a static leader's rejoin into a
// stable group (KIP-814).
func (g *Group) joinResultFor(m *Member, skip bool) JoinResult {
	r := JoinResult{
		MemberID:     m.ID,
		Generation:   g.generation,
		ProtocolType: g.protocolType,
		Protocol:     g.protocol,
		Leader:       g.leader,
	}
	if m.ID == g.leader {
		r.SkipAssignment = skip
		r.Members = make([]JoinMember, 0, len(g.order))
		for _, o := range g.order {
			r.Members = append(r.Members, JoinMember{MemberID: o.ID, InstanceID: o.InstanceID, Metadata: o.metadataFor(g.protocol)})
		}
	}
	return r
}

// prepareRebalance starts a rebalance: every member must rejoin within the
// largest rebalance timeout among them.
func (g *Group) prepareRebalance(now time.Time) {
	if g.state == CompletingRebalance || g.state == Stable {
		for _, m := range g.order {
			if m.syncWaiter != nil {
				g.replySync(m.syncWaiter, SyncResult{Err: kerr.RebalanceInProgress})
				m.syncWaiter = nil
			}
			if g.state == CompletingRebalance {
				m.Assignment = nil
			}
		}
	}
	wasEmpty := g.state == Empty
	g.setState(now, PreparingRebalance)
	g.syncDeadline = time.Time{}
	g.rebalanceDeadline = now.Add(g.maxRebalanceTimeout())
	g.joinReadyAt = time.Time{}
	if wasEmpty && g.cfg.InitialRebalanceDelay > 0 {
		g.joinReadyAt = minTime(now.Add(g.cfg.InitialRebalanceDelay), g.rebalanceDeadline)
	}
	g.tryCompleteJoin(now)
}

func (g *Group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.order {
		d = max(d, m.RebalanceTimeout)
	}
	return d
}

// tryCompleteJoin completes the join phase once every member has rejoined
// and no KIP-394 member is still on its way.
func (g *Group) tryCompleteJoin(now time.Time) {
	if g.state != PreparingRebalance || len(g.pending) > 0 {
		return
	}
	if !g.joinReadyAt.IsZero() && now.Before(g.joinReadyAt) {
		return
	}
	for _, m := range g.order {
		if m.joinWaiter == nil {
			return
		}
	}
	g.completeJoin(now)
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, and either the group is empty (a new, empty generation) or the
// next generation starts, with every joined member answered.
func (g *Group) completeJoin(now time.Time) {
	var gone []*Member
	for _, m := range g.order {
		if m.joinWaiter == nil {
			gone = append(gone, m)
		}
	}
	g.removeMembers(gone, fmt.Errorf("member did not rejoin within the rebalance timeout: %w", kerr.UnknownMemberID))
	g.rebalanceDeadline = time.Time{}
	g.joinReadyAt = time.Time{}
	g.generation++
	if len(g.order) == 0 {
		g.protocol = ""
		g.leader = ""
		g.setState(now, Empty)
		g.dirty = true // the next generation, empty; members are written when the leader syncs
		return
	}
	if g.byID[g.leader] == nil {
		g.leader = g.order[0].ID
	}
	g.protocol = g.selectProtocol()
	g.setState(now, CompletingRebalance)
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range g.order {
		m.Assignment = nil
		m.synced = false
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
		w := m.joinWaiter
		m.joinWaiter = nil
		g.replyJoin(w, g.joinResultFor(m, false))
	}
}

// selectProtocol picks the group's protocol as Kafka does: among the
// protocols every member supports, each member votes for the first in its
// own order of preference, and the most votes win. A tie goes to the one
// the leader prefers (Kafka breaks it by its map's order).
func (g *Group) selectProtocol() string {
	leader := g.byID[g.leader]
	if leader == nil {
		if len(g.order) == 0 {
			return ""
		}
		leader = g.order[0]
	}
	common := func(name string) bool {
		for _, m := range g.order {
			if !m.supports(name) {
				return false
			}
		}
		return true
	}
	votes := map[string]int{}
	for _, m := range g.order {
		for _, p := range m.Protocols {
			if common(p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best, most := "", 0
	for _, p := range leader.Protocols {
		if n := votes[p.Name]; n > most {
			best, most = p.Name, n
		}
	}
	return best // "" only if no protocol is common: joins are checked with supportsProtocols
}

// removeMembers drops members, answering whatever of theirs is waiting
// with err. It does not start a rebalance.
func (g *Group) removeMembers(ms []*Member, err error) {
	if len(ms) == 0 {
		return
	}
	gone := make(map[*Member]bool, len(ms))
	for _, m := range ms {
		gone[m] = true
		if m.joinWaiter != nil {
			g.replyJoin(m.joinWaiter, JoinResult{Err: err, MemberID: m.ID, Generation: -1})
			m.joinWaiter = nil
		}
		if m.syncWaiter != nil {
			g.replySync(m.syncWaiter, SyncResult{Err: err})
			m.syncWaiter = nil
		}
		delete(g.byID, m.ID)
		if m.InstanceID != "" && g.static[m.InstanceID] == m {
			delete(g.static, m.InstanceID)
		}
	}
	kept := g.order[:0]
	for _, m := range g.order {
		if !gone[m] {
			kept = append(kept, m)
		}
	}
	clear(g.order[len(kept):])
	g.order = kept
	if g.byID[g.leader] == nil {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0].ID
		}
	}
}

// membersLeft reacts to members being removed outside a rebalance's own
// bookkeeping: a stable or completing group rebalances; a preparing one
// may now be complete.
func (g *Group) membersLeft(now time.Time) {
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance(now)
	case PreparingRebalance:
		g.tryCompleteJoin(now)
	}
}

// Sync handles a SyncGroup. Followers in a completing rebalance wait for
// the leader; the leader's assignment answers them all.
func (g *Group) Sync(now time.Time, req SyncRequest, w Waiter) []Reply {
	if err := g.checkMember(req.MemberID, req.InstanceID); err != nil {
		g.replySync(w, SyncResult{Err: err})
		return g.flush()
	}
	if req.Generation != g.generation {
		g.replySync(w, SyncResult{Err: fmt.Errorf("generation %d, the group is at %d: %w", req.Generation, g.generation, kerr.IllegalGeneration)})
		return g.flush()
	}
	if (req.ProtocolType != "" && req.ProtocolType != g.protocolType) || (req.Protocol != "" && req.Protocol != g.protocol) {
		g.replySync(w, SyncResult{Err: fmt.Errorf("protocol %s/%s, the group uses %s/%s: %w", req.ProtocolType, req.Protocol, g.protocolType, g.protocol, kerr.InconsistentGroupProtocol)})
		return g.flush()
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		g.replySync(w, SyncResult{Err: kerr.RebalanceInProgress})
	case CompletingRebalance:
		if m.syncWaiter != nil {
			g.replySync(m.syncWaiter, SyncResult{Err: kerr.RebalanceInProgress})
		}
		m.syncWaiter = w
		m.synced = true
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
		if m.ID == g.leader {
			g.applyAssignments(now, req.Assignments)
		}
	case Stable:
		m.synced = true
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
		g.replySync(w, g.syncResultFor(m))
		g.maybeClearSyncDeadline()
	default:
		g.replySync(w, SyncResult{Err: kerr.UnknownMemberID})
	}
	return g.flush()
}

func (g *Group) syncResultFor(m *Member) SyncResult {
	a := m.Assignment
	if a == nil {
		a = []byte{}
	}
	return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: a}
}

// emptyConsumerAssignment is an encoded ConsumerMemberAssignment with no
// partitions: what a member of a "consumer" group the leader left out of
// its plan gets, since some clients cannot decode zero bytes.
var emptyConsumerAssignment = func() []byte {
	a := kmsg.NewConsumerMemberAssignment()
	return a.AppendTo(nil)
}()

// applyAssignments takes the leader's plan, passing each member's bytes on
// untouched: members it left out get an empty assignment; entries for
// non-members are ignored. The group is stable and every waiting member is
// answered.
func (g *Group) applyAssignments(now time.Time, as []Assignment) {
	for _, m := range g.order {
		m.Assignment = []byte{}
		if g.protocolType == "consumer" {
			m.Assignment = emptyConsumerAssignment
		}
	}
	for _, a := range as {
		if m := g.byID[a.MemberID]; m != nil {
			m.Assignment = a.Assignment
			if m.Assignment == nil {
				m.Assignment = []byte{}
			}
		}
	}
	g.setState(now, Stable)
	g.dirty = true
	for _, m := range g.order {
		if m.syncWaiter != nil {
			w := m.syncWaiter
			m.syncWaiter = nil
			g.replySync(w, g.syncResultFor(m))
		}
	}
	g.maybeClearSyncDeadline()
}

func (g *Group) maybeClearSyncDeadline() {
	for _, m := range g.order {
		if !m.synced {
			return
		}
	}
	g.syncDeadline = time.Time{}
}

// Heartbeat handles a Heartbeat: it keeps a member's session alive and
// tells it whether a rebalance is under way (REBALANCE_IN_PROGRESS).
func (g *Group) Heartbeat(now time.Time, memberID, instanceID string, generation int32) error {
	if err := g.checkMember(memberID, instanceID); err != nil {
		return err
	}
	if generation != g.generation {
		return fmt.Errorf("generation %d, the group is at %d: %w", generation, g.generation, kerr.IllegalGeneration)
	}
	m := g.byID[memberID]
	switch g.state {
	case PreparingRebalance:
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
		return kerr.RebalanceInProgress
	case CompletingRebalance, Stable:
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
		return nil
	default:
		return kerr.UnknownMemberID
	}
}

// Leave removes members (LeaveGroup). Each entry gets its own error: an
// instance id that names another member id is FENCED_INSTANCE_ID, an
// unknown member UNKNOWN_MEMBER_ID. A group that lost members rebalances.
func (g *Group) Leave(now time.Time, members []LeaveMember) ([]error, []Reply) {
	errs := make([]error, len(members))
	var gone []*Member
	for i, lm := range members {
		var m *Member
		if lm.InstanceID != "" {
			m = g.static[lm.InstanceID]
			if m == nil {
				errs[i] = fmt.Errorf("instance %q is not in group %q: %w", lm.InstanceID, g.id, kerr.UnknownMemberID)
				continue
			}
			if lm.MemberID != "" && lm.MemberID != m.ID {
				errs[i] = fmt.Errorf("instance %q is member %q, not %q: %w", lm.InstanceID, m.ID, lm.MemberID, kerr.FencedInstanceID)
				continue
			}
		} else {
			if _, ok := g.pending[lm.MemberID]; ok {
				delete(g.pending, lm.MemberID)
				continue
			}
			m = g.byID[lm.MemberID]
			if m == nil {
				errs[i] = fmt.Errorf("member %q is not in group %q: %w", lm.MemberID, g.id, kerr.UnknownMemberID)
				continue
			}
		}
		gone = append(gone, m)
	}
	if len(gone) > 0 {
		g.removeMembers(gone, fmt.Errorf("member left the group: %w", kerr.UnknownMemberID))
		g.membersLeft(now)
	} else if g.state == PreparingRebalance {
		g.tryCompleteJoin(now) // a pending id may have been all we waited for
	}
	return errs, g.flush()
}

// Tick applies every timeout due at now: expired pending ids, members
// whose session ran out, the end of a rebalance's join phase, members that
// never synced. Call it at NextDeadline.
func (g *Group) Tick(now time.Time) []Reply {
	for id, exp := range g.pending {
		if !now.Before(exp) {
			delete(g.pending, id)
		}
	}
	var expired []*Member
	for _, m := range g.order {
		if m.joinWaiter == nil && m.syncWaiter == nil && !now.Before(m.heartbeatDeadline) {
			expired = append(expired, m)
		}
	}
	if len(expired) > 0 {
		g.removeMembers(expired, fmt.Errorf("session timed out: %w", kerr.UnknownMemberID))
		g.membersLeft(now)
	}
	if g.state == PreparingRebalance {
		if !g.joinReadyAt.IsZero() && !now.Before(g.joinReadyAt) {
			g.joinReadyAt = time.Time{}
		}
		if !now.Before(g.rebalanceDeadline) {
			g.completeJoin(now)
		} else {
			g.tryCompleteJoin(now)
		}
	}
	if (g.state == CompletingRebalance || g.state == Stable) && !g.syncDeadline.IsZero() && !now.Before(g.syncDeadline) {
		g.syncDeadline = time.Time{}
		var laggards []*Member
		for _, m := range g.order {
			if !m.synced {
				laggards = append(laggards, m)
			}
		}
		if len(laggards) > 0 {
			g.removeMembers(laggards, fmt.Errorf("member did not sync within the rebalance timeout: %w", kerr.UnknownMemberID))
			g.membersLeft(now)
		}
	}
	return g.flush()
}

// NextDeadline is when the group next needs a Tick; zero if never. It is
// never a time Tick would leave unconsumed.
func (g *Group) NextDeadline() time.Time {
	var next time.Time
	for _, exp := range g.pending {
		next = earliest(next, exp)
	}
	for _, m := range g.order {
		if m.joinWaiter == nil && m.syncWaiter == nil {
			next = earliest(next, m.heartbeatDeadline)
		}
	}
	if g.state == PreparingRebalance {
		next = earliest(next, g.rebalanceDeadline)
		next = earliest(next, g.joinReadyAt)
	}
	if g.state == CompletingRebalance || g.state == Stable {
		next = earliest(next, g.syncDeadline)
	}
	return next
}

// earliest returns the earlier of two times, treating zero as "none".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Abandon answers every held-back request with err and forgets the
// waiters: the coordinator is giving the group up (it moved, or the broker
// is stopping).
func (g *Group) Abandon(err error) []Reply {
	for _, m := range g.order {
		if m.joinWaiter != nil {
			g.replyJoin(m.joinWaiter, JoinResult{Err: err, MemberID: m.ID, Generation: -1})
			m.joinWaiter = nil
		}
		if m.syncWaiter != nil {
			g.replySync(m.syncWaiter, SyncResult{Err: err})
			m.syncWaiter = nil
		}
	}
	return g.flush()
}

// PersistFailed is called when writing the group's state failed after an
// event: the replies that event produced are turned into err, and a group
// with members starts a rebalance so that what members believe and what is
// stored converge again.
func (g *Group) PersistFailed(now time.Time, replies []Reply, err error) []Reply {
	for i := range replies {
		r := replies[i]
		if r.Join != nil {
			j := *r.Join
			j.Err = err
			replies[i].Join = &j
		}
		if r.Sync != nil {
			replies[i].Sync = &SyncResult{Err: err}
		}
	}
	if len(g.order) > 0 && g.state != PreparingRebalance {
		g.prepareRebalance(now)
	}
	return append(replies, g.flush()...)
}

// CheckCommit decides whether a member may commit offsets (OffsetCommit).
// Generation < 0 is a commit from outside group management (an admin tool,
// or a consumer assigning partitions itself), allowed only while the group
// has no members. Members may commit in their current generation while it
// is stable or while a rebalance waits for them to rejoin (to commit before
// giving partitions up), not between join and sync. A valid commit from a
// stable member also counts as a heartbeat.
func (g *Group) CheckCommit(now time.Time, memberID, instanceID string, generation int32) error {
	if g.state == Dead {
		return fmt.Errorf("group %q is being deleted: %w", g.id, kerr.CoordinatorNotAvailable)
	}
	if instanceID != "" {
		if m := g.static[instanceID]; m != nil && m.ID != memberID {
			return fmt.Errorf("instance %q is member %q, not %q: %w", instanceID, m.ID, memberID, kerr.FencedInstanceID)
		}
	}
	if generation < 0 && g.state == Empty {
		return nil
	}
	// Member, then generation, then state, in Kafka's order: a fenced or
	// stale consumer learns that, not to retry after a rebalance.
	m := g.byID[memberID]
	if m == nil {
		if memberID == "" && generation < 0 {
			return fmt.Errorf("group %q has active members; a commit without a member id is only allowed for empty groups: %w", g.id, kerr.UnknownMemberID)
		}
		return fmt.Errorf("member %q is not in group %q: %w", memberID, g.id, kerr.UnknownMemberID)
	}
	if generation != g.generation {
		return fmt.Errorf("generation %d, the group is at %d: %w", generation, g.generation, kerr.IllegalGeneration)
	}
	if g.state == CompletingRebalance {
		return kerr.RebalanceInProgress
	}
	if g.state == Stable {
		m.heartbeatDeadline = now.Add(m.SessionTimeout)
	}
	return nil
}

// sortedTopicPartitions sorts by topic, then partition.
func sortedTopicPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}
