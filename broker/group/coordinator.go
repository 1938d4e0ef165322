package group

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
)

// Log is one partition of the offsets topic as the coordinator sees it.
// The broker implements it over a storage.Log; tests use a slice of
// batches.
type Log interface {
	// Append writes one record batch (v2, base offset 0, no producer, as
	// record.Builder makes it) and returns once the batch is committed:
	// as durable as the topic's replication requires and visible to
	// readers. The coordinator calls Append for one partition from one
	// goroutine at a time. An error should wrap the kerr error a client
	// would get for it (MESSAGE_TOO_LARGE, NOT_LEADER_OR_FOLLOWER,
	// KAFKA_STORAGE_ERROR, ...); others count as COORDINATOR_NOT_AVAILABLE.
	Append(batch []byte) error
	// Replay calls fn with each record batch from the start of the log to
	// its committed end, in order, and stops at fn's first error, which
	// it returns. batch is valid only during the call.
	Replay(fn func(batch []byte) error) error
}

// Options are a Coordinator's dependencies that tests replace.
type Options struct {
	Logger *zap.Logger      // defaults to a no-op logger
	Now    func() time.Time // defaults to time.Now
	// PartitionExists reports whether a partition exists in the cluster's
	// metadata; nil means every partition does. It must be safe for
	// concurrent use and must not call the Coordinator: it is called with
	// a shard's lock held. The coordinator uses it twice: a commit to a
	// partition that does not exist is refused (UNKNOWN_TOPIC_OR_PARTITION)
	// under the group's lock, so no commit can land after
	// RemoveTopicOffsets for a topic deleted before it ran; and a
	// partition, once loaded, drops the offsets of partitions that do not
	// exist (topics deleted while it was loading, or before a crash let
	// RemoveTopicOffsets write their tombstones).
	PartitionExists func(TopicPartition) bool
}

// Coordinator runs the groups of the offsets-topic partitions this broker
// leads. Each partition is a shard: loaded by LoadPartition (in the
// background; its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile),
// given up by UnloadPartition (its groups answer NOT_COORDINATOR), with one
// goroutine that replays the log and then fires the groups' timeouts and
// the periodic offset expiry. Requests work on a shard under its mutex,
// writing to its Log before they answer, so the log order is the order of
// events. A Coordinator is safe for concurrent use.
type Coordinator struct {
	cfg             Config
	logger          *zap.Logger
	now             func() time.Time
	partitionExists func(TopicPartition) bool // nil: every partition exists
	shards          []*shard
	wg              sync.WaitGroup // one per shard goroutine

	mu struct {
		sync.Mutex
		closed bool
	}
}

// ErrClosed is returned by LoadPartition after Close.
var ErrClosed = errors.New("group coordinator closed")

