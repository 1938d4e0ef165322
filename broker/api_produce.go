package broker

// Produce (key 0), versions 0-9.
//
// acks=all produce to a partition whose ISR is smaller than the topic's
// min.insync.replicas is refused with NOT_ENOUGH_REPLICAS before anything
// is appended. An acks=0 produce that fails anywhere closes the connection
// (after the responses queued before it), as Kafka does, so the client
// notices and refreshes its metadata.
//
// Versions 3-9 carry v2 record batches (magic 2). Versions 0-2 carry
// message sets (magic 0 and 1), which are converted into one v2 batch per
// partition first, as Kafka 3 up-converts them (record.FromMessageSet):
// Kafka 4 no longer takes them, but producers such as lua-resty-kafka and
// sarama configured for Kafka before 0.11 still send nothing else. Every
// batch of a partition is validated
// (length, magic, CRC-32C, codec, record count) before any is appended;
// compressed batches are stored as sent, never recompressed. zstd batches
// need v7 (UNSUPPORTED_COMPRESSION_TYPE before, as in Kafka). From v3 on a
// partition carries exactly one batch, as Kafka's validateRecords requires:
// none, several, or a message set is INVALID_RECORD. Idempotent
// producers (producer id >= 0) get per-partition sequence checking: a
// duplicate of one of the last five batches is answered with its original
// offset, a gap with OUT_OF_ORDER_SEQUENCE_NUMBER. Transactional batches
// need acks=all (INVALID_REQUIRED_ACKS otherwise) and a transaction that
// added the partition (INVALID_TXN_STATE otherwise; INVALID_PRODUCER_EPOCH
// for a fenced producer), and hold their transaction open until it ends
// (see txn_coordinator.go). acks=0 gets no response; acks=1 and acks=all
// are answered once the batch is in the log (a standalone broker is its
// own ISR). A
// failed write or fsync answers KAFKA_STORAGE_ERROR and makes the partition
// read-only until restart.
//
// Each partition is validated and appended as soon as its records have
// arrived, while the rest of the request is still being read (see
// produceStream), so a request that never arrives whole, or does not
// decode, may have had its first partitions appended without an answer.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.Produce, 0, 9, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		start := time.Now()
		if st := c.stream.started; !st.IsZero() {
			start = st // appended while it was read
		}
		r := req.(*kmsg.ProduceRequest)
		resp := b.handleProduce(r, &c.stream)
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

// produceStream holds what a connection appended of the produce request
// it is reading, partition by partition, before the request was whole:
// the connection's wire.ProduceScanner hands over each partition's
// records the moment they are in, while they are still in the CPU's
// cache, and the partition is validated and appended at once. (Read
// whole first, a request of 4 partitions of 1 MB is larger than a core's
// L2 cache, and its bytes were read back from memory twice: by the
// validation, and by the write into the page cache.) handleProduce then
// answers those partitions with what the append returned.
//
// Partitions are independent in Kafka, so appending one before the next
// has arrived changes nothing a client can see, except when a request
// never arrives whole (the client died) or turns out malformed after
// its first partitions: those partitions are appended although the
// request is not answered, as when an answer is lost on the way. A
// client retries an unanswered request; an idempotent producer's retry
// is recognised as a duplicate.
type produceStream struct {
	done  []streamedPartition
	taken int
	// started is when the request's first partition was appended, for
	// the request's duration (time spent appending, on a slow disk
	// perhaps seconds, passes before the request is decoded).
	started time.Time
}

// streamedPartition is one appended partition: records (a slice of the
// request's frame) identifies it in the decoded request.
type streamedPartition struct {
	topic   string
	records []byte
	resp    kmsg.ProduceResponseTopicPartition
	taken   bool
}

func (ps *produceStream) reset() {
	clear(ps.done)
	ps.done, ps.taken, ps.started = ps.done[:0], 0, time.Time{}
}

