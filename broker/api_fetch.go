package broker

// Fetch (key 1), versions 4-12.
//
// Consumers read up to the high watermark. Record bytes go from the segment
// files to the socket with sendfile(2): the response is encoded with kmsg
// around a placeholder per partition, and the placeholders are replaced on
// the way out by the file regions (see encodeFetch). A partition read
// returns whole batches, at least one even when it is larger than the
// limits (KIP-74); once the response's MaxBytes is spent, later partitions
// are answered without records. When fewer than MinBytes are available the
// request waits up to MaxWaitMillis and is woken as soon as any of its
// partitions grows. Fetch sessions (KIP-227) are not offered: every response
// carries session id 0, which tells clients to send full requests. A fetch
// below the log start offset or beyond the log end offset gets
// OFFSET_OUT_OF_RANGE; a stale or future CurrentLeaderEpoch gets
// FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH. Topic ids (v13+) are not
// offered yet.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.Fetch, 4, 12, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		b.handleFetch(c, hdr, req.(*kmsg.FetchRequest), p)
	})
	markFrameReusable(kmsg.Fetch)
}

// fetchMarkerNonce starts every record placeholder; it is random per
// process so no topic name or number can collide with it.
var fetchMarkerNonce = func() [8]byte {
	var n [8]byte
	rand.Read(n[:])
	return n
}()

const fetchMarkerLen = 16

func fetchMarker(i int) []byte {
	m := make([]byte, fetchMarkerLen)
	copy(m, fetchMarkerNonce[:])
	binary.BigEndian.PutUint64(m[8:], uint64(i))
	return m
}

// maxFetchWait caps MaxWaitMillis so a client cannot park a request for
// hours.
const maxFetchWait = 5 * time.Minute

func (b *Broker) handleFetch(c *conn, hdr wire.RequestHeader, req *kmsg.FetchRequest, p *pending) {
	start := time.Now()
	resp, chunks, total, stop := b.fetchOnce(req)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if stop || total >= int64(req.MinBytes) || wait <= 0 || b.ctx.Err() != nil {
		c.finishFetch(p, hdr, resp, chunks)
		b.metrics.observe(kmsg.Fetch, start)
		return
	}
	releaseChunks(chunks)
	wait = min(wait, maxFetchWait)
	var tps []topicPartition
	for _, t := range req.Topics {
		for _, rp := range t.Partitions {
			tps = append(tps, topicPartition{t.Topic, rp.Partition})
		}
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		wake := make(chan struct{}, 1)
		b.waiters.add(tps, wake)
		defer b.waiters.remove(tps, wake)
		timer := time.NewTimer(wait)
		defer timer.Stop()
		// Re-check once: data may have arrived before we registered. An
		// append may already have filled the channel, so never block.
		select {
		case wake <- struct{}{}:
		default:
		}
		for {
			select {
			case <-wake:
				resp, chunks, total, stop := b.fetchOnce(req)
				if stop || total >= int64(req.MinBytes) {
					c.finishFetch(p, hdr, resp, chunks)
					b.metrics.observe(kmsg.Fetch, start)
					return
				}
				releaseChunks(chunks)
			case <-timer.C:
				resp, chunks, _, _ := b.fetchOnce(req)
				c.finishFetch(p, hdr, resp, chunks)
				b.metrics.observe(kmsg.Fetch, start)
				return
			case <-b.ctx.Done():
				resp, chunks, _, _ := b.fetchOnce(req)
				c.finishFetch(p, hdr, resp, chunks)
				return
			case <-c.closing:
				c.finishNone(p)
				return
			}
		}
	}()
}

func releaseChunks(chunks []storage.Chunk) {
	for i := range chunks {
		chunks[i].Release()
	}
}

