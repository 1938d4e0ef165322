package broker

// DescribeTransactions (key 65), version 0.
//
// Describes transactional ids (KIP-664): state, producer id and epoch,
// timeout, when the open transaction started (-1 when none is open) and
// its partitions. An id the coordinator does not know is
// TRANSACTIONAL_ID_NOT_FOUND.

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeTransactions, 0, 0, (*Broker).handleDescribeTransactions)
}

func (b *Broker) handleDescribeTransactions(_ wire.RequestHeader, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeTransactionsResponse()
	for _, id := range req.TransactionalIDs {
		ts := kmsg.NewDescribeTransactionsResponseTransactionState()
		ts.TransactionalID = id
		ts.ProducerID, ts.ProducerEpoch, ts.StartTimestamp = -1, -1, -1
		d := b.txns.Describe([]string{id})
		if len(d) == 0 {
			ts.ErrorCode = kerr.TransactionalIDNotFound.Code
			b.metrics.countError("DescribeTransactions", ts.ErrorCode)
			resp.TransactionStates = append(resp.TransactionStates, ts)
			continue
		}
		ts.State = string(d[0].State)
		ts.ProducerID, ts.ProducerEpoch, ts.TimeoutMillis = d[0].ProducerID, d[0].Epoch, d[0].TimeoutMs
		if d[0].State == txn.Ongoing {
			ts.StartTimestamp = d[0].StartMs
		}
		parts := d[0].Partitions
		// A group added with AddOffsetsToTxn is in the transaction through
		// its __consumer_offsets partition, as Kafka lists it.
		for _, g := range d[0].Groups {
			parts = append(parts, txn.TopicPartition{Topic: group.OffsetsTopic, Partition: b.coord.PartitionFor(g)})
		}
		slices.SortFunc(parts, func(a, b txn.TopicPartition) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		for _, tp := range slices.CompactFunc(parts, func(a, b txn.TopicPartition) bool { return a == b }) {
			n := len(ts.Topics)
			if n == 0 || ts.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				ts.Topics = append(ts.Topics, t)
				n++
			}
			ts.Topics[n-1].Partitions = append(ts.Topics[n-1].Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
