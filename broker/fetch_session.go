package broker

// Fetch sessions (KIP-227). A consumer reading many partitions names them
// all in every full fetch request, and a full response answers for every
// one of them even when nothing changed. A session remembers the
// partitions and what the client last heard of each, so that an
// incremental request names only partitions whose fetch position changed
// (or that are added, or forgotten) and an incremental response carries
// only partitions with records, an error, or a new high watermark or log
// start offset.
//
// A session belongs to the connection that created it and ends with it:
// a client that reconnects and names its old session gets
// FETCH_SESSION_ID_NOT_FOUND and starts a new one with a full request,
// which every session-using client does. The broker holds at most
// max.incremental.fetch.session.cache.slots sessions (0 turns sessions
// off); past that, full requests are answered without creating one
// (session id 0), which clients accept as "no session".

import (
	"crypto/rand"
	"encoding/binary"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/storage"
)

// maxSessionsPerConn bounds the sessions one connection may hold; a client
// uses one per broker connection, so more means it abandons sessions
// without closing them, and the least recently used is dropped.
const maxSessionsPerConn = 4

type fetchSession struct {
	id int32

	mu sync.Mutex
	// epoch is the SessionEpoch the next incremental request must carry.
	epoch int32
	// parts is the order partitions are read in. Partitions that return
	// records move to the end, so that under the response size limit
	// every partition gets its turn.
	parts []*sessionPartition
	index map[topicPartition]*sessionPartition
	used  uint64 // the connection's use counter when last used (LRU)

	// wake is registered with the broker's waiters for every partition
	// of the session while it lives, so a long poll registers nothing. A
	// wake-up left in it from an append no fetch waited for costs the
	// next long poll one pass (which it makes anyway).
	wake    chan struct{}
	waiters *waiters
}

// sessionPartition is one partition of a session: the client's latest
// fetch parameters, and what the client last heard of the partition.
type sessionPartition struct {
	tp  topicPartition
	id  [16]byte // the topic's id when it joined (v13+; else zero)
	req kmsg.FetchRequestTopicPartition
	log *storage.Log // kept between passes; see fetchPartition
	// hwm and logStart as last sent; sent is false until a response has
	// carried the partition, which forces it into the next one.
	hwm, logStart, lso int64
	sent               bool
}

// quiet reports, from the kept log alone, that the partition has no news
// for the client: it has been told the current high watermark and log
// start offset and is fetching from the high watermark. It is what makes
// an incremental pass over thousands of idle partitions cheap: no lookup
// by name, no leader-epoch check, no read. (A leader change must make a
// partition not quiet once leaders can change.)
func (sp *sessionPartition) quiet() bool {
	l := sp.log
	if !sp.sent || l == nil || l.Closed() {
		return false
	}
	hwm := l.HighWatermark()
	return hwm == sp.hwm && sp.req.FetchOffset == hwm && l.LogStartOffset() == sp.logStart && l.LastStableOffset() == sp.lso
}

// connSessions is a connection's fetch sessions.
type connSessions struct {
	mu struct {
		sync.Mutex
		m    map[int32]*fetchSession
		uses uint64
	}
}

// sessionFor resolves a fetch request's session fields. It returns the
// session to read (nil for a sessionless full fetch), whether the response
// is incremental, and a top-level error code. A full request with epoch 0
// creates a session when the broker has room; one that names a session
// (epoch 0 or -1) closes it first.
func (c *conn) sessionFor(req *kmsg.FetchRequest) (s *fetchSession, incremental bool, code int16) {
	switch {
	case req.SessionEpoch < -1:
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	case req.SessionEpoch <= 0:
		if req.SessionID != 0 {
			c.closeSession(req.SessionID)
		}
		if req.SessionEpoch == 0 {
			s = c.newSession(req)
		}
		return s, false, 0
	}
	cs := &c.sessions
	cs.mu.Lock()
	s = cs.mu.m[req.SessionID]
	if s != nil {
		cs.mu.uses++
		s.used = cs.mu.uses
	}
	cs.mu.Unlock()
	if s == nil {
		return nil, false, kerr.FetchSessionIDNotFound.Code
	}
	s.mu.Lock()
	if req.SessionEpoch != s.epoch {
		s.mu.Unlock()
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	s.epoch = nextEpoch(s.epoch)
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			s.put(rt.Topic, rt.TopicID, &rt.Partitions[j])
		}
	}
	s.forget(req.ForgottenTopics)
	over := len(s.parts) > c.b.maxSessionPartitions()
	s.mu.Unlock()
	if over {
		// Grown past what any consumer of this broker reads: the
		// client starts again with a full request, answered without a
		// session.
		c.closeSession(s.id)
		return nil, false, kerr.FetchSessionIDNotFound.Code
	}
	return s, true, 0
}

