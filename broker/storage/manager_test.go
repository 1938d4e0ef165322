package storage

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParsePartitionDir(t *testing.T) {
	for _, c := range []struct {
		name  string
		topic string
		part  int32
		ok    bool
	}{
		{"orders-0", "orders", 0, true},
		{"my-topic.v2-17", "my-topic.v2", 17, true},
		{"a-b-c-3", "a-b-c", 3, true},
		{"orders", "", 0, false},
		{"orders-", "", 0, false},
		{"-1", "", 0, false},
		{"orders-x", "", 0, false},
		{"orders-01", "", 0, false},
		{"orders--1", "orders-", 1, true},
		{"orders-0.abc-delete", "", 0, false},
		{"t-99999999999", "", 0, false},
	} {
		p, ok := ParsePartitionDir(c.name)
		if ok != c.ok || (ok && (p.Topic != c.topic || p.Partition != c.part)) {
			t.Errorf("ParsePartitionDir(%q) = %+v, %v", c.name, p, ok)
		}
	}
}

func TestManager(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		var appends atomic.Int64
		open := func() *Manager {
			m, err := OpenManager(ManagerOptions{
				FS:      fsys,
				DataDir: dir,
				Logger:  zaptest.NewLogger(t),
				ConfigFor: func(topic string) Config {
					if topic == "small" {
						return Config{SegmentBytes: 512}
					}
					return Config{}
				},
				OnAppend:           func(string, int32, int64) { appends.Add(1) },
				MaintainInterval:   time.Hour,
				FlushCheckInterval: 5 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		m := open()
		for p := range int32(3) {
			for _, topic := range []string{"small", "my-topic.v2"} {
				l, err := m.Create(topic, p)
				if err != nil {
					t.Fatal(err)
				}
				again, err := m.Create(topic, p)
				if err != nil || again != l {
					t.Fatalf("Create is not idempotent: %v", err)
				}
				fillLog(t, l, 0, 10)
			}
		}
		if appends.Load() != 60 {
			t.Fatalf("OnAppend called %d times", appends.Load())
		}
		if got := m.Log("small", 1).Config().SegmentBytes; got != 512 {
			t.Fatalf("config not applied: %d", got)
		}
		if m.Log("nope", 0) != nil {
			t.Fatal("Log of a missing partition")
		}
		// The flush loop flushes by flush.ms.
		l := m.Log("small", 0)
		l.SetConfig(Config{SegmentBytes: 512, FlushMs: 1})
		mustAppend(t, l, plain(t, "f", 1))
		deadline := time.Now().Add(5 * time.Second)
		for l.firstUnflushed.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("flush.ms flush never happened")
			}
			time.Sleep(time.Millisecond)
		}
		// Junk in the data dir is skipped; leftover -delete dirs the
		// broker named are removed, others ending so are left alone.
		for _, d := range []string{"not-a-partition", "old-0.0123456789abcdef-delete", "notes-delete", "zz-0-delete", "old-0.abcd-delete", "weird.0123456789abcdef-delete"} {
			if err := fsys.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		writeBytes(t, fsys, filepath.Join(dir, "meta.json"), []byte("{}"))
		if err := m.DeleteTopic("small"); err != nil {
			t.Fatal(err)
		}
		if m.Log("small", 0) != nil {
			t.Fatal("deleted topic still has logs")
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}

		m = open()
		defer m.Close()
		var names []string
		for _, l := range m.Logs() {
			names = append(names, filepath.Base(l.Dir()))
			if l.LogEndOffset() != 20 {
				t.Fatalf("%s: LEO %d after reopen", l.Dir(), l.LogEndOffset())
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"my-topic.v2-0", "my-topic.v2-1", "my-topic.v2-2"}) {
			t.Fatalf("logs after reopen: %v", names)
		}
		entries, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var deletes []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), "-delete") {
				deletes = append(deletes, e.Name())
			}
		}
		slices.Sort(deletes)
		if want := []string{"notes-delete", "old-0.abcd-delete", "weird.0123456789abcdef-delete", "zz-0-delete"}; !slices.Equal(deletes, want) {
			t.Fatalf("-delete directories after reopen: %v, want %v (the broker's own removed, others kept)", deletes, want)
		}
	})
}

