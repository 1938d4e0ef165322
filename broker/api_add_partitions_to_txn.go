package broker

// AddPartitionsToTxn (key 24), versions 0-3.
//
// Adds partitions to a producer's open transaction (opening it), which it
// must do before producing to them transactionally. One error per
// partition: UNKNOWN_TOPIC_OR_PARTITION for a partition that does not
// exist and then OPERATION_NOT_ATTEMPTED for the others, as in Kafka; or
// the transaction's error on every partition: INVALID_PRODUCER_ID_MAPPING,
// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2),
// CONCURRENT_TRANSACTIONS while the previous transaction completes.
// v4+ (KIP-890, broker to broker) is not offered.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.AddPartitionsToTxn, 0, 3, (*Broker).handleAddPartitionsToTxn)
}

func (b *Broker) handleAddPartitionsToTxn(hdr wire.RequestHeader, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	var tps []txn.TopicPartition
	for _, rt := range req.Topics {
		for _, p := range rt.Partitions {
			tps = append(tps, txn.TopicPartition{Topic: rt.Topic, Partition: p})
		}
	}
	errs := b.txns.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, tps)
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewAddPartitionsToTxnResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			sp.Partition = p
			sp.ErrorCode = fencedCode(errorCode(errs[i]), hdr.APIVersion < 2)
			if sp.ErrorCode != 0 {
				b.metrics.countError("AddPartitionsToTxn", sp.ErrorCode)
			}
			st.Partitions = append(st.Partitions, sp)
			i++
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