// nextEpoch follows epoch, wrapping past the largest int32 to 1 (0 and
// -1 mean full requests).
func nextEpoch(epoch int32) int32 {
	if epoch == 1<<31-1 {
		return 1
	}
	return epoch + 1
}

// newSession creates a session holding req's partitions, or returns nil
// when the broker or the connection has no room.
func (c *conn) newSession(req *kmsg.FetchRequest) *fetchSession {
	b := c.b
	limit := b.cfg.prop("max.incremental.fetch.session.cache.slots")
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	if n > b.maxSessionPartitions() {
		return nil
	}
	cs := &c.sessions
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.mu.m) >= maxSessionsPerConn {
		var lru *fetchSession
		for _, s := range cs.mu.m {
			if lru == nil || s.used < lru.used {
				lru = s
			}
		}
		delete(cs.mu.m, lru.id)
		lru.end()
		b.fetchSessions.Add(-1)
	}
	if b.fetchSessions.Add(1) > limit {
		b.fetchSessions.Add(-1)
		return nil
	}
	if cs.mu.m == nil {
		cs.mu.m = make(map[int32]*fetchSession)
	}
	s := &fetchSession{epoch: 1, index: make(map[topicPartition]*sessionPartition),
		wake: make(chan struct{}, 1), waiters: b.waiters}
	for s.id == 0 || cs.mu.m[s.id] != nil {
		var r [4]byte
		rand.Read(r[:])
		s.id = int32(binary.BigEndian.Uint32(r[:]) &^ (1 << 31)) // positive
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			s.put(rt.Topic, rt.TopicID, &rt.Partitions[j])
		}
	}
	cs.mu.uses++
	s.used = cs.mu.uses
	cs.mu.m[s.id] = s
	return s
}

// closeSession ends one of the connection's sessions, if it has it.
func (c *conn) closeSession(id int32) {
	cs := &c.sessions
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if s, ok := cs.mu.m[id]; ok {
		delete(cs.mu.m, id)
		s.end()
		c.b.fetchSessions.Add(-1)
	}
}

// closeSessions ends all of the connection's sessions; the connection is
// closing.
func (c *conn) closeSessions() {
	cs := &c.sessions
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := len(cs.mu.m)
	for _, s := range cs.mu.m {
		s.end()
	}
	cs.mu.m = nil
	c.b.fetchSessions.Add(int64(-n))
}

// put adds a partition to the session or updates its fetch parameters.
// s.mu is held (or s is not yet shared).
func (s *fetchSession) put(topic string, id [16]byte, rp *kmsg.FetchRequestTopicPartition) {
	tp := topicPartition{topic, rp.Partition}
	if sp := s.index[tp]; sp != nil {
		sp.req = *rp
		return
	}
	sp := &sessionPartition{tp: tp, id: id, req: *rp}
	s.index[tp] = sp
	s.parts = append(s.parts, sp)
	s.waiters.add([]topicPartition{tp}, s.wake)
}

// forget removes the forgotten partitions from the session, in one pass
// over its partitions whatever their number; s.mu is held.
func (s *fetchSession) forget(forgotten []kmsg.FetchRequestForgottenTopic) {
	var tps []topicPartition
	for _, ft := range forgotten {
		for _, p := range ft.Partitions {
			tp := topicPartition{ft.Topic, p}
			if _, ok := s.index[tp]; ok {
				delete(s.index, tp)
				tps = append(tps, tp)
			}
		}
	}
	if len(tps) == 0 {
		return
	}
	s.waiters.remove(tps, s.wake)
	kept := s.parts[:0]
	for _, sp := range s.parts {
		if s.index[sp.tp] == sp {
			kept = append(kept, sp)
		}
	}
	clear(s.parts[len(kept):])
	s.parts = kept
}

// sessionPartitionSlack is how many partitions beyond those it hosts a
// fetch session may hold: partitions of topics not created yet, or
// deleted, that a consumer still names.
const sessionPartitionSlack = 1000

// maxSessionPartitions is the most partitions a fetch session may hold. A
// consumer reads at most every partition the broker hosts; a session
// naming far more (unknown partitions cost memory like real ones) is not
// kept, and the client fetches without one.
func (b *Broker) maxSessionPartitions() int {
	return b.logs.Len() + sessionPartitionSlack
}

// end unregisters an ended session's wake-ups.
func (s *fetchSession) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	tps := make([]topicPartition, len(s.parts))
	for i, sp := range s.parts {
		tps[i] = sp.tp
	}
	s.waiters.remove(tps, s.wake)
}