// NewCoordinator validates cfg and returns a Coordinator with no partitions loaded.
func NewCoordinator(cfg Config, opts Options) (*Coordinator, error) {
	if cfg.NewMemberID == nil {
		cfg.NewMemberID = randomMemberID
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid group coordinator config:\n%w", err)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Coordinator{cfg: cfg, logger: opts.Logger, now: opts.Now, partitionExists: opts.PartitionExists}
	c.shards = make([]*shard, cfg.NumPartitions)
	for i := range c.shards {
		s := &shard{c: c, partition: int32(i), wake: make(chan struct{}, 1)}
		c.shards[i] = s
	}
	return c, nil
}

// NumPartitions is the offsets topic's partition count.
func (c *Coordinator) NumPartitions() int32 { return c.cfg.NumPartitions }

// PartitionFor is the offsets-topic partition of a group.
func (c *Coordinator) PartitionFor(groupID string) int32 {
	return PartitionFor(groupID, c.cfg.NumPartitions)
}

// LoadPartition makes this coordinator the coordinator of the groups in
// partition p: it replays log in the background, after which their
// requests are served. Loading a loaded (or loading) partition is a no-op;
// one whose load failed (its groups answer COORDINATOR_NOT_AVAILABLE) must
// be unloaded first.
func (c *Coordinator) LoadPartition(p int32, log Log) error {
	if p < 0 || int(p) >= len(c.shards) {
		return fmt.Errorf("load offsets partition %d: the topic has %d partitions", p, len(c.shards))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return ErrClosed
	}
	s := c.shards[p]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.status != statusUnloaded {
		return nil
	}
	s.mu.status = statusLoading
	s.mu.log = log
	s.mu.stop = make(chan struct{})
	s.mu.done = make(chan struct{})
	c.wg.Add(1)
	go s.run(log, s.mu.stop, s.mu.done)
	return nil
}

// UnloadPartition gives up partition p: waiting joins and syncs are
// answered NOT_COORDINATOR, the groups are forgotten, and the shard's
// goroutine has stopped when it returns.
func (c *Coordinator) UnloadPartition(p int32) {
	if p < 0 || int(p) >= len(c.shards) {
		return
	}
	s := c.shards[p]
	s.mu.Lock()
	if s.mu.status == statusUnloaded {
		s.mu.Unlock()
		return
	}
	done := s.mu.done
	close(s.mu.stop)
	var replies []Reply
	for _, g := range s.mu.groups {
		replies = append(replies, g.Abandon(kerr.NotCoordinator)...)
	}
	s.mu.status = statusUnloaded
	s.mu.log = nil
	s.mu.groups = nil
	s.mu.scheduled = nil
	s.mu.deadlines = nil
	s.mu.stop, s.mu.done = nil, nil
	s.mu.Unlock()
	deliver(replies)
	<-done
}

// Loaded reports whether partition p is loaded and serving.
func (c *Coordinator) Loaded(p int32) bool {
	if p < 0 || int(p) >= len(c.shards) {
		return false
	}
	s := c.shards[p]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.status == statusActive
}

// Close unloads every partition and waits for the shard goroutines.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	for p := range c.shards {
		c.UnloadPartition(int32(p))
	}
	c.wg.Wait()
}

type shardStatus int8

const (
	statusUnloaded shardStatus = iota
	statusLoading
	statusActive
	statusFailed
)

// shard is one offsets partition's groups.
type shard struct {
	c         *Coordinator
	partition int32
	wake      chan struct{} // capacity 1: the earliest deadline moved earlier

	mu struct {
		sync.Mutex
		status shardStatus
		log    Log
		groups map[string]*Group
		// scheduled is the deadline each group's live heap entry is for;
		// heap entries that disagree are stale and skipped.
		scheduled map[string]time.Time
		deadlines deadlineHeap
		stop      chan struct{} // closed by UnloadPartition
		done      chan struct{} // closed when run returns
		builder   *record.Builder
		buf       []byte
		// failLogged is when a failed group-state write was last logged;
		// failQuiet counts those not logged since (a full disk fails
		// every rejoin, several a second).
		failLogged time.Time
		failQuiet  int
	}
}

// failLogEvery is how often a shard logs failed group-state writes.
const failLogEvery = 10 * time.Second

// lock returns the group's shard, locked, if it is serving; otherwise the
// error its requests get.
func (c *Coordinator) lock(groupID string) (*shard, error) {
	s := c.shards[c.PartitionFor(groupID)]
	s.mu.Lock()
	var err error
	switch s.mu.status {
	case statusActive:
		return s, nil
	case statusLoading:
		err = fmt.Errorf("offsets partition %d is loading: %w", s.partition, kerr.CoordinatorLoadInProgress)
	case statusUnloaded:
		err = fmt.Errorf("offsets partition %d is not led by this broker: %w", s.partition, kerr.NotCoordinator)
	default:
		err = fmt.Errorf("offsets partition %d failed to load: %w", s.partition, kerr.CoordinatorNotAvailable)
	}
	s.mu.Unlock()
	return nil, err
}

// deliver hands replies to the callbacks the coordinator registered as
// waiters. Called without locks held.
func deliver(replies []Reply) {
	for _, r := range replies {
		switch w := r.To.(type) {
		case func(JoinResult):
			if r.Join != nil {
				w(*r.Join)
			}
		case func(SyncResult):
			if r.Sync != nil {
				w(*r.Sync)
			}
		}
	}
}

// kv is one record to write; a nil value is a tombstone.
type kv struct{ key, value []byte }

// appendLocked writes records as one batch.
func (s *shard) appendLocked(recs []kv) error {
	if s.mu.builder == nil {
		s.mu.builder = record.NewBuilder()
	}
	b := s.mu.builder
	b.Reset()
	ts := s.c.now().UnixMilli()
	for _, r := range recs {
		b.Add(r.key, r.value, nil, ts)
	}
	s.mu.buf = b.AppendTo(s.mu.buf[:0])
	if err := s.mu.log.Append(s.mu.buf); err != nil {
		return err
	}
	return nil
}

