package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestDataDirRemoved: a data dir removed, or replaced by another directory
// of the same name, under a running manager makes every log refuse
// appends with ErrStorage, refuses new logs (which would go into the new
// directory), and calls OnDataDirGone once.
func TestDataDirRemoved(t *testing.T) {
	for _, replace := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "data")
		var gone []error
		m, err := OpenManager(ManagerOptions{FS: vfs.OS, DataDir: dir, Logger: zaptest.NewLogger(t),
			MaintainInterval: time.Hour, FlushCheckInterval: time.Hour,
			OnDataDirGone: func(err error) { gone = append(gone, err) }})
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Create("t", 0)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, plain(t, "x", 1))
		if err := m.checkDataDir(); err != nil {
			t.Fatalf("data dir in place: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		want := "removed"
		if replace {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			want = "replaced"
		}
		if err := m.checkDataDir(); !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), want) {
			t.Fatalf("replace=%v: check: %v", replace, err)
		}
		if _, err := l.Append(plain(t, "y", 1), 0); !errors.Is(err, ErrStorage) {
			t.Fatalf("replace=%v: append after the data dir went: %v", replace, err)
		}
		if _, err := m.Create("t", 1); !errors.Is(err, ErrStorage) {
			t.Fatalf("replace=%v: create after the data dir went: %v", replace, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "t-1")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("replace=%v: a log directory was made in the new data dir: %v", replace, err)
		}
		_ = m.checkDataDir()
		if len(gone) != 1 || m.DataDirError() == nil {
			t.Fatalf("replace=%v: OnDataDirGone called %d times, DataDirError %v", replace, len(gone), m.DataDirError())
		}
		_ = m.Close() // fails to flush into the removed directory; must not hang
	}
}

// TestDataDirCheckedByFlushLoop: the flush loop notices on its own.
func TestDataDirCheckedByFlushLoop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m, err := OpenManager(ManagerOptions{FS: vfs.OS, DataDir: dir, Logger: zaptest.NewLogger(t),
		MaintainInterval: time.Hour, FlushCheckInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.DataDirError() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the removed data dir was not noticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPartitionDirRemoved: a partition directory removed or replaced under
// the broker is noticed by the next check of the logs appended to since
// the last one, and that log alone refuses appends; a log renamed aside
// by a topic deletion is not failed.
func TestPartitionDirRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m, err := OpenManager(ManagerOptions{FS: vfs.OS, DataDir: dir, Logger: zaptest.NewLogger(t),
		MaintainInterval: time.Hour, FlushCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	logs := make([]*Log, 4)
	for p := range logs {
		if logs[p], err = m.Create("t", int32(p)); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, logs[p], plain(t, "x", 1))
	}
	m.checkPartitionDirs()
	// t-0 removed, t-1 replaced, t-3 deleted as a deletion of
	// partitions does; t-2 stays.
	if err := os.RemoveAll(logs[0].Dir()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(logs[1].Dir(), logs[1].Dir()+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logs[1].Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.DeletePartitions("t", 3); err != nil {
		t.Fatal(err)
	}
	// Only logs appended to since the last check are looked at.
	m.checkPartitionDirs()
	for p, l := range logs[:2] {
		if err := l.WriteError(); err != nil {
			t.Fatalf("t-%d failed with no append since the last check: %v", p, err)
		}
	}
	for _, l := range logs {
		if !l.Closed() {
			mustAppend(t, l, plain(t, "y", 1))
		}
	}
	m.checkPartitionDirs()
	for p, want := range []string{"removed", "replaced"} {
		if _, err := logs[p].Append(plain(t, "z", 1), 0); !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), want) {
			t.Fatalf("t-%d: append after its directory was %s: %v", p, want, err)
		}
	}
	if err := logs[2].WriteError(); err != nil {
		t.Fatalf("t-2, in place, failed: %v", err)
	}
	mustAppend(t, logs[2], plain(t, "z", 1))
	if m.DataDirError() != nil {
		t.Fatalf("a partition directory took the data dir offline: %v", m.DataDirError())
	}

	// Replaced before the first check: judged against the directory the
	// log opened, not the one found then.
	u, err := m.Create("u", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(u.Dir(), u.Dir()+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(u.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, u, plain(t, "x", 1))
	m.checkPartitionDirs()
	if err := u.WriteError(); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("u-0 replaced before its first check: %v", err)
	}
	// Deleting partitions whose directory is gone already succeeds.
	if err := m.DeletePartitions("t", 0); err != nil {
		t.Fatalf("deleting partitions, one of them removed under the broker: %v", err)
	}
}

// TestMarkerFailureAtCloseLosesNothing: a clean-shutdown marker that
// cannot be written (a full disk at shutdown) does not fail Close: the
// logs are flushed and whole, and the next open finds every record.
func TestMarkerFailureAtCloseLosesNothing(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	open := func(fs vfs.FS) *Manager {
		m, err := OpenManager(ManagerOptions{FS: fs, DataDir: "/data", Logger: zaptest.NewLogger(t),
			MaintainInterval: time.Hour, FlushCheckInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open(efs)
	for p := range 3 {
		l, err := m.Create("t", int32(p))
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, plain(t, "x", 5))
	}
	efs.FailOn(vfs.OpWrite, cleanShutdownFile, syscall.ENOSPC)
	if err := m.Close(); err != nil {
		t.Fatalf("close with the markers failing: %v", err)
	}
	m = open(mem)
	defer m.Close()
	for p := range 3 {
		if l := m.Log("t", int32(p)); l == nil || l.LogEndOffset() != 5 {
			t.Fatalf("t-%d after reopening: %v", p, l)
		}
	}
}
