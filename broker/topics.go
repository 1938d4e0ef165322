package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/topicconfig"
)

// maxTopicNameLen is Kafka's limit (249, so that <topic>-<partition>
// directory names fit in 255 bytes).
const maxTopicNameLen = 249

// validateTopicName applies Kafka's topic naming rules.
func validateTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("topic name is empty: %w", kerr.InvalidTopicException)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("topic name %q is not allowed: %w", name, kerr.InvalidTopicException)
	}
	if len(name) > maxTopicNameLen {
		return fmt.Errorf("topic name is %d bytes, the limit is %d: %w", len(name), maxTopicNameLen, kerr.InvalidTopicException)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has illegal character %q (allowed: ASCII letters, digits, '.', '_', '-'): %w", name, c, kerr.InvalidTopicException)
		}
	}
	return nil
}

// partitionLog returns the log of a partition this broker leads, or the
// error code to answer with.
func (b *Broker) partitionLog(topic string, partition int32) (*storage.Log, int16) {
	if l := b.logs.Log(topic, partition); l != nil {
		return l, 0
	}
	return nil, kerr.UnknownTopicOrPartition.Code
}

// createTopic validates and creates a topic and its logs. Configs are
// explicit topic configs (already validated by the caller or validated
// here).
func (b *Broker) createTopic(name string, partitions int32, configs map[string]string, validateOnly bool) (meta.Topic, error) {
	if err := validateTopicName(name); err != nil {
		return meta.Topic{}, err
	}
	if partitions == -1 {
		partitions = b.cfg.NumPartitions
	}
	if partitions < 1 {
		return meta.Topic{}, fmt.Errorf("%d partitions requested: %w", partitions, kerr.InvalidPartitions)
	}
	if partitions > 100000 {
		return meta.Topic{}, fmt.Errorf("%d partitions requested, the limit is 100000: %w", partitions, kerr.InvalidPartitions)
	}
	var errs []error
	for k, v := range configs {
		if err := topicconfig.Validate(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return meta.Topic{}, err
	}
	id, err := meta.NewTopicID()
	if err != nil {
		return meta.Topic{}, err
	}
	t := meta.Topic{Name: name, ID: id, Partitions: partitions, Configs: configs}
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	if _, exists := b.store.Topic(name); exists {
		return meta.Topic{}, fmt.Errorf("topic %q: %w", name, kerr.TopicAlreadyExists)
	}
	// '.' and '_' collide in metric names, so Kafka refuses a topic that
	// differs from an existing one only there.
	if norm := strings.ReplaceAll(name, ".", "_"); strings.ContainsAny(name, "._") {
		for _, other := range b.store.Topics() {
			if strings.ReplaceAll(other.Name, ".", "_") == norm {
				return meta.Topic{}, fmt.Errorf("topic %q collides with existing topic %q ('.' and '_' are interchangeable in metric names): %w", name, other.Name, kerr.InvalidTopicException)
			}
		}
	}
	if validateOnly {
		return t, nil
	}
	if err := b.store.CreateTopic(t); err != nil {
		return meta.Topic{}, err
	}
	for p := int32(0); p < partitions; p++ {
		if _, err := b.logs.Create(name, p); err != nil {
			b.log.Error("create partition log; rolling the topic back", zap.String("topic", name), zap.Int32("partition", p), zap.Error(err))
			if derr := b.logs.DeleteTopic(name); derr != nil {
				b.log.Error("roll back partition logs", zap.String("topic", name), zap.Error(derr))
			}
			if derr := b.store.DeleteTopic(name); derr != nil {
				b.log.Error("roll back topic metadata", zap.String("topic", name), zap.Error(derr))
			}
			return meta.Topic{}, fmt.Errorf("create log for %s-%d: %v: %w", name, p, err, kerr.KafkaStorageError)
		}
	}
	b.minISR.Delete(name)
	b.log.Info("created topic", zap.String("topic", name), zap.Int32("partitions", partitions), zap.Any("configs", configs))
	return t, nil
}

// autoCreateTopic creates a topic with broker defaults if auto creation is
// on. It returns the topic whether it created it or someone else did.
func (b *Broker) autoCreateTopic(name string) (meta.Topic, int16) {
	if !b.cfg.AutoCreateTopics {
		return meta.Topic{}, kerr.UnknownTopicOrPartition.Code
	}
	if err := validateTopicName(name); err != nil {
		return meta.Topic{}, kerr.InvalidTopicException.Code
	}
	t, err := b.createTopic(name, b.cfg.NumPartitions, nil, false)
	if err != nil {
		if t, ok := b.store.Topic(name); ok {
			return t, 0
		}
		b.log.Warn("auto-create topic", zap.String("topic", name), zap.Error(err))
		return meta.Topic{}, errorCode(err)
	}
	return t, 0
}

// deleteTopic removes a topic from metadata and deletes its logs.
// Internal topics cannot be deleted.
func (b *Broker) deleteTopic(name string) error {
	if name == "" {
		return fmt.Errorf("empty topic name: %w", kerr.InvalidTopicException)
	}
	if t, ok := b.store.Topic(name); ok && t.Internal {
		return fmt.Errorf("topic %q is internal and cannot be deleted: %w", name, kerr.TopicAuthorizationFailed)
	}
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	t, ok := b.store.Topic(name)
	if !ok {
		return fmt.Errorf("topic %q: %w", name, kerr.UnknownTopicOrPartition)
	}
	if err := b.store.DeleteTopic(name); err != nil {
		return err
	}
	b.minISR.Delete(name)
	if err := b.logs.DeleteTopic(name); err != nil {
		b.log.Error("delete topic logs", zap.String("topic", name), zap.Error(err))
		return fmt.Errorf("delete logs of %q: %v: %w", name, err, kerr.KafkaStorageError)
	}
	b.notifyTopic(name, t.Partitions)
	b.log.Info("deleted topic", zap.String("topic", name))
	return nil
}

// growTopic adds partitions to a topic.
func (b *Broker) growTopic(name string, count int32, validateOnly bool) error {
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	t, ok := b.store.Topic(name)
	if !ok {
		return fmt.Errorf("topic %q: %w", name, kerr.UnknownTopicOrPartition)
	}
	if t.Internal {
		// Groups map to offsets partitions by hash modulo the count.
		return fmt.Errorf("topic %q is internal; its partition count is fixed: %w", name, kerr.InvalidPartitions)
	}
	if count <= t.Partitions {
		return fmt.Errorf("topic %q has %d partitions, cannot change to %d: %w", name, t.Partitions, count, kerr.InvalidPartitions)
	}
	if count > 100000 {
		return fmt.Errorf("%d partitions requested, the limit is 100000: %w", count, kerr.InvalidPartitions)
	}
	if validateOnly {
		return nil
	}
	if err := b.store.SetPartitionCount(name, count); err != nil {
		return err
	}
	for p := t.Partitions; p < count; p++ {
		if _, err := b.logs.Create(name, p); err != nil {
			return fmt.Errorf("create log for %s-%d: %v: %w", name, p, err, kerr.KafkaStorageError)
		}
	}
	b.log.Info("added partitions", zap.String("topic", name), zap.Int32("from", t.Partitions), zap.Int32("to", count))
	return nil
}

// setTopicConfigs replaces a topic's explicit configs and applies them to
// its logs.
func (b *Broker) setTopicConfigs(name string, configs map[string]string) error {
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	t, ok := b.store.Topic(name)
	if !ok {
		return fmt.Errorf("topic %q: %w", name, kerr.UnknownTopicOrPartition)
	}
	if err := b.store.SetTopicConfigs(name, configs); err != nil {
		return err
	}
	b.minISR.Delete(name)
	sc := topicconfig.StorageConfig(b.defaults.Effective(configs))
	for p := int32(0); p < t.Partitions; p++ {
		if l := b.logs.Log(name, p); l != nil {
			l.SetConfig(sc)
		}
	}
	b.log.Info("altered topic configs", zap.String("topic", name), zap.Any("configs", configs))
	return nil
}

// isInternalTopic reports whether clients may not write to topic.
func isInternalTopic(topic string) bool { return topic == group.OffsetsTopic }

// minInsyncReplicas is a topic's effective min.insync.replicas, cached per
// topic and invalidated when topic configs change.
func (b *Broker) minInsyncReplicas(topic string) int32 {
	if v, ok := b.minISR.Load(topic); ok {
		return v.(int32)
	}
	t, _ := b.store.Topic(topic)
	n, err := strconv.ParseInt(b.defaults.Effective(t.Configs)["min.insync.replicas"], 10, 32)
	if err != nil || n < 1 {
		n = 1
	}
	b.minISR.Store(topic, int32(n))
	return int32(n)
}

// notifyTopic wakes every long poll parked on a topic's partitions (after
// the topic was deleted or its log start moved).
func (b *Broker) notifyTopic(topic string, partitions int32) {
	for p := int32(0); p < partitions; p++ {
		b.waiters.notify(topic, p)
	}
}
