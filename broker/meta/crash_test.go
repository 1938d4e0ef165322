package meta

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// changedStore opens a store over an error-injecting crashable FS and
// makes the usual changes; it returns the state they leave and the
// journal's size.
func changedStore(t *testing.T) (mem *vfs.CrashableFS, efs *vfs.ErrorFS, s *Standalone, before string, journalSize int64) {
	t.Helper()
	mem = vfs.NewCrashable()
	efs = vfs.NewErrorFS(mem)
	s = openStore(t, efs)
	states := makeChanges(t, s)
	_, journalSize = journalEntries(t, mem, journal1)
	return mem, efs, s, states[len(states)-1], journalSize
}

// TestWriteErrorIsSticky: a change whose journal write or fsync fails is
// not applied, returns the error, and fails the store: later changes are
// refused with ErrStoreUnavailable, reads go on, and a reopen holds
// exactly the changes made before (the failed one too only if its bytes
// reached the file, as after a failed fsync without a crash).
func TestWriteErrorIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(efs *vfs.ErrorFS)
		crash  bool // power loss after the failure
		// whether the failed change's bytes stay in the journal (and it
		// may be found after a reopen)
		maybeApplied bool
	}{
		{"write fails", func(efs *vfs.ErrorFS) { efs.FailOnce(vfs.OpWrite, "meta.log", syscall.EIO) }, false, false},
		{"disk full, the entry not cut back", func(efs *vfs.ErrorFS) {
			efs.SetWriteLimit(10)
			efs.FailOnce(vfs.OpTruncate, "meta.log", syscall.EIO)
		}, false, false},
		{"fsync fails, then power loss", func(efs *vfs.ErrorFS) { efs.FailOnce(vfs.OpSync, "meta.log", syscall.EIO) }, true, true},
		{"fsync fails, no power loss", func(efs *vfs.ErrorFS) { efs.FailOnce(vfs.OpSync, "meta.log", syscall.EIO) }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, efs, s, before, sizeBefore := changedStore(t)

			tc.inject(efs)
			err := s.CreateTopic(topic("failed", 1))
			if err == nil || !errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("change with a failing %s: %v", tc.name, err)
			}
			if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("error lost its cause: %v", err)
			}
			efs.Clear()
			if got := dump(s); got != before {
				t.Fatalf("failed change visible:\n got %s\nwant %s", got, before)
			}
			if _, ok := s.Topic("failed"); ok {
				t.Fatal("failed topic readable")
			}
			if !tc.maybeApplied && !strings.Contains(tc.name, "not cut back") {
				if got := fileSize(t, mem, journal1); got != sizeBefore {
					t.Fatalf("journal %d bytes after the failed write, want %d (cut back)", got, sizeBefore)
				}
			}
			// Sticky: nothing is written any more, even with the disk healed.
			err = s.CreateTopic(topic("later", 1))
			if !errors.Is(err, ErrStoreUnavailable) || !strings.Contains(err.Error(), "reopened") {
				t.Fatalf("change after the failure: %v", err)
			}
			// Ids of the block already reserved are still handed out.
			if _, err := s.NextProducerID(); err != nil {
				t.Fatalf("producer id from the reserved block after the failure: %v", err)
			}
			if tc.crash {
				mem.Crash()
			} else {
				closeStore(t, s)
			}
			s = openStore(t, mem)
			defer closeStore(t, s)
			_, failedFound := s.Topic("failed")
			if failedFound {
				if !tc.maybeApplied || tc.crash {
					t.Fatal("the failed change was found after reopen")
				}
				if err := s.DeleteTopic("failed"); err != nil {
					t.Fatal(err)
				}
			}
			if got := dump(s); got != before {
				t.Fatalf("after reopen:\n got %s\nwant %s", got, before)
			}
			if _, ok := s.Topic("later"); ok {
				t.Fatal("a change refused as sticky was found after reopen")
			}
			if err := s.CreateTopic(topic("later", 1)); err != nil {
				t.Fatalf("reopened store refuses changes: %v", err)
			}
		})
	}
}

// TestDiskFullIsNotSticky: a change that finds the disk full is refused
// (ErrStoreUnavailable, carrying ENOSPC) and not applied, the journal is
// cut back to its last whole entry, and once space is freed the store takes
// changes again without a reopen.
func TestDiskFullIsNotSticky(t *testing.T) {
	mem, efs, s, before, sizeBefore := changedStore(t)

	efs.SetWriteLimit(10)
	err := s.CreateTopic(topic("failed", 1))
	if !errors.Is(err, ErrStoreUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("change on a full disk: %v", err)
	}
	if got := dump(s); got != before {
		t.Fatalf("failed change visible:\n got %s\nwant %s", got, before)
	}
	if got := fileSize(t, mem, journal1); got != sizeBefore {
		t.Fatalf("journal %d bytes after the failed write, want %d (cut back)", got, sizeBefore)
	}
	efs.Clear()
	if err := s.CreateTopic(topic("later", 2)); err != nil {
		t.Fatalf("change after space was freed: %v", err)
	}
	mem.Crash()
	s = openStore(t, mem)
	defer closeStore(t, s)
	if _, ok := s.Topic("failed"); ok {
		t.Fatal("the refused change was found after reopen")
	}
	if tp, ok := s.Topic("later"); !ok || tp.Partitions != 2 {
		t.Fatalf("the change made after space was freed is missing after reopen: %+v %v", tp, ok)
	}
}

