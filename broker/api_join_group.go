package broker

// JoinGroup (key 11), versions 0-9.
//
// Joins a member to a group under the classic protocol: the broker picks
// the protocol (the first in the leader's order that every member
// supports) and hands the leader every member's metadata untouched; the
// leader's own assignor does the assignment. The answer waits until the
// rebalance completes: every member has rejoined, or the rebalance timeout
// (the largest among the members; the session timeout at v0) has passed
// and members that did not rejoin are removed.
//
// From v4 a new member without a member id gets MEMBER_ID_REQUIRED and the
// id to rejoin with (KIP-394). Static members (group.instance.id, v5+,
// KIP-345) skip that; a static member rejoining without its member id
// replaces its previous incarnation, whose id is then FENCED_INSTANCE_ID,
// and in a stable group whose protocol choice still holds this happens
// without a rebalance: the same generation, the leader told (v9, KIP-814)
// to skip assignment. Errors: INVALID_GROUP_ID for an empty group id,
// INVALID_SESSION_TIMEOUT outside group.{min,max}.session.timeout.ms,
// INCONSISTENT_GROUP_PROTOCOL for another protocol type or no protocol in
// common, GROUP_MAX_SIZE_REACHED past group.max.size, INVALID_REQUEST for
// more than 1 MiB of protocol names and metadata, UNKNOWN_MEMBER_ID for an
// id the group does not know, NOT_COORDINATOR and
// COORDINATOR_LOAD_IN_PROGRESS while the group's offsets partition is
// elsewhere or loading.

import (
	"bytes"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.JoinGroup, 0, 9, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		b.handleJoinGroup(c, hdr, req.(*kmsg.JoinGroupRequest), p)
	})
}

func (b *Broker) handleJoinGroup(c *conn, hdr wire.RequestHeader, req *kmsg.JoinGroupRequest, p *pending) {
	start := time.Now()
	respond := func(r group.JoinResult) kmsg.Response { return b.joinGroupResponse(r) }
	fail := func(err error) kmsg.Response {
		return respond(group.JoinResult{Err: err, MemberID: req.MemberID, Generation: -1})
	}
	if req.Group == "" {
		c.finish(p, hdr, fail(fmt.Errorf("empty group id: %w", kerr.InvalidGroupID)))
		return
	}
	jr := group.JoinRequest{
		MemberID:             req.MemberID,
		ClientHost:           clientHost(c),
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:         req.ProtocolType,
		RequireKnownMemberID: hdr.APIVersion >= 4,
	}
	if hdr.ClientID != nil {
		jr.ClientID = *hdr.ClientID
	}
	if req.InstanceID != nil {
		jr.InstanceID = *req.InstanceID
	}
	// The request's bytes alias the connection's read buffer: copy what
	// the group keeps.
	for _, rp := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: rp.Name, Metadata: bytes.Clone(rp.Metadata)})
	}
	if req.Reason != nil {
		b.log.Debug("join group", zap.String("group", req.Group), zap.String("member", req.MemberID), zap.String("reason", *req.Reason))
	}
	ch := make(chan group.JoinResult, 1)
	b.coord.JoinGroup(req.Group, jr, func(r group.JoinResult) { ch <- r })
	awaitGroupAnswer(b, c, hdr, p, ch, "JoinGroup", start, respond, fail)
}

func (b *Broker) joinGroupResponse(r group.JoinResult) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode = groupErr(r.Err)
	resp.Generation = r.Generation
	resp.MemberID = r.MemberID
	if r.Err != nil {
		b.metrics.countError("JoinGroup", resp.ErrorCode)
		return resp
	}
	resp.ProtocolType = kmsg.StringPtr(r.ProtocolType)
	resp.Protocol = kmsg.StringPtr(r.Protocol)
	resp.LeaderID = r.Leader
	resp.SkipAssignment = r.SkipAssignment
	for _, m := range r.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID = m.MemberID
		if m.InstanceID != "" {
			rm.InstanceID = kmsg.StringPtr(m.InstanceID)
		}
		rm.ProtocolMetadata = m.Metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
