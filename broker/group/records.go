package group

// Records of the offsets topic, in Kafka's formats (kmsg's
// OffsetCommitKey/Value and GroupMetadataKey/Value), so Kafka's tools can
// read them and a compacted topic keeps the latest state per key:
//
//	offset commit   key   OffsetCommitKey v1   {int16 version=1, string group, string topic, int32 partition}
//	                value OffsetCommitValue v3 {int16 version=3, int64 offset, int32 leaderEpoch, string metadata, int64 commitTimestamp}
//	                      or v1 when the commit carries an explicit expiry:
//	                      {int16 version=1, int64 offset, string metadata, int64 commitTimestamp, int64 expireTimestamp}
//	group metadata  key   GroupMetadataKey v2  {int16 version=2, string group}
//	                value GroupMetadataValue v3 (protocol type, generation, protocol, leader,
//	                      current-state timestamp, members with subscription and assignment)
//
// A null value (tombstone) deletes the key: an offset deleted or expired,
// a group deleted. Keys with versions 0 and 1 are offset commits, 2 group
// metadata; others are skipped on load.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// errUnknownRecord marks a record whose key version we do not know; load
// skips it.
var errUnknownRecord = errors.New("unknown offsets-topic record")

func offsetKey(group string, tp TopicPartition) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = 1
	k.Group, k.Topic, k.Partition = group, tp.Topic, tp.Partition
	return k.AppendTo(nil)
}

func offsetValue(o Offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset = o.Offset
	v.LeaderEpoch = o.LeaderEpoch
	v.Metadata = o.Metadata
	v.CommitTimestamp = o.CommitTime.UnixMilli()
	if !o.ExpireTime.IsZero() {
		v.Version = 1
		v.ExpireTimestamp = o.ExpireTime.UnixMilli()
	}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = 2
	k.Group = group
	return k.AppendTo(nil)
}

func nullableString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func groupValue(s Snapshot) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = s.ProtocolType
	v.Generation = s.Generation
	v.Protocol = nullableString(s.Protocol)
	v.Leader = nullableString(s.Leader)
	v.CurrentStateTimestamp = s.StateTime.UnixMilli()
	for _, m := range s.Members {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.MemberID
		vm.InstanceID = nullableString(m.InstanceID)
		vm.ClientID = m.ClientID
		vm.ClientHost = m.ClientHost
		vm.RebalanceTimeoutMillis = int32(m.RebalanceTimeout.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.SessionTimeout.Milliseconds())
		vm.Subscription = m.Subscription
		vm.Assignment = m.Assignment
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

// loadedRecord is one decoded offsets-topic record. Exactly one of the
// key kinds is set; a nil value part means a tombstone.
type loadedRecord struct {
	group string

	isOffset bool
	tp       TopicPartition
	offset   *Offset

	isGroup  bool
	snapshot *Snapshot
}

// decodeRecord decodes a record of the offsets topic.
func decodeRecord(key, value []byte) (loadedRecord, error) {
	if len(key) < 2 {
		return loadedRecord{}, fmt.Errorf("key of %d bytes: %w", len(key), errUnknownRecord)
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return loadedRecord{}, fmt.Errorf("decode offset commit key: %w", err)
		}
		r := loadedRecord{group: k.Group, isOffset: true, tp: TopicPartition{k.Topic, k.Partition}}
		if value == nil {
			return r, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return loadedRecord{}, fmt.Errorf("decode offset commit value for %s %s/%d: %w", k.Group, k.Topic, k.Partition, err)
		}
		o := Offset{Offset: v.Offset, LeaderEpoch: -1, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
		if v.Version >= 3 {
			o.LeaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 && v.ExpireTimestamp > 0 {
			o.ExpireTime = time.UnixMilli(v.ExpireTimestamp)
		}
		r.offset = &o
		return r, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return loadedRecord{}, fmt.Errorf("decode group metadata key: %w", err)
		}
		r := loadedRecord{group: k.Group, isGroup: true}
		if value == nil {
			return r, nil
		}
		// kmsg's byte fields alias their input, and the caller's
		// buffer is reused: decode a copy the group can keep.
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(bytes.Clone(value)); err != nil {
			return loadedRecord{}, fmt.Errorf("decode group metadata value for %s: %w", k.Group, err)
		}
		s := Snapshot{ProtocolType: v.ProtocolType, Generation: v.Generation}
		if v.Protocol != nil {
			s.Protocol = *v.Protocol
		}
		if v.Leader != nil {
			s.Leader = *v.Leader
		}
		if v.Version >= 2 && v.CurrentStateTimestamp > 0 {
			s.StateTime = time.UnixMilli(v.CurrentStateTimestamp)
		}
		for _, vm := range v.Members {
			m := SnapshotMember{
				MemberID:       vm.MemberID,
				ClientID:       vm.ClientID,
				ClientHost:     vm.ClientHost,
				SessionTimeout: time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
				Subscription:   vm.Subscription,
				Assignment:     vm.Assignment,
			}
			m.RebalanceTimeout = m.SessionTimeout
			if v.Version >= 1 && vm.RebalanceTimeoutMillis > 0 {
				m.RebalanceTimeout = time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond
			}
			if vm.InstanceID != nil {
				m.InstanceID = *vm.InstanceID
			}
			s.Members = append(s.Members, m)
		}
		r.snapshot = &s
		return r, nil
	default:
		return loadedRecord{}, fmt.Errorf("key version %d: %w", version, errUnknownRecord)
	}
}
