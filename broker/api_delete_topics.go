package broker

// DeleteTopics (key 20), versions 0-6.
//
// Topics are named by name (v0-5) or by name or id (v6). The topic leaves
// the metadata first, then its partition directories are renamed aside and
// removed in the background; fetches already holding a segment finish.

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
	answer := func(name *string, id [16]byte, err error) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = name
		st.TopicID = id
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if hdr.APIVersion < 6 {
		for _, name := range req.TopicNames {
			n := name
			var id [16]byte
			if t, ok := b.store.Topic(name); ok {
				id = t.ID
			}
			answer(&n, id, b.deleteTopic(name))
		}
		return resp
	}
	for _, rt := range req.Topics {
		switch {
		case rt.Topic != nil && *rt.Topic != "":
			var id [16]byte
			if t, ok := b.store.Topic(*rt.Topic); ok {
				id = t.ID
			}
			answer(rt.Topic, id, b.deleteTopic(*rt.Topic))
		default:
			t, ok := b.store.TopicByID(meta.TopicID(rt.TopicID))
			if !ok {
				answer(nil, rt.TopicID, fmt.Errorf("topic id %s: %w", meta.TopicID(rt.TopicID), kerr.UnknownTopicID))
				continue
			}
			name := t.Name
			answer(&name, t.ID, b.deleteTopic(name))
		}
	}
	return resp
}
