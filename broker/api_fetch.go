package broker

// Fetch (key 1), versions 0-13.
//
// Consumers read up to the high watermark. Record bytes go from the segment
// files to the socket with sendfile(2): the response is encoded with kmsg
// around a placeholder per partition, and the placeholders are replaced on
// the way out by the file regions (see encodeFetch). A partition read
// returns whole batches, at least one even when it is larger than the
// limits (KIP-74); once the response's MaxBytes is spent, later partitions
// are answered without records. When fewer than MinBytes are available the
// request waits up to MaxWaitMillis and is woken as soon as any of its
// partitions grows. Fetch sessions (KIP-227) are offered: see
// fetch_session.go. A fetch
// below the log start offset or beyond the log end offset gets
// OFFSET_OUT_OF_RANGE; a stale or future CurrentLeaderEpoch gets
// FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH. read_committed fetches
// (isolation level 1) read up to the last stable offset, with the aborted
// transactions among the records returned, from which the client drops
// their records. From v13 topics are named by id: see fetch_topic_ids.go.
//
// Versions 0-3 are for clients written before Kafka 0.11, which read
// message sets (format 0 before v2, format 1 from it), not record batches:
// as Kafka 3 does, the batches read are converted in memory (downConvert),
// so these fetches cost a copy and a decode where newer ones cost a
// sendfile. Kafka 4 no longer serves them (KIP-896).

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	register(kmsg.Fetch, 0, 13, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
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
	b.resolveFetchIDs(req)
	sess, incremental, code := c.sessionFor(req)
	if code != 0 {
		resp := kmsg.NewPtrFetchResponse()
		resp.ErrorCode = code
		c.finishFetch(p, hdr, resp, nil)
		b.metrics.observe(kmsg.Fetch, start)
		return
	}
	if sess == nil {
		dedupeFetch(req)
	}
	f := &fetch{b: b, req: req, sess: sess, incremental: incremental}
	resp, chunks, total, stop := f.once(false)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if stop || total >= int64(req.MinBytes) || wait <= 0 || b.ctx.Err() != nil {
		f.commit()
		f.finish(c, p, hdr, resp, chunks)
		b.metrics.observe(kmsg.Fetch, start)
		return
	}
	f.discard(chunks)
	deadline := start.Add(min(wait, maxFetchWait))
	// The connection's writer runs the long poll when the response is
	// next to go out (see pending.poll): no goroutine of its own, and
	// when an append wakes it, the writer that answers is the goroutine
	// woken, one hand-off instead of two.
	p.poll = func() {
		wake := f.register()
		defer f.unregister(wake)
		timer := time.NewTimer(time.Until(deadline))
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
				resp, chunks, total, stop := f.once(false)
				if stop || total >= int64(req.MinBytes) {
					f.commit()
					f.finish(c, p, hdr, resp, chunks)
					b.metrics.observe(kmsg.Fetch, start)
					return
				}
				f.discard(chunks)
			case <-timer.C:
				resp, chunks, _, _ := f.once(true)
				f.finish(c, p, hdr, resp, chunks)
				b.metrics.observe(kmsg.Fetch, start)
				return
			case <-b.ctx.Done():
				resp, chunks, _, _ := f.once(true)
				f.finish(c, p, hdr, resp, chunks)
				return
			case <-c.closing:
				c.finishNone(p)
				return
			}
		}
	}
}

// dedupeFetch drops the repeats of a partition named more than once in a
// sessionless fetch, keeping the first: Kafka reads a fetch's partitions
// into a map, so a partition is answered once. (A session's partitions
// are a map already.)
func dedupeFetch(req *kmsg.FetchRequest) {
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	if n < 2 || !hasRepeat(req, n) {
		return
	}
	seen := make(map[topicPartition]struct{}, n)
	topics := req.Topics[:0]
	for _, rt := range req.Topics {
		parts := rt.Partitions[:0]
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			if _, ok := seen[tp]; !ok {
				seen[tp] = struct{}{}
				parts = append(parts, rp)
			}
		}
		if len(parts) > 0 {
			rt.Partitions = parts
			topics = append(topics, rt)
		}
	}
	req.Topics = topics
}

