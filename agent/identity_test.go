package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// writeBanner starts file with the same 1.5 KiB banner every time: a
// service whose log files all begin alike.
func (h *harness) writeBanner(file string) {
	h.t.Helper()
	banner := "# " + strings.Repeat("banner ", 220) + "\n"
	if err := os.WriteFile(h.path(file), []byte(banner), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// withoutBanners drops the banner records.
func withoutBanners(h *harness, n int) {
	h.t.Helper()
	recs := h.records(n, 20*time.Second)
	count := map[string]int{}
	for _, r := range recs {
		if !strings.HasPrefix(string(r.Value), "#") {
			count[string(r.Value)]++
		}
	}
	if len(count) != n {
		h.t.Fatalf("%d distinct lines arrived, want %d", len(count), n)
	}
}

// TestSameHeadFilesAreDifferentFiles: two files (and, after a rename
// rotation, the new file and the old) that start with the same 1 KiB are
// told apart by what follows: both are read whole, the new one from its
// start, not from the old one's position.
func TestSameHeadFilesAreDifferentFiles(t *testing.T) {
	h := newHarness(t)
	h.writeBanner("a.log")
	h.appendLines("a.log", 0, 100)
	h.writeBanner("b.log")
	h.appendLines("b.log", 100, 200)
	h.start(h.config("*.log"))
	withoutBanners(h, 200)

	// Rename rotation to a name outside the glob; the new file has the
	// same banner.
	if err := os.Rename(h.path("a.log"), h.path("a.log.1")); err != nil {
		t.Fatal(err)
	}
	h.writeBanner("a.log")
	h.appendLines("a.log", 200, 500)
	withoutBanners(h, 500)
}

// TestSameFileUnderTwoPaths: a file matched under two paths at once (a
// symlink next to its target) is read once.
func TestSameFileUnderTwoPaths(t *testing.T) {
	h := newHarness(t)
	h.appendLines("app.log", 0, 100)
	if err := os.Symlink(h.path("app.log"), h.path("current.log")); err != nil {
		t.Fatal(err)
	}
	h.start(h.config("*.log"))
	h.appendLines("app.log", 100, 200)
	h.expectLines(0, 200, false)
}

// TestNewFileCheckpointedAtOnce: a file the agent starts reading is in the
// checkpoint at once, not at the next checkpoint interval, so that if the
// agent dies and the file is rotated out of the globs meanwhile, the next
// run still finds it and reads the rest.
func TestNewFileCheckpointedAtOnce(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	cfg.CheckpointInterval = time.Hour
	h.start(cfg)
	h.appendLines("new.log", 0, 10)
	eventually(t, "new.log in the checkpoint", func() bool {
		b, err := os.ReadFile(filepath.Join(h.dataDir, checkpointName))
		return err == nil && strings.Contains(string(b), "new.log")
	})
}

// TestDeletedFileFinishedSoon: a deleted file read to its end is finished
// (its descriptor, and so its space, released) after a short grace, not
// after close-inactive.
func TestDeletedFileFinishedSoon(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	cfg.CloseInactive = time.Hour
	a := h.start(cfg)
	h.appendLines("gone.log", 0, 50)
	h.expectLines(0, 50, false)
	if err := os.Remove(h.path("gone.log")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "deleted file closed", func() bool {
		for _, s := range a.Status() {
			if s.State != StateClosed {
				return false
			}
		}
		return true
	})
	if d := time.Since(start); d > removedGrace+5*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// TestTruncatedAndRewrittenWithSameHead: a file truncated in place and
// written again with the same 1 KiB head (a restart rewriting its banner),
// seen while shorter than what was read, is read again from its start,
// not from the old position once it grows past it. (Truncated and grown
// past the old position between two looks, it cannot be told from a file
// that only grew, as for Filebeat.)
func TestTruncatedAndRewrittenWithSameHead(t *testing.T) {
	h := newHarness(t)
	h.writeBanner("t.log")
	h.appendLines("t.log", 0, 300)
	h.start(h.config("*.log"))
	withoutBanners(h, 300)
	h.writeBanner("t.log") // truncates and rewrites the head
	h.appendLines("t.log", 300, 310)
	withoutBanners(h, 310)
	h.appendLines("t.log", 310, 700)
	withoutBanners(h, 700)
}

// TestStallWarned: records that no broker acknowledges (here: the topic
// does not exist and is not created) are warned about, naming the topic,
// rather than only falling behind in silence.
func TestStallWarned(t *testing.T) {
	defer func(d time.Duration) { stallAfter = d }(stallAfter)
	stallAfter = 300 * time.Millisecond
	h := newHarness(t)
	h.topic = "missing"
	core, logs := observer.New(zap.WarnLevel)
	a, err := New(h.config("*.log"), Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	h.appendLines("x.log", 0, 10)
	eventually(t, "a stall warning", func() bool {
		for _, e := range logs.FilterMessageSnippet("no record acknowledged").All() {
			if strings.Contains(fmt.Sprint(e.ContextMap()["topics"]), "missing") {
				return true
			}
		}
		return false
	})
}
