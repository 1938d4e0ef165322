package meta

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gregor-log/gregor/internal/vfs"
)

// StandaloneFile is the name of the standalone store's file in the data dir.
const StandaloneFile = "meta.json"

// producerIDBlock is how many producer ids are reserved per write of the
// metadata file; ids of a reserved block not handed out before a crash are
// skipped, never reused.
const producerIDBlock = 1000

// standaloneState is the JSON document kept in meta.json (see docs/format.md).
type standaloneState struct {
	Version         int     `json:"version"`
	ClusterID       string  `json:"cluster_id"`
	BrokerID        int32   `json:"broker_id"`
	ProducerIDLimit int64   `json:"producer_id_limit"` // ids below this may have been handed out
	Topics          []Topic `json:"topics"`
}

// Standalone is the single-broker Store: all metadata in one JSON file in
// the data directory, rewritten atomically on every change.
type Standalone struct {
	fs   vfs.FS
	path string
	self Broker

	mu struct {
		sync.Mutex
		state   standaloneState
		byName  map[string]*Topic
		nextPID int64
		closed  bool
	}
}

// OpenStandalone loads (or creates) the store in dataDir for the broker
// self. A data dir written by a different broker id is refused.
func OpenStandalone(fs vfs.FS, dataDir string, self Broker) (*Standalone, error) {
	s := &Standalone{fs: fs, path: filepath.Join(dataDir, StandaloneFile), self: self}
	if err := fs.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	data, err := readAll(fs, s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		var id [16]byte
		tid, err := NewTopicID()
		if err != nil {
			return nil, err
		}
		id = tid
		s.mu.state = standaloneState{
			Version:   1,
			ClusterID: base64.RawURLEncoding.EncodeToString(id[:]),
			BrokerID:  self.ID,
		}
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read metadata %s: %w", s.path, err)
	default:
		if err := json.Unmarshal(data, &s.mu.state); err != nil {
			return nil, fmt.Errorf("parse metadata %s: %w", s.path, err)
		}
		if s.mu.state.Version != 1 {
			return nil, fmt.Errorf("metadata %s: unsupported version %d", s.path, s.mu.state.Version)
		}
		if s.mu.state.BrokerID != self.ID {
			return nil, fmt.Errorf("metadata %s belongs to broker %d, not %d", s.path, s.mu.state.BrokerID, self.ID)
		}
	}
	s.mu.byName = make(map[string]*Topic)
	for i := range s.mu.state.Topics {
		t := &s.mu.state.Topics[i]
		s.mu.byName[t.Name] = t
	}
	s.mu.nextPID = s.mu.state.ProducerIDLimit
	return s, nil
}

func readAll(fs vfs.FS, path string) ([]byte, error) {
	f, err := vfs.Open(fs, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

func (s *Standalone) saveLocked() error {
	data, err := json.MarshalIndent(&s.mu.state, "", "  ")
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	if err := vfs.WriteFileAtomic(s.fs, s.path, data); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

// rebuildIndexLocked refreshes byName after the topics slice changed.
func (s *Standalone) rebuildIndexLocked() {
	sort.Slice(s.mu.state.Topics, func(i, j int) bool { return s.mu.state.Topics[i].Name < s.mu.state.Topics[j].Name })
	s.mu.byName = make(map[string]*Topic, len(s.mu.state.Topics))
	for i := range s.mu.state.Topics {
		s.mu.byName[s.mu.state.Topics[i].Name] = &s.mu.state.Topics[i]
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
	return s.mu.state.ClusterID
}

// ControllerID implements Store: a standalone broker is its own controller.
func (s *Standalone) ControllerID() int32 { return s.self.ID }

// Brokers implements Store.
func (s *Standalone) Brokers() []Broker { return []Broker{s.self} }

// Topics implements Store.
func (s *Standalone) Topics() []Topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Topic, len(s.mu.state.Topics))
	for i := range s.mu.state.Topics {
		out[i] = copyTopic(&s.mu.state.Topics[i])
	}
	return out
}

// Topic implements Store.
func (s *Standalone) Topic(name string) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.byName[name]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(t), true
}

// TopicByID implements Store.
func (s *Standalone) TopicByID(id TopicID) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.mu.state.Topics {
		if s.mu.state.Topics[i].ID == id {
			return copyTopic(&s.mu.state.Topics[i]), true
		}
	}
	return Topic{}, false
}

// CreateTopic implements Store.
func (s *Standalone) CreateTopic(t Topic) error { return s.CreateTopics([]Topic{t}) }

