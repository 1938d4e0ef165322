package storage

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestSlowFlushHoldsUpNoOtherLog: while one partition's flush.ms fsync is
// stuck (a large backlog on a slow disk), the other partitions' due
// flushes still happen. The flush loop used to flush one log at a time,
// so every other partition's data stayed unflushed behind the slow one.
func TestSlowFlushHoldsUpNoOtherLog(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	m, err := OpenManager(ManagerOptions{
		FS:                 efs,
		DataDir:            t.TempDir(),
		Logger:             zaptest.NewLogger(t),
		ConfigFor:          func(string) Config { return Config{FlushMs: 1} },
		MaintainInterval:   time.Hour,
		FlushCheckInterval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	slow, err := m.Create("slow", 0)
	if err != nil {
		t.Fatal(err)
	}
	var fast []*Log
	for _, topic := range []string{"a", "b", "c", "d", "e"} {
		l, err := m.Create(topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		fast = append(fast, l)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.Contains(path, "slow-0") && strings.HasSuffix(path, ".log") {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	defer efs.Clear()
	defer close(release) // before Clear and Close, which wait for the flush
	// An append syncs only the leader epochs file; the flush syncs the .log.
	mustAppend(t, slow, plain(t, "s", 1))
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow log's flush never started")
	}
	// The slow log's fsync is held. Every other log's appends are
	// flushed all the same, twice over.
	for round := range 2 {
		for _, l := range fast {
			mustAppend(t, l, plain(t, "f", 1))
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, l := range fast {
			for !l.UnflushedSince().IsZero() {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: %s not flushed while another log's fsync was stuck", round, l.Topic())
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	if slow.UnflushedSince().IsZero() {
		t.Fatal("the slow log shows flushed during its stuck fsync")
	}
}
