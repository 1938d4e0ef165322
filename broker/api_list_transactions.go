package broker

// ListTransactions (key 66), versions 0-1.
//
// Lists transactional ids (KIP-664), filtered by state (a state Kafka does
// not have is returned in UnknownStateFilters), by producer id and, from
// v1 (KIP-994), to transactions open longer than DurationFilterMillis. v2
// (a pattern on the id) is not offered.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ListTransactions, 0, 1, (*Broker).handleListTransactions)
}

// kafkaTxnStates are the states Kafka's ListTransactions knows.
var kafkaTxnStates = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

func (b *Broker) handleListTransactions(hdr wire.RequestHeader, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrListTransactionsResponse()
	for _, s := range req.StateFilters {
		if !slices.Contains(kafkaTxnStates, s) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
		}
	}
	now := time.Now().UnixMilli()
	for _, d := range b.txns.Describe(nil) {
		if len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, string(d.State)) {
			continue
		}
		if len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, d.ProducerID) {
			continue
		}
		if hdr.APIVersion >= 1 && req.DurationFilterMillis >= 0 && (d.State != txn.Ongoing || now-d.StartMs < req.DurationFilterMillis) {
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = d.ID, d.ProducerID, string(d.State)
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