// hasRepeat reports whether a fetch of n partitions names one twice,
// without allocating for the usual few partitions.
func hasRepeat(req *kmsg.FetchRequest, n int) bool {
	if n > 16 {
		seen := make(map[topicPartition]struct{}, n)
		for i := range req.Topics {
			for _, rp := range req.Topics[i].Partitions {
				tp := topicPartition{req.Topics[i].Topic, rp.Partition}
				if _, ok := seen[tp]; ok {
					return true
				}
				seen[tp] = struct{}{}
			}
		}
		return false
	}
	for i := range req.Topics {
		for j, rp := range req.Topics[i].Partitions {
			for k := i; k < len(req.Topics); k++ {
				if req.Topics[k].Topic != req.Topics[i].Topic {
					continue
				}
				from := 0
				if k == i {
					from = j + 1
				}
				for _, other := range req.Topics[k].Partitions[from:] {
					if other.Partition == rp.Partition {
						return true
					}
				}
			}
		}
	}
	return false
}

func releaseChunks(chunks []storage.Chunk) {
	for i := range chunks {
		chunks[i].Release()
	}
}

// fetch is one fetch request being answered, perhaps several times over
// while it long-polls: each pass (once) reads every partition afresh.
type fetch struct {
	b           *Broker
	req         *kmsg.FetchRequest
	sess        *fetchSession // nil for a sessionless fetch
	incremental bool          // answer only partitions with news (sess != nil)

	// sent is what the latest pass answered for each session partition
	// it included, which commit records as what the client last heard.
	sent []sessionNews
	// tps are a sessionless long poll's registered partitions.
	tps []topicPartition
	// held is what the latest pass's converted records hold of the
	// conversion budget: handed to the response that carries them (finish)
	// or given back with a pass that is not sent (discard).
	held int64
}

// reserveConversion takes n bytes of the conversion budget to convert
// records with. ok is false when the broker is stopping, or when this pass
// holds some already and no more is free: waiting would be waiting for
// itself, so that partition's records come with a later fetch.
func (f *fetch) reserveConversion(n int) (held int64, ok bool) {
	if f.held == 0 {
		held, err := f.b.convBudget.reserve(n)
		return held, err == nil
	}
	return f.b.convBudget.tryReserve(n)
}

// finish completes p with a pass's answer.
func (f *fetch) finish(c *conn, p *pending, hdr wire.RequestHeader, resp *kmsg.FetchResponse, chunks []storage.Chunk) {
	p.out.reserved, f.held = f.held, 0
	c.finishFetch(p, hdr, resp, chunks)
}

// discard drops a pass's answer that is not sent.
func (f *fetch) discard(chunks []storage.Chunk) {
	releaseChunks(chunks)
	f.b.convBudget.release(f.held)
	f.held = 0
}

type sessionNews struct {
	sp                 *sessionPartition
	hwm, logStart, lso int64
	records            bool
}

// register returns the channel that appends to the fetch's partitions
// wake. A session's is registered for as long as the session lives (a
// long poll over thousands of partitions then registers nothing); a
// sessionless fetch registers one of its own.
func (f *fetch) register() chan struct{} {
	if f.sess != nil {
		return f.sess.wake
	}
	for _, t := range f.req.Topics {
		for _, rp := range t.Partitions {
			f.tps = append(f.tps, topicPartition{t.Topic, rp.Partition})
		}
	}
	wake := make(chan struct{}, 1)
	f.b.waiters.add(f.tps, wake)
	return wake
}

// unregister undoes register.
func (f *fetch) unregister(wake chan struct{}) {
	if f.sess == nil {
		f.b.waiters.remove(f.tps, wake)
	}
}