// TestProducerIDBlockWriteFails: a producer id block that cannot be made
// durable hands out no id of it.
func TestProducerIDBlockWriteFails(t *testing.T) {
	mem := vfs.NewCrashable()
	efs := vfs.NewErrorFS(mem)
	s := openStore(t, efs)
	for i := 0; i < producerIDBlock; i++ {
		if id, err := s.NextProducerID(); err != nil || id != int64(i) {
			t.Fatalf("id %d, %v; want %d", id, err, i)
		}
	}
	efs.FailOnce(vfs.OpSync, "meta.log", syscall.EIO)
	if id, err := s.NextProducerID(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("id %d, %v with a failing fsync", id, err)
	}
	mem.Crash()
	s = openStore(t, mem)
	defer closeStore(t, s)
	if id, err := s.NextProducerID(); err != nil || id != producerIDBlock {
		t.Fatalf("first id after reopen %d, %v; want %d", id, err, producerIDBlock)
	}
}

// TestProducerIDsNeverRepeat: across clean closes, power losses and torn
// writes, with compactions along the way, no producer id is handed out
// twice.
func TestProducerIDsNeverRepeat(t *testing.T) {
	mem := vfs.NewCrashable()
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[int64]bool)
	for round := 0; round < 40; round++ {
		s := openStore(t, mem)
		s.w.compactMin = 128 // a compaction every few blocks
		for n := rng.IntN(2500); n > 0; n-- {
			id, err := s.NextProducerID()
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("round %d: producer id %d handed out twice", round, id)
			}
			seen[id] = true
		}
		switch round % 3 {
		case 0:
			closeStore(t, s)
		case 1:
			mem.Crash()
		case 2:
			mem.CrashTorn(uint64(round))
		}
	}
}

// mutating reports whether op changes the file system (or, for opens,
// may create a file).
func mutating(op vfs.Op) bool {
	switch op {
	case vfs.OpOpen, vfs.OpWrite, vfs.OpSync, vfs.OpTruncate, vfs.OpRemove, vfs.OpRename, vfs.OpSyncDir:
		return true
	}
	return false
}

var errCrashed = errors.New("crashed: the process is gone")

// crashAtEveryStep counts the mutating operations run makes on what setup
// prepared, then for each, in turn, sets up afresh and runs again with that
// operation failing: as a power loss, after which every operation fails
// (crash), the same tearing unsynced appends (torn), or as an I/O error
// the store lives on after (eio). check looks at the store run returned
// (live, eio only) and at one reopened on the file system afterwards.
func crashAtEveryStep(t *testing.T, minOps int,
	setup func(t *testing.T, mem *vfs.MemFS, efs *vfs.ErrorFS) *Standalone,
	run func(s *Standalone, efs *vfs.ErrorFS) (*Standalone, error),
	check func(t *testing.T, s *Standalone, runErr error, mode string, live bool)) {
	t.Helper()
	mem := vfs.NewCrashable()
	efs := vfs.NewErrorFS(mem)
	s := setup(t, mem, efs)
	var trace []string
	efs.SetHook(func(op vfs.Op, path string) error {
		if mutating(op) {
			trace = append(trace, op.String()+" "+path)
		}
		return nil
	})
	s, err := run(s, efs)
	efs.SetHook(nil)
	if err != nil {
		t.Fatalf("undisturbed run: %v", err)
	}
	closeStore(t, s)
	if len(trace) < minOps {
		t.Fatalf("only %d operations: %v", len(trace), trace)
	}
	t.Logf("%d mutating operations:\n%s", len(trace), strings.Join(trace, "\n"))

	for k := 1; k <= len(trace); k++ {
		for _, mode := range []string{"crash", "torn", "eio"} {
			t.Run(fmt.Sprintf("op%02d-%s", k, mode), func(t *testing.T) {
				mem := vfs.NewCrashable()
				efs := vfs.NewErrorFS(mem)
				s := setup(t, mem, efs)
				n := 0
				efs.SetHook(func(op vfs.Op, path string) error {
					if !mutating(op) && n < k {
						return nil
					}
					if mutating(op) {
						n++
					}
					switch {
					case n < k:
						return nil
					case mode == "eio":
						if n == k && mutating(op) {
							return syscall.EIO
						}
						return nil
					case n == k && mutating(op):
						if mode == "torn" {
							mem.CrashTorn(uint64(k))
						} else {
							mem.Crash()
						}
					}
					return errCrashed
				})
				s, runErr := run(s, efs)
				efs.SetHook(nil)
				if runErr == nil && mode != "eio" {
					t.Fatalf("run survived a power loss at %s", trace[k-1])
				}
				if mode == "eio" && s != nil {
					check(t, s, runErr, mode, true)
					_ = s.Close()
				}
				reopened := openStore(t, mem)
				defer closeStore(t, reopened)
				check(t, reopened, runErr, mode, false)
			})
		}
	}
}