// produce appends one partition's records as they arrived, unless the
// request as a whole is to be refused (then handleProduce answers every
// partition with the request's error, as before).
func (ps *produceStream) produce(b *Broker, f wire.RecordsField) {
	if produceRequestError(f.Acks, f.Transactional) != 0 {
		return
	}
	if ps.started.IsZero() {
		ps.started = time.Now()
	}
	topic := string(f.Topic)
	rp := kmsg.ProduceRequestTopicPartition{Partition: f.Partition, Records: f.Records}
	sp := newProducePartitionResponse(f.Partition)
	b.producePartition(topic, f.Version, f.Acks, &rp, &sp, f.CRCChecked)
	b.streamedPartitions.Add(1)
	ps.done = append(ps.done, streamedPartition{topic: topic, records: f.Records, resp: sp})
}

// take returns the answer for the partition of topic whose records field
// is records, if it was appended while the request was read: the one
// handed over as that very slice of the frame or, should the frame have
// moved, as the same bytes for the same partition (never appending the
// same records twice matters more than anything else here).
func (ps *produceStream) take(topic string, partition int32, records []byte) (kmsg.ProduceResponseTopicPartition, bool) {
	if ps == nil || len(records) == 0 || ps.taken == len(ps.done) {
		return kmsg.ProduceResponseTopicPartition{}, false
	}
	for pass := range 2 {
		for i := range ps.done {
			d := &ps.done[i]
			if d.taken || len(d.records) != len(records) {
				continue
			}
			same := unsafe.SliceData(d.records) == unsafe.SliceData(records)
			if pass == 1 {
				same = d.topic == topic && d.resp.Partition == partition && bytes.Equal(d.records, records)
			}
			if same {
				d.taken = true
				ps.taken++
				return d.resp, true
			}
		}
	}
	return kmsg.ProduceResponseTopicPartition{}, false
}

// checkTaken, after a request was handled, reports appended partitions
// no answer took: the scanner and the decoder disagreed about a request,
// which would be a bug (the records were appended, and the client was
// answered as the request decoded says). A request that did not decode
// is not handled, and not answered at all.
func (ps *produceStream) checkTaken(c *conn) {
	if n := len(ps.done) - ps.taken; n > 0 {
		c.b.log.Error("produce request: partitions appended as the request arrived are not in it as decoded",
			zap.String("remote", c.remote), zap.Int("partitions", n))
	}
}

// produceRequestError is the error of a produce request as a whole: one
// every partition is answered with, and nothing appended.
func produceRequestError(acks int16, transactional bool) int16 {
	switch {
	case acks != 0 && acks != 1 && acks != -1:
		return kerr.InvalidRequiredAcks.Code
	case transactional && acks != -1:
		return kerr.InvalidRequiredAcks.Code
	}
	return 0
}

func newProducePartitionResponse(partition int32) kmsg.ProduceResponseTopicPartition {
	sp := kmsg.NewProduceResponseTopicPartition()
	sp.Partition = partition
	sp.BaseOffset = -1
	sp.LogAppendTime = -1
	sp.LogStartOffset = -1
	return sp
}

