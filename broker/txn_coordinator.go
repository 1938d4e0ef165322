package broker

// The broker's side of the transaction coordinator (broker/txn): the
// internal topic __transaction_state that keeps its state, and the
// adapters through which it writes markers to partitions and commits
// offsets to groups.

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/txn"
)

// txnTopicConfigs are the configs __transaction_state is created with:
// compacted (the latest record per transactional id is its state), as
// Kafka's transaction.state.log.segment.bytes.
var txnTopicConfigs = map[string]string{
	"cleanup.policy":    "compact",
	"segment.bytes":     "104857600",
	"max.message.bytes": "16777216",
	"compression.type":  "producer", // as Kafka: the broker's own writes are never recompressed
}

// startTxnCoordinator creates __transaction_state if it is missing and
// starts the transaction coordinator on its partition 0 (one partition:
// a standalone broker coordinates every transactional id).
func (b *Broker) startTxnCoordinator() error {
	if _, ok := b.store.Topic(txn.StateTopic); !ok {
		if err := b.createInternalTopic(txn.StateTopic, 1, txnTopicConfigs); err != nil {
			return err
		}
	}
	l := b.logs.Log(txn.StateTopic, 0)
	if l == nil {
		return fmt.Errorf("%s-0 has no log", txn.StateTopic)
	}
	coord, err := txn.New(b.cfg.txnConfig(), txn.Options{
		Log:            &offsetsLog{b: b, l: l, topic: txn.StateTopic, partition: 0},
		Partitions:     txnPartitions{b},
		Offsets:        txnOffsets{b},
		NextProducerID: b.store.NextProducerID,
		Logger:         b.log.Named("txn"),
		OnEnd:          func(outcome string) { b.metrics.txnEnded.WithLabelValues(outcome).Inc() },
	})
	if err != nil {
		return err
	}
	b.txns = coord
	open := coord.Open
	b.metrics.openTxns.Store(&open)
	return nil
}

// createInternalTopic creates an internal topic and its logs.
func (b *Broker) createInternalTopic(name string, partitions int32, cfg map[string]string) error {
	id, err := meta.NewTopicID()
	if err != nil {
		return err
	}
	configs := make(map[string]string, len(cfg))
	for k, v := range cfg {
		configs[k] = v
	}
	t := meta.Topic{Name: name, ID: id, Partitions: partitions, Configs: configs, Internal: true}
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	if err := b.store.CreateTopic(t); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	for p := int32(0); p < partitions; p++ {
		if _, err := b.logs.Create(name, p); err != nil {
			return fmt.Errorf("create log %s-%d: %w", name, p, err)
		}
	}
	b.log.Info("created an internal topic", zap.String("topic", name), zap.Int32("partitions", partitions))
	return nil
}

// txnPartitions gives the coordinator the broker's partitions.
type txnPartitions struct{ b *Broker }

func (p txnPartitions) Exists(tp txn.TopicPartition) bool {
	_, ok := p.b.store.LeaderEpoch(tp.Topic, tp.Partition)
	return ok && p.b.logs.Log(tp.Topic, tp.Partition) != nil
}

func (p txnPartitions) WriteMarker(tp txn.TopicPartition, pid int64, epoch int16, commit bool) error {
	st, ok := p.b.store.Partition(tp.Topic, tp.Partition)
	l := p.b.logs.Log(tp.Topic, tp.Partition)
	if !ok || l == nil {
		return nil // deleted: nothing to end
	}
	if _, err := l.AppendMarker(pid, epoch, commit, 0, st.LeaderEpoch); err != nil {
		if errors.Is(err, storage.ErrInvalidProducerEpoch) {
			return fmt.Errorf("write marker: %w: %w", txn.ErrMarkerFenced, err)
		}
		return fmt.Errorf("write marker: %w", err)
	}
	p.b.advanceHighWatermark(tp.Topic, tp.Partition, l)
	return nil
}

// txnOffsets gives the coordinator the group coordinator.
type txnOffsets struct{ b *Broker }

func (o txnOffsets) CheckMember(groupID, member, instance string, generation int32) error {
	return o.b.coord.CheckMember(groupID, member, instance, generation)
}

func (o txnOffsets) Commit(groupID string, offsets []txn.Offset) error {
	req := group.CommitRequest{Generation: -1, Transactional: true}
	for _, off := range offsets {
		co := group.CommitOffset{
			TopicPartition: group.TopicPartition{Topic: off.Topic, Partition: off.Partition},
			Offset:         off.Offset,
			LeaderEpoch:    off.LeaderEpoch,
			Metadata:       off.Metadata,
		}
		if off.AtMs > 0 {
			co.CommitTime = time.UnixMilli(off.AtMs)
		}
		req.Offsets = append(req.Offsets, co)
	}
	errs, err := o.b.coord.CommitOffsets(groupID, req)
	if err != nil {
		return err
	}
	for i, e := range errs {
		// A partition deleted since, or metadata too long: Kafka drops
		// such an offset too; the rest of the commit stands.
		if e != nil {
			o.b.log.Warn("a committed transaction's offset was not applied",
				zap.String("group", groupID), zap.String("topic", req.Offsets[i].Topic), zap.Int32("partition", req.Offsets[i].Partition), zap.Error(e))
		}
	}
	return nil
}

// txnConfig is the transaction coordinator's configuration.
func (c *Config) txnConfig() txn.Config {
	return txn.Config{
		MaxTimeout:    c.propMs("transaction.max.timeout.ms"),
		AbortInterval: c.propMs("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
		IDExpiration:  c.propMs("transactional.id.expiration.ms"),
	}
}
