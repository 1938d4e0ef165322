package broker

// InitProducerId (key 22), versions 0-4.
//
// Idempotent producers (no transactional id) get a fresh producer id with
// epoch 0 on every call, including the epoch-bump form of v3+ (which only
// transactional producers need to keep their id); ids come from the
// metadata store and are never reused, even across restarts. Transactional
// ids are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions
// are not offered.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.InitProducerID, 0, 4, (*Broker).handleInitProducerID)
}

func (b *Broker) handleInitProducerID(_ wire.RequestHeader, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID = -1
	resp.ProducerEpoch = -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		b.metrics.countError("InitProducerId", resp.ErrorCode)
		return resp
	}
	id, err := b.store.NextProducerID()
	if err != nil {
		b.log.Error("allocate producer id", zap.Error(err))
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		b.metrics.countError("InitProducerId", resp.ErrorCode)
		return resp
	}
	resp.ProducerID = id
	resp.ProducerEpoch = 0
	return resp
}
