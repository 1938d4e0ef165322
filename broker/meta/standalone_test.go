package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

const testDir = "/data"

var testSelf = Broker{ID: 1, Host: "localhost", Port: 9092}

var (
	snapshotPath = filepath.Join(testDir, StandaloneFile)
	journal1     = filepath.Join(testDir, journalName(1))
)

func openStore(t testing.TB, fs vfs.FS) *Standalone {
	t.Helper()
	s, err := OpenStandalone(fs, testDir, testSelf)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func closeStore(t testing.TB, s *Standalone) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// topic returns a topic with an id derived from its name, so stores built
// twice compare equal.
func topic(name string, partitions int32) Topic {
	var id TopicID
	copy(id[:], name)
	id[15] = byte(len(name))
	return Topic{Name: name, ID: id, Partitions: partitions}
}

// dump is everything the store holds, as a string that compares equal for
// equal contents (fmt sorts map keys and prints nil and empty maps alike,
// as a snapshot round trip makes them).
func dump(s *Standalone) string {
	s.mu.Lock()
	limit := s.mu.st.producerIDLimit
	s.mu.Unlock()
	return fmt.Sprintf("cluster=%s limit=%d topics=%+v default=%v broker1=%v", s.ClusterID(), limit, s.Topics(),
		s.BrokerConfigs(""), s.BrokerConfigs("1"))
}

// changes make one change of every kind, in an order where each applies.
var changes = []struct {
	name string
	do   func(s *Standalone) error
}{
	{"create batch", func(s *Standalone) error {
		return s.CreateTopics([]Topic{topic("a", 1), topic("b", 2), topic("c", 3)})
	}},
	{"create one", func(s *Standalone) error {
		t := topic("d", 1)
		t.Configs = map[string]string{"segment.bytes": "1024"}
		t.Internal = true
		return s.CreateTopic(t)
	}},
	{"set partitions", func(s *Standalone) error { return s.SetPartitionCount("b", 5) }},
	{"set configs", func(s *Standalone) error {
		return s.SetTopicConfigs("a", map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"})
	}},
	{"producer id", func(s *Standalone) error { _, err := s.NextProducerID(); return err }},
	{"delete batch", func(s *Standalone) error { return s.DeleteTopics([]string{"c", "d"}) }},
	{"clear configs", func(s *Standalone) error { return s.SetTopicConfigs("a", map[string]string{}) }},
	{"delete one", func(s *Standalone) error { return s.DeleteTopic("b") }},
	{"create again", func(s *Standalone) error { return s.CreateTopic(topic("b", 7)) }},
	{"broker defaults", func(s *Standalone) error {
		return s.SetBrokerConfigs("", map[string]string{"log.retention.ms": "5000", "log.segment.bytes": "2048"})
	}},
	{"broker's own", func(s *Standalone) error {
		return s.SetBrokerConfigs("1", map[string]string{"log.retention.ms": "6000"})
	}},
	{"broker defaults cut", func(s *Standalone) error {
		return s.SetBrokerConfigs("", map[string]string{"log.segment.bytes": "4096"})
	}},
}

// makeChanges runs changes on s and returns the store's dump before the
// first and after each.
func makeChanges(t testing.TB, s *Standalone) []string {
	t.Helper()
	states := []string{dump(s)}
	for _, c := range changes {
		if err := c.do(s); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		states = append(states, dump(s))
	}
	return states
}

func readSnapshot(t testing.TB, fs vfs.FS) snapshot {
	t.Helper()
	data, err := vfs.ReadFile(fs, snapshotPath)
	if err != nil {
		t.Fatal(err)
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

func fileSize(t testing.TB, fs vfs.FS, path string) int64 {
	t.Helper()
	fi, err := fs.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestReopenReplaysEveryChange: every kind of change lands in the journal,
// not the snapshot, and a reopen (clean, or after a power loss) replays
// them all.
func TestReopenReplaysEveryChange(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			mem := vfs.NewCrashable()
			s := openStore(t, mem)
			snapBefore, err := vfs.ReadFile(mem, snapshotPath)
			if err != nil {
				t.Fatal(err)
			}
			states := makeChanges(t, s)
			snapAfter, err := vfs.ReadFile(mem, snapshotPath)
			if err != nil {
				t.Fatal(err)
			}
			if string(snapBefore) != string(snapAfter) {
				t.Fatal("a change rewrote the snapshot")
			}
			if got := readSnapshot(t, mem).Journal; got != 1 {
				t.Fatalf("snapshot names journal %d, want 1", got)
			}
			entries, end := journalEntries(t, mem, journal1)
			if len(entries) != len(changes) || end != fileSize(t, mem, journal1) {
				t.Fatalf("journal holds %d entries ending at %d, want %d ending at the file's end",
					len(entries), end, len(changes))
			}
			if crash {
				mem.Crash()
			} else {
				closeStore(t, s)
			}
			s2 := openStore(t, mem)
			defer closeStore(t, s2)
			if got, want := dump(s2), states[len(states)-1]; got != want {
				t.Fatalf("after reopen:\n got %s\nwant %s", got, want)
			}
			if s2.Recovered() != "" {
				t.Fatalf("clean journal reported repaired: %s", s2.Recovered())
			}
			if id, err := s2.NextProducerID(); err != nil || id != producerIDBlock {
				t.Fatalf("first producer id after reopen = %d, %v; want %d", id, err, producerIDBlock)
			}
		})
	}
}

// TestStoreSemantics: errors and all-or-nothing batches as the Store
// interface documents them.
func TestStoreSemantics(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateTopics([]Topic{topic("a", 1), topic("b", 1)}))
	before := dump(s)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"create existing in batch", s.CreateTopics([]Topic{topic("x", 1), topic("a", 1)}), ErrTopicExists},
		{"create twice in batch", s.CreateTopics([]Topic{topic("x", 1), topic("x", 1)}), ErrTopicExists},
		{"create no partitions", s.CreateTopics([]Topic{topic("x", 1), topic("y", 0)}), ErrInvalidPartitions},
		{"delete missing in batch", s.DeleteTopics([]string{"a", "zz"}), ErrUnknownTopic},
		{"delete twice in batch", s.DeleteTopics([]string{"a", "a"}), ErrUnknownTopic},
		{"shrink", s.SetPartitionCount("a", 1), ErrInvalidPartitions},
		{"grow missing", s.SetPartitionCount("zz", 3), ErrUnknownTopic},
		{"configs of missing", s.SetTopicConfigs("zz", nil), ErrUnknownTopic},
		{"broker configs of a name", s.SetBrokerConfigs("b1", map[string]string{"k": "v"}), ErrInvalidEntity},
		{"broker configs of 01", s.SetBrokerConfigs("01", map[string]string{"k": "v"}), ErrInvalidEntity},
		{"broker configs of -1", s.SetBrokerConfigs("-1", map[string]string{"k": "v"}), ErrInvalidEntity},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := dump(s); got != before {
		t.Fatalf("failed changes changed the store:\n got %s\nwant %s", got, before)
	}
	if _, ok := s.TopicByID(topic("b", 1).ID); !ok {
		t.Fatal("TopicByID misses b")
	}
	if p, ok := s.Partition("a", 0); !ok || p.Leader != testSelf.ID {
		t.Fatalf("Partition(a, 0) = %+v, %v", p, ok)
	}
	// Reads return copies.
	cfg := map[string]string{"k": "v"}
	must(s.SetTopicConfigs("a", cfg))
	cfg["k"] = "changed"
	got, _ := s.Topic("a")
	got.Configs["k"] = "changed too"
	if again, _ := s.Topic("a"); again.Configs["k"] != "v" {
		t.Fatalf("configs aliased: %v", again.Configs)
	}
	must(s.SetBrokerConfigs("", cfg))
	cfg["k"] = "changed again"
	s.BrokerConfigs("")["k"] = "changed too"
	if again := s.BrokerConfigs(""); again["k"] != "changed" {
		t.Fatalf("broker configs aliased: %v", again)
	}
	closeStore(t, s)
	for name, err := range map[string]error{
		"create":      s.CreateTopic(topic("x", 1)),
		"delete":      s.DeleteTopic("a"),
		"partitions":  s.SetPartitionCount("a", 9),
		"configs":     s.SetTopicConfigs("a", nil),
		"broker":      s.SetBrokerConfigs("", nil),
		"producer id": func() error { _, err := s.NextProducerID(); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
	if len(s.Topics()) != 2 {
		t.Fatal("reads stopped working after close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// oldMetaJSON is a meta.json as the store wrote it before the journal: no
// "journal" field.
const oldMetaJSON = `{
  "version": 1,
  "cluster_id": "q1-2v9IYRquTf0n0PfZzUQ",
  "broker_id": 1,
  "producer_id_limit": 3000,
  "topics": [
    {
      "name": "events",
      "id": [1,2,3,4,5,6,71,8,137,10,11,12,13,14,15,16],
      "partitions": 3,
      "configs": {
        "retention.ms": "60000"
      }
    },
    {
      "name": "__consumer_offsets",
      "id": [9,2,3,4,5,6,71,8,137,10,11,12,13,14,15,16],
      "partitions": 50,
      "internal": true
    }
  ]
}`

func writeDurable(t testing.TB, mem *vfs.MemFS, path string, data []byte) {
	t.Helper()
	if err := vfs.MkdirAllDurable(mem, filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(mem, path, data); err != nil {
		t.Fatal(err)
	}
}

// TestOldSnapshotOpens: a meta.json from before the journal opens with
// its contents, gains a journal, and keeps working across reopens.
func TestOldSnapshotOpens(t *testing.T) {
	mem := vfs.NewCrashable()
	writeDurable(t, mem, snapshotPath, []byte(oldMetaJSON))
	s := openStore(t, mem)
	if got := s.ClusterID(); got != "q1-2v9IYRquTf0n0PfZzUQ" {
		t.Fatalf("cluster id %q", got)
	}
	ts := s.Topics()
	if len(ts) != 2 || ts[0].Name != "__consumer_offsets" || !ts[0].Internal || ts[0].Partitions != 50 ||
		ts[1].Name != "events" || ts[1].Configs["retention.ms"] != "60000" || ts[1].ID[6] != 71 {
		t.Fatalf("topics %+v", ts)
	}
	if id, err := s.NextProducerID(); err != nil || id != 3000 {
		t.Fatalf("first producer id %d, %v; want 3000", id, err)
	}
	if got := readSnapshot(t, mem).Journal; got != 1 {
		t.Fatalf("upgraded snapshot names journal %d", got)
	}
	if err := s.CreateTopic(topic("new", 1)); err != nil {
		t.Fatal(err)
	}
	want := dump(s)
	mem.Crash()
	s = openStore(t, mem)
	if got := dump(s); got != want {
		t.Fatalf("after reopen:\n got %s\nwant %s", got, want)
	}
	closeStore(t, s)

	// Another broker's data dir is refused.
	if _, err := OpenStandalone(mem, testDir, Broker{ID: 2}); err == nil || !strings.Contains(err.Error(), "belongs to broker 1") {
		t.Fatalf("open as broker 2: %v", err)
	}
}

// TestJournalFilesChecked: journals left over by interrupted compactions
// are removed, and journals that do not go with the snapshot are refused
// with an error naming them.
func TestJournalFilesChecked(t *testing.T) {
	setup := func(t *testing.T) (*vfs.MemFS, string) {
		mem := vfs.NewCrashable()
		s := openStore(t, mem)
		makeChanges(t, s)
		want := dump(s)
		closeStore(t, s)
		return mem, want
	}
	create := func(t *testing.T, mem *vfs.MemFS, name string, data []byte) {
		f, err := vfs.Create(mem, filepath.Join(testDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	exists := func(mem *vfs.MemFS, name string) bool {
		_, err := mem.Stat(filepath.Join(testDir, name))
		return err == nil
	}

	t.Run("leftovers removed", func(t *testing.T) {
		mem, want := setup(t)
		create(t, mem, journalName(2), nil) // an interrupted compaction's
		create(t, mem, "meta.log.7", nil)
		create(t, mem, "meta.log.007", []byte("not a journal name")) // left alone
		s := openStore(t, mem)
		defer closeStore(t, s)
		if got := dump(s); got != want {
			t.Fatalf("got %s\nwant %s", got, want)
		}
		if exists(mem, journalName(2)) || exists(mem, "meta.log.7") || !exists(mem, "meta.log.007") {
			t.Fatal("stray journals not removed, or another file removed")
		}
	})
	t.Run("superseded removed", func(t *testing.T) {
		mem, want := setup(t)
		// As if a compaction to generation 2 crashed before removing 1.
		data, err := vfs.ReadFile(mem, journal1)
		if err != nil {
			t.Fatal(err)
		}
		s := openStore(t, mem)
		s.w.Lock()
		if err := s.compactLocked(); err != nil {
			t.Fatal(err)
		}
		s.w.Unlock()
		closeStore(t, s)
		create(t, mem, journalName(1), data)
		s = openStore(t, mem)
		defer closeStore(t, s)
		if got := dump(s); got != want {
			t.Fatalf("superseded journal replayed:\n got %s\nwant %s", got, want)
		}
		if exists(mem, journalName(1)) || !exists(mem, journalName(2)) {
			t.Fatal("superseded journal not removed")
		}
	})
	t.Run("newer journal refused", func(t *testing.T) {
		mem, _ := setup(t)
		create(t, mem, journalName(5), frameEntry([]byte(`{"op":"delete_topics","names":["a"]}`)))
		_, err := OpenStandalone(mem, testDir, testSelf)
		if err == nil || !strings.Contains(err.Error(), journalName(5)) || !strings.Contains(err.Error(), "older than the journal") {
			t.Fatalf("open with a newer non-empty journal: %v", err)
		}
	})
	t.Run("named journal missing", func(t *testing.T) {
		mem, _ := setup(t)
		if err := mem.Remove(journal1); err != nil {
			t.Fatal(err)
		}
		_, err := OpenStandalone(mem, testDir, testSelf)
		if err == nil || !strings.Contains(err.Error(), journal1) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("open without the journal: %v", err)
		}
	})
	t.Run("snapshot missing", func(t *testing.T) {
		mem, _ := setup(t)
		if err := mem.Remove(snapshotPath); err != nil {
			t.Fatal(err)
		}
		_, err := OpenStandalone(mem, testDir, testSelf)
		if err == nil || !strings.Contains(err.Error(), journal1) || !strings.Contains(err.Error(), StandaloneFile+" is missing") {
			t.Fatalf("open without the snapshot: %v", err)
		}
	})
	t.Run("snapshot missing, empty journal", func(t *testing.T) {
		// A store creation that crashed between creating its journal and
		// its snapshot: starts afresh.
		mem := vfs.NewMem()
		if err := mem.MkdirAll(testDir, 0o755); err != nil {
			t.Fatal(err)
		}
		create(t, mem, journalName(1), nil)
		s := openStore(t, mem)
		closeStore(t, s)
	})
}

// TestCompaction: once the journal outgrows max(compactMin, snapshot), the
// next change writes a new snapshot and journal and removes the old
// journal; reopening after any number of compactions gives the same
// state.
func TestCompaction(t *testing.T) {
	mem := vfs.NewCrashable()
	s := openStore(t, mem)
	s.w.compactMin = 512
	if err := s.SetBrokerConfigs("", map[string]string{"log.retention.ms": "5000"}); err != nil {
		t.Fatal(err)
	}
	var want string
	for i := 0; i < 200; i++ {
		if err := s.CreateTopic(topic(fmt.Sprintf("topic-%03d", i), 1)); err != nil {
			t.Fatal(err)
		}
		s.w.Lock()
		size, snapSize, gen := s.w.size, s.w.snapSize, s.w.gen
		s.w.Unlock()
		if size > max(512, snapSize)+200 {
			t.Fatalf("journal at %d bytes not compacted (snapshot %d bytes)", size, snapSize)
		}
		if i%50 == 49 {
			want = dump(s)
			mem.Crash()
			s = openStore(t, mem)
			s.w.compactMin = 512
			if got := dump(s); got != want {
				t.Fatalf("after reopen at generation %d:\n got %s\nwant %s", gen, got, want)
			}
		}
	}
	s.w.Lock()
	gen := s.w.gen
	s.w.Unlock()
	if gen < 5 {
		t.Fatalf("only %d generations in 200 changes", gen)
	}
	if got := readSnapshot(t, mem).Journal; got != gen {
		t.Fatalf("snapshot names journal %d, store appends to %d", got, gen)
	}
	if got := readSnapshot(t, mem).BrokerConfigs[""]["log.retention.ms"]; got != "5000" {
		t.Fatalf("snapshot's dynamic default log.retention.ms = %q, want 5000", got)
	}
	entries, err := mem.ReadDir(testDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if g, ok := parseJournalName(e.Name()); ok && g != gen {
			t.Fatalf("old journal %s left behind", e.Name())
		}
	}
	closeStore(t, s)
}

// TestConcurrentReadersAndWriters is for the race detector.
func TestConcurrentReadersAndWriters(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	s.w.compactMin = 256
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, tp := range s.Topics() {
					if _, ok := s.Topic(tp.Name); !ok {
						t.Errorf("listed topic %s not found", tp.Name)
						return
					}
				}
				s.TopicByID(TopicID{})
			}
		}()
	}
	var writers sync.WaitGroup
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < 50; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				if err := s.CreateTopic(topic(name, 1)); err != nil {
					t.Error(err)
					return
				}
				if err := s.SetTopicConfigs(name, map[string]string{"a": "b"}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.NextProducerID(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if n := len(s.Topics()); n != 200 {
		t.Fatalf("%d topics, want 200", n)
	}
}

// journalEntries returns the whole entries of the journal at path and
// where the last ends.
func journalEntries(t testing.TB, fs vfs.FS, path string) ([]rawEntry, int64) {
	t.Helper()
	data, err := vfs.ReadFile(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	entries, end, _, err := scanJournal(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return entries, end
}
