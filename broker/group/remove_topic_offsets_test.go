package group

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap/zaptest"
)

// topicSet is a settable PartitionExists: every partition of a topic not
// marked deleted exists.
type topicSet struct {
	mu      sync.Mutex
	deleted map[string]bool
}

func (s *topicSet) exists(tp TopicPartition) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.deleted[tp.Topic]
}

func (s *topicSet) delete(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted == nil {
		s.deleted = map[string]bool{}
	}
	s.deleted[topic] = true
}

// newExistsCoord starts a coordinator over logs with exists as its
// PartitionExists (nil: none) and waits for every partition to load.
func newExistsCoord(t *testing.T, logs []*memLog, exists func(TopicPartition) bool) *Coordinator {
	t.Helper()
	c := startExistsCoord(t, logs, exists)
	for p := range logs {
		waitFor(t, fmt.Sprintf("partition %d loaded", p), func() bool { return c.Loaded(int32(p)) })
	}
	return c
}

func startExistsCoord(t *testing.T, logs []*memLog, exists func(TopicPartition) bool) *Coordinator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NumPartitions = int32(len(logs))
	cfg.MinSessionTimeout = 10 * time.Millisecond
	c, err := NewCoordinator(cfg, Options{Logger: zaptest.NewLogger(t), PartitionExists: exists})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for p, l := range logs {
		if err := c.LoadPartition(int32(p), l); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func commitSimple(t *testing.T, c *Coordinator, group string, offsets ...CommitOffset) {
	t.Helper()
	errs, err := c.CommitOffsets(group, CommitRequest{Generation: -1, Offsets: offsets})
	mustCode(t, err, nil)
	for i, e := range errs {
		if e != nil {
			t.Fatalf("commit %s %+v: %v", group, offsets[i].TopicPartition, e)
		}
	}
}

func offsetsOf(t *testing.T, c *Coordinator, group string) map[TopicPartition]int64 {
	t.Helper()
	got, err := c.FetchOffsets(group, nil)
	mustCode(t, err, nil)
	out := map[TopicPartition]int64{}
	for _, o := range got {
		out[o.TopicPartition] = o.Offset.Offset
	}
	return out
}

func groupIDs(t *testing.T, c *Coordinator) map[string]State {
	t.Helper()
	ls, err := c.ListGroups(nil)
	mustCode(t, err, nil)
	out := map[string]State{}
	for _, l := range ls {
		out[l.GroupID] = l.State
	}
	return out
}

// TestCoordinatorRemoveTopicOffsets: deleting a topic deletes every
// group's offsets for it, keeps the other topics' offsets, deletes the
// groups left with nothing, refuses later commits to it, and all of that
// is in the log: a coordinator reloaded from it (with no PartitionExists,
// so nothing is dropped at load) sees the same.
func TestCoordinatorRemoveTopicOffsets(t *testing.T) {
	logs := []*memLog{{}, {}, {}}
	topics := &topicSet{}
	c := newExistsCoord(t, logs, topics.exists)

	// A stable consumer group with a member, committing to both topics.
	id, gen := joinOne(t, c, "live", time.Minute)
	errs, err := c.CommitOffsets("live", CommitRequest{MemberID: id, Generation: gen, Offsets: []CommitOffset{
		{TopicPartition: TopicPartition{"gone", 0}, Offset: 100},
		{TopicPartition: TopicPartition{"gone", 1}, Offset: 101},
		{TopicPartition: TopicPartition{"keep", 0}, Offset: 7},
	}})
	if err != nil || errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("commit: %v %v", errs, err)
	}
	// Groups with no members: one has only offsets of the deleted topic,
	// one only of the other, one of both.
	commitSimple(t, c, "only-gone", CommitOffset{TopicPartition: TopicPartition{"gone", 0}, Offset: 100})
	commitSimple(t, c, "only-keep", CommitOffset{TopicPartition: TopicPartition{"keep", 0}, Offset: 8})
	commitSimple(t, c, "both", CommitOffset{TopicPartition: TopicPartition{"gone", 2}, Offset: 3},
		CommitOffset{TopicPartition: TopicPartition{"keep", 1}, Offset: 9})
	// A consumer group whose member left: Empty, only the deleted topic.
	id2, gen2 := joinOne(t, c, "left", time.Minute)
	if errs, err := c.CommitOffsets("left", CommitRequest{MemberID: id2, Generation: gen2, Offsets: []CommitOffset{
		{TopicPartition: TopicPartition{"gone", 0}, Offset: 50}}}); err != nil || errs[0] != nil {
		t.Fatalf("commit: %v %v", errs, err)
	}
	if errs, err := c.LeaveGroup("left", []LeaveMember{{MemberID: id2}}); err != nil || errs[0] != nil {
		t.Fatalf("leave: %v %v", errs, err)
	}

	topics.delete("gone")
	mustCode(t, c.RemoveTopicOffsets([]string{"gone"}), nil)

	check := func(c *Coordinator, when string, liveKeep int64) {
		t.Helper()
		want := map[string]map[TopicPartition]int64{
			"live":      {{"keep", 0}: liveKeep},
			"only-gone": {},
			"only-keep": {{"keep", 0}: 8},
			"both":      {{"keep", 1}: 9},
			"left":      {},
		}
		for g, w := range want {
			got := offsetsOf(t, c, g)
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("%s: group %s has offsets %v, want %v", when, g, got, w)
			}
		}
		// Groups left with nothing are deleted; the live one keeps its
		// member and generation.
		groups := groupIDs(t, c)
		if _, ok := groups["only-gone"]; ok {
			t.Errorf("%s: group only-gone still listed: %v", when, groups)
		}
		if _, ok := groups["left"]; ok {
			t.Errorf("%s: group left still listed: %v", when, groups)
		}
		if groups["live"] != Stable || groups["only-keep"] != Empty || groups["both"] != Empty {
			t.Errorf("%s: groups %v", when, groups)
		}
		if d, _ := c.DescribeGroup("left"); d.State != Dead {
			t.Errorf("%s: group left is %s", when, d.State)
		}
	}
	check(c, "after the delete", 7)
	mustCode(t, c.Heartbeat("live", id, "", gen), nil)

	// The topic is gone from metadata, so a commit to it is refused, even
	// one that got past an earlier check: the coordinator checks under the
	// group's lock.
	errs, err = c.CommitOffsets("live", CommitRequest{MemberID: id, Generation: gen, Offsets: []CommitOffset{
		{TopicPartition: TopicPartition{"gone", 0}, Offset: 100},
		{TopicPartition: TopicPartition{"keep", 0}, Offset: 10},
	}})
	mustCode(t, err, nil)
	mustCode(t, errs[0], kerr.UnknownTopicOrPartition)
	mustCode(t, errs[1], nil)
	errs, err = c.CommitOffsets("new", CommitRequest{Generation: -1, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"gone", 0}, Offset: 1}}})
	mustCode(t, err, nil)
	mustCode(t, errs[0], kerr.UnknownTopicOrPartition)
	if _, ok := groupIDs(t, c)["new"]; ok {
		t.Fatal("a refused commit created its group")
	}
	// Deleting a topic nobody committed to writes nothing.
	before := logs[0].numBatches() + logs[1].numBatches() + logs[2].numBatches()
	mustCode(t, c.RemoveTopicOffsets([]string{"never-committed", "gone"}), nil)
	if after := logs[0].numBatches() + logs[1].numBatches() + logs[2].numBatches(); after != before {
		t.Fatalf("%d batches written for nothing", after-before)
	}

	// The deletion is in the log: a coordinator that drops nothing at load
	// replays the tombstones.
	c.Close()
	c2 := newExistsCoord(t, logs, nil)
	check(c2, "after reload", 10)
}