// handleProduce answers a produce request. Partitions stream already
// appended (see produceStream) are answered as their append was; stream
// may be nil.
func (b *Broker) handleProduce(req *kmsg.ProduceRequest, stream *produceStream) *kmsg.ProduceResponse {
	resp := kmsg.NewPtrProduceResponse()
	reqErr := produceRequestError(req.Acks, req.TransactionID != nil)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp, streamed := stream.take(rt.Topic, rp.Partition, rp.Records)
			switch {
			case streamed:
			case reqErr != 0:
				sp = newProducePartitionResponse(rp.Partition)
				sp.ErrorCode = reqErr
			case req.Version < 3:
				sp = newProducePartitionResponse(rp.Partition)
				b.produceMessageSet(rt.Topic, req.Version, req.Acks, rp, &sp)
			default:
				sp = newProducePartitionResponse(rp.Partition)
				b.producePartition(rt.Topic, req.Version, req.Acks, rp, &sp, false)
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

// produceMessageSet appends a Produce v0-v2 partition: its message set
// converted into a v2 batch. A set that does not convert is
// CORRUPT_MESSAGE, with the reason, for a partition that exists (an
// unknown one is answered as such first, as Kafka does). Record batches
// (magic 2), which Kafka also takes in these versions, are appended as
// they are.
func (b *Broker) produceMessageSet(topic string, version, acks int16, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) {
	if _, code := b.partitionLog(topic, rp.Partition); code != 0 {
		sp.ErrorCode = code
		return
	}
	if len(rp.Records) > record.MagicOffset && rp.Records[record.MagicOffset] == 2 {
		b.producePartition(topic, version, acks, rp, sp, false)
		return
	}
	if len(rp.Records) > 0 {
		batch, err := record.FromMessageSet(rp.Records)
		if err != nil {
			sp.ErrorCode = kerr.CorruptMessage.Code
			sp.ErrorMessage = kmsg.StringPtr(err.Error())
			return
		}
		converted := *rp
		converted.Records = batch
		rp = &converted
	}
	b.producePartition(topic, 3, acks, rp, sp, false) // a v2 batch now
}

func (b *Broker) producePartition(topic string, version, acks int16, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition, crcChecked bool) {
	l, code := b.partitionLog(topic, rp.Partition)
	if code != 0 {
		sp.ErrorCode = code
		return
	}
	if version >= 3 {
		// Kafka's ProduceRequest.validateRecords: from v3 on, each
		// partition carries exactly one record batch, of magic 2.
		// INVALID_RECORD, which clients do not retry (CORRUPT_MESSAGE,
		// for damaged bytes, they retry until their delivery timeout).
		var reason string
		switch n := wholeBatches(rp.Records); {
		case oldMagic(rp.Records):
			reason = fmt.Sprintf("Produce v%d takes record batches of magic 2 only, not magic %d message sets", version, rp.Records[record.MagicOffset])
		case n == 0:
			reason = fmt.Sprintf("Produce v%d must carry one whole record batch per partition; this one has none", version)
		case n > 1:
			reason = fmt.Sprintf("Produce v%d may carry only one record batch per partition, not %d", version, n)
		}
		if reason != "" {
			sp.ErrorCode = kerr.InvalidRecord.Code
			sp.ErrorMessage = kmsg.StringPtr(reason)
			return
		}
	}
	if version < 7 && hasZstdBatch(rp.Records) {
		// zstd came with Produce v7 (KIP-110); Kafka refuses it before.
		sp.ErrorCode = kerr.UnsupportedCompressionType.Code
		sp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("Produce v%d may not carry zstd-compressed batches (v7 and later may)", version))
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
	release, code := b.beginTxnWrites(topic, rp.Partition, rp.Records)
	if code != 0 {
		sp.ErrorCode = code
		sp.LogStartOffset = l.LogStartOffset()
		return
	}
	if release != nil {
		defer release()
	}
	size := len(rp.Records)
	appendTo := l.Append
	if crcChecked {
		appendTo = l.AppendCRCChecked
	}
	res, err := appendTo(rp.Records, st.LeaderEpoch)
	if err != nil {
		sp.ErrorCode = errorCode(err)
		if errors.Is(err, record.ErrDecompressLimit) {
			// Not damaged bytes but a batch past gregor's decompression
			// bound (Kafka has none): clients retry CORRUPT_MESSAGE until
			// their delivery timeout and then report only that, so say
			// INVALID_RECORD, which they do not retry, and log why.
			sp.ErrorCode = kerr.InvalidRecord.Code
			err = fmt.Errorf("%w (the broker refuses a batch that decompresses to more than %d times its size, at least %d MiB and at most %d MiB)",
				err, record.DecompressRatio, record.MinDecompressLimit>>20, record.MaxDecompressLimit>>20)
			if ok, held := b.refusals.allow("decompress-limit", time.Now()); ok {
				b.log.Warn("produce refused: a batch decompresses past the bound", zap.String("topic", topic), zap.Int32("partition", rp.Partition),
					zap.Int("batch_bytes", size), zap.Error(err), zap.Int("same_since_last_logged", held))
			}
		}
		if sp.ErrorCode == kerr.CorruptMessage.Code || sp.ErrorCode == kerr.InvalidRecord.Code || sp.ErrorCode == kerr.MessageTooLarge.Code || sp.ErrorCode == kerr.InvalidTimestamp.Code {
			sp.ErrorMessage = errorMessage(err)
		}
		var re *storage.RecordErrors
		if version >= 8 && errors.As(err, &re) {
			// KIP-467: the records at fault, each with its reason.
			sp.ErrorRecords = make([]kmsg.ProduceResponseTopicPartitionErrorRecord, len(re.Records))
			for i, r := range re.Records {
				sp.ErrorRecords[i].RelativeOffset = r.Index
				sp.ErrorRecords[i].ErrorMessage = kmsg.StringPtr(r.Message)
			}
		}
		switch sp.ErrorCode {
		case kerr.CorruptMessage.Code, kerr.MessageTooLarge.Code, kerr.RecordListTooLarge.Code, kerr.KafkaStorageError.Code:
			// Kafka answers these without the log start offset
			// (ReplicaManager.appendToLocalLog), the others with it.
		default:
			sp.LogStartOffset = l.LogStartOffset()
		}
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

// hasZstdBatch reports whether records (whole batches, as a produce
// request carries them) hold a zstd-compressed batch; it reads only batch
// headers, and stops at the first it cannot parse (validation reports
// that).
func hasZstdBatch(records []byte) bool {
	found := false
	record.Batches(records, func(_ int, _ []byte, h record.Header) error {
		if h.Codec() == record.CodecZstd {
			found = true
			return errStopWalk
		}
		return nil
	})
	return found
}

// errStopWalk ends a walk over batches early.
var errStopWalk = errors.New("stop")

// wholeBatches counts the whole record batches records holds from its
// start, reading only their length fields; it stops at one cut short or
// of an impossible length (validation reports what is wrong with it).
func wholeBatches(records []byte) int {
	n := 0
	for pos := 0; len(records)-pos >= record.MagicOffset; n++ {
		size := 12 + int64(int32(binary.BigEndian.Uint32(records[pos+8:])))
		if size <= record.MagicOffset || size > int64(len(records)-pos) {
			break
		}
		pos += int(size)
	}
	return n
}

// oldMagic reports whether records start with a message of format 0 or 1.
func oldMagic(records []byte) bool {
	return len(records) > record.MagicOffset && records[record.MagicOffset] < 2
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

// beginTxnWrites checks the transactional batches among records with the
// transaction coordinator and holds their transaction open until release
// is called (after the append); release is nil when there are none.
// Records without transactional batches cost a walk over their batch
// headers. Transactional batches of more than one producer (or epoch) in
// one partition's records are INVALID_RECORD: Kafka takes one batch per
// partition from v3, and holding several transactions at once could
// deadlock against their ends.
func (b *Broker) beginTxnWrites(topic string, partition int32, records []byte) (release func(), code int16) {
	var pid int64 = -1
	var epoch int16 = -1
	for pos := 0; len(records)-pos >= record.HeaderSize; {
		h, err := record.ParseHeader(records[pos:])
		if err != nil || h.Size() <= 0 {
			break // the append reports it
		}
		pos += int(min(h.Size(), int64(len(records)-pos)))
		if !h.Transactional() || h.Control() {
			continue
		}
		if pid >= 0 && (h.ProducerID != pid || h.ProducerEpoch != epoch) {
			return nil, kerr.InvalidRecord.Code
		}
		pid, epoch = h.ProducerID, h.ProducerEpoch
	}
	if pid < 0 {
		return nil, 0
	}
	r, err := b.txns.BeginWrite(pid, epoch, txn.TopicPartition{Topic: topic, Partition: partition})
	if err != nil {
		return nil, errorCode(err)
	}
	return r, 0
}
