package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/txn"
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
	for _, c := range name { // by rune: a non-ASCII one is named whole
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
	t, err := b.newTopic(name, partitions, configs)
	if err != nil {
		return meta.Topic{}, err
	}
	if err := b.createTopics([]meta.Topic{t}, validateOnly)[0]; err != nil {
		return meta.Topic{}, err
	}
	return t, nil
}

// newTopic validates a topic to create and gives it an id; nothing is
// created and nothing is checked against the existing topics yet.
func (b *Broker) newTopic(name string, partitions int32, configs map[string]string) (meta.Topic, error) {
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
		v = topicconfig.Normalize(v)
		configs[k] = v
		if err := topicconfig.Validate(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return meta.Topic{}, err
	}
	if err := topicconfig.ValidateTopic(configs, b.topicDefaults().Effective(configs)); err != nil {
		return meta.Topic{}, err
	}
	id, err := meta.NewTopicID()
	if err != nil {
		return meta.Topic{}, err
	}
	return meta.Topic{Name: name, ID: id, Partitions: partitions, Configs: configs}, nil
}

// createTopics creates topics made by newTopic, returning an error (or
// nil) for each. The metadata of all that may be created is written in one
// update; then each gets its logs, and one whose logs cannot be created is
// removed again.
func (b *Broker) createTopics(ts []meta.Topic, validateOnly bool) []error {
	errs := make([]error, len(ts))
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	names := newNameCheck(b)
	var ok []meta.Topic
	var okIdx []int
	for i, t := range ts {
		if errs[i] = names.take(t.Name); errs[i] == nil {
			ok = append(ok, t)
			okIdx = append(okIdx, i)
		}
	}
	var adding int64
	for _, t := range ok {
		adding += int64(t.Partitions)
	}
	if err := checkOpenFiles(adding); err != nil {
		for _, i := range okIdx {
			errs[i] = err
		}
		return errs
	}
	if validateOnly || len(ok) == 0 {
		return errs
	}
	if err := b.store.CreateTopics(ok); err != nil {
		for _, i := range okIdx {
			errs[i] = err
		}
		return errs
	}
	for j, t := range ok {
		if err := b.createLogsLocked(t); err != nil {
			errs[okIdx[j]] = err
			continue
		}
		b.minISR.Delete(t.Name)
		b.log.Info("created topic", zap.String("topic", t.Name), zap.Int32("partitions", t.Partitions), zap.Any("configs", t.Configs))
	}
	return errs
}

// createLogsLocked creates the logs of t, whose metadata is stored; if one
// cannot be created, t is removed again, logs and metadata. topicMu held.
func (b *Broker) createLogsLocked(t meta.Topic) error {
	for p := int32(0); p < t.Partitions; p++ {
		if _, err := b.logs.Create(t.Name, p); err != nil {
			b.log.Error("create partition log; rolling the topic back", zap.String("topic", t.Name), zap.Int32("partition", p), zap.Error(err))
			if derr := b.logs.DeleteTopic(t.Name); derr != nil {
				b.log.Error("roll back partition logs", zap.String("topic", t.Name), zap.Error(derr))
			}
			if derr := b.store.DeleteTopic(t.Name); derr != nil {
				b.log.Error("roll back topic metadata", zap.String("topic", t.Name), zap.Error(derr))
			}
			return fmt.Errorf("create log for %s-%d: %v: %w", t.Name, p, err, kerr.KafkaStorageError)
		}
	}
	return nil
}

// nameCheck decides whether new topic names are free: not taken by an
// existing topic or by an earlier name of the same batch, and not
// colliding with one in metric names, where '.' and '_' are
// interchangeable (Kafka refuses such a topic). topicMu held.
type nameCheck struct {
	b     *Broker
	added map[string]bool
	norm  map[string]string // metric form -> name; built on first need
	// folded maps lower-case names to names, where the data dir's
	// filesystem folds case; built on first need.
	folded map[string]string
}

func newNameCheck(b *Broker) *nameCheck { return &nameCheck{b: b, added: map[string]bool{}} }

