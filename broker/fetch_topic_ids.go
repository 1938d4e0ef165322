package broker

// Fetch v13+ (KIP-516) names topics by id, not by name. The request's ids
// are turned into names as the request arrives (resolveFetchIDs), so that
// everything after (sessions, reads, long polls) works by name as for
// older versions, and the response names each topic by its id again
// (fetchTopicID). An id the broker does not know (a topic deleted, or
// deleted and created again under the same name) is answered
// UNKNOWN_TOPIC_ID; a session partition whose topic was created again
// since it joined the session is answered INCONSISTENT_TOPIC_ID. Either
// way a consumer learns that the topic it was reading is gone, where by
// name it would go on reading the new topic from the old offset and skip
// its first records.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/meta"
)

// unknownIDName is the name a v13+ fetch's topic id that names no topic is
// known by while the fetch is answered: a NUL is in no topic's name.
func unknownIDName(id [16]byte) string { return "\x00" + string(id[:]) }

func isUnknownIDName(name string) bool { return len(name) == 17 && name[0] == 0 }

// resolveFetchIDs names the topics (and forgotten topics) of a v13+ fetch
// by their ids.
func (b *Broker) resolveFetchIDs(req *kmsg.FetchRequest) {
	if req.Version < 13 {
		return
	}
	name := func(id [16]byte) string {
		if n, ok := b.store.TopicName(meta.TopicID(id)); ok {
			return n
		}
		return unknownIDName(id)
	}
	for i := range req.Topics {
		req.Topics[i].Topic = name(req.Topics[i].TopicID)
	}
	for i := range req.ForgottenTopics {
		req.ForgottenTopics[i].Topic = name(req.ForgottenTopics[i].TopicID)
	}
}

// fetchTopicID is the id a v13+ response names topic by.
func (b *Broker) fetchTopicID(topic string) [16]byte {
	var id [16]byte
	if isUnknownIDName(topic) {
		copy(id[:], topic[1:])
		return id
	}
	if tid, ok := b.store.TopicIDOf(topic); ok {
		id = tid
	}
	return id
}

// topicIDCode is the error a v13+ fetch of topic gets before it is read:
// UNKNOWN_TOPIC_ID for an id that names no topic, INCONSISTENT_TOPIC_ID
// for a session partition (id, what it joined the session with) whose
// topic was created again since; 0 otherwise.
func (b *Broker) topicIDCode(topic string, sp *sessionPartition) int16 {
	if isUnknownIDName(topic) {
		return kerr.UnknownTopicID.Code
	}
	if sp == nil || sp.id == ([16]byte{}) || (sp.log != nil && !sp.log.Closed()) {
		return 0 // the log it read last is still the topic's
	}
	cur, ok := b.store.TopicIDOf(topic)
	switch {
	case !ok:
		return kerr.UnknownTopicID.Code
	case cur != sp.id:
		return kerr.InconsistentTopicID.Code
	}
	return 0
}