// writeError turns a Log.Append failure into what clients are told, as
// Kafka maps them: the partition moved or its disk failed -> NOT_COORDINATOR
// (look the coordinator up again); too large -> INVALID_COMMIT_OFFSET_SIZE
// for commits, UNKNOWN_SERVER_ERROR for group state; anything else ->
// COORDINATOR_NOT_AVAILABLE (retry).
func writeError(err error, commit bool) error {
	code := kerr.CoordinatorNotAvailable
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.NotLeaderForPartition, kerr.KafkaStorageError, kerr.NotCoordinator:
			code = kerr.NotCoordinator
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
			code = kerr.UnknownServerError
			if commit {
				code = kerr.InvalidCommitOffsetSize
			}
		}
	}
	return fmt.Errorf("write to the offsets topic: %w: %w", code, err)
}

// afterEventLocked finishes an event on g: writes its state if it
// changed (turning the event's replies into errors if that fails),
// schedules its next deadline, and drops it if nothing is left of it.
func (s *shard) afterEventLocked(now time.Time, g *Group, replies []Reply) []Reply {
	if g.TakeDirty() {
		if err := s.appendLocked([]kv{{groupKey(g.ID()), groupValue(g.Snapshot())}}); err != nil {
			if now.Sub(s.mu.failLogged) >= failLogEvery {
				s.c.logger.Warn("writing group state failed; rebalancing", zap.String("group", g.ID()),
					zap.Int("failures_not_logged", s.mu.failQuiet), zap.Error(err))
				s.mu.failLogged, s.mu.failQuiet = now, 0
			} else {
				s.mu.failQuiet++
			}
			replies = g.PersistFailed(now, replies, writeError(err, false))
		}
	}
	if g.Disposable() {
		delete(s.mu.groups, g.ID())
		delete(s.mu.scheduled, g.ID())
		return replies
	}
	s.scheduleLocked(g)
	return replies
}