// fetchOnce reads every requested partition once. stop reports a
// partition error, which answers the request at once.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest) (resp *kmsg.FetchResponse, chunks []storage.Chunk, total int64, stop bool) {
	resp = kmsg.NewPtrFetchResponse()
	if req.SessionID > 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil, 0, true
	}
	remaining := int64(req.MaxBytes)
	if remaining <= 0 {
		remaining = 1 // v0-2 had no MaxBytes; still return one batch
	}
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark = -1
			sp.LastStableOffset = -1
			sp.LogStartOffset = -1
			sp.RecordBatches = []byte{} // empty, not null: librdkafka rejects a null record set
			ch, code := b.fetchPartition(rt.Topic, &rp, &sp, remaining)
			if code != 0 {
				sp.ErrorCode = code
				stop = true
				b.metrics.partitionErrors.WithLabelValues("Fetch", kerr.ErrorForCode(code).Error()).Inc()
			}
			if ch.Size > remaining && total > 0 {
				// Only the first partition with data may exceed the
				// response limit (KIP-74); this one waits for the next fetch.
				ch.Release()
				ch = storage.Chunk{}
			}
			if ch.Size > 0 {
				sp.RecordBatches = fetchMarker(len(chunks))
				chunks = append(chunks, ch)
				total += ch.Size
				remaining -= ch.Size
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, chunks, total, stop
}

func (b *Broker) fetchPartition(topic string, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, remaining int64) (storage.Chunk, int16) {
	l, code := b.partitionLog(topic, rp.Partition)
	if code != 0 {
		return storage.Chunk{}, code
	}
	if rp.CurrentLeaderEpoch >= 0 {
		if st, ok := b.store.Partition(topic, rp.Partition); ok {
			if rp.CurrentLeaderEpoch < st.LeaderEpoch {
				return storage.Chunk{}, kerr.FencedLeaderEpoch.Code
			}
			if rp.CurrentLeaderEpoch > st.LeaderEpoch {
				return storage.Chunk{}, kerr.UnknownLeaderEpoch.Code
			}
		}
	}
	hwm := l.HighWatermark()
	sp.HighWatermark = hwm
	sp.LastStableOffset = hwm
	sp.LogStartOffset = l.LogStartOffset()
	if remaining <= 0 {
		return storage.Chunk{}, 0
	}
	maxBytes := int64(rp.PartitionMaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1
	}
	maxBytes = min(maxBytes, remaining)
	ch, err := l.Read(rp.FetchOffset, hwm, int32(min(maxBytes, 1<<31-1)))
	if err != nil {
		return storage.Chunk{}, errorCode(err)
	}
	return ch, 0
}

// finishFetch encodes a fetch response whose record placeholders stand for
// chunks and completes p.
func (c *conn) finishFetch(p *pending, hdr wire.RequestHeader, resp *kmsg.FetchResponse, chunks []storage.Chunk) {
	resp.SetVersion(hdr.APIVersion)
	buf := wire.AppendResponse(nil, hdr, resp)
	if len(chunks) == 0 {
		p.out.parts = []outPart{{buf: buf}}
		close(p.done)
		return
	}
	p.out.parts, p.out.chunks = encodeFetch(buf, resp.IsFlexible(), chunks)
	for i := range p.out.chunks {
		c.b.metrics.fetchedBytes.Add(float64(p.out.chunks[i].Size))
	}
	close(p.done)
}

// encodeFetch splices chunks into an encoded fetch response frame in
// place of their placeholders, fixing each records length prefix and the
// frame's size prefix. The placeholders are found in order; each is
// preceded by its length: an int32 16 before flexible versions, a uvarint
// 17 (compact bytes) from v12.
func encodeFetch(buf []byte, flexible bool, chunks []storage.Chunk) ([]outPart, []storage.Chunk) {
	parts := make([]outPart, 0, 3*len(chunks)+1)
	prevEnd := 0
	pos := 0
	size := int64(0)
	for i := range chunks {
		m := fetchMarker(i)
		idx := bytes.Index(buf[pos:], m)
		if idx < 0 {
			panic("fetch response placeholder missing") // broken invariant: we put it there
		}
		at := pos + idx
		lenStart := at - 4
		var lenBuf []byte
		if flexible {
			lenStart = at - 1
			lenBuf = binary.AppendUvarint(nil, uint64(chunks[i].Size)+1)
		} else {
			lenBuf = binary.BigEndian.AppendUint32(nil, uint32(chunks[i].Size))
		}
		parts = append(parts, outPart{buf: buf[prevEnd:lenStart]}, outPart{buf: lenBuf}, outPart{chunk: &chunks[i]})
		size += int64(lenStart-prevEnd) + int64(len(lenBuf)) + chunks[i].Size
		prevEnd = at + fetchMarkerLen
		pos = prevEnd
	}
	parts = append(parts, outPart{buf: buf[prevEnd:]})
	size += int64(len(buf) - prevEnd)
	binary.BigEndian.PutUint32(buf[0:4], uint32(size-4))
	return parts, chunks
}