// dumpWithout is dump with the topic name left out.
func dumpWithout(t *testing.T, s *Standalone, name string) string {
	t.Helper()
	got := dump(s)
	tp, ok := s.Topic(name)
	if !ok {
		return got
	}
	cut := fmt.Sprintf("%+v", tp)
	if !strings.Contains(got, cut) {
		t.Fatalf("dump %s does not hold %s", got, cut)
	}
	got = strings.Replace(got, " "+cut, "", 1)
	return strings.Replace(got, cut+" ", "", 1)
}

// TestCompactionCrashAtEveryStep: a change that compacts first, failing at
// every step of the compaction and of its own append. After a power loss
// the store opens with exactly the changes made before. After an I/O error
// the store serves them, takes further changes unless the failure was
// sticky, and opens with those; the failed change itself is found after
// the reopen only if its entry reached the file.
func TestCompactionCrashAtEveryStep(t *testing.T) {
	var before, after string
	setup := func(t *testing.T, mem *vfs.MemFS, efs *vfs.ErrorFS) *Standalone {
		// A fixed cluster id, so every setup dumps the same.
		writeDurable(t, mem, snapshotPath, []byte(oldMetaJSON))
		s := openStore(t, efs)
		s.w.compactMin = 1
		makeChanges(t, s)
		for i := 0; ; i++ {
			s.w.Lock()
			due := s.w.size > max(s.w.compactMin, s.w.snapSize)
			s.w.Unlock()
			if due {
				break
			}
			if err := s.CreateTopic(topic(fmt.Sprintf("fill-%d", i), 1)); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	{
		mem := vfs.NewCrashable()
		s := setup(t, mem, vfs.NewErrorFS(mem))
		before = dump(s)
		if err := s.CreateTopic(topic("compacting", 3)); err != nil {
			t.Fatal(err)
		}
		after = dump(s)
		closeStore(t, s)
	}
	run := func(s *Standalone, _ *vfs.ErrorFS) (*Standalone, error) {
		return s, s.CreateTopic(topic("compacting", 3))
	}
	var nextTaken bool // by the live store after an I/O error
	check := func(t *testing.T, s *Standalone, runErr error, mode string, live bool) {
		got := dump(s)
		if mode == "eio" && !live {
			if _, ok := s.Topic("next"); ok != nextTaken {
				t.Fatalf("change made after the failure found: %v, want %v", ok, nextTaken)
			}
			got = dumpWithout(t, s, "next")
		}
		want := before
		switch {
		case runErr == nil:
			want = after // the failure was one the store may ignore (removing the old journal)
		case mode == "eio" && !live && got == after:
			want = after // the entry reached the file; its fsync failed
		}
		if got != want {
			t.Fatalf("live=%v after %v:\n got %s\nwant %s", live, runErr, got, want)
		}
		err := s.CreateTopic(topic("next", 1))
		if live {
			nextTaken = err == nil
			t.Logf("after %v the store takes changes: %v", runErr, nextTaken)
			if err != nil && !errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("change after a failure: %v", err)
			}
			return
		}
		if err != nil && !(mode == "eio" && nextTaken && errors.Is(err, ErrTopicExists)) {
			t.Fatalf("reopened store refuses a change: %v", err)
		}
	}
	crashAtEveryStep(t, 10, setup, run, check)
}

// TestUpgradeCrashAtEveryStep: opening a meta.json from before the journal
// writes a new snapshot and the first journal; failing at every step of
// that leaves a store that opens with the old contents.
func TestUpgradeCrashAtEveryStep(t *testing.T) {
	var want string
	{
		mem := vfs.NewMem()
		writeDurable(t, mem, snapshotPath, []byte(oldMetaJSON))
		s := openStore(t, mem)
		want = dump(s)
		closeStore(t, s)
	}
	setup := func(t *testing.T, mem *vfs.MemFS, efs *vfs.ErrorFS) *Standalone {
		writeDurable(t, mem, snapshotPath, []byte(oldMetaJSON))
		return nil
	}
	run := func(_ *Standalone, efs *vfs.ErrorFS) (*Standalone, error) {
		return OpenStandalone(efs, testDir, testSelf)
	}
	check := func(t *testing.T, s *Standalone, runErr error, mode string, live bool) {
		if got := dump(s); got != want {
			t.Fatalf("live=%v after %v:\n got %s\nwant %s", live, runErr, got, want)
		}
		if err := s.CreateTopic(topic("x", 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTopic("x"); err != nil {
			t.Fatal(err)
		}
	}
	crashAtEveryStep(t, 6, setup, run, check)
}