// scheduleLocked makes sure the shard wakes at g's next deadline.
func (s *shard) scheduleLocked(g *Group) {
	next := g.NextDeadline()
	if next.IsZero() {
		return
	}
	if cur, ok := s.mu.scheduled[g.ID()]; ok && !next.Before(cur) {
		return // an earlier wake-up is booked; it reschedules
	}
	s.mu.scheduled[g.ID()] = next
	first := len(s.mu.deadlines) == 0 || next.Before(s.mu.deadlines[0].at)
	heap.Push(&s.mu.deadlines, deadline{at: next, group: g.ID()})
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// run loads the shard and then serves its timers until stop closes.
func (s *shard) run(log Log, stop <-chan struct{}, done chan<- struct{}) {
	defer s.c.wg.Done()
	defer close(done)
	start := time.Now()
	groups, stats, err := s.load(log, stop)
	s.mu.Lock()
	if s.mu.stop != stop { // unloaded while loading
		s.mu.Unlock()
		return
	}
	if err != nil {
		s.mu.status = statusFailed
		s.mu.Unlock()
		s.c.logger.Error("loading offsets partition failed; its groups answer COORDINATOR_NOT_AVAILABLE until it is reloaded",
			zap.Int32("partition", s.partition), zap.Error(err))
		return
	}
	s.mu.groups = groups
	s.mu.scheduled = map[string]time.Time{}
	s.mu.deadlines = nil
	for _, g := range groups {
		s.scheduleLocked(g)
	}
	s.mu.status = statusActive
	s.dropMissingPartitionsLocked()
	s.mu.Unlock()
	if stats.records > 0 || stats.skipped > 0 {
		s.c.logger.Info("loaded offsets partition", zap.Int32("partition", s.partition), zap.Int("groups", len(groups)),
			zap.Int("records", stats.records), zap.Int("skipped", stats.skipped), zap.Duration("took", time.Since(start)))
	}
	s.serve(stop)
}

type loadStats struct{ records, skipped int }

var errUnloaded = errors.New("partition unloaded while loading")

// load replays the log into groups.
func (s *shard) load(log Log, stop <-chan struct{}) (map[string]*Group, loadStats, error) {
	var stats loadStats
	groups := map[string]*Group{}
	now := s.c.now()
	err := log.Replay(func(batch []byte) error {
		select {
		case <-stop:
			return errUnloaded
		default:
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			return fmt.Errorf("offsets partition %d: %w", s.partition, err)
		}
		if h.Control() {
			return nil
		}
		return record.Records(h, batch, func(r *record.Record) error {
			stats.records++
			if r.Key == nil {
				stats.skipped++
				return nil
			}
			lr, err := decodeRecord(r.Key, r.Value)
			if err != nil {
				stats.skipped++
				s.c.logger.Warn("skipping undecodable offsets-topic record", zap.Int32("partition", s.partition),
					zap.Int64("offset", h.BaseOffset+int64(r.OffsetDelta)), zap.Error(err))
				return nil
			}
			g := groups[lr.group]
			if g == nil {
				g = NewGroup(lr.group, &s.c.cfg)
				groups[lr.group] = g
			}
			switch {
			case lr.isOffset && lr.offset != nil:
				g.SetOffset(lr.tp, *lr.offset)
			case lr.isOffset:
				g.DeleteOffset(lr.tp)
			case lr.isGroup && lr.snapshot != nil:
				g.Restore(now, *lr.snapshot)
			case lr.isGroup:
				// Deleted: whatever came before is gone; offsets
				// written later still count.
				fresh := NewGroup(lr.group, &s.c.cfg)
				for _, tp := range g.Offsets() {
					o, _ := g.Offset(tp)
					fresh.SetOffset(tp, o)
				}
				groups[lr.group] = fresh
			}
			return nil
		})
	})
	if err != nil {
		return nil, stats, err
	}
	for id, g := range groups {
		g.TakeDirty()
		if g.Disposable() {
			delete(groups, id)
			continue
		}
		g.Loaded(now)
	}
	return groups, stats, nil
}

// serve fires group deadlines and offset expiry until stop closes.
func (s *shard) serve(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	expiry := time.NewTicker(s.c.cfg.RetentionCheckInterval)
	defer expiry.Stop()
	for {
		wait := time.Hour
		s.mu.Lock()
		if len(s.mu.deadlines) > 0 {
			wait = max(0, s.mu.deadlines[0].at.Sub(s.c.now()))
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-s.wake:
		case <-timer.C:
			s.fireDue()
		case <-expiry.C:
			s.expireOffsets()
		}
	}
}

// fireDue ticks every group whose deadline has come.
func (s *shard) fireDue() {
	s.mu.Lock()
	if s.mu.status != statusActive {
		s.mu.Unlock()
		return
	}
	now := s.c.now()
	var due []string
	for len(s.mu.deadlines) > 0 && !s.mu.deadlines[0].at.After(now) {
		d := heap.Pop(&s.mu.deadlines).(deadline)
		if at, ok := s.mu.scheduled[d.group]; ok && at.Equal(d.at) {
			delete(s.mu.scheduled, d.group)
			due = append(due, d.group)
		}
	}
	var replies []Reply
	for _, id := range due {
		g := s.mu.groups[id]
		if g == nil {
			continue
		}
		replies = append(replies, s.afterEventLocked(now, g, g.Tick(now))...)
	}
	s.mu.Unlock()
	deliver(replies)
}

// expireOffsets deletes expired offsets, and groups left empty with none.
func (s *shard) expireOffsets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.status != statusActive {
		return
	}
	now := s.c.now()
	var groups, offsets, deleted int
	for id, g := range s.mu.groups {
		tps := g.ExpiredOffsets(now, s.c.cfg.OffsetsRetention)
		drop := leftWithNothing(g, tps)
		if len(tps) == 0 && !drop {
			continue
		}
		if err := s.tombstoneLocked(now, g, tps, drop); err != nil {
			s.c.logger.Warn("expiring offsets failed", zap.String("group", id), zap.Error(err))
			continue
		}
		s.c.logger.Debug("expired offsets", zap.String("group", id), zap.Int("offsets", len(tps)), zap.Bool("group_deleted", drop))
		groups++
		offsets += len(tps)
		if drop {
			deleted++
		}
	}
	if groups > 0 {
		// One line a pass, as Kafka logs its cleanup; each group's at
		// debug level.
		s.c.logger.Info("expired offsets", zap.Int32("partition", s.partition), zap.Int("groups", groups),
			zap.Int("offsets", offsets), zap.Int("groups_deleted", deleted), zap.Duration("took", s.c.now().Sub(now)))
	}
}