// take reports whether name is free and, if so, counts it as taken.
func (c *nameCheck) take(name string) error {
	if _, exists := c.b.store.Topic(name); exists || c.added[name] {
		return fmt.Errorf("topic %q already exists: %w", name, kerr.TopicAlreadyExists)
	}
	if strings.ContainsAny(name, "._") {
		if c.norm == nil {
			c.norm = map[string]string{}
			for _, t := range c.b.store.Topics() {
				if strings.ContainsAny(t.Name, "._") {
					c.norm[strings.ReplaceAll(t.Name, ".", "_")] = t.Name
				}
			}
		}
		n := strings.ReplaceAll(name, ".", "_")
		if other, ok := c.norm[n]; ok {
			return fmt.Errorf("topic %q collides with existing topic %q ('.' and '_' are interchangeable in metric names): %w", name, other, kerr.InvalidTopicException)
		}
		c.norm[n] = name
	}
	if c.b.logs.FoldsCase() {
		if c.folded == nil {
			c.folded = map[string]string{}
			for _, t := range c.b.store.Topics() {
				c.folded[strings.ToLower(t.Name)] = t.Name
			}
		}
		f := strings.ToLower(name)
		if other, ok := c.folded[f]; ok {
			return fmt.Errorf("topic %q differs only in case from existing topic %q, and the data dir's filesystem does not tell such names apart: %w", name, other, kerr.InvalidTopicException)
		}
		c.folded[f] = name
	}
	c.added[name] = true
	return nil
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
	// Out of descriptors, refuse before anything else: clients naming
	// many topics would otherwise each cost the checks against every
	// existing topic's name.
	err := partitionFiles(int64(b.cfg.NumPartitions), false)
	var t meta.Topic
	if err == nil {
		t, err = b.createTopic(name, b.cfg.NumPartitions, nil, false)
	}
	if err != nil {
		if t, ok := b.store.Topic(name); ok {
			return t, 0
		}
		// Clients ask again and again (every metadata refresh), and may
		// name any number of topics: one line per kind of failure per
		// refusalLogEvery, naming the latest topic.
		code := errorCode(err)
		if ok, held := b.refusals.allow("auto-create/"+strconv.Itoa(int(code)), time.Now()); ok {
			b.log.Warn("auto-create topic", zap.String("topic", name), zap.String("error", *errorMessage(err)),
				zap.String("code", codeName(code)), zap.Int("same_since_last_logged", held))
		}
		return meta.Topic{}, code
	}
	return t, 0
}

// deleteTopic removes a topic from metadata and deletes its logs and its
// committed offsets (see deleteTopics). Internal topics cannot be deleted.
func (b *Broker) deleteTopic(name string) error { return b.deleteTopics([]string{name})[0] }

// deleteTopics removes topics from metadata, in one update for all that
// may be deleted, then deletes their logs and every group's committed
// offsets for them (durably, before it returns, so a topic created again
// under the same name starts without offsets); it returns an error (or
// nil) for each name. A name given twice is unknown the second time.
// Internal topics cannot be deleted.
func (b *Broker) deleteTopics(names []string) []error {
	errs := make([]error, len(names))
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	var ok []meta.Topic
	var okIdx []int
	taken := make(map[string]bool, len(names))
	for i, name := range names {
		t, exists := b.store.Topic(name)
		switch {
		case name == "":
			errs[i] = fmt.Errorf("empty topic name: %w", kerr.InvalidTopicException)
		case exists && t.Internal:
			errs[i] = fmt.Errorf("topic %q is internal and cannot be deleted: %w", name, kerr.TopicAuthorizationFailed)
		case !exists || taken[name]:
			errs[i] = fmt.Errorf("topic %q does not exist: %w", name, kerr.UnknownTopicOrPartition)
		default:
			taken[name] = true
			ok = append(ok, t)
			okIdx = append(okIdx, i)
		}
	}
	if len(ok) == 0 {
		return errs
	}
	okNames := make([]string, len(ok))
	for j, t := range ok {
		okNames[j] = t.Name
	}
	if err := b.store.DeleteTopics(okNames); err != nil {
		for _, i := range okIdx {
			errs[i] = err
		}
		return errs
	}
	for j, t := range ok {
		b.minISR.Delete(t.Name)
		if err := b.logs.DeleteTopic(t.Name); err != nil {
			b.log.Error("delete topic logs", zap.String("topic", t.Name), zap.Error(err))
			errs[okIdx[j]] = fmt.Errorf("delete logs of %q: %v: %w", t.Name, err, kerr.KafkaStorageError)
			continue
		}
		b.notifyTopic(t.Name, t.Partitions)
		b.log.Info("deleted topic", zap.String("topic", t.Name))
	}
	// The topics are gone from metadata, so the coordinator refuses new
	// commits to them; now drop the offsets committed before.
	if err := b.coord.RemoveTopicOffsets(okNames); err != nil {
		b.log.Error("delete committed offsets of deleted topics", zap.Strings("topics", okNames), zap.Error(err))
		for _, i := range okIdx {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("topics deleted, but not every group's committed offsets for them: %v: %w", err, kerr.KafkaStorageError)
			}
		}
	}
	return errs
}