// TestConcurrentAppendReadMaintain runs appends, reads, flushes and
// retention at once; run with -race.
func TestConcurrentAppendReadMaintain(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := Config{SegmentBytes: 4096, RetentionBytes: 16384, RetentionMs: -1, FileDeleteDelayMs: 1, IndexIntervalBytes: 256}
		l := openLog(t, fsys, dir, cfg)
		defer l.Close()
		const total = 2000
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			b := plain(t, "c", 2)
			for range total {
				if _, err := l.Append(b, 0); err != nil {
					t.Error(err)
					return
				}
				l.SetHighWatermark(l.LogEndOffset())
			}
		}()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := int64(0)
				for {
					select {
					case <-done:
						return
					default:
					}
					if next < l.LogStartOffset() {
						next = l.LogStartOffset()
					}
					c, err := l.Read(next, l.HighWatermark(), 2000)
					if err != nil {
						// Retention may pass us between the check and the read.
						next = l.LogStartOffset()
						continue
					}
					if c.Size > 0 {
						hs, _ := chunkBatches(t, c)
						if len(hs) > 0 {
							if hs[0].BaseOffset > next || hs[0].LastOffset() < next {
								t.Errorf("read at %d got batch %d..%d", next, hs[0].BaseOffset, hs[0].LastOffset())
							}
							next = hs[len(hs)-1].LastOffset() + 1
						}
					}
					c.Release()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := l.Maintain(); err != nil {
					t.Error(err)
				}
				if err := l.Flush(); err != nil {
					t.Error(err)
				}
			}
		}()
		wg.Wait()
		if l.LogEndOffset() != 2*total {
			t.Fatalf("LEO %d", l.LogEndOffset())
		}
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		checkSequential(t, readAll(t, l, l.LogStartOffset()), l.LogStartOffset())
	})
}

