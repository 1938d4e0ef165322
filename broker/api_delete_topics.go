package broker

// DeleteTopics (key 20), versions 0-6.
//
// Topics are named by name (v0-5) or by name or id (v6). The topic leaves
// the metadata first, then its partition directories are renamed aside and
// removed in the background (fetches already holding a segment finish),
// and every group's committed offsets for it are deleted before the answer.
// As in Kafka, an entry with both a name and an id, or neither, is
// INVALID_REQUEST, and so is a topic the request names more than once (by
// name twice, or by name and by id), answered once per name and once per
// id given; such a topic is not deleted. With delete.topic.enable=false
// every entry is refused with TOPIC_DELETION_DISABLED (INVALID_REQUEST
// before v3), as in Kafka.

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
	// Resolve every entry to a topic name first; a topic named more than
	// once (by name twice, or by name and by its id) is refused, answered
	// once per name and id given, and deleted by none, as in Kafka.
	type entry struct {
		name *string
		id   [16]byte
		err  error
	}
	var entries []entry
	if hdr.APIVersion < 6 {
		for _, name := range req.TopicNames {
			entries = append(entries, entry{name: &name})
		}
	} else {
		for _, rt := range req.Topics {
			hasName, hasID := rt.Topic != nil && *rt.Topic != "", rt.TopicID != [16]byte{}
			switch {
			case hasName && hasID:
				entries = append(entries, entry{name: rt.Topic, id: rt.TopicID, err: fmt.Errorf("a topic is named by name or by id, not both: %w", kerr.InvalidRequest)})
			case hasName:
				entries = append(entries, entry{name: rt.Topic})
			case !hasID:
				entries = append(entries, entry{err: fmt.Errorf("neither a topic name nor an id: %w", kerr.InvalidRequest)})
			default:
				t, ok := b.store.TopicByID(meta.TopicID(rt.TopicID))
				if !ok {
					entries = append(entries, entry{id: rt.TopicID, err: fmt.Errorf("topic id %s: %w", meta.TopicID(rt.TopicID), kerr.UnknownTopicID)})
					continue
				}
				name := t.Name
				entries = append(entries, entry{name: &name, id: rt.TopicID})
			}
		}
	}
	named := map[string]int{}
	for _, e := range entries {
		if e.err == nil {
			named[*e.name]++
		}
	}
	// The names to delete go through deleteTopics together (one metadata
	// update for the request); slots are their answers.
	var names []string
	var slots []int
	answered := map[string]bool{}
	for _, e := range entries {
		if e.err == nil && named[*e.name] > 1 {
			// The same name, or the same id, given again is answered
			// once, as in Kafka; a name and its topic's id both are.
			key := fmt.Sprintf("%s/%x", *e.name, e.id)
			if answered[key] {
				continue
			}
			answered[key] = true
		}
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = e.name, e.id
		err := e.err
		if err == nil && named[*e.name] > 1 {
			err = fmt.Errorf("topic %q is named more than once in the request: %w", *e.name, kerr.InvalidRequest)
		}
		if err == nil && !b.cfg.boolProp("delete.topic.enable") {
			// As in Kafka: versions before 3 have no code for it.
			code := kerr.TopicDeletionDisabled
			if hdr.APIVersion < 3 {
				code = kerr.InvalidRequest
			}
			err = fmt.Errorf("topic deletion is disabled on this broker (delete.topic.enable=false): %w", code)
		}
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			b.metrics.countError("DeleteTopics", st.ErrorCode)
		} else {
			if t, ok := b.store.Topic(*e.name); ok {
				st.TopicID = t.ID
			}
			names = append(names, *e.name)
			slots = append(slots, len(resp.Topics))
		}
		resp.Topics = append(resp.Topics, st)
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
