// Package meta owns cluster metadata: which topics exist, how many
// partitions each has, their configs, who leads each partition and in which
// leader epoch, which brokers are alive, and the producer-id counter.
//
// Everything goes through the Store interface so the standalone store
// (files in the data directory, no other service) and a ZooKeeper-backed
// store can be swapped without touching storage or the protocol handlers.
// The package does not own partition data (broker/storage does) nor the
// protocol (broker does).
package meta

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Errors returned by Store implementations; check with errors.Is.
var (
	ErrTopicExists       = errors.New("topic already exists")
	ErrUnknownTopic      = errors.New("unknown topic")
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrClosed            = errors.New("metadata store closed")
	ErrProducerIDsSpent  = errors.New("producer ids exhausted")
	ErrStoreUnavailable  = errors.New("metadata store unavailable")
	ErrInvalidEntity     = errors.New("invalid config entity")
)

// TopicID is a topic's 16-byte UUID (KIP-516), as kmsg carries it.
type TopicID [16]byte

// NewTopicID returns a random version-4 UUID.
func NewTopicID() (TopicID, error) {
	var id TopicID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("generate topic id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// String formats the id the way Kafka's tools print it (base64url, no padding
// would be Kafka's; we use the canonical hex UUID form, which is unambiguous).
func (id TopicID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// Topic is one topic's metadata.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"` // only explicitly set topic configs
	Internal   bool              `json:"internal,omitempty"`
}

// PartitionState is the leadership state of one partition. The high
// watermark is not metadata: it lives with the log.
type PartitionState struct {
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// Broker is a registered broker.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack *string
}

// Store is cluster metadata. Implementations are safe for concurrent use.
// Reads return copies the caller may keep.
type Store interface {
	// ClusterID is stable for the life of the cluster.
	ClusterID() string
	// ControllerID is the broker currently acting as controller.
	ControllerID() int32
	// Brokers lists live brokers.
	Brokers() []Broker
	// Topics lists all topics, sorted by name.
	Topics() []Topic
	// Topic looks one topic up by name.
	Topic(name string) (Topic, bool)
	// TopicByID looks one topic up by id.
	TopicByID(id TopicID) (Topic, bool)
	// TopicName is the name of the topic with id, without copying the
	// topic (Fetch v13+ names topics by id).
	TopicName(id TopicID) (string, bool)
	// TopicIDOf is the id of the topic named name.
	TopicIDOf(name string) (TopicID, bool)
	// CreateTopic adds a topic; ErrTopicExists if the name is taken.
	CreateTopic(t Topic) error
	// CreateTopics adds several topics in one durable update, all or
	// none; ErrTopicExists if any name is taken or given twice.
	CreateTopics(ts []Topic) error
	// DeleteTopic removes a topic; ErrUnknownTopic if absent.
	DeleteTopic(name string) error
	// DeleteTopics removes several topics in one durable update, all or
	// none; ErrUnknownTopic if any is missing (or named twice).
	DeleteTopics(names []string) error
	// SetPartitionCount grows a topic to n partitions.
	SetPartitionCount(name string, n int32) error
	// SetTopicConfigs replaces a topic's explicitly set configs.
	SetTopicConfigs(name string, configs map[string]string) error
	// Partition returns the leadership state of one partition.
	Partition(topic string, partition int32) (PartitionState, bool)
	// LeaderEpoch returns a partition's leader epoch: Partition's
	// LeaderEpoch, without copying the rest (fetches check it for every
	// partition they read).
	LeaderEpoch(topic string, partition int32) (int32, bool)
	// BrokerConfigs returns the dynamic broker configs of entity: "" for
	// the cluster-wide defaults, a decimal broker id for one broker's own
	// (empty if none are set).
	BrokerConfigs(entity string) map[string]string
	// SetBrokerConfigs replaces the dynamic broker configs of entity
	// (none removes them); ErrInvalidEntity if entity is neither "" nor a
	// broker id.
	SetBrokerConfigs(entity string, configs map[string]string) error
	// NextProducerID allocates a producer id, unique for the cluster's life.
	NextProducerID() (int64, error)
	// Close releases the store.
	Close() error
}
