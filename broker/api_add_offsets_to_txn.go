package broker

// AddOffsetsToTxn (key 25), versions 0-3.
//
// Adds a group to a producer's open transaction (opening it), so that the
// group's offsets can be committed in it with TxnOffsetCommit. Errors as
// AddPartitionsToTxn's whole-transaction ones; an empty group id is
// INVALID_GROUP_ID. v4 (KIP-890) is not offered.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.AddOffsetsToTxn, 0, 3, (*Broker).handleAddOffsetsToTxn)
}

func (b *Broker) handleAddOffsetsToTxn(hdr wire.RequestHeader, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrAddOffsetsToTxnResponse()
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
	} else {
		err := b.txns.AddOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
		resp.ErrorCode = fencedCode(errorCode(err), hdr.APIVersion < 2)
	}
	if resp.ErrorCode != 0 {
		b.metrics.countError("AddOffsetsToTxn", resp.ErrorCode)
	}
	return resp
}