// TestCoordinatorRemoveTopicOffsetsWriteFails: a group whose tombstones
// cannot be written keeps its offsets (memory matches the log) and the
// error says why, with the kerr code kept.
func TestCoordinatorRemoveTopicOffsetsWriteFails(t *testing.T) {
	logs := []*memLog{{}}
	topics := &topicSet{}
	c := newExistsCoord(t, logs, topics.exists)
	commitSimple(t, c, "g", CommitOffset{TopicPartition: TopicPartition{"gone", 0}, Offset: 5})
	topics.delete("gone")
	logs[0].setFail(fmt.Errorf("disk on fire: %w", kerr.KafkaStorageError))
	err := c.RemoveTopicOffsets([]string{"gone"})
	if !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("got %v, want a KAFKA_STORAGE_ERROR", err)
	}
	if got := offsetsOf(t, c, "g"); got[TopicPartition{"gone", 0}] != 5 {
		t.Fatalf("offsets after a failed removal %v", got)
	}
	logs[0].setFail(nil)
	mustCode(t, c.RemoveTopicOffsets([]string{"gone"}), nil)
	if got := offsetsOf(t, c, "g"); len(got) != 0 {
		t.Fatalf("offsets after the retried removal %v", got)
	}
}

// TestCoordinatorDropsMissingPartitionsOnLoad: offsets of topics deleted
// while their partition was loading, or before a crash let
// RemoveTopicOffsets write tombstones, are deleted once the partition has
// loaded, durably.
func TestCoordinatorDropsMissingPartitionsOnLoad(t *testing.T) {
	logs := []*memLog{{}, {}}
	c := newExistsCoord(t, logs, nil)
	commitSimple(t, c, "a", CommitOffset{TopicPartition: TopicPartition{"gone", 0}, Offset: 1},
		CommitOffset{TopicPartition: TopicPartition{"keep", 0}, Offset: 2})
	commitSimple(t, c, "b", CommitOffset{TopicPartition: TopicPartition{"gone", 3}, Offset: 4})
	c.Close()

	// The topic is deleted while the partitions load: RemoveTopicOffsets
	// does not wait for them, the loads drop the offsets.
	gate := make(chan struct{})
	for _, l := range logs {
		l.gate = gate
	}
	topics := &topicSet{}
	c2 := startExistsCoord(t, logs, topics.exists)
	topics.delete("gone")
	mustCode(t, c2.RemoveTopicOffsets([]string{"gone"}), nil)
	close(gate)
	for p := range logs {
		waitFor(t, fmt.Sprintf("partition %d loaded", p), func() bool { return c2.Loaded(int32(p)) })
	}
	for _, l := range logs {
		l.gate = nil
	}
	check := func(c *Coordinator, when string) {
		t.Helper()
		if got := offsetsOf(t, c, "a"); len(got) != 1 || got[TopicPartition{"keep", 0}] != 2 {
			t.Errorf("%s: group a has %v", when, got)
		}
		if groups := groupIDs(t, c); len(groups) != 1 || groups["a"] != Empty {
			t.Errorf("%s: groups %v", when, groups)
		}
	}
	check(c2, "after load")
	c2.Close()
	check(newExistsCoord(t, logs, nil), "after reload")
}
