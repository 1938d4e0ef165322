package broker

// DeleteTopics (key 20), versions 0-6.
//
// Topics are named by name (v0-5) or by name or id (v6). The topic leaves
// the metadata first, then its partition directories are renamed aside and
// removed in the background (fetches already holding a segment finish),
// and every group's committed offsets for it are deleted before the answer.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DeleteTopics, 0, 6, (*Broker).handleDeleteTopics)
}

func (b *Broker) handleDeleteTopics(hdr wire.RequestHeader, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	// Each answer is filled in order; the names to delete go through
	// deleteTopics together (one metadata update for the request).
	var names []string
	var slots []int
	answer := func(name *string, id [16]byte, err error) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = name
		st.TopicID = id
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			b.metrics.countError("DeleteTopics", st.ErrorCode)
		}
		resp.Topics = append(resp.Topics, st)
	}
	byName := func(name *string) {
		var id [16]byte
		if t, ok := b.store.Topic(*name); ok {
			id = t.ID
		}
		answer(name, id, nil)
		names = append(names, *name)
		slots = append(slots, len(resp.Topics)-1)
	}
	if hdr.APIVersion < 6 {
		for _, name := range req.TopicNames {
			byName(&name)
		}
	} else {
		for _, rt := range req.Topics {
			if rt.Topic != nil && *rt.Topic != "" {
				byName(rt.Topic)
				continue
			}
			t, ok := b.store.TopicByID(meta.TopicID(rt.TopicID))
			if !ok {
				answer(nil, rt.TopicID, fmt.Errorf("topic id %s: %w", meta.TopicID(rt.TopicID), kerr.UnknownTopicID))
				continue
			}
			name := t.Name
			byName(&name)
		}
	}
	for j, err := range b.deleteTopics(names) {
		if err != nil {
			st := &resp.Topics[slots[j]]
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			b.metrics.countError("DeleteTopics", st.ErrorCode)
		}
	}
	return resp
}
