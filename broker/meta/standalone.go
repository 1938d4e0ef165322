package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/gregor-log/gregor/internal/vfs"
)

// StandaloneFile is the name of the standalone store's snapshot in the data
// dir. Its journal, meta.log.<generation>, sits beside it.
const StandaloneFile = "meta.json"

// producerIDBlock is how many producer ids are reserved per journal entry;
// ids of a reserved block not handed out before a crash are skipped, never
// reused.
const producerIDBlock = 1000

// journalCompactMin is the journal size below which it is never compacted,
// however small the snapshot: below it, replaying the journal at open costs
// less than rewriting the snapshot would.
const journalCompactMin = 1 << 20

// Standalone is the single-broker Store. Its metadata lives in the data
// directory as a snapshot (meta.json) and a journal (meta.log.<gen>, the
// generation the snapshot names) of the changes made since: each change
// appends one entry to the journal and fsyncs it before it is applied in
// memory, so a change costs one small append whatever the number of
// topics. When the journal has grown beyond max(1 MiB, the snapshot's
// size), the next change first compacts: it writes a new snapshot followed
// by a new, empty journal. docs/format.md describes both files.
//
// A failed write or fsync of the journal, or a compaction failing from the
// rename of the new snapshot on, is sticky: the change is not applied, and
// every later change fails with ErrStoreUnavailable until the store is
// reopened, since what the files hold is no longer known (fsyncs are never
// retried). A change that failed this way may be found applied after the
// reopen, never before. Reads go on. The exception is a full disk during
// the journal write: the journal is cut back to its last whole entry and,
// if that works, only the change is refused (ErrStoreUnavailable carrying
// ENOSPC), so the store takes changes again once space is freed.
type Standalone struct {
	fs        vfs.FS
	dir       string
	path      string // the snapshot
	self      Broker
	recovered string                // what opening repaired; set before the store is shared
	failed    atomic.Pointer[error] // w.err, for readers that must not wait on w

	// w serialises changes and owns the journal. It is held across journal
	// and snapshot I/O; readers take only mu, so they never wait on an
	// fsync.
	w struct {
		sync.Mutex
		journal    vfs.File // open O_APPEND
		gen        uint64   // the journal's generation
		size       int64    // bytes of whole entries in the journal
		tornTail   bool     // bytes after size, found at open, to cut before appending
		snapSize   int64    // bytes in the snapshot
		compactMin int64    // journalCompactMin; tests lower it
		nextPID    int64
		err        error // sticky: the failure after which changes are refused
		closed     bool
	}
	// mu guards what readers see. The state changes only with w held too,
	// so a holder of w may read it without mu.
	mu struct {
		sync.Mutex
		st *state
	}
}

func (s *Standalone) journalPathLocked() string {
	return filepath.Join(s.dir, journalName(s.w.gen))
}

// writableLocked returns the error a change fails with before it is
// checked: ErrClosed, or ErrStoreUnavailable after a sticky failure.
func (s *Standalone) writableLocked() error {
	switch {
	case s.w.closed:
		return ErrClosed
	case s.w.err != nil:
		return fmt.Errorf("%w: changes are refused until the store is reopened, after: %w", ErrStoreUnavailable, s.w.err)
	}
	return nil
}

// Failed returns the sticky failure after which the store refuses
// changes until it is reopened, or nil. It does not wait for a change in
// progress.
func (s *Standalone) Failed() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Fail makes the store refuse changes until it is reopened, as a failed
// journal write does: for a failure found elsewhere (the data directory
// removed under the broker). Only the first failure is kept.
func (s *Standalone) Fail(err error) {
	s.w.Lock()
	defer s.w.Unlock()
	if s.w.err == nil {
		_ = s.failLocked(err)
	}
}

// failLocked makes err sticky and returns it.
func (s *Standalone) failLocked(err error) error {
	s.w.err = err
	s.failed.Store(&err)
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// commitLocked makes the change e, which the state's check accepted,
// durable and then visible: compaction first if it is due, then one
// journal entry, fsynced.
func (s *Standalone) commitLocked(e *entry) error {
	if err := s.writableLocked(); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode metadata change: %w", err)
	}
	if len(body) > maxEntryBody {
		return fmt.Errorf("metadata change of %d bytes over the limit of %d", len(body), maxEntryBody)
	}
	if s.w.size > max(s.w.compactMin, s.w.snapSize) {
		if err := s.compactLocked(); err != nil {
			return err
		}
	}
	if err := s.appendLocked(frameEntry(body)); err != nil {
		return err
	}
	s.mu.Lock()
	s.mu.st.apply(e)
	s.mu.Unlock()
	return nil
}

