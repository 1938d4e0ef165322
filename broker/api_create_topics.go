package broker

// CreateTopics (key 19), versions 0-7.
//
// NumPartitions and ReplicationFactor may be -1 for the broker defaults.
// With one broker the replication factor must be 1 (or -1), and manual
// replica assignments may only name this broker. Configs are validated
// against the topic configs gregor knows; an unknown or invalid one, or a
// null value (as in Kafka), fails the topic with INVALID_CONFIG. Manual
// assignments may list partitions 0..n-1 in any order. From v5 the response carries the
// partition count, replication factor and every effective config; from v7
// the topic id. ValidateOnly checks everything and creates nothing. A
// topic named more than once in the request is not created and is
// answered once, with INVALID_REQUEST, as in Kafka.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.CreateTopics, 0, 7, (*Broker).handleCreateTopics)
}

func (b *Broker) handleCreateTopics(_ wire.RequestHeader, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	seen := make(map[string]int)
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	// Validate each topic on its own, then create all valid ones at once
	// (one metadata update for the request).
	var valid []meta.Topic
	var validIdx []int
	for i, rt := range req.Topics {
		if seen[rt.Topic] < 0 {
			continue // a name given more than once is answered once, as in Kafka
		}
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions = -1
		st.ReplicationFactor = -1
		slot := len(resp.Topics)
		resp.Topics = append(resp.Topics, st)
		t, err := b.topicFromRequest(&req.Topics[i], seen[rt.Topic] > 1)
		if seen[rt.Topic] > 1 {
			seen[rt.Topic] = -1
		}
		if err != nil {
			b.setCreateTopicError(&resp.Topics[slot], err)
			continue
		}
		valid = append(valid, t)
		validIdx = append(validIdx, slot)
	}
	for j, err := range b.createTopics(valid, req.ValidateOnly) {
		st := &resp.Topics[validIdx[j]]
		if err != nil {
			b.setCreateTopicError(st, err)
			continue
		}
		t := valid[j]
		st.TopicID = t.ID
		st.NumPartitions = t.Partitions
		st.ReplicationFactor = 1
		layers := b.layers.Load()
		eff := layers.defaults.Effective(t.Configs)
		for _, d := range topicconfig.Defs() {
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			c.Name = d.Name
			v := eff[d.Name]
			c.Value = &v
			c.Source = layers.topicConfigSource(t.Configs, d, b.cfg.Props)
			st.Configs = append(st.Configs, c)
		}
	}
	return resp
}

func (b *Broker) setCreateTopicError(st *kmsg.CreateTopicsResponseTopic, err error) {
	st.ErrorCode = errorCode(err)
	b.metrics.countError("CreateTopics", st.ErrorCode)
	st.ErrorMessage = errorMessage(err)
}

// topicFromRequest validates one topic of a CreateTopics request.
func (b *Broker) topicFromRequest(rt *kmsg.CreateTopicsRequestTopic, duplicate bool) (meta.Topic, error) {
	if duplicate {
		return meta.Topic{}, fmt.Errorf("topic %q appears more than once in the request: %w", rt.Topic, kerr.InvalidRequest)
	}
	partitions := rt.NumPartitions
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return meta.Topic{}, fmt.Errorf("replica assignment given with partitions or replication factor: %w", kerr.InvalidRequest)
		}
		seen := make([]bool, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			// Any order, as in Kafka, but each of 0..n-1 exactly once.
			if a.Partition < 0 || int(a.Partition) >= len(seen) || seen[a.Partition] {
				return meta.Topic{}, fmt.Errorf("replica assignment partitions must be 0..n-1, each once (partition %d): %w", a.Partition, kerr.InvalidReplicaAssignment)
			}
			seen[a.Partition] = true
			if err := b.checkReplicas(a.Replicas); err != nil {
				return meta.Topic{}, fmt.Errorf("partition %d: %w", a.Partition, err)
			}
		}
		partitions = int32(len(rt.ReplicaAssignment))
	} else if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
		if rt.ReplicationFactor < 1 {
			return meta.Topic{}, fmt.Errorf("replication factor %d: %w", rt.ReplicationFactor, kerr.InvalidReplicationFactor)
		}
		return meta.Topic{}, fmt.Errorf("replication factor %d is larger than the 1 available broker: %w", rt.ReplicationFactor, kerr.InvalidReplicationFactor)
	}
	configs := make(map[string]string, len(rt.Configs))
	var errs []error
	for _, c := range rt.Configs {
		if c.Value == nil {
			// As in Kafka (KRaft): a config is left out to take the default.
			errs = append(errs, fmt.Errorf("null value for topic config %q: leave it out to use the default: %w", c.Name, topicconfig.ErrInvalid))
			continue
		}
		v := topicconfig.Normalize(*c.Value)
		if err := topicconfig.Validate(c.Name, v); err != nil {
			errs = append(errs, err)
			continue
		}
		configs[c.Name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return meta.Topic{}, err
	}
	return b.newTopic(rt.Topic, partitions, configs)
}

// checkReplicas checks a partition's replica assignment: this broker
// alone, once.
func (b *Broker) checkReplicas(replicas []int32) error {
	switch {
	case len(replicas) == 0:
		return fmt.Errorf("replicas []: a partition needs a replica: %w", kerr.InvalidReplicaAssignment)
	case len(replicas) > 1:
		for i, r := range replicas {
			if slices.Contains(replicas[:i], r) {
				return fmt.Errorf("replicas %v: broker %d is named twice: %w", replicas, r, kerr.InvalidReplicaAssignment)
			}
		}
	}
	if len(replicas) != 1 || replicas[0] != b.cfg.BrokerID {
		return fmt.Errorf("replicas %v: only broker %d exists: %w", replicas, b.cfg.BrokerID, kerr.InvalidReplicaAssignment)
	}
	return nil
}
