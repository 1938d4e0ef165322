package broker

// EndTxn (key 26), versions 0-3.
//
// Commits or aborts a producer's open transaction. The decision is
// written to __transaction_state before the answer; then a marker goes to
// every partition of the transaction and, on commit, its group offsets
// are applied. A retry of an EndTxn already done succeeds. Errors:
// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED (INVALID_PRODUCER_EPOCH
// before v2), INVALID_TXN_STATE (no transaction open, or ending one the
// other way), CONCURRENT_TRANSACTIONS (markers still to be written: the
// broker retries them), COORDINATOR_NOT_AVAILABLE (the decision could not
// be written). v4+ (KIP-890) is not offered.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.EndTxn, 0, 3, (*Broker).handleEndTxn)
}

func (b *Broker) handleEndTxn(hdr wire.RequestHeader, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrEndTxnResponse()
	err := b.txns.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	resp.ErrorCode = fencedCode(errorCode(err), hdr.APIVersion < 2)
	if resp.ErrorCode != 0 {
		b.metrics.countError("EndTxn", resp.ErrorCode)
		b.log.Debug("EndTxn refused", zap.String("transactional_id", req.TransactionalID), zap.Bool("commit", req.Commit), zap.Error(err))
	}
	return resp
}
