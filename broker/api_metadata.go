package broker

// Metadata (key 3), versions 0-12.
//
// Lists this broker and the requested topics (all topics when the topic
// list is null, or empty at v0). Unknown topics are created when the broker
// allows auto creation and the request does too (always at v0-3); they are
// created synchronously, so the answer already carries the new partitions.
// Topics can be named by id from v12 (the name is filled in); at v10 and
// v11 a topic with a null name or an id is INVALID_REQUEST for the whole
// request, as in Kafka. Topic ids are returned from v10; leader epochs from
// v7. Authorized operations (v8+), when asked for, are every operation the
// resource type supports, as Kafka answers without an authorizer.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.Metadata, 0, 12, (*Broker).handleMetadata)
	markFrameReusable(kmsg.Metadata)
}

func (b *Broker) handleMetadata(hdr wire.RequestHeader, req *kmsg.MetadataRequest) kmsg.Response {
	if hdr.APIVersion < 12 {
		for _, rt := range req.Topics {
			if rt.Topic == nil || rt.TopicID != [16]byte{} {
				return b.metadataRequestError(req, kerr.InvalidRequest.Code)
			}
		}
	}
	resp := b.metadataTopics(hdr, req)
	if req.IncludeTopicAuthorizedOperations {
		for i := range resp.Topics {
			resp.Topics[i].AuthorizedOperations = topicOperations
		}
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = clusterOperations
	}
	return resp
}

// metadataRequestError is Kafka's answer to a Metadata request it refuses
// whole: no brokers, and every requested topic with code.
func (b *Broker) metadataRequestError(req *kmsg.MetadataRequest, code int16) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	for _, rt := range req.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		mt := b.metadataTopicError(name, rt.TopicID, code)
		mt.Topic = &name
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (b *Broker) metadataTopics(hdr wire.RequestHeader, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	for _, br := range b.store.Brokers() {
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.ID, br.Host, br.Port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	cid := b.store.ClusterID()
	resp.ClusterID = &cid
	resp.ControllerID = b.store.ControllerID()

	allowCreate := req.AllowAutoTopicCreation || hdr.APIVersion < 4
	all := req.Topics == nil || (hdr.APIVersion == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.store.Topics() {
			resp.Topics = append(resp.Topics, b.metadataTopic(t))
		}
		return resp
	}
	var seen onceSet
	for _, rt := range req.Topics {
		if len(req.Topics) > 1 {
			key := "id\x00" + string(rt.TopicID[:])
			if rt.Topic != nil && *rt.Topic != "" {
				key = *rt.Topic
			}
			if !seen.first(key) {
				continue // a set of topics, as in Kafka (see onceSet)
			}
		}
		var (
			t  meta.Topic
			ok bool
		)
		switch {
		case rt.Topic != nil && (*rt.Topic != "" || rt.TopicID == [16]byte{}):
			// By name: "" with no id too, which is an invalid name
			// (INVALID_TOPIC_EXCEPTION, as from Kafka), not a lookup by
			// the zero id.
			t, ok = b.store.Topic(*rt.Topic)
			if !ok {
				if err := validateTopicName(*rt.Topic); err != nil {
					resp.Topics = append(resp.Topics, b.metadataTopicError(*rt.Topic, rt.TopicID, kerr.InvalidTopicException.Code))
					continue
				}
				if !allowCreate {
					resp.Topics = append(resp.Topics, b.metadataTopicError(*rt.Topic, rt.TopicID, kerr.UnknownTopicOrPartition.Code))
					continue
				}
				var code int16
				t, code = b.autoCreateTopic(*rt.Topic)
				if code != 0 {
					resp.Topics = append(resp.Topics, b.metadataTopicError(*rt.Topic, rt.TopicID, code))
					continue
				}
			}
		default:
			t, ok = b.store.TopicByID(meta.TopicID(rt.TopicID))
			if !ok {
				resp.Topics = append(resp.Topics, b.metadataTopicError("", rt.TopicID, kerr.UnknownTopicID.Code))
				continue
			}
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(t))
	}
	return resp
}

func (b *Broker) metadataTopicError(name string, id [16]byte, code int16) kmsg.MetadataResponseTopic {
	b.metrics.countError("Metadata", code)
	mt := kmsg.NewMetadataResponseTopic()
	if name != "" || id == [16]byte{} {
		mt.Topic = &name // null only for a topic asked for by id
	}
	mt.TopicID = id
	mt.ErrorCode = code
	return mt
}

func (b *Broker) metadataTopic(t meta.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	for p := int32(0); p < t.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		st, ok := b.store.Partition(t.Name, p)
		if !ok {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		} else {
			mp.Leader = st.Leader
			mp.LeaderEpoch = st.LeaderEpoch
			mp.Replicas = st.Replicas
			mp.ISR = st.ISR
			mp.OfflineReplicas = []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