// leftWithNothing reports whether deleting offsets tps (all committed
// ones of g) leaves g with nothing to keep: Empty, without members or
// pending members, and without offsets. Kafka then deletes the group
// (Dead), whether the offsets expired or their topic was deleted.
func leftWithNothing(g *Group, tps []TopicPartition) bool {
	return g.State() == Empty && len(g.Members()) == 0 && g.NumPending() == 0 && len(tps) == g.NumOffsets()
}

// tombstoneLocked deletes the committed offsets tps of g and, if
// dropGroup, g itself: it writes their tombstones as one batch and only
// once that succeeded forgets them, so what is in memory is what a reload
// finds. A dropped group is Dead and leaves the shard. The error is
// Append's, for the caller to wrap. Offset expiry, OffsetDelete,
// DeleteGroups and topic deletion all delete through it.
func (s *shard) tombstoneLocked(now time.Time, g *Group, tps []TopicPartition, dropGroup bool) error {
	id := g.ID()
	recs := make([]kv, 0, len(tps)+1)
	for _, tp := range tps {
		recs = append(recs, kv{offsetKey(id, tp), nil})
	}
	if dropGroup {
		recs = append(recs, kv{groupKey(id), nil})
	}
	if len(recs) == 0 {
		return nil
	}
	if err := s.appendLocked(recs); err != nil {
		return err
	}
	for _, tp := range tps {
		g.DeleteOffset(tp)
	}
	if dropGroup {
		g.SetDead(now)
		delete(s.mu.groups, id)
		delete(s.mu.scheduled, id)
	}
	return nil
}

// removeOffsetsLocked deletes, in every group of the shard, the committed
// offsets for which gone returns true, and deletes each group this leaves
// with nothing (see leftWithNothing); groups without such offsets are not
// touched. Each group's tombstones are one batch, as offset expiry writes
// them, so no batch outgrows the offsets topic's max.message.bytes however
// many groups there are. A group whose batch fails keeps its offsets; the
// failures are joined in the error. It returns how many offsets and
// groups were deleted.
func (s *shard) removeOffsetsLocked(now time.Time, gone func(TopicPartition) bool) (offsets, groups int, err error) {
	var errs []error
	for id, g := range s.mu.groups {
		var tps []TopicPartition
		for _, tp := range g.Offsets() {
			if gone(tp) {
				tps = append(tps, tp)
			}
		}
		if len(tps) == 0 {
			continue
		}
		drop := leftWithNothing(g, tps)
		if werr := s.tombstoneLocked(now, g, tps, drop); werr != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", id, werr))
			continue
		}
		offsets += len(tps)
		if drop {
			groups++
		}
	}
	return offsets, groups, errors.Join(errs...)
}

// dropMissingPartitionsLocked deletes, right after the shard loaded, the
// offsets of partitions that no longer exist. Failures are logged: the
// offsets stay until the next load or their expiry, and commits to the
// missing partitions are refused meanwhile.
func (s *shard) dropMissingPartitionsLocked() {
	exists := s.c.partitionExists
	if exists == nil {
		return
	}
	offsets, groups, err := s.removeOffsetsLocked(s.c.now(), func(tp TopicPartition) bool { return !exists(tp) })
	if err != nil {
		s.c.logger.Warn("deleting offsets of partitions that no longer exist failed", zap.Int32("partition", s.partition), zap.Error(err))
	}
	if offsets > 0 {
		s.c.logger.Info("deleted offsets of partitions that no longer exist", zap.Int32("partition", s.partition),
			zap.Int("offsets", offsets), zap.Int("groups_deleted", groups))
	}
}

