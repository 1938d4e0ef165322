package broker

// InitProducerId (key 22), versions 0-4.
//
// Idempotent producers (no transactional id) get a fresh producer id with
// epoch 0 on every call, including the epoch-bump form of v3+ (which only
// transactional producers need to keep their id); ids come from the
// metadata store and are never reused, even across restarts.
// Transactional producers go to the transaction coordinator (broker/txn):
// a new transactional id gets a new producer id, a known one keeps its
// id with the epoch bumped, which fences the previous producer and aborts
// its open transaction. Errors: INVALID_TRANSACTION_TIMEOUT (above
// transaction.max.timeout.ms), PRODUCER_FENCED and
// INVALID_PRODUCER_ID_MAPPING (v3+ naming a stale id or epoch),
// CONCURRENT_TRANSACTIONS (a transaction still completing), and
// INVALID_REQUEST for an empty transactional id.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.InitProducerID, 0, 4, (*Broker).handleInitProducerID)
}

func (b *Broker) handleInitProducerID(hdr wire.RequestHeader, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID = -1
	resp.ProducerEpoch = -1
	if req.TransactionalID != nil {
		pid, epoch := int64(-1), int16(-1)
		if hdr.APIVersion >= 3 {
			pid, epoch = req.ProducerID, req.ProducerEpoch
		}
		r, err := b.txns.InitProducerID(*req.TransactionalID, time.Duration(req.TransactionTimeoutMillis)*time.Millisecond, pid, epoch)
		if err != nil {
			resp.ErrorCode = fencedCode(errorCode(err), hdr.APIVersion < 4)
			b.metrics.countError("InitProducerId", resp.ErrorCode)
			b.log.Debug("InitProducerId refused", zap.String("transactional_id", *req.TransactionalID), zap.Error(err))
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.Epoch
		return resp
	}
	id, err := b.store.NextProducerID()
	if err != nil {
		// Clients retry at once and again (a metadata store that cannot
		// be written fails every one): logged once per refusalLogEvery.
		if ok, held := b.refusals.allow("allocate producer id", time.Now()); ok {
			b.log.Error("allocate producer id; idempotent and transactional producers are refused until the metadata store can be written", zap.Error(err), zap.Int("same_since_last_logged", held))
		}
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		b.metrics.countError("InitProducerId", resp.ErrorCode)
		return resp
	}
	resp.ProducerID = id
	resp.ProducerEpoch = 0
	return resp
}

// fencedCode is code as a client of an older version understands it:
// PRODUCER_FENCED (KIP-588) is INVALID_PRODUCER_EPOCH to clients from
// before it.
func fencedCode(code int16, old bool) int16 {
	if old && code == kerr.ProducerFenced.Code {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
