package broker

// Produce (key 0), versions 3-9.
//
// acks=all produce to a partition whose ISR is smaller than the topic's
// min.insync.replicas is refused with NOT_ENOUGH_REPLICAS before anything
// is appended. An acks=0 produce that fails anywhere closes the connection
// (after the responses queued before it), as Kafka does, so the client
// notices and refreshes its metadata.
//
// Only v2 record batches (magic 2) are accepted, which is why versions 0-2
// (message sets) are not offered. Every batch of a partition is validated
// (length, magic, CRC-32C, codec, record count) before any is appended;
// compressed batches are stored as sent, never recompressed. Idempotent
// producers (producer id >= 0) get per-partition sequence checking: a
// duplicate of one of the last five batches is answered with its original
// offset, a gap with OUT_OF_ORDER_SEQUENCE_NUMBER. Transactional produce is
// not supported. acks=0 gets no response; acks=1 and acks=all are answered
// once the batch is in the log (a standalone broker is its own ISR). A
// failed write or fsync answers KAFKA_STORAGE_ERROR and makes the partition
// read-only until restart.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.Produce, 3, 9, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		start := time.Now()
		r := req.(*kmsg.ProduceRequest)
		resp := b.handleProduce(r)
		if r.Acks == 0 {
			// Set before finishNone publishes p to the writer.
			p.out.closeAfter = produceFailed(resp)
			c.finishNone(p)
		} else {
			c.finish(p, hdr, resp)
		}
		b.metrics.observe(kmsg.Produce, start)
	})
	markFrameReusable(kmsg.Produce)
}

// produceFailed reports whether any partition of resp has an error.
func produceFailed(resp *kmsg.ProduceResponse) bool {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return true
			}
		}
	}
	return false
}

func (b *Broker) handleProduce(req *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := kmsg.NewPtrProduceResponse()
	var reqErr int16
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		reqErr = kerr.InvalidRequiredAcks.Code
	case req.TransactionID != nil:
		reqErr = kerr.TransactionalIDAuthorizationFailed.Code
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			if reqErr != 0 {
				sp.ErrorCode = reqErr
			} else {
				b.producePartition(rt.Topic, req.Acks, rp, &sp)
			}
			if sp.ErrorCode != 0 {
				b.metrics.countError("Produce", sp.ErrorCode)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) producePartition(topic string, acks int16, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) {
	l, code := b.partitionLog(topic, rp.Partition)
	if code != 0 {
		sp.ErrorCode = code
		return
	}
	if isInternalTopic(topic) {
		// Only the group coordinator writes __consumer_offsets.
		sp.ErrorCode = kerr.InvalidTopicException.Code
		return
	}
	if len(rp.Records) == 0 {
		sp.ErrorCode = kerr.CorruptMessage.Code
		return
	}
	st, ok := b.store.Partition(topic, rp.Partition)
	if !ok {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	if acks == -1 && int32(len(st.ISR)) < b.minInsyncReplicas(topic) {
		sp.ErrorCode = kerr.NotEnoughReplicas.Code
		sp.LogStartOffset = l.LogStartOffset()
		return
	}
	size := len(rp.Records)
	res, err := l.Append(rp.Records, st.LeaderEpoch)
	if err != nil {
		sp.ErrorCode = errorCode(err)
		if sp.ErrorCode == kerr.CorruptMessage.Code || sp.ErrorCode == kerr.InvalidRecord.Code || sp.ErrorCode == kerr.MessageTooLarge.Code || sp.ErrorCode == kerr.InvalidTimestamp.Code {
			sp.ErrorMessage = errorMessage(err)
		}
		sp.LogStartOffset = l.LogStartOffset()
		return
	}
	b.advanceHighWatermark(topic, rp.Partition, l)
	sp.BaseOffset = res.BaseOffset
	sp.LogStartOffset = res.LogStartOffset
	sp.LogAppendTime = res.LogAppendTime
	if !res.Duplicate {
		b.metrics.producedRecords.Add(float64(res.LastOffset - res.BaseOffset + 1))
		b.metrics.producedBytes.Add(float64(size))
	}
}

// advanceHighWatermark moves the high watermark after an append. A
// standalone broker is the only member of every ISR, so it is the log end
// offset; replication replaces this with the ISR minimum. Long polls are
// woken here, not on append, because they may only read up to the high
// watermark.
func (b *Broker) advanceHighWatermark(topic string, partition int32, l *storage.Log) {
	l.SetHighWatermark(l.LogEndOffset())
	b.waiters.notify(topic, partition)
}