// growTopic adds partitions to a topic.
func (b *Broker) growTopic(name string, count int32, assignments int, validateOnly bool) error {
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	t, ok := b.store.Topic(name)
	if !ok {
		return fmt.Errorf("topic %q does not exist: %w", name, kerr.UnknownTopicOrPartition)
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
	if assignments >= 0 && int64(assignments) != int64(count-t.Partitions) {
		return fmt.Errorf("topic %q: %d partitions to add, %d assignments given: %w", name, count-t.Partitions, assignments, kerr.InvalidReplicaAssignment)
	}
	if err := checkOpenFiles(int64(count - t.Partitions)); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	// The logs first, then the count: a partition that cannot be created
	// (no file descriptors, no space) undoes the others and leaves the
	// topic as it was. A crash in between leaves logs the metadata does
	// not know, which the next start sets aside as strays.
	for p := t.Partitions; p < count; p++ {
		if _, err := b.logs.Create(name, p); err != nil {
			b.log.Error("create partition log; rolling the addition back", zap.String("topic", name), zap.Int32("partition", p), zap.Error(err))
			if derr := b.logs.DeletePartitions(name, t.Partitions); derr != nil {
				b.log.Error("roll back partition logs", zap.String("topic", name), zap.Error(derr))
			}
			return fmt.Errorf("create log for %s-%d: %v: %w", name, p, err, kerr.KafkaStorageError)
		}
	}
	if err := b.store.SetPartitionCount(name, count); err != nil {
		if derr := b.logs.DeletePartitions(name, t.Partitions); derr != nil {
			b.log.Error("roll back partition logs", zap.String("topic", name), zap.Error(derr))
		}
		return err
	}
	// The logs were created before the metadata knew their partitions, so
	// the manager could not tell them their leader epoch.
	for p := t.Partitions; p < count; p++ {
		if epoch, ok := b.store.LeaderEpoch(name, p); ok {
			if err := b.logs.Log(name, p).BecomeLeader(epoch); err != nil {
				b.log.Warn("record the leader epoch at the log end", zap.String("topic", name), zap.Int32("partition", p), zap.Error(err))
			}
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
		return fmt.Errorf("topic %q does not exist: %w", name, kerr.UnknownTopicOrPartition)
	}
	if err := b.store.SetTopicConfigs(name, configs); err != nil {
		return err
	}
	b.minISR.Delete(name)
	sc := b.storageConfigOf(configs)
	for p := int32(0); p < t.Partitions; p++ {
		if l := b.logs.Log(name, p); l != nil {
			l.SetConfig(sc)
		}
	}
	b.log.Info("altered topic configs", zap.String("topic", name), zap.Any("configs", configs))
	return nil
}

// isInternalTopic reports whether clients may not write to topic.
func isInternalTopic(topic string) bool {
	return topic == group.OffsetsTopic || topic == txn.StateTopic
}

// minInsyncReplicas is a topic's effective min.insync.replicas, cached per
// topic and invalidated when topic configs change.
func (b *Broker) minInsyncReplicas(topic string) int32 {
	if v, ok := b.minISR.Load(topic); ok {
		return v.(int32)
	}
	t, _ := b.store.Topic(topic)
	n, err := strconv.ParseInt(b.topicDefaults().Effective(t.Configs)["min.insync.replicas"], 10, 32)
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