// once reads every partition of the fetch once. stop reports a partition
// error, which answers the request at once. final means this pass's answer
// is the one sent, and is committed to the session.
func (f *fetch) once(final bool) (resp *kmsg.FetchResponse, chunks []storage.Chunk, total int64, stop bool) {
	resp = kmsg.NewPtrFetchResponse()
	remaining := int64(f.req.MaxBytes)
	switch {
	case f.req.Version < 3:
		remaining = 1<<31 - 1 // no MaxBytes before v3: partition limits only
	case remaining <= 0:
		remaining = 1 // still return one batch
	}
	remaining = min(remaining, f.b.cfg.prop("fetch.max.bytes"))
	// topicIndex returns the index in resp.Topics of topic's answer,
	// adding it. Partitions mostly come topic by topic, so the last
	// answer is tried first and a map is built only when a topic comes
	// back after another.
	var topicAt map[string]int
	topicIndex := func(topic string, id [16]byte) int {
		n := len(resp.Topics)
		if n > 0 && resp.Topics[n-1].Topic == topic {
			return n - 1
		}
		if topicAt == nil && n > 0 {
			topicAt = make(map[string]int, n+1)
			for i := range resp.Topics {
				topicAt[resp.Topics[i].Topic] = i
			}
		}
		if i, ok := topicAt[topic]; ok {
			return i
		}
		if topicAt != nil {
			topicAt[topic] = n
		}
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = topic
		if f.req.Version >= 13 {
			// The id the client named the topic by, which is how
			// it finds its answer (the topic may have been created
			// again under the name since).
			rt.TopicID = id
			if id == ([16]byte{}) {
				rt.TopicID = f.b.fetchTopicID(topic)
			}
		}
		resp.Topics = append(resp.Topics, rt)
		return n
	}
	// read fetches one partition and adds its answer to the response,
	// unless the fetch is incremental and nothing changed since the
	// client last heard of it (sp).
	read := func(topic string, id [16]byte, rp *kmsg.FetchRequestTopicPartition, sp *sessionPartition) {
		if f.incremental && sp.quiet() {
			return // no news, found without looking anything up
		}
		part := kmsg.NewFetchResponseTopicPartition()
		part.Partition = rp.Partition
		part.HighWatermark = -1
		part.LastStableOffset = -1
		part.LogStartOffset = -1
		part.RecordBatches = []byte{} // empty, not null: librdkafka rejects a null record set
		var cached **storage.Log
		if sp != nil {
			cached = &sp.log
		}
		var ch storage.Chunk
		var code int16
		if f.req.Version >= 13 {
			code = f.b.topicIDCode(topic, sp)
		}
		if code == 0 {
			ch, code = f.b.fetchPartition(topic, rp, &part, remaining, cached, f.req.IsolationLevel == 1, f.req.Version)
			if code == kerr.UnknownTopicOrPartition.Code && f.req.Version >= 13 {
				if _, ok := f.b.store.TopicIDOf(topic); !ok {
					code = kerr.UnknownTopicID.Code // deleted since it was named
				}
			}
		}
		if code != 0 {
			part.ErrorCode = code
			stop = true
			f.b.metrics.countError("Fetch", code)
		}
		if ch.Size > remaining && total > 0 {
			// Only the first partition with data may exceed the
			// response limit (KIP-74); this one waits for the next fetch.
			ch.Release()
			ch = storage.Chunk{}
		}
		// Versions 0-3: converted into a message set. Batches that
		// convert to nothing (transaction markers, records below the
		// fetch offset, batches compaction emptied) are read past, or
		// an old client would ask for the same offset forever.
		for from := rp.FetchOffset; ch.Size > 0 && f.req.Version < 4; {
			limit := int(min(int64(max(rp.PartitionMaxBytes, 1)), remaining))
			// What the conversion holds comes out of a budget of its
			// own, as large as the request budget
			// (queued.max.request.bytes): the records read and
			// the message set they become, which stays until the
			// response is written. Old clients each asking for a
			// large partition limit could otherwise have the broker
			// hold gigabytes.
			held, ok := f.reserveConversion(int(ch.Size + convertedCap(ch.Size, limit)))
			if !ok {
				ch.Release()
				ch = storage.Chunk{}
				break
			}
			set, next, err := downConvert(&ch, f.req.Version, from, limit)
			ch.Release()
			ch = storage.Chunk{}
			keep := int64(0) // what the set kept in the response holds
			if err == nil && len(set) > 0 {
				keep = min(int64(cap(set)), held)
			}
			f.b.convBudget.release(held - keep)
			f.held += keep
			if err != nil {
				part.ErrorCode = errorCode(err)
				stop = true
				f.b.metrics.countError("Fetch", part.ErrorCode)
				f.b.log.Warn("fetch: converting records for an old client", zap.String("topic", topic),
					zap.Int32("partition", rp.Partition), zap.Int64("offset", from), zap.Error(err))
				break
			}
			if len(set) > 0 {
				part.RecordBatches = set
				total += int64(len(set))
				remaining -= int64(len(set))
				break
			}
			rest := *rp
			rest.FetchOffset, from = next, next
			var restCode int16
			if ch, restCode = f.b.fetchPartition(topic, &rest, &part, remaining, cached, false, f.req.Version); restCode != 0 {
				ch.Release() // the next fetch, from where this one ends, hears of it
				ch = storage.Chunk{}
			}
		}
		if sp != nil {
			if f.incremental && ch.Size == 0 && code == 0 && sp.sent &&
				part.HighWatermark == sp.hwm && part.LogStartOffset == sp.logStart && part.LastStableOffset == sp.lso {
				return // no news
			}
			f.sent = append(f.sent, sessionNews{sp, part.HighWatermark, part.LogStartOffset, part.LastStableOffset, ch.Size > 0})
		}
		if ch.Size > 0 {
			part.RecordBatches = fetchMarker(len(chunks))
			chunks = append(chunks, ch)
			total += ch.Size
			remaining -= ch.Size
		}
		i := topicIndex(topic, id)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, part)
	}

	// A fetch of no partitions at all is answered at once, as Kafka's
	// ReplicaManager does ("fetch request does not require any data").
	f.sent = f.sent[:0]
	if f.sess == nil {
		none := true
		for i := range f.req.Topics {
			rt := &f.req.Topics[i]
			for j := range rt.Partitions {
				none = false
				read(rt.Topic, rt.TopicID, &rt.Partitions[j], nil)
			}
		}
		return resp, chunks, total, stop || none
	}
	s := f.sess
	resp.SessionID = s.id
	s.mu.Lock()
	defer s.mu.Unlock()
	stop = len(s.parts) == 0
	for _, sp := range s.parts {
		read(sp.tp.topic, sp.id, &sp.req, sp)
	}
	if final {
		f.commitLocked()
	}
	return resp, chunks, total, stop
}

