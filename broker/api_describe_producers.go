package broker

// DescribeProducers (key 61), version 0.
//
// Lists the producers a partition remembers (KIP-664, for
// kafka-transactions.sh and kadm): their id, epoch, last sequence, the
// timestamp of their last batch and, for one with a transaction open, the
// transaction's first offset. A partition that does not exist is
// UNKNOWN_TOPIC_OR_PARTITION. The coordinator epoch is not kept (-1).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeProducers, 0, 0, (*Broker).handleDescribeProducers)
}

func (b *Broker) handleDescribeProducers(_ wire.RequestHeader, req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeProducersResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			l, code := b.partitionLog(rt.Topic, p)
			if code != 0 {
				sp.ErrorCode = code
				b.metrics.countError("DescribeProducers", code)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			for _, pi := range l.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = pi.ProducerID, int32(pi.Epoch)
				ap.LastSequence, ap.LastTimestamp = pi.LastSequence, pi.LastTimestamp
				ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, pi.TxnStartOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
