package broker

// SyncGroup (key 14), versions 0-5.
//
// Hands out the assignment of a generation. The leader sends every
// member's assignment, which the broker passes on as opaque bytes (members
// it left out get an empty assignment); followers that ask before the
// leader wait for it. Once the leader's assignment is written to
// __consumer_offsets the group is Stable and every waiting member is
// answered; a later SyncGroup in the same generation gets the member's
// assignment at once. Members that do not sync within the rebalance
// timeout after the join are removed. Errors: UNKNOWN_MEMBER_ID,
// ILLEGAL_GENERATION, FENCED_INSTANCE_ID (a replaced static member),
// REBALANCE_IN_PROGRESS (a new rebalance started: rejoin),
// INCONSISTENT_GROUP_PROTOCOL (v5: protocol type or name differ from the
// group's), INVALID_GROUP_ID, NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS.

import (
	"bytes"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.SyncGroup, 0, 5, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		b.handleSyncGroup(c, hdr, req.(*kmsg.SyncGroupRequest), p)
	})
}

func (b *Broker) handleSyncGroup(c *conn, hdr wire.RequestHeader, req *kmsg.SyncGroupRequest, p *pending) {
	start := time.Now()
	respond := func(r group.SyncResult) kmsg.Response { return b.syncGroupResponse(r) }
	fail := func(err error) kmsg.Response { return respond(group.SyncResult{Err: err}) }
	if req.Group == "" {
		c.finish(p, hdr, fail(fmt.Errorf("empty group id: %w", kerr.InvalidGroupID)))
		return
	}
	sr := group.SyncRequest{MemberID: req.MemberID, Generation: req.Generation}
	if req.InstanceID != nil {
		sr.InstanceID = *req.InstanceID
	}
	if req.ProtocolType != nil {
		sr.ProtocolType = *req.ProtocolType
	}
	if req.Protocol != nil {
		sr.Protocol = *req.Protocol
	}
	for _, a := range req.GroupAssignment {
		// Copied: the request aliases the connection's read buffer.
		sr.Assignments = append(sr.Assignments, group.Assignment{MemberID: a.MemberID, Assignment: bytes.Clone(a.MemberAssignment)})
	}
	ch := make(chan group.SyncResult, 1)
	b.coord.SyncGroup(req.Group, sr, func(r group.SyncResult) { ch <- r })
	awaitGroupAnswer(b, c, hdr, p, ch, "SyncGroup", start, respond, fail)
}

func (b *Broker) syncGroupResponse(r group.SyncResult) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ErrorCode = groupErr(r.Err)
	if r.Err != nil {
		b.metrics.countError("SyncGroup", resp.ErrorCode)
		return resp
	}
	resp.ProtocolType = kmsg.StringPtr(r.ProtocolType)
	resp.Protocol = kmsg.StringPtr(r.Protocol)
	resp.MemberAssignment = r.Assignment
	return resp
}