// commit records the latest pass's answer as what the session's client
// has heard, when that answer is the one sent.
func (f *fetch) commit() {
	if f.sess == nil {
		return
	}
	f.sess.mu.Lock()
	defer f.sess.mu.Unlock()
	f.commitLocked()
}

// commitLocked does commit's work with the session's lock held: it
// records what each partition's answer said, and moves the partitions
// that returned records to the end of the session's order.
func (f *fetch) commitLocked() {
	s := f.sess
	moved := 0
	for _, n := range f.sent {
		if s.index[n.sp.tp] != n.sp {
			continue // forgotten meanwhile
		}
		n.sp.hwm, n.sp.logStart, n.sp.lso, n.sp.sent = n.hwm, n.logStart, n.lso, true
		if n.records {
			moved++
		}
	}
	if moved > 0 {
		rest := make([]*sessionPartition, 0, len(s.parts))
		var tail []*sessionPartition
		returned := make(map[*sessionPartition]bool, moved)
		for _, n := range f.sent {
			if n.records {
				returned[n.sp] = true
			}
		}
		for _, sp := range s.parts {
			if returned[sp] {
				tail = append(tail, sp)
			} else {
				rest = append(rest, sp)
			}
		}
		s.parts = append(rest, tail...)
	}
	f.sent = f.sent[:0]
}

// downConvert reads ch, whole v2 batches, as the message set a Fetch v0-v3
// client reads: format 0 before v2, format 1 from it, from offset from on
// (see record.AppendMessageSet), up to limit bytes (one message at
// least). next is the offset after ch's last batch.
func downConvert(ch *storage.Chunk, version int16, from int64, limit int) (set []byte, next int64, err error) {
	batches := make([]byte, ch.Size)
	if n, err := ch.File.ReadAt(batches, ch.Pos); int64(n) < ch.Size {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // chunks only cover written bytes
		}
		return nil, 0, fmt.Errorf("read records to convert: %w", err)
	}
	magic := int8(1)
	if version < 2 {
		magic = 0
	}
	return record.AppendMessageSet(make([]byte, 0, convertedCap(ch.Size, limit)), batches, magic, from, limit)
}