// openErrorFSManager opens a manager on a new directory through an
// ErrorFS over the OS, with no maintenance passes to speak of.
func openErrorFSManager(t *testing.T) (*Manager, *vfs.ErrorFS, string) {
	t.Helper()
	dir := t.TempDir()
	efs := vfs.NewErrorFS(vfs.OS)
	m, err := OpenManager(ManagerOptions{FS: efs, DataDir: dir, Logger: zaptest.NewLogger(t),
		ConfigFor: func(string) Config { return Config{} }, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m, efs, dir
}

// TestCreateFailureLeavesNoDirectory: a log that fails to open (here, out
// of file descriptors) leaves no directory behind, which the next start
// would set aside as a stray log; an existing directory is never removed.
func TestCreateFailureLeavesNoDirectory(t *testing.T) {
	m, efs, dir := openErrorFSManager(t)
	defer m.Close()
	efs.FailOn(vfs.OpOpen, "broken-0", syscall.EMFILE)
	if _, err := m.Create("broken", 0); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("create: %v, want EMFILE", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "broken-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory of the failed log: %v", err)
	}
	// A directory that was there before is set aside, never removed.
	if err := os.Mkdir(filepath.Join(dir, "broken-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	efs.FailOn(vfs.OpOpen, "broken-1", syscall.EMFILE)
	if _, err := m.Create("broken", 1); err == nil {
		t.Fatal("create succeeded")
	}
	if strays, _ := filepath.Glob(filepath.Join(dir, "broken-1.*"+StraySuffix)); len(strays) != 1 {
		t.Fatalf("existing directory not set aside: %v", strays)
	}
}

// TestCreateSetsAsideLeftoverDirectory: a directory where a new log goes
// that no open log owns (left by a deletion whose rename failed) is set
// aside as a stray, and the new log starts empty: the deleted topic's
// records do not come back in a topic created again under its name.
func TestCreateSetsAsideLeftoverDirectory(t *testing.T) {
	dir := t.TempDir()
	open := func() *Manager {
		m, err := OpenManager(ManagerOptions{FS: vfs.OS, DataDir: dir, Logger: zaptest.NewLogger(t),
			ConfigFor: func(string) Config { return Config{} }, MaintainInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open()
	l, err := m.Create("left", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, plain(t, "old", 3))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The directory stays; a manager that does not open it (as after a
	// failed rename) creates the log again.
	if err := os.Rename(filepath.Join(dir, "left-0"), filepath.Join(dir, "hidden")); err != nil {
		t.Fatal(err)
	}
	m = open()
	defer m.Close()
	if err := os.Rename(filepath.Join(dir, "hidden"), filepath.Join(dir, "left-0")); err != nil {
		t.Fatal(err)
	}
	l, err = m.Create("left", 0)
	if err != nil {
		t.Fatal(err)
	}
	if leo := l.LogEndOffset(); leo != 0 {
		t.Fatalf("new log ends at %d: the old records came back", leo)
	}
	if strays, _ := filepath.Glob(filepath.Join(dir, "left-0.*"+StraySuffix)); len(strays) != 1 {
		t.Fatalf("old directory not set aside: %v", strays)
	}
}

// TestLongTopicNameDeleted: a topic name of 249 characters (Kafka's
// limit) makes a partition directory name too long for a deletion or
// stray suffix; the topic is cut short in that name, as Kafka does, and
// deleting works on a real file system.
func TestLongTopicNameDeleted(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManager(ManagerOptions{FS: vfs.OS, DataDir: dir, Logger: zaptest.NewLogger(t),
		ConfigFor: func(string) Config { return Config{} }, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	topic := strings.Repeat("u", 249)
	for p := range int32(12) {
		l, err := m.Create(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, plain(t, "x", 1))
	}
	if err := m.DeleteTopic(topic); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, suffix := range []string{deleteSuffix, StraySuffix} {
		p := asidePath(filepath.Join(dir, topic+"-10"), suffix)
		if base := filepath.Base(p); len(base) > maxDirName || !strings.HasSuffix(base, suffix) || !strings.Contains(base, "u-10.") {
			t.Errorf("%s name %q (%d bytes)", suffix, base, len(base))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, topic+"-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partition directory after the delete: %v", err)
	}
}

// TestRollOutOfDescriptors: a roll that fails because the process is out
// of file descriptors refuses that append with ErrStorage, and the log
// stays writable: once descriptors are free the next append rolls.
func TestRollOutOfDescriptors(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := openLog(t, efs, "/data/topic-0", Config{SegmentBytes: 4096})
	defer l.Close()
	active := func() int64 { segs := l.segments(); return segs[len(segs)-1].base }
	for active() == 0 {
		mustAppend(t, l, plain(t, "a", 20))
	}
	base := active()
	efs.FailOn(vfs.OpOpen, ".log", syscall.EMFILE)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = l.Append(plain(t, "b", 20), 0)
	}
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("append needing a roll without descriptors: %v", err)
	}
	efs.Clear()
	end := l.LogEndOffset()
	mustAppend(t, l, plain(t, "c", 20))
	if l.LogEndOffset() != end+20 || active() == base {
		t.Fatalf("after descriptors are free: end %d (was %d), active segment %d (was %d)", l.LogEndOffset(), end, active(), base)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if recs := readAll(t, l, 0); int64(len(recs)) != l.LogEndOffset() {
		t.Fatalf("read %d records, want %d", len(recs), l.LogEndOffset())
	} else {
		checkSequential(t, recs, 0)
	}
}

// TestCreateDoesNotBlockLookups: while a log's files are being made
// (here held at its directory's creation), other partitions' logs are
// found at once: every produce and fetch looks its log up, and a create
// of 1,000 partitions, ~9 fsyncs each, had held the lookup lock for over a
// second (helper-56). A second Create of the same partition waits for the
// first and returns its log; Close waits for a Create in flight, whose
// log it then closes.
func TestCreateDoesNotBlockLookups(t *testing.T) {
	m, efs, _ := openErrorFSManager(t)
	defer m.Close()
	if _, err := m.Create("a", 0); err != nil {
		t.Fatal(err)
	}
	hold := func(partition string) (entered, release chan struct{}) {
		entered, release = make(chan struct{}), make(chan struct{})
		var once sync.Once
		efs.SetHook(func(op vfs.Op, path string) error {
			if op == vfs.OpMkdir && strings.Contains(path, partition) {
				once.Do(func() { close(entered); <-release })
			}
			return nil
		})
		return entered, release
	}
	entered, release := hold("b-0")
	type result struct {
		l   *Log
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() { l, err := m.Create("b", 0); first <- result{l, err} }()
	<-entered
	go func() { l, err := m.Create("b", 0); second <- result{l, err} }()
	found := make(chan *Log, 1)
	go func() { found <- m.Log("a", 0) }()
	select {
	case l := <-found:
		if l == nil {
			t.Fatal("a-0 not found")
		}
	case <-time.After(5 * time.Second):
		close(release) // let the test end
		t.Fatal("looking up a-0 waited for b-0's creation")
	}
	if m.Log("b", 0) != nil {
		t.Fatal("b-0 found before its files are made")
	}
	close(release)
	r1, r2 := <-first, <-second
	if r1.err != nil || r2.err != nil || r1.l == nil || r1.l != r2.l || m.Log("b", 0) != r1.l {
		t.Fatalf("creates of b-0: %v %v, logs %p %p", r1.err, r2.err, r1.l, r2.l)
	}

	// A deletion of the topic waits for the create, then deletes its log.
	entered, release = hold("d-0")
	go func() { l, err := m.Create("d", 0); first <- result{l, err} }()
	<-entered
	deleted := make(chan error, 1)
	go func() { deleted <- m.DeleteTopic("d") }()
	select {
	case err := <-deleted:
		close(release)
		t.Fatalf("DeleteTopic returned (%v) with a Create of its partition in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-first; r.err != nil {
		t.Fatalf("create of d-0: %v", r.err)
	}
	if err := <-deleted; err != nil || m.Log("d", 0) != nil {
		t.Fatalf("delete of d after its create: %v, log %p", err, m.Log("d", 0))
	}

	entered, release = hold("c-0")
	go func() { l, err := m.Create("c", 0); first <- result{l, err} }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a Create in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-first; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("create during Close: %v, want ErrClosed", r.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
