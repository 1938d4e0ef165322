package meta

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
)

// state is the standalone store's metadata, as the snapshot holds it and
// as the journal's entries change it. Not safe for concurrent use.
type state struct {
	clusterID       string
	brokerID        int32
	producerIDLimit int64 // ids below this may have been handed out
	// topics never has a *Topic changed in place: a change replaces it.
	topics map[string]*Topic
	names  []string // the keys of topics, sorted
	// byID maps each topic's id to its name; kept by apply (nil until
	// the first topic).
	byID map[TopicID]string
	// brokerConfigs are the dynamic broker configs, by entity: "" is
	// the cluster-wide default, a decimal broker id one broker's own.
	// A map held here is never changed in place: a change replaces it.
	brokerConfigs map[string]map[string]string
}

// Journal operations (the "op" of an entry; see docs/format.md).
const (
	opCreateTopics    = "create_topics"
	opDeleteTopics    = "delete_topics"
	opSetPartitions   = "set_partitions"
	opSetConfigs      = "set_configs"
	opProducerIDLimit = "producer_id_limit"
	opBrokerConfigs   = "set_broker_configs"
)

// entry is one change to the state: the JSON body of a journal entry. Only
// the fields its op names are set.
type entry struct {
	Op         string            `json:"op"`
	Topics     []Topic           `json:"topics,omitempty"`     // create_topics
	Names      []string          `json:"names,omitempty"`      // delete_topics
	Name       string            `json:"name,omitempty"`       // set_partitions, set_configs, set_broker_configs
	Partitions int32             `json:"partitions,omitempty"` // set_partitions
	Configs    map[string]string `json:"configs,omitempty"`    // set_configs, set_broker_configs
	Limit      int64             `json:"limit,omitempty"`      // producer_id_limit
}

// check reports whether e applies to st, with the error the Store method
// making the change returns when it does not.
func (st *state) check(e *entry) error {
	switch e.Op {
	case opCreateTopics:
		added := make(map[string]bool, len(e.Topics))
		for i := range e.Topics {
			t := &e.Topics[i]
			if t.Partitions < 1 {
				return fmt.Errorf("create topic %q with %d partitions: %w", t.Name, t.Partitions, ErrInvalidPartitions)
			}
			if _, ok := st.topics[t.Name]; ok || added[t.Name] {
				return fmt.Errorf("create topic %q: %w", t.Name, ErrTopicExists)
			}
			added[t.Name] = true
		}
	case opDeleteTopics:
		gone := make(map[string]bool, len(e.Names))
		for _, name := range e.Names {
			if _, ok := st.topics[name]; !ok || gone[name] {
				return fmt.Errorf("delete topic %q: %w", name, ErrUnknownTopic)
			}
			gone[name] = true
		}
	case opSetPartitions:
		t, ok := st.topics[e.Name]
		if !ok {
			return fmt.Errorf("topic %q: %w", e.Name, ErrUnknownTopic)
		}
		if e.Partitions <= t.Partitions {
			return fmt.Errorf("topic %q has %d partitions, cannot set %d: %w", e.Name, t.Partitions, e.Partitions, ErrInvalidPartitions)
		}
	case opSetConfigs:
		if _, ok := st.topics[e.Name]; !ok {
			return fmt.Errorf("topic %q: %w", e.Name, ErrUnknownTopic)
		}
	case opBrokerConfigs:
		if err := checkBrokerEntity(e.Name); err != nil {
			return err
		}
	case opProducerIDLimit:
		if e.Limit <= st.producerIDLimit {
			return fmt.Errorf("producer id limit %d does not exceed the current %d", e.Limit, st.producerIDLimit)
		}
	default:
		return fmt.Errorf("unknown operation %q", e.Op)
	}
	return nil
}

// apply makes the change e, which check accepted. st takes ownership of
// e's topics and configs.
func (st *state) apply(e *entry) {
	switch e.Op {
	case opCreateTopics:
		if st.byID == nil {
			st.byID = make(map[TopicID]string, len(e.Topics))
		}
		for i := range e.Topics {
			t := e.Topics[i]
			st.topics[t.Name] = &t
			st.byID[t.ID] = t.Name
		}
		st.addNames(e.Topics)
	case opDeleteTopics:
		gone := make(map[string]bool, len(e.Names))
		for _, name := range e.Names {
			if t := st.topics[name]; t != nil && st.byID[t.ID] == name {
				delete(st.byID, t.ID)
			}
			delete(st.topics, name)
			gone[name] = true
		}
		st.names = slices.DeleteFunc(st.names, func(name string) bool { return gone[name] })
	case opSetPartitions:
		t := *st.topics[e.Name]
		t.Partitions = e.Partitions
		st.topics[e.Name] = &t
	case opSetConfigs:
		t := *st.topics[e.Name]
		t.Configs = make(map[string]string, len(e.Configs))
		for k, v := range e.Configs {
			t.Configs[k] = v
		}
		st.topics[e.Name] = &t
	case opBrokerConfigs:
		st.setBrokerConfigs(e.Name, e.Configs)
	case opProducerIDLimit:
		st.producerIDLimit = e.Limit
	}
}

// checkBrokerEntity checks the entity of dynamic broker configs: "" (the
// cluster-wide default) or a broker id, in decimal without leading zeros.
func checkBrokerEntity(entity string) error {
	if entity == "" {
		return nil
	}
	id, err := strconv.ParseInt(entity, 10, 32)
	if err != nil || id < 0 || strconv.FormatInt(id, 10) != entity {
		return fmt.Errorf("dynamic broker configs of %q: not a broker id: %w", entity, ErrInvalidEntity)
	}
	return nil
}

// setBrokerConfigs replaces the dynamic configs of entity (none: removes
// them).
func (st *state) setBrokerConfigs(entity string, configs map[string]string) {
	if len(configs) == 0 {
		delete(st.brokerConfigs, entity)
		return
	}
	if st.brokerConfigs == nil {
		st.brokerConfigs = make(map[string]map[string]string, 1)
	}
	st.brokerConfigs[entity] = maps.Clone(configs)
}

// addNames adds the names of ts, none of them present, to the sorted
// names: one insertion each for a few (the common one-topic create costs a
// copy of the slice, not a sort), a sort for many.
func (st *state) addNames(ts []Topic) {
	if len(ts) <= 16 {
		for i := range ts {
			at, _ := slices.BinarySearch(st.names, ts[i].Name)
			st.names = slices.Insert(st.names, at, ts[i].Name)
		}
		return
	}
	for i := range ts {
		st.names = append(st.names, ts[i].Name)
	}
	sort.Strings(st.names)
}

// sortedTopics returns the topics sorted by name. The pointers are st's:
// the caller must not change what they point to.
func (st *state) sortedTopics() []*Topic {
	out := make([]*Topic, len(st.names))
	for i, name := range st.names {
		out[i] = st.topics[name]
	}
	return out
}