// appendLocked appends one framed entry to the journal and fsyncs it.
func (s *Standalone) appendLocked(buf []byte) error {
	if s.w.tornTail {
		if err := s.w.journal.Truncate(s.w.size); err != nil {
			return s.failLocked(fmt.Errorf("truncate the torn tail of metadata journal %s: %w", s.journalPathLocked(), err))
		}
		if err := s.w.journal.Sync(); err != nil {
			return s.failLocked(fmt.Errorf("sync metadata journal %s: %w", s.journalPathLocked(), err))
		}
		s.w.tornTail = false
	}
	if _, err := s.w.journal.Write(buf); err != nil {
		werr := fmt.Errorf("append to metadata journal %s: %w", s.journalPathLocked(), err)
		if terr := s.w.journal.Truncate(s.w.size); terr == nil && vfs.IsNoSpace(err) {
			// A full disk, and the journal is cut back to its last whole
			// entry (it is open O_APPEND, so the next entry follows
			// that): refuse this change only, so the store works again
			// once space is freed.
			return fmt.Errorf("%w: %w", ErrStoreUnavailable, werr)
		}
		// Otherwise sticky: nothing follows the partial entry, and open
		// drops it as a torn tail.
		return s.failLocked(werr)
	}
	if err := s.w.journal.Sync(); err != nil {
		return s.failLocked(fmt.Errorf("sync metadata journal %s: %w", s.journalPathLocked(), err))
	}
	s.w.size += int64(len(buf))
	return nil
}

// compactLocked replaces the snapshot with one of the current state,
// followed by a new, empty journal, and removes the old journal. The steps,
// and what a crash after each leaves (open finds the same state every time):
//
//  1. Create meta.log.<gen+1> empty, fsync it and the directory. A stray
//     journal the snapshot does not name: open removes it.
//  2. Write meta.json naming gen+1: temp file, fsync, rename, directory
//     fsync. Until the rename is durable the old snapshot and journal hold
//     every change; from then on the new snapshot does and the new journal
//     is empty.
//  3. Remove meta.log.<gen>. Superseded: open removes it if this did not.
//
// A failure in step 1, or in step 2 before the rename, leaves the old
// files in charge and the store usable. From the rename on, a failure is
// sticky: which snapshot a crash would leave is unknown.
func (s *Standalone) compactLocked() error {
	next := s.w.gen + 1
	nextPath := filepath.Join(s.dir, journalName(next))
	data, err := encodeSnapshot(s.mu.st, next)
	if err != nil {
		return err
	}
	f, err := s.createJournal(nextPath)
	if err != nil {
		return fmt.Errorf("compact metadata: %w", err)
	}
	if err := vfs.WriteFileAtomic(s.fs, s.path, data); err != nil {
		_ = f.Close()
		if errors.Is(err, vfs.ErrMaybeReplaced) {
			return s.failLocked(fmt.Errorf("compact metadata: %w", err))
		}
		_ = s.fs.Remove(nextPath) // empty and unnamed: open removes it too
		return fmt.Errorf("compact metadata: %w", err)
	}
	old, oldPath := s.w.journal, s.journalPathLocked()
	s.w.journal, s.w.gen, s.w.size, s.w.snapSize = f, next, 0, int64(len(data))
	s.w.tornTail = false // the old journal, with its tail, is superseded
	if old != nil {
		// Both are past the point of mattering: the journal is only read,
		// and open removes it if it is still there.
		_ = old.Close()
		_ = s.fs.Remove(oldPath)
	}
	return nil
}

// createJournal creates an empty journal file at path (truncating a stray
// one) and makes it durable.
func (s *Standalone) createJournal(path string) (vfs.File, error) {
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create metadata journal: %w", err)
	}
	fail := func(err error) (vfs.File, error) {
		_ = f.Close()
		_ = s.fs.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync metadata journal %s: %w", path, err))
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fail(fmt.Errorf("create metadata journal %s: %w", path, err))
	}
	return f, nil
}

// closeJournal closes the journal of a store that failed to open.
func (s *Standalone) closeJournal() {
	if s.w.journal != nil {
		_ = s.w.journal.Close()
	}
}

func copyTopic(t *Topic) Topic {
	c := *t
	if t.Configs != nil {
		c.Configs = make(map[string]string, len(t.Configs))
		for k, v := range t.Configs {
			c.Configs[k] = v
		}
	}
	return c
}

// ClusterID implements Store.
func (s *Standalone) ClusterID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.st.clusterID
}

// ControllerID implements Store: a standalone broker is its own controller.
func (s *Standalone) ControllerID() int32 { return s.self.ID }

// Brokers implements Store.
func (s *Standalone) Brokers() []Broker { return []Broker{s.self} }

// Topics implements Store.
func (s *Standalone) Topics() []Topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Topic, len(s.mu.st.names))
	for i, name := range s.mu.st.names {
		out[i] = copyTopic(s.mu.st.topics[name])
	}
	return out
}

// Topic implements Store.
func (s *Standalone) Topic(name string) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.st.topics[name]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(t), true
}

// TopicByID implements Store.
func (s *Standalone) TopicByID(id TopicID) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name, ok := s.mu.st.byID[id]; ok {
		return copyTopic(s.mu.st.topics[name]), true
	}
	return Topic{}, false
}

