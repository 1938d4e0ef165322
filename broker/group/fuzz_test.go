package group

import (
	"testing"
	"time"
)

// FuzzDecodeRecord feeds arbitrary keys and values to the offsets-topic
// record decoder, which reads whatever a damaged log holds: it must return
// a record or an error, never panic, and a decoded group snapshot must
// restore without panicking.
func FuzzDecodeRecord(f *testing.F) {
	snap := Snapshot{ProtocolType: "consumer", Generation: 3, Protocol: "range", Leader: "m1", StateTime: time.UnixMilli(1),
		Members: []SnapshotMember{{MemberID: "m1", InstanceID: "i", ClientID: "c", ClientHost: "/h", SessionTimeout: time.Second,
			RebalanceTimeout: time.Second, Subscription: []byte{0, 1}, Assignment: []byte{2}}}}
	f.Add(groupKey("g"), groupValue(snap))
	f.Add(groupKey("g"), []byte(nil))
	f.Add(offsetKey("g", TopicPartition{"t", 1}), offsetValue(Offset{Offset: 5, LeaderEpoch: 1, Metadata: "m", CommitTime: time.UnixMilli(2)}))
	f.Add(offsetKey("g", TopicPartition{"t", 1}), offsetValue(Offset{Offset: 5, CommitTime: time.UnixMilli(2), ExpireTime: time.UnixMilli(9)}))
	f.Add([]byte{0, 2, 0xff, 0xff}, []byte{0, 3})
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		lr, err := decodeRecord(key, value)
		if err != nil || lr.snapshot == nil {
			return
		}
		g := NewGroup(lr.group, &cfg)
		g.Restore(time.Unix(0, 0), *lr.snapshot)
		g.Tick(time.Unix(3600, 0))
	})
}