// RemoveTopicOffsets deletes every group's committed offsets for the
// partitions of topics, as Kafka's coordinator does when topics are
// deleted, so that a topic created again under the same name starts with
// no committed offsets and its consumers follow their reset policy. A
// group left Empty with no members and no offsets is deleted too, as by
// offset expiry. The tombstones are written to the offsets topic, and
// committed there as OffsetCommit's records are, before it returns, so
// the removal survives a restart.
//
// Call it after the topics are gone from metadata (PartitionExists
// reports their partitions missing): a commit racing the deletion is then
// either refused or written before the removal, which deletes it.
// Partitions still loading are not waited for; they drop the offsets of
// missing partitions when their load completes. The errors of groups
// whose tombstones could not be written are joined; those groups keep
// their offsets until the next load of their partition drops them.
func (c *Coordinator) RemoveTopicOffsets(topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	deleted := make(map[string]bool, len(topics))
	for _, t := range topics {
		deleted[t] = true
	}
	gone := func(tp TopicPartition) bool { return deleted[tp.Topic] }
	var errs []error
	for _, s := range c.shards {
		s.mu.Lock()
		if s.mu.status != statusActive {
			s.mu.Unlock()
			continue
		}
		offsets, groups, err := s.removeOffsetsLocked(c.now(), gone)
		s.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("offsets partition %d: %w", s.partition, err))
		}
		if offsets > 0 {
			c.logger.Info("deleted the offsets of deleted topics", zap.Int32("partition", s.partition), zap.Strings("topics", topics),
				zap.Int("offsets", offsets), zap.Int("groups_deleted", groups))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete committed offsets of topics %q: %w", topics, err)
	}
	return nil
}

// JoinGroup handles a JoinGroup. done is called exactly once, possibly
// before JoinGroup returns, possibly later from another goroutine when the
// rebalance completes; it must not block.
func (c *Coordinator) JoinGroup(groupID string, req JoinRequest, done func(JoinResult)) {
	s, err := c.lock(groupID)
	if err != nil {
		done(JoinResult{Err: err, MemberID: req.MemberID, Generation: -1})
		return
	}
	now := c.now()
	g := s.mu.groups[groupID]
	if g == nil {
		g = NewGroup(groupID, &c.cfg)
		s.mu.groups[groupID] = g
	}
	replies := s.afterEventLocked(now, g, g.Join(now, req, done))
	s.mu.Unlock()
	deliver(replies)
}