// TopicName implements Store.
func (s *Standalone) TopicName(id TopicID) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := s.mu.st.byID[id]
	return name, ok
}

// TopicIDOf implements Store.
func (s *Standalone) TopicIDOf(name string) (TopicID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.mu.st.topics[name]; ok {
		return t.ID, true
	}
	return TopicID{}, false
}

// CreateTopic implements Store.
func (s *Standalone) CreateTopic(t Topic) error { return s.CreateTopics([]Topic{t}) }

// CreateTopics implements Store: one journal entry for all of them.
func (s *Standalone) CreateTopics(ts []Topic) error {
	for i := range ts {
		if ts[i].Partitions < 1 {
			return fmt.Errorf("create topic %q with %d partitions: %w", ts[i].Name, ts[i].Partitions, ErrInvalidPartitions)
		}
	}
	s.w.Lock()
	defer s.w.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	e := &entry{Op: opCreateTopics, Topics: make([]Topic, len(ts))}
	for i := range ts {
		e.Topics[i] = copyTopic(&ts[i])
	}
	if err := s.mu.st.check(e); err != nil {
		return err
	}
	if len(ts) == 0 {
		return nil
	}
	return s.commitLocked(e)
}

// DeleteTopic implements Store.
func (s *Standalone) DeleteTopic(name string) error { return s.DeleteTopics([]string{name}) }

// DeleteTopics implements Store, with one journal entry.
func (s *Standalone) DeleteTopics(names []string) error {
	s.w.Lock()
	defer s.w.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	e := &entry{Op: opDeleteTopics, Names: append([]string(nil), names...)}
	if err := s.mu.st.check(e); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	return s.commitLocked(e)
}

// SetPartitionCount implements Store.
func (s *Standalone) SetPartitionCount(name string, n int32) error {
	s.w.Lock()
	defer s.w.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	e := &entry{Op: opSetPartitions, Name: name, Partitions: n}
	if err := s.mu.st.check(e); err != nil {
		return err
	}
	return s.commitLocked(e)
}

// SetTopicConfigs implements Store.
func (s *Standalone) SetTopicConfigs(name string, configs map[string]string) error {
	s.w.Lock()
	defer s.w.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	e := &entry{Op: opSetConfigs, Name: name, Configs: make(map[string]string, len(configs))}
	for k, v := range configs {
		e.Configs[k] = v
	}
	if err := s.mu.st.check(e); err != nil {
		return err
	}
	return s.commitLocked(e)
}

// BrokerConfigs implements Store.
func (s *Standalone) BrokerConfigs(entity string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.mu.st.brokerConfigs[entity])
}

// SetBrokerConfigs implements Store.
func (s *Standalone) SetBrokerConfigs(entity string, configs map[string]string) error {
	s.w.Lock()
	defer s.w.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	e := &entry{Op: opBrokerConfigs, Name: entity, Configs: maps.Clone(configs)}
	if err := s.mu.st.check(e); err != nil {
		return err
	}
	return s.commitLocked(e)
}

// Partition implements Store: the standalone broker leads every partition in
// epoch 0.
func (s *Standalone) Partition(topic string, partition int32) (PartitionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.st.topics[topic]
	if !ok || partition < 0 || partition >= t.Partitions {
		return PartitionState{}, false
	}
	return PartitionState{Leader: s.self.ID, LeaderEpoch: 0, Replicas: []int32{s.self.ID}, ISR: []int32{s.self.ID}}, true
}

// LeaderEpoch implements Store: a standalone broker leads every partition
// in epoch 0.
func (s *Standalone) LeaderEpoch(topic string, partition int32) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.st.topics[topic]
	if !ok || partition < 0 || partition >= t.Partitions {
		return 0, false
	}
	return 0, true
}

// NextProducerID implements Store. Ids are reserved in blocks, each by a
// journal entry made durable before any id of the block is handed out; the
// ids of a reserved block are handed out even after a sticky failure.
func (s *Standalone) NextProducerID() (int64, error) {
	s.w.Lock()
	defer s.w.Unlock()
	if s.w.closed {
		return 0, ErrClosed
	}
	if limit := s.mu.st.producerIDLimit; s.w.nextPID >= limit {
		if limit > 1<<62 {
			return 0, ErrProducerIDsSpent
		}
		if err := s.commitLocked(&entry{Op: opProducerIDLimit, Limit: limit + producerIDBlock}); err != nil {
			return 0, err
		}
	}
	id := s.w.nextPID
	s.w.nextPID++
	return id, nil
}

// Close implements Store. Reads keep working; changes fail with ErrClosed.
func (s *Standalone) Close() error {
	s.w.Lock()
	defer s.w.Unlock()
	if s.w.closed {
		return nil
	}
	s.w.closed = true
	if err := s.w.journal.Close(); err != nil {
		return fmt.Errorf("close metadata journal: %w", err)
	}
	return nil
}