// CreateTopics implements Store: one rewrite of the metadata file for all
// of them, which is what makes a CreateTopics request with thousands of
// topics take seconds rather than minutes.
func (s *Standalone) CreateTopics(ts []Topic) error {
	for i := range ts {
		if ts[i].Partitions < 1 {
			return fmt.Errorf("create topic %q with %d partitions: %w", ts[i].Name, ts[i].Partitions, ErrInvalidPartitions)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	added := make(map[string]bool, len(ts))
	for i := range ts {
		if _, ok := s.mu.byName[ts[i].Name]; ok || added[ts[i].Name] {
			return fmt.Errorf("create topic %q: %w", ts[i].Name, ErrTopicExists)
		}
		added[ts[i].Name] = true
	}
	prev := s.mu.state.Topics
	next := append(make([]Topic, 0, len(prev)+len(ts)), prev...)
	for i := range ts {
		next = append(next, copyTopic(&ts[i]))
	}
	s.mu.state.Topics = next
	if err := s.saveLocked(); err != nil {
		s.mu.state.Topics = prev
		return err
	}
	s.rebuildIndexLocked()
	return nil
}

// DeleteTopic implements Store.
func (s *Standalone) DeleteTopic(name string) error { return s.DeleteTopics([]string{name}) }

// DeleteTopics implements Store, with one rewrite of the metadata file.
func (s *Standalone) DeleteTopics(names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	gone := make(map[string]bool, len(names))
	for _, name := range names {
		if _, ok := s.mu.byName[name]; !ok || gone[name] {
			return fmt.Errorf("delete topic %q: %w", name, ErrUnknownTopic)
		}
		gone[name] = true
	}
	prev := s.mu.state.Topics
	next := make([]Topic, 0, len(prev))
	for _, t := range prev {
		if !gone[t.Name] {
			next = append(next, t)
		}
	}
	s.mu.state.Topics = next
	if err := s.saveLocked(); err != nil {
		s.mu.state.Topics = prev
		return err
	}
	s.rebuildIndexLocked()
	return nil
}

// mutateTopic applies fn to a copy of the named topic and saves it.
func (s *Standalone) mutateTopic(name string, fn func(t *Topic) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	cur, ok := s.mu.byName[name]
	if !ok {
		return fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	updated := copyTopic(cur)
	if err := fn(&updated); err != nil {
		return err
	}
	old := *cur
	*cur = updated
	if err := s.saveLocked(); err != nil {
		*cur = old
		return err
	}
	return nil
}

// SetPartitionCount implements Store.
func (s *Standalone) SetPartitionCount(name string, n int32) error {
	return s.mutateTopic(name, func(t *Topic) error {
		if n <= t.Partitions {
			return fmt.Errorf("topic %q has %d partitions, cannot set %d: %w", name, t.Partitions, n, ErrInvalidPartitions)
		}
		t.Partitions = n
		return nil
	})
}

// SetTopicConfigs implements Store.
func (s *Standalone) SetTopicConfigs(name string, configs map[string]string) error {
	return s.mutateTopic(name, func(t *Topic) error {
		t.Configs = make(map[string]string, len(configs))
		for k, v := range configs {
			t.Configs[k] = v
		}
		return nil
	})
}

// Partition implements Store: the standalone broker leads every partition in
// epoch 0.
func (s *Standalone) Partition(topic string, partition int32) (PartitionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.byName[topic]
	if !ok || partition < 0 || partition >= t.Partitions {
		return PartitionState{}, false
	}
	return PartitionState{Leader: s.self.ID, LeaderEpoch: 0, Replicas: []int32{s.self.ID}, ISR: []int32{s.self.ID}}, true
}

// NextProducerID implements Store. Ids are reserved in blocks that are
// persisted before any id of the block is handed out.
func (s *Standalone) NextProducerID() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return 0, ErrClosed
	}
	if s.mu.nextPID >= s.mu.state.ProducerIDLimit {
		if s.mu.state.ProducerIDLimit > 1<<62 {
			return 0, ErrProducerIDsSpent
		}
		s.mu.state.ProducerIDLimit += producerIDBlock
		if err := s.saveLocked(); err != nil {
			s.mu.state.ProducerIDLimit -= producerIDBlock
			return 0, err
		}
	}
	id := s.mu.nextPID
	s.mu.nextPID++
	return id, nil
}

// Close implements Store.
func (s *Standalone) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.closed = true
	return nil
}
