package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// cleanCrashSetup builds the same log every time: a compacted log over a
// crashable file system (through an ErrorFS) that has been cleaned once and
// then received more updates, tombstones and idempotent batches, all
// flushed, so the next pass merges small cleaned segments, rewrites
// compressed batches, keeps a producer's last batch empty and removes
// tombstones (delete.retention.ms is no delay).
func cleanCrashSetup(t *testing.T) (*vfs.MemFS, *vfs.ErrorFS, *Log, *model, Config) {
	t.Helper()
	mem := vfs.NewCrashable()
	efs := vfs.NewErrorFS(mem)
	cfg := compactConfig()
	cfg.DeleteRetentionMs = -1
	l := openLog(t, efs, "/d/t-0", cfg, quiet)
	m := newModel()
	rng := rand.New(rand.NewPCG(11, 12))
	fillKeyed(t, l, m, rng, 20, 8, record.CodecGzip, true)
	roll(t, l, m)
	clean(t, NewCleaner(CleanerConfig{}), l)
	seq := int32(0)
	for i := range 9 {
		fillKeyed(t, l, m, rng, 1, 8, record.CodecNone, true)
		if i%3 == 0 {
			m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "k01", value: fmt.Sprint("p", i)}}, pid: 3, epoch: 0, seq: seq, codec: record.CodecLZ4})
			seq++
		}
	}
	fillKeyed(t, l, m, rng, 4, 8, record.CodecZstd, true)
	roll(t, l, m)
	return mem, efs, l, m, cfg
}

// mutating reports whether an operation changes the file system; only
// those are crash points (a crash at a read equals one at the next write).
func mutating(op vfs.Op) bool {
	switch op {
	case vfs.OpRead, vfs.OpStat, vfs.OpReadDir, vfs.OpSize, vfs.OpClose:
		return false
	}
	return true
}

var errCrashed = errors.New("process crashed")

// quiet opens a log without test logging: the crash tests open hundreds.
func quiet(o *Options) { o.Logger = zap.NewNop() }

// TestCleanCrashAtEveryStep runs the second pass of cleanCrashSetup's log
// and crashes it at every file-system operation that changes something in
// turn (a clean power loss, and one that also tears unsynced data), then
// reopens: the log must open, hold every record at the offset it was
// appended at, end every key with its latest record (or none, for a
// deleted key), and clean fully afterwards. The same runs again with the
// operation failing with EIO instead of a crash, the log carrying on, then
// being reopened. Under the race detector the torn and EIO variants run at
// every fourth step only.
func TestCleanCrashAtEveryStep(t *testing.T) {
	// Count the operations of an undisturbed pass.
	_, efs, l, _, _ := cleanCrashSetup(t)
	ops := 0
	var trace []string
	efs.SetHook(func(op vfs.Op, path string) error {
		if mutating(op) {
			ops++
			trace = append(trace, op.String()+" "+path)
		}
		return nil
	})
	clean(t, NewCleaner(CleanerConfig{}), l)
	efs.SetHook(nil)
	_ = l.Close()
	if ops < 20 {
		t.Fatalf("only %d operations in a pass: %v", ops, trace)
	}
	t.Logf("%d mutating operations in the pass:\n%s", ops, strings.Join(trace, "\n"))

	for k := 1; k <= ops; k++ {
		for _, mode := range []string{"crash", "torn", "eio"} {
			if raceEnabled && mode != "crash" && k%4 != 0 {
				continue // every step crashes; the variants are sampled
			}
			t.Run(fmt.Sprintf("op%03d-%s", k, mode), func(t *testing.T) {
				t.Parallel()
				mem, efs, l, m, cfg := cleanCrashSetup(t)
				n := 0
				efs.SetHook(func(op vfs.Op, path string) error {
					if mode == "eio" {
						if mutating(op) {
							n++
							if n == k {
								return syscall.EIO
							}
						}
						return nil
					}
					if mutating(op) {
						n++
					}
					switch {
					case n < k:
						return nil
					case n == k && mutating(op):
						if mode == "torn" {
							mem.CrashTorn(uint64(k))
						} else {
							mem.Crash()
						}
					}
					return errCrashed // the process is gone
				})
				_, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l)
				if err == nil {
					t.Fatalf("pass survived a failure at %s", trace[k-1])
				}
				if mode == "eio" {
					// The log carries on: reads are right, and a later
					// pass (if the log is still writable) finishes.
					efs.SetHook(nil)
					checkLog(t, l, m, 0)
					if !errors.Is(err, ErrStorage) {
						res := clean(t, NewCleaner(CleanerConfig{}), l)
						checkLog(t, l, m, res.EndOffset)
					}
					_ = l.Close()
				} else {
					l.closeFiles(false)
					efs.SetHook(nil)
				}
				l = openLog(t, mem, "/d/t-0", cfg, quiet)
				defer func() { _ = l.Close() }()
				checkLog(t, l, m, 0)
				leftover(t, mem, "/d/t-0")
				res := clean(t, NewCleaner(CleanerConfig{}), l)
				checkLog(t, l, m, res.EndOffset)
			})
		}
	}
}

// leftover fails if cleaner temporaries are left in dir.
func leftover(t *testing.T, fsys vfs.FS, dir string) {
	t.Helper()
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
			t.Fatalf("%s left after open", e.Name())
		}
	}
}
