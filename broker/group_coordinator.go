package broker

// The broker's side of the group coordinator (broker/group): creating the
// internal topic __consumer_offsets, loading the offsets partitions this
// broker leads, and the group.Log adapter over their partition logs.

import (
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/wire"
)

// offsetsTopicConfigs are the topic configs __consumer_offsets is created
// with: compacted (the latest record per group/partition key is the
// state), 100 MiB segments as Kafka's offsets.topic.segment.bytes, and
// batches up to 16 MiB since one group-metadata record carries every
// member's subscription and assignment.
var offsetsTopicConfigs = map[string]string{
	"cleanup.policy":    "compact",
	"segment.bytes":     "104857600",
	"max.message.bytes": "16777216",
	"compression.type":  "producer", // as Kafka: the broker's own writes are never recompressed
}

// startGroupCoordinator creates __consumer_offsets if it is missing,
// starts the coordinator and loads every offsets partition this broker
// leads (in the background: their groups answer
// COORDINATOR_LOAD_IN_PROGRESS until loaded). An existing topic keeps its
// partition count even if offsets.topic.num.partitions differs, since
// groups are mapped to partitions by that count.
func (b *Broker) startGroupCoordinator() error {
	gcfg := b.cfg.groupConfig()
	t, ok := b.store.Topic(group.OffsetsTopic)
	if !ok {
		var err error
		if t, err = b.createOffsetsTopic(gcfg.NumPartitions); err != nil {
			return err
		}
	} else if t.Partitions != gcfg.NumPartitions {
		b.log.Warn("offsets topic exists with another partition count; keeping it",
			zap.Int32("partitions", t.Partitions), zap.Int32("offsets.topic.num.partitions", gcfg.NumPartitions))
		gcfg.NumPartitions = t.Partitions
	}
	coord, err := group.NewCoordinator(gcfg, group.Options{Logger: b.log.Named("group"), PartitionExists: b.partitionExists})
	if err != nil {
		return err
	}
	b.coord = coord
	for p := int32(0); p < t.Partitions; p++ {
		st, ok := b.store.Partition(group.OffsetsTopic, p)
		if !ok || st.Leader != b.cfg.BrokerID {
			continue
		}
		l := b.logs.Log(group.OffsetsTopic, p)
		if l == nil {
			coord.Close()
			return fmt.Errorf("offsets partition %d has no log", p)
		}
		if err := coord.LoadPartition(p, &offsetsLog{b: b, l: l, topic: group.OffsetsTopic, partition: p}); err != nil {
			coord.Close()
			return fmt.Errorf("load offsets partition %d: %w", p, err)
		}
	}
	return nil
}

// partitionExists is the coordinator's view of the metadata: whether a
// topic partition exists. It takes only the metadata store's lock.
func (b *Broker) partitionExists(tp group.TopicPartition) bool {
	_, ok := b.store.LeaderEpoch(tp.Topic, tp.Partition)
	return ok
}

func (b *Broker) createOffsetsTopic(partitions int32) (meta.Topic, error) {
	if err := b.createInternalTopic(group.OffsetsTopic, partitions, offsetsTopicConfigs); err != nil {
		return meta.Topic{}, err
	}
	t, _ := b.store.Topic(group.OffsetsTopic)
	return t, nil
}

// offsetsLog is a group.Log (and a txn.Log) over one partition of an
// internal topic: __consumer_offsets or __transaction_state.
type offsetsLog struct {
	b         *Broker
	l         *storage.Log
	topic     string
	partition int32
}

// Append implements group.Log: append as the partition's leader, then
// advance the high watermark (a standalone broker is its own ISR). Errors
// carry the Kafka error a produce would have got.
func (o *offsetsLog) Append(batch []byte) error {
	st, ok := o.b.store.Partition(o.topic, o.partition)
	if !ok || st.Leader != o.b.cfg.BrokerID {
		return fmt.Errorf("%s-%d is not led by this broker: %w", o.topic, o.partition, kerr.NotLeaderForPartition)
	}
	if _, err := o.l.Append(batch, st.LeaderEpoch); err != nil {
		// Storage errors are logged by the log itself (a sticky failure
		// once, a full disk every few seconds), not once per request.
		return fmt.Errorf("append to %s-%d: %w: %w", o.topic, o.partition, kerr.ErrorForCode(errorCode(err)), err)
	}
	o.b.advanceHighWatermark(o.topic, o.partition, o.l)
	return nil
}

// replayReadBytes is how much Replay reads from the log at a time (at least
// one whole batch, however large).
const replayReadBytes = 1 << 20

// Replay implements group.Log: every batch from the log start to the high
// watermark, read through the same path as a fetch.
func (o *offsetsLog) Replay(fn func([]byte) error) error {
	off := o.l.LogStartOffset()
	end := o.l.HighWatermark()
	var buf []byte
	for off < end {
		ch, err := o.l.Read(off, end, replayReadBytes)
		if err != nil {
			return fmt.Errorf("read %s-%d at %d: %w", o.topic, o.partition, off, err)
		}
		if ch.Size == 0 {
			return nil
		}
		if int64(cap(buf)) < ch.Size {
			buf = make([]byte, ch.Size)
		}
		buf = buf[:ch.Size]
		_, err = ch.File.ReadAt(buf, ch.Pos)
		ch.Release()
		if err != nil {
			return fmt.Errorf("read %s-%d at %d: %w", o.topic, o.partition, off, err)
		}
		next := off
		for pos := 0; len(buf)-pos >= record.HeaderSize; {
			h, err := record.ParseHeader(buf[pos:])
			if err != nil {
				return fmt.Errorf("%s-%d at %d: %w", o.topic, o.partition, off, err)
			}
			if h.Size() > int64(len(buf)-pos) {
				break // a read cut by size ends in a partial batch
			}
			batch := buf[pos : pos+int(h.Size())]
			pos += int(h.Size())
			if h.LastOffset() < off {
				continue
			}
			if err := fn(batch); err != nil {
				return err
			}
			next = h.LastOffset() + 1
		}
		if next == off {
			return fmt.Errorf("%s-%d at %d: no whole batch in a %d-byte read", o.topic, o.partition, off, ch.Size)
		}
		off = next
	}
	return nil
}

// groupErr is the error code of a group-coordinator error.
func groupErr(err error) int16 { return errorCode(err) }

// clientHost is how Kafka reports a member's host: "/" and the client's
// IP address.
func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		host = c.remote
	}
	return "/" + host
}

// awaitGroupAnswer completes p with the answer a join or sync delivers on
// ch: at once if it is there, otherwise from a goroutine registered in
// c.handlers that waits for it, for the connection to close, or for the
// broker to stop (then answering NOT_COORDINATOR so the client looks for
// the coordinator again).
func awaitGroupAnswer[R any](b *Broker, c *conn, hdr wire.RequestHeader, p *pending, ch <-chan R, api string, start time.Time, respond func(R) kmsg.Response, fail func(error) kmsg.Response) {
	select {
	case r := <-ch:
		c.finish(p, hdr, respond(r))
		b.metrics.requestSeconds.WithLabelValues(api).Observe(time.Since(start).Seconds())
		return
	default:
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		select {
		case r := <-ch:
			c.finish(p, hdr, respond(r))
			b.metrics.requestSeconds.WithLabelValues(api).Observe(time.Since(start).Seconds())
		case <-c.closing:
			c.finishNone(p)
		case <-b.ctx.Done():
			c.finish(p, hdr, fail(fmt.Errorf("broker shutting down: %w", kerr.NotCoordinator)))
		}
	}()
}