// SyncGroup handles a SyncGroup; done as for JoinGroup.
func (c *Coordinator) SyncGroup(groupID string, req SyncRequest, done func(SyncResult)) {
	s, err := c.lock(groupID)
	if err != nil {
		done(SyncResult{Err: err})
		return
	}
	g := s.mu.groups[groupID]
	if g == nil {
		s.mu.Unlock()
		done(SyncResult{Err: fmt.Errorf("group %q does not exist: %w", groupID, kerr.UnknownMemberID)})
		return
	}
	now := c.now()
	replies := s.afterEventLocked(now, g, g.Sync(now, req, done))
	s.mu.Unlock()
	deliver(replies)
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(groupID, memberID, instanceID string, generation int32) error {
	s, err := c.lock(groupID)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	g := s.mu.groups[groupID]
	if g == nil {
		return fmt.Errorf("group %q does not exist: %w", groupID, kerr.UnknownMemberID)
	}
	return g.Heartbeat(c.now(), memberID, instanceID, generation)
}

// LeaveGroup handles a LeaveGroup: one error per member, or an error for
// the whole request.
func (c *Coordinator) LeaveGroup(groupID string, members []LeaveMember) ([]error, error) {
	s, err := c.lock(groupID)
	if err != nil {
		return nil, err
	}
	g := s.mu.groups[groupID]
	if g == nil {
		s.mu.Unlock()
		errs := make([]error, len(members))
		for i := range errs {
			errs[i] = fmt.Errorf("group %q does not exist: %w", groupID, kerr.UnknownMemberID)
		}
		return errs, nil
	}
	now := c.now()
	errs, replies := g.Leave(now, members)
	replies = s.afterEventLocked(now, g, replies)
	s.mu.Unlock()
	deliver(replies)
	return errs, nil
}

// CommitRequest is an OffsetCommit for one group, decoded.
type CommitRequest struct {
	MemberID   string
	InstanceID string
	Generation int32 // -1 for a commit from outside group management
	Offsets    []CommitOffset
	// Transactional marks the offsets of a committed transaction: their
	// member was checked at TxnOffsetCommit, and is not again. Their
	// CommitTime is that of the TxnOffsetCommit, and an offset is not
	// applied over one committed later, outside the transaction: Kafka
	// applies a transaction's offset only over one older in the log.
	Transactional bool
}

// CommitOffset is one partition's offset to commit.
type CommitOffset struct {
	TopicPartition
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  time.Time // zero: now (OffsetCommit v1 may set it)
	ExpireTime  time.Time // zero: the group's retention applies
}

// CommitOffsets handles an OffsetCommit: one error per offset (nil when
// committed), or an error for the whole request. Offsets are written as
// one batch, so a commit is all or nothing on disk.
func (c *Coordinator) CommitOffsets(groupID string, req CommitRequest) ([]error, error) {
	s, err := c.lock(groupID)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := c.now()
	g := s.mu.groups[groupID]
	if !req.Transactional {
		if err := checkMember(now, g, groupID, req.MemberID, req.InstanceID, req.Generation); err != nil {
			return nil, err
		}
	}
	created := false
	if g == nil {
		g = NewGroup(groupID, &c.cfg)
		created = true
	}
	errs := make([]error, len(req.Offsets))
	superseded := make([]bool, len(req.Offsets))
	recs := make([]kv, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		if c.partitionExists != nil && !c.partitionExists(o.TopicPartition) {
			errs[i] = fmt.Errorf("partition %s-%d does not exist: %w", o.Topic, o.Partition, kerr.UnknownTopicOrPartition)
			continue
		}
		if len(o.Metadata) > c.cfg.MaxOffsetMetadataBytes {
			errs[i] = fmt.Errorf("metadata is %d bytes, the limit is %d: %w", len(o.Metadata), c.cfg.MaxOffsetMetadataBytes, kerr.OffsetMetadataTooLarge)
			continue
		}
		off := toOffset(o, now)
		if req.Transactional && !o.CommitTime.IsZero() {
			if cur, ok := g.Offset(o.TopicPartition); ok && cur.CommitTime.After(off.CommitTime) {
				superseded[i] = true // committed since the transaction's TxnOffsetCommit
				continue
			}
		}
		recs = append(recs, kv{offsetKey(groupID, o.TopicPartition), offsetValue(off)})
	}
	if len(recs) == 0 {
		return errs, nil
	}
	if err := s.appendLocked(recs); err != nil {
		return nil, writeError(err, true)
	}
	for i, o := range req.Offsets {
		if errs[i] == nil && !superseded[i] {
			g.SetOffset(o.TopicPartition, toOffset(o, now))
		}
	}
	if created {
		s.mu.groups[groupID] = g
	}
	return errs, nil
}

// CheckMember checks the member of a TxnOffsetCommit as OffsetCommit
// checks its member (a commit also counts as a heartbeat). A group that
// does not exist accepts a commit from outside group management only.
func (c *Coordinator) CheckMember(groupID, memberID, instanceID string, generation int32) error {
	s, err := c.lock(groupID)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	return checkMember(c.now(), s.mu.groups[groupID], groupID, memberID, instanceID, generation)
}

// checkMember checks a committing member against group g (nil when the
// group does not exist, which only a commit from outside group
// management, generation < 0, may create).
func checkMember(now time.Time, g *Group, groupID, memberID, instanceID string, generation int32) error {
	if g == nil {
		if generation >= 0 {
			return fmt.Errorf("group %q does not exist, generation %d: %w", groupID, generation, kerr.IllegalGeneration)
		}
		return nil
	}
	return g.CheckCommit(now, memberID, instanceID, generation)
}

func toOffset(o CommitOffset, now time.Time) Offset {
	at := o.CommitTime
	if at.IsZero() {
		at = now
	}
	return Offset{
		Offset:      o.Offset,
		LeaderEpoch: o.LeaderEpoch,
		Metadata:    o.Metadata,
		CommitTime:  time.UnixMilli(at.UnixMilli()), // as stored: milliseconds
		ExpireTime:  o.ExpireTime,
	}
}

// FetchedOffset is one partition's committed offset; Found is false when
// nothing is committed for it.
type FetchedOffset struct {
	TopicPartition
	Offset
	Found bool
}

// FetchOffsets returns a group's committed offsets for the partitions
// asked (all committed ones, sorted, when parts is nil). An unknown group
// has no offsets.
func (c *Coordinator) FetchOffsets(groupID string, parts []TopicPartition) ([]FetchedOffset, error) {
	s, err := c.lock(groupID)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	g := s.mu.groups[groupID]
	if parts == nil {
		if g == nil {
			return []FetchedOffset{}, nil
		}
		parts = g.Offsets()
	}
	out := make([]FetchedOffset, len(parts))
	for i, tp := range parts {
		out[i].TopicPartition = tp
		if g != nil {
			out[i].Offset, out[i].Found = g.Offset(tp)
		}
	}
	return out, nil
}

// DescribeGroup describes a group; an unknown group is described as Dead
// with no members, as Kafka does.
func (c *Coordinator) DescribeGroup(groupID string) (Description, error) {
	s, err := c.lock(groupID)
	if err != nil {
		return Description{}, err
	}
	defer s.mu.Unlock()
	g := s.mu.groups[groupID]
	if g == nil {
		return Description{State: Dead}, nil
	}
	d := g.Describe()
	// Copy what aliases the group's state: the caller encodes it unlocked.
	for i := range d.Members {
		d.Members[i].Metadata = bytes.Clone(d.Members[i].Metadata)
		d.Members[i].Assignment = bytes.Clone(d.Members[i].Assignment)
	}
	return d, nil
}

// Listing is one group in ListGroups.
type Listing struct {
	GroupID      string
	ProtocolType string
	State        State
}

// ListGroups lists the groups of every loaded partition, filtered by state
// when states is not empty. If some partition is still loading, the
// groups known so far come with COORDINATOR_LOAD_IN_PROGRESS.
func (c *Coordinator) ListGroups(states []State) ([]Listing, error) {
	var out []Listing
	var err error
	for _, s := range c.shards {
		s.mu.Lock()
		switch s.mu.status {
		case statusLoading:
			err = fmt.Errorf("offsets partition %d is loading: %w", s.partition, kerr.CoordinatorLoadInProgress)
		case statusActive:
			for id, g := range s.mu.groups {
				if len(states) > 0 && !containsState(states, g.State()) {
					continue
				}
				out = append(out, Listing{GroupID: id, ProtocolType: g.ProtocolType(), State: g.State()})
			}
		}
		s.mu.Unlock()
	}
	return out, err
}

func containsState(states []State, s State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// DeleteGroup deletes an empty group and its committed offsets: unknown
// groups are GROUP_ID_NOT_FOUND, groups with members NON_EMPTY_GROUP.
func (c *Coordinator) DeleteGroup(groupID string) error {
	s, err := c.lock(groupID)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	g := s.mu.groups[groupID]
	if g == nil || g.State() == Dead {
		return fmt.Errorf("group %q does not exist: %w", groupID, kerr.GroupIDNotFound)
	}
	if g.State() != Empty {
		return fmt.Errorf("group %q is %s with %d members: %w", groupID, g.State(), len(g.Members()), kerr.NonEmptyGroup)
	}
	if err := s.tombstoneLocked(c.now(), g, g.Offsets(), true); err != nil {
		return writeError(err, false)
	}
	return nil
}

// DeleteOffsets deletes committed offsets of a group (OffsetDelete). A
// consumer group with members keeps the offsets of topics its members
// subscribe to (GROUP_SUBSCRIBED_TO_TOPIC for those partitions); another
// kind of group must be empty (NON_EMPTY_GROUP).
func (c *Coordinator) DeleteOffsets(groupID string, parts []TopicPartition) ([]error, error) {
	s, err := c.lock(groupID)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	g := s.mu.groups[groupID]
	if g == nil || g.State() == Dead {
		return nil, fmt.Errorf("group %q does not exist: %w", groupID, kerr.GroupIDNotFound)
	}
	errs := make([]error, len(parts))
	if g.State() != Empty {
		if g.ProtocolType() != "consumer" {
			return nil, fmt.Errorf("group %q is %s: %w", groupID, g.State(), kerr.NonEmptyGroup)
		}
		subscribed, ok := g.SubscribedTopics()
		for i, tp := range parts {
			if !ok || subscribed[tp.Topic] {
				errs[i] = fmt.Errorf("group %q consumes topic %q: %w", groupID, tp.Topic, kerr.GroupSubscribedToTopic)
			}
		}
	}
	var tps []TopicPartition
	for i, tp := range parts {
		if errs[i] != nil {
			continue
		}
		if _, ok := g.Offset(tp); ok {
			tps = append(tps, tp)
		}
	}
	// Unlike expiry, OffsetDelete never deletes the group (as Kafka).
	if err := s.tombstoneLocked(c.now(), g, tps, false); err != nil {
		return nil, writeError(err, false)
	}
	return errs, nil
}

// deadline is a heap entry: wake group at at.
type deadline struct {
	at    time.Time
	group string
}

// deadlineHeap is a min-heap of deadlines (container/heap).
type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