// convertedCap is the buffer downConvert starts a message set of size
// bytes of batches in: a quarter more (message headers), at most limit.
func convertedCap(size int64, limit int) int64 { return min(size+size/4, int64(limit)) }

// fetchPartition reads one partition for a fetch. cached, if not nil, is
// where the partition's log is kept between passes (a session's); it is
// looked up again when missing or closed. A read_committed fetch
// (committed) reads up to the last stable offset and is told the aborted
// transactions that may have records in what it reads. A client too old
// for zstd (Fetch before v10) gets UNSUPPORTED_COMPRESSION_TYPE from a
// topic whose compression.type is zstd, as from Kafka, rather than batches
// it cannot read; one too old for record batches (before v4) gets
// UNSUPPORTED_VERSION where message.downconversion.enable is false and
// there are records to convert.
func (b *Broker) fetchPartition(topic string, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, remaining int64, cached **storage.Log, committed bool, version int16) (storage.Chunk, int16) {
	var l *storage.Log
	if cached != nil {
		l = *cached
	}
	if l == nil || l.Closed() {
		var code int16
		if l, code = b.partitionLog(topic, rp.Partition); code != 0 {
			return storage.Chunk{}, code
		}
		if cached != nil {
			*cached = l
		}
	}
	if version < 10 {
		if cfg := l.Config(); cfg.Recompress && cfg.RecompressTo == record.CodecZstd {
			return storage.Chunk{}, kerr.UnsupportedCompressionType.Code
		}
	}
	if rp.CurrentLeaderEpoch >= 0 {
		if epoch, ok := b.store.LeaderEpoch(topic, rp.Partition); ok {
			if rp.CurrentLeaderEpoch < epoch {
				return storage.Chunk{}, kerr.FencedLeaderEpoch.Code
			}
			if rp.CurrentLeaderEpoch > epoch {
				return storage.Chunk{}, kerr.UnknownLeaderEpoch.Code
			}
		}
	}
	hwm := l.HighWatermark()
	lso := l.LastStableOffset()
	sp.HighWatermark = hwm
	sp.LastStableOffset = lso
	sp.LogStartOffset = l.LogStartOffset()
	if remaining <= 0 {
		return storage.Chunk{}, 0
	}
	maxBytes := int64(rp.PartitionMaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1
	}
	maxBytes = min(maxBytes, remaining)
	end := hwm
	if committed {
		end = lso
	}
	ch, err := l.Read(rp.FetchOffset, end, int32(min(maxBytes, 1<<31-1)))
	if err != nil {
		return storage.Chunk{}, errorCode(err)
	}
	if version < 4 && ch.Size > 0 && l.Config().NoDownConversion {
		ch.Release()
		return storage.Chunk{}, kerr.UnsupportedVersion.Code
	}
	if committed && ch.Size > 0 {
		// Loaded after the last stable offset (end): see
		// storage.Log.publishTxnLocked.
		for _, a := range l.AbortedTxns(rp.FetchOffset, min(end, ch.Below)) {
			at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
			at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
			sp.AbortedTransactions = append(sp.AbortedTransactions, at)
		}
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
// frame's size prefix. Each placeholder names its chunk: they are numbered
// as partitions are read, and the response may encode them in another
// order (a topic's partitions are answered in one topic entry, so a topic
// named twice in a request, or a session whose partitions of one topic are
// apart, reads them out of that order). Each is preceded by its length: an
// int32 16 before flexible versions, a uvarint 17 (compact bytes) from v12.
func encodeFetch(buf []byte, flexible bool, chunks []storage.Chunk) ([]outPart, []storage.Chunk) {
	parts := make([]outPart, 0, 3*len(chunks)+1)
	prevEnd := 0
	pos := 0
	size := int64(0)
	for range chunks {
		idx := bytes.Index(buf[pos:], fetchMarkerNonce[:])
		if idx < 0 || pos+idx+fetchMarkerLen > len(buf) {
			panic("fetch response placeholder missing") // broken invariant: we put it there
		}
		at := pos + idx
		i := binary.BigEndian.Uint64(buf[at+8:])
		if i >= uint64(len(chunks)) {
			panic("fetch response placeholder out of range")
		}
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
