package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestMissingSegmentFileIsReported deletes the .log of a closed segment
// between two others while the log is closed, with or without its index
// files: the broker warns, naming the missing segment's base offset and
// the offsets lost (Open, from the orphan index files; otherwise the
// first load of the previous segment's index, which finds it ending
// short), and Open removes the orphan index files (saying so); what
// remains reads as before. Orphan index files below the first segment
// (an interrupted retention) are removed at info, with no warning.
func TestMissingSegmentFileIsReported(t *testing.T) {
	cases := []struct {
		name    string
		remove  func(first, victim int64) []string // file names to remove
		orphans func(first, victim int64) []string // orphan index files
		warn    bool
	}{
		{"log removed, indexes left", func(_, v int64) []string {
			return []string{fileBase(v) + logSuffix}
		}, func(_, v int64) []string {
			return []string{fileBase(v) + indexSuffix, fileBase(v) + timeIndexSuffix}
		}, true},
		{"all three files removed", func(_, v int64) []string {
			return []string{fileBase(v) + logSuffix, fileBase(v) + indexSuffix, fileBase(v) + timeIndexSuffix}
		}, nil, true},
		{"first log removed, indexes left", func(f, _ int64) []string {
			return []string{fileBase(f) + logSuffix}
		}, func(f, _ int64) []string {
			return []string{fileBase(f) + indexSuffix, fileBase(f) + timeIndexSuffix}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fsys := vfs.NewMem()
			dir := "/d/t-0"
			cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 128}
			l := openLog(t, fsys, dir, cfg)
			fillLog(t, l, 0, 100)
			segs := l.segments()
			if len(segs) < 5 {
				t.Fatalf("%d segments", len(segs))
			}
			first, victim, after := segs[0].base, segs[2].base, segs[3].base
			leo := l.LogEndOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, name := range c.remove(first, victim) {
				if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}

			logs, obs := observed()
			l = openLog(t, fsys, dir, cfg, logs)
			defer l.Close()
			start := l.LogStartOffset()
			recs := readAll(t, l, start)
			warnings := obs.FilterLevelExact(zapcore.WarnLevel).All()
			if !c.warn {
				if len(warnings) != 0 {
					t.Fatalf("warnings for an interrupted deletion: %v", warnings)
				}
			} else {
				if len(warnings) != 1 {
					t.Fatalf("%d warnings, want 1: %v", len(warnings), obs.All())
				}
				f := warnings[0].ContextMap()
				if f["missing_base_offset"] != victim || f["first_lost_offset"] != victim || f["last_lost_offset"] != after-1 {
					t.Fatalf("warning %q %v, want segment %d and offsets [%d, %d] lost", warnings[0].Message, f, victim, victim, after-1)
				}
			}
			var orphans []string
			if c.orphans != nil {
				orphans = c.orphans(first, victim)
			}
			for _, name := range orphans {
				if _, err := fsys.Stat(filepath.Join(dir, name)); !isNotExist(err) {
					t.Fatalf("orphan %s: %v, want removed", name, err)
				}
				if !removalLogged(obs, name) {
					t.Fatalf("removal of %s not logged: %v", name, obs.All())
				}
			}

			if c.warn {
				checkSequential(t, recs[:victim-start], start)
				checkSequential(t, recs[victim-start:], after)
				if int64(len(recs)) != leo-start-(after-victim) {
					t.Fatalf("read %d records", len(recs))
				}
			} else {
				checkSequential(t, recs, start)
			}
		})
	}
}

// removalLogged reports whether an entry lists name among removed files.
func removalLogged(obs *observer.ObservedLogs, name string) bool {
	for _, e := range obs.All() {
		for _, k := range []string{"removed", "files"} {
			if list, ok := e.ContextMap()[k].([]any); ok {
				for _, v := range list {
					if v == name {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestActiveSegmentLost: the last segment's .log deleted while the log
// was closed, after a flush moved the recovery point into it: the log
// opens at the previous segment's end with an error naming the flushed
// offsets lost. A directory in its place refuses the open (a roll would
// otherwise fail on the name at every start).
func TestActiveSegmentLost(t *testing.T) {
	fsys := vfs.NewMem()
	dir := "/d/t-0"
	cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 128}
	l := openLog(t, fsys, dir, cfg)
	fillLog(t, l, 0, 100)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	segs := l.segments()
	active, leo := segs[len(segs)-1].base, l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if active == leo {
		t.Fatalf("the active segment (base %d) is empty", active)
	}
	path := filepath.Join(dir, fileBase(active)+logSuffix)
	if err := fsys.Remove(path); err != nil {
		t.Fatal(err)
	}
	logs, obs := observed()
	l = openLog(t, fsys, dir, cfg, logs)
	if got := l.LogEndOffset(); got != active {
		t.Fatalf("log end %d, want %d", got, active)
	}
	l.Close()
	errs := obs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("recovery point").All()
	if len(errs) != 1 {
		t.Fatalf("%d errors about the recovery point: %v", len(errs), obs.All())
	}
	if f := errs[0].ContextMap(); f["first_lost_offset"] != active || f["last_lost_offset"] != leo-1 {
		t.Fatalf("lost offsets reported: %v", f)
	}

	if err := fsys.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{FS: fsys, Dir: dir, Topic: "topic", Config: cfg}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("open with a directory in place of a segment: %v", err)
	}
}

// TestBeforeRollRefuses: a BeforeRoll hook that refuses (the broker's
// descriptor reserve) refuses the append that needed a roll with a
// retriable storage error, logged as out of file descriptors, leaves the
// log as it was and writable, and the append goes through once the hook
// allows it.
func TestBeforeRollRefuses(t *testing.T) {
	fsys := vfs.NewMem()
	refuse := true
	logs, obs := observed()
	hook := func(o *Options) {
		o.BeforeRoll = func() error {
			if refuse {
				return fmt.Errorf("kept for connections: %w", syscall.EMFILE)
			}
			return nil
		}
	}
	l := openLog(t, fsys, "/d/t-0", Config{SegmentBytes: 1024}, logs, hook)
	defer l.Close()
	var err error
	for i := 0; err == nil && i < 100; i++ {
		_, err = l.Append(makeBatch(t, batchSpec{n: 2, pid: -1, tag: fmt.Sprint("b", i), valueSize: 40}), 0)
	}
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("append needing a refused roll: %v", err)
	}
	leo, segs := l.LogEndOffset(), len(l.segments())
	if segs != 1 {
		t.Fatalf("%d segments after a refused roll", segs)
	}
	if n := len(obs.FilterMessageSnippet("out of file descriptors").All()); n != 1 {
		t.Fatalf("%d log lines about descriptors, want 1: %v", n, obs.All())
	}
	refuse = false
	res := mustAppend(t, l, makeBatch(t, batchSpec{n: 2, pid: -1, tag: "after", valueSize: 40}))
	if res.BaseOffset != leo || len(l.segments()) != 2 {
		t.Fatalf("append after the hook allows: base %d (want %d), %d segments", res.BaseOffset, leo, len(l.segments()))
	}
}
