package group

import "time"

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32 // -1 when the committer did not say
	Metadata    string
	CommitTime  time.Time
	// ExpireTime is an explicit expiry (OffsetCommit v1-v4 retention);
	// zero means the group's retention applies.
	ExpireTime time.Time
}

// Offset returns a committed offset.
func (g *Group) Offset(tp TopicPartition) (Offset, bool) {
	o, ok := g.offsets[tp]
	return o, ok
}

// Offsets returns the partitions with committed offsets, sorted.
func (g *Group) Offsets() []TopicPartition {
	out := make([]TopicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		out = append(out, tp)
	}
	sortedTopicPartitions(out)
	return out
}

// NumOffsets returns how many partitions have committed offsets.
func (g *Group) NumOffsets() int { return len(g.offsets) }

// SetOffset records a committed offset (after it was written).
func (g *Group) SetOffset(tp TopicPartition, o Offset) { g.offsets[tp] = o }

// DeleteOffset forgets a committed offset (after its tombstone was
// written).
func (g *Group) DeleteOffset(tp TopicPartition) { delete(g.offsets, tp) }

// ExpiredOffsets returns the offsets due for deletion at now: in an empty
// group, those committed (for a group used only to store offsets) or
// orphaned (for a consumer group, since it became empty) more than
// retention ago; in a stable consumer group, offsets of topics no member
// subscribes to any more, by commit time. An explicit expiry time from an
// old OffsetCommit overrides the retention-based one.
func (g *Group) ExpiredOffsets(now time.Time, retention time.Duration) []TopicPartition {
	var out []TopicPartition
	expired := func(o Offset, base time.Time) bool {
		if !o.ExpireTime.IsZero() {
			return !now.Before(o.ExpireTime)
		}
		return !now.Before(base.Add(retention))
	}
	switch {
	case g.state == Empty:
		for tp, o := range g.offsets {
			base := o.CommitTime
			if g.protocolType != "" && g.stateTime.After(base) {
				base = g.stateTime
			}
			if expired(o, base) {
				out = append(out, tp)
			}
		}
	case g.state == Stable:
		subscribed, ok := g.SubscribedTopics()
		if !ok {
			break
		}
		for tp, o := range g.offsets {
			if !subscribed[tp.Topic] && expired(o, o.CommitTime) {
				out = append(out, tp)
			}
		}
	}
	sortedTopicPartitions(out)
	return out
}
