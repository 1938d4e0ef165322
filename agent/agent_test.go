package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gregor-log/gregor/internal/config"
	"github.com/gregor-log/gregor/internal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs Agents against an in-process kfake cluster over a temp dir.
type harness struct {
	t       *testing.T
	dir     string // the log files
	dataDir string
	cluster *kfake.Cluster
	topic   string

	mu      sync.Mutex
	running *runningAgent
	// logger, if set, is the agents' logger (zaptest's otherwise).
	logger *zap.Logger
	// fs, if set, holds the agents' data dir (vfs.OS otherwise).
	fs vfs.FS
}

type runningAgent struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: t.TempDir(), dataDir: t.TempDir(), cluster: c, topic: "t"}
	t.Cleanup(func() {
		h.stop()
		c.Close()
	})
	return h
}

// config returns an agent config with fast intervals and one input for
// the given patterns.
func (h *harness) config(patterns ...string) config.Agent {
	p := config.Pipeline{
		Brokers: h.cluster.ListenAddrs(),
		Agents: []config.Agent{{
			Name:               "test",
			DataDir:            h.dataDir,
			Hostname:           "testhost",
			RescanInterval:     100 * time.Millisecond,
			PollInterval:       50 * time.Millisecond,
			CheckpointInterval: 50 * time.Millisecond,
			CloseInactive:      500 * time.Millisecond,
			Producer:           config.Producer{Linger: time.Millisecond},
		}},
	}
	in := config.Input{Topic: h.topic}
	for _, pat := range patterns {
		in.Paths = append(in.Paths, filepath.Join(h.dir, pat))
	}
	p.Agents[0].Inputs = []config.Input{in}
	p.SetDefaults()
	if ps := p.Validate(); len(ps) > 0 {
		h.t.Fatalf("config: %+v", ps)
	}
	return p.Agents[0]
}

func (h *harness) start(cfg config.Agent) *Agent {
	h.t.Helper()
	logger := h.logger
	if logger == nil {
		logger = zaptest.NewLogger(h.t, zaptest.Level(zap.InfoLevel))
	}
	a, err := New(cfg, Options{Logger: logger, FS: h.fs})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	h.mu.Lock()
	h.running = ra
	h.mu.Unlock()
	return a
}

func (h *harness) stop() {
	h.mu.Lock()
	ra := h.running
	h.running = nil
	h.mu.Unlock()
	if ra == nil {
		return
	}
	ra.cancel()
	if err := <-ra.done; err != nil {
		h.t.Errorf("agent Run: %v", err)
	}
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

// appendLines appends lines "L000000".. numbered from..to-1 to file.
func (h *harness) appendLines(file string, from, to int) { h.appendLinesHeaded(file, "", from, to) }

// banner is a head longer than the fingerprint, as a service's log files
// may all start with.
var banner = "#" + strings.Repeat("=", fingerprintBytes+100) + "\n"

// appendBannered is appendLines for a file that starts with banner.
func (h *harness) appendBannered(file string, from, to int) {
	h.appendLinesHeaded(file, banner, from, to)
}

// appendLinesHeaded appends lines from..to-1 to file, after head when the
// file is empty, in one write (a head arrives whole).
func (h *harness) appendLinesHeaded(file, head string, from, to int) {
	h.t.Helper()
	f, err := os.OpenFile(h.path(file), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		b.WriteString(head)
	}
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "L%06d\n", i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		h.t.Fatal(err)
	}
}

// copyFile copies file to a file named copy.
func (h *harness) copyFile(file, copy string) {
	h.t.Helper()
	data, err := os.ReadFile(h.path(file))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(h.path(copy), data, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// copyTruncate rotates file as logrotate's copytruncate does: a copy
// named copy, then file truncated.
func (h *harness) copyTruncate(file, copy string) {
	h.t.Helper()
	h.copyFile(file, copy)
	if err := os.Truncate(h.path(file), 0); err != nil {
		h.t.Fatal(err)
	}
}

// records reads the topic from the start until it holds at least n
// records, and returns all it has.
func (h *harness) records(n int, timeout time.Duration) []*kgo.Record {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...),
		kgo.ConsumeTopics(h.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// expectLines waits until lines from..to-1 all arrived and checks that
// none arrived twice unless allowDup.
func (h *harness) expectLines(from, to int, allowDup bool) []*kgo.Record {
	h.t.Helper()
	recs := h.records(to-from, 20*time.Second)
	count := map[int]int{}
	for _, r := range recs {
		n, err := strconv.Atoi(strings.TrimPrefix(string(r.Value), "L"))
		if err != nil {
			h.t.Fatalf("unexpected record %q", r.Value)
		}
		count[n]++
	}
	var missing, dups []int
	for i := from; i < to; i++ {
		switch c := count[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1 && !allowDup:
			dups = append(dups, i)
		}
	}
	if len(missing) > 0 || len(dups) > 0 || (!allowDup && len(recs) != to-from) {
		h.t.Fatalf("%d records: missing %d %v, duplicated %v", len(recs), len(missing), head(missing), head(dups))
	}
	return recs
}

func head(s []int) []int {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// eventually polls cond until it is true or fails the test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShipsLinesWithHeaders(t *testing.T) {
	h := newHarness(t)
	h.appendLines("a.log", 0, 100)
	h.start(h.config("*.log"))
	h.appendLines("a.log", 100, 200)
	recs := h.expectLines(0, 200, false)
	r := recs[5]
	hdr := map[string]string{}
	for _, x := range r.Headers {
		hdr[x.Key] = string(x.Value)
	}
	if hdr[HeaderHost] != "testhost" || hdr[HeaderPath] != h.path("a.log") || hdr[HeaderOffset] != strconv.Itoa(5*8) {
		t.Fatalf("headers %v", hdr)
	}
}

func TestRenameRotationReadsOldFileToEnd(t *testing.T) {
	h := newHarness(t)
	h.appendLines("app.log", 0, 100)
	a := h.start(h.config("*.log")) // the rotated name app.log.1 is not matched
	eventually(t, "first lines read", func() bool {
		for _, s := range a.Status() {
			if s.Read > 0 {
				return true
			}
		}
		return false
	})
	if err := os.Rename(h.path("app.log"), h.path("app.log.1")); err != nil {
		t.Fatal(err)
	}
	// The writer still writes to the old file for a while, then the new.
	h.appendLines("app.log.1", 100, 200)
	// Status names where the detached file is now (helper-78 saw only
	// the old name).
	eventually(t, "detached, with its new name", func() bool {
		for _, s := range a.Status() {
			if s.State == StateDetached && s.Path == h.path("app.log") && s.NowAt == h.path("app.log.1") {
				return true
			}
		}
		return false
	})
	h.appendLines("app.log", 200, 300)
	h.expectLines(0, 300, false)
	eventually(t, "rotated file finished", func() bool {
		for _, s := range a.Status() {
			if s.State == StateDetached || s.State == StateOpen && s.Path == h.path("app.log.1") {
				return false
			}
		}
		return true
	})
}

// TestRenameRotationOfClosedFile: a file closed for inactivity, then
// renamed away by a rotation and written to under its new name (a quiet
// app writing before it reopens its log), is read to its end while the
// agent runs, not only at its next start.
func TestRenameRotationOfClosedFile(t *testing.T) {
	h := newHarness(t)
	h.appendLines("app.log", 0, 100)
	a := h.start(h.config("*.log")) // the rotated name app.log.1 is not matched
	h.expectLines(0, 100, false)
	eventually(t, "file closed for inactivity", func() bool {
		for _, s := range a.Status() {
			if s.State != StateClosed {
				return false
			}
		}
		return len(a.Status()) == 1
	})
	if err := os.Rename(h.path("app.log"), h.path("app.log.1")); err != nil {
		t.Fatal(err)
	}
	h.appendLines("app.log.1", 100, 150)
	h.appendLines("app.log", 150, 200)
	h.expectLines(0, 200, false)
}

func TestCopyTruncateContinuesInTheCopy(t *testing.T) {
	h := newHarness(t)
	h.appendLines("app.log", 0, 200) // > 1 KiB: a full fingerprint
	h.start(h.config("app.log*"))
	h.expectLines(0, 200, false)
	// Lines written after the agent's last read but before the truncation
	// exist only in the copy.
	h.appendLines("app.log", 200, 300)
	h.copyTruncate("app.log", "app.log.1")
	h.appendLines("app.log", 300, 320)
	h.expectLines(0, 320, false)
}

func TestDeleteWhileOpenFinishesDescriptor(t *testing.T) {
	h := newHarness(t)
	h.appendLines("gone.log", 0, 50)
	a := h.start(h.config("*.log"))
	h.expectLines(0, 50, false)
	f, err := os.OpenFile(h.path("gone.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.path("gone.log")); err != nil {
		t.Fatal(err)
	}
	// Still written through an open descriptor, the last line without a
	// newline: it is shipped when the file is finished.
	for i := 50; i < 80; i++ {
		fmt.Fprintf(f, "L%06d\n", i)
	}
	fmt.Fprintf(f, "L%06d", 80)
	f.Close()
	h.expectLines(0, 81, false)
	eventually(t, "deleted file closed", func() bool {
		for _, s := range a.Status() {
			if s.State != StateClosed {
				return false
			}
		}
		return true
	})
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	h.appendLines("r.log", 0, 100)
	h.start(cfg)
	h.expectLines(0, 100, false)
	h.stop()
	h.appendLines("r.log", 100, 150)
	h.start(cfg)
	h.expectLines(0, 150, false)
	h.stop()
	// A truncated-and-rewritten file (copytruncate while the agent was
	// down, copy not matched) is read from its start.
	if err := os.Truncate(h.path("r.log"), 0); err != nil {
		t.Fatal(err)
	}
	h.appendLines("r.log", 150, 160)
	h.start(cfg)
	h.expectLines(0, 160, false)
}

func TestDamagedCheckpointRereadsFromBeginning(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	h.appendLines("c.log", 0, 100)
	h.start(cfg)
	h.expectLines(0, 100, false)
	h.stop()
	ckpt := filepath.Join(h.dataDir, checkpointName)
	data, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0x20 // damage the one entry
	if err := os.WriteFile(ckpt, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a := h.start(cfg)
	// Read again from the beginning, never from the end: everything twice.
	recs := h.expectLines(0, 100, true)
	if len(recs) < 200 {
		eventually(t, "re-read", func() bool { return len(h.records(200, time.Second)) >= 200 })
	}
	if got := testutilCounter(t, a, "gregor_agent_checkpoint_damage_total"); got < 1 {
		t.Fatalf("damage not counted: %v", got)
	}
	if _, err := os.Stat(ckpt + ".corrupt"); err != nil {
		t.Fatalf("damaged checkpoint not kept: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	cfg.Inputs[0].MaxLineBytes = 1000
	// Binary garbage and invalid UTF-8 are shipped byte for byte; a line
	// over the maximum is cut; a directory matching the glob is skipped.
	garbage := []byte{0x00, 0xff, 0xfe, 'x', 0xc3, 0x28}
	long := strings.Repeat("z", 5000)
	content := append(append([]byte{}, garbage...), '\n')
	content = append(content, long...)
	content = append(content, "\nok\n"...)
	if err := os.WriteFile(h.path("bad.log"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.path("dir.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := h.start(cfg)
	recs := h.records(3, 10*time.Second)
	if len(recs) != 3 || string(recs[0].Value) != string(garbage) || len(recs[1].Value) != 1000 || string(recs[2].Value) != "ok" {
		t.Fatalf("records: %d", len(recs))
	}
	if string(headerValue(recs[1], HeaderTruncated)) != "true" {
		t.Fatalf("truncated line has no header")
	}
	eventually(t, "truncation counted", func() bool { return testutilCounter(t, a, "gregor_agent_lines_truncated_total") == 1 })
	eventually(t, "checkpoint at the end", func() bool {
		for _, s := range a.Status() {
			if s.Path == h.path("bad.log") && s.Acked == int64(len(content)) {
				return true
			}
		}
		return false
	})
}

// testutilCounter sums a counter of the agent's registry.
func testutilCounter(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestFileReplacedByDirectory(t *testing.T) {
	h := newHarness(t)
	h.appendLines("x.log", 0, 50)
	a := h.start(h.config("*.log"))
	h.expectLines(0, 50, false)
	if err := os.Remove(h.path("x.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.path("x.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.appendLines("y.log", 50, 60)
	h.expectLines(0, 60, false)
	eventually(t, "old file finished", func() bool {
		for _, s := range a.Status() {
			if s.Path == h.path("x.log") && s.State != StateClosed {
				return false
			}
		}
		return true
	})
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	h := newHarness(t)
	h.appendLines("locked.log", 0, 10)
	if err := os.Chmod(h.path("locked.log"), 0); err != nil {
		t.Fatal(err)
	}
	a := h.start(h.config("*.log"))
	eventually(t, "open error counted", func() bool { return testutilCounter(t, a, "gregor_agent_file_errors_total") >= 1 })
	if err := os.Chmod(h.path("locked.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.expectLines(0, 10, false) // retried on a later scan
}

func TestMultilineAndParsersThroughAgent(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.trace")
	cfg.Inputs[0].Multiline = &config.Multiline{Start: `^\d{4}-`, MaxLines: 100, FlushTimeout: 200 * time.Millisecond}
	cfg.Inputs[0].Key = "path"
	js := config.Input{Paths: []string{h.path("*.jsonl")}, Topic: h.topic, Key: "field:user",
		Parser: config.Parser{Type: config.ParserJSON}, Fields: map[string]string{"env": "test"}, MaxLineBytes: 4096}
	cfg.Inputs = append(cfg.Inputs, js)
	trace := "2026-01-01 boom\n  at a\n  at b\n2026-01-02 ok\n"
	if err := os.WriteFile(h.path("app.trace"), []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("app.jsonl"), []byte(`{"user":"ann","msg":"hi"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := h.start(cfg)
	recs := h.records(3, 10*time.Second)
	got := map[string]string{}
	for _, r := range recs {
		got[string(r.Value)] = string(r.Key)
	}
	if got["2026-01-01 boom\n  at a\n  at b"] != h.path("app.trace") || got["2026-01-02 ok"] != h.path("app.trace") ||
		got[`{"user":"ann","msg":"hi","env":"test"}`] != "ann" || len(recs) != 3 {
		t.Fatalf("records: %q", got)
	}
	// The last record was flushed by the timeout, and then checkpointed.
	eventually(t, "multiline file checkpointed to its end", func() bool {
		for _, s := range a.Status() {
			if s.Path == h.path("app.trace") {
				return s.Acked == int64(len(trace))
			}
		}
		return false
	})
}

// TestTopicLimitBelowBatchSize: a topic whose max.message.bytes is below
// producer.batch-max-bytes refuses the agent's full batches of small
// lines; those lines are produced again in batches that fit, not dropped.
// Only a line too large for the topic alone is dropped. A limit below
// the smallest batch franz-go takes as a client default (512 B) works too
// (it dropped 96 lines of 100).
func TestTopicLimitBelowBatchSize(t *testing.T) {
	for _, limit := range []string{"20000", "300"} {
		t.Run(limit, func(t *testing.T) { testTopicLimit(t, limit) })
	}
}

func testTopicLimit(t *testing.T, limit string) {
	h := newHarness(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, h.topic
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = "max.message.bytes", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(limit)
	rr.Configs = append(rr.Configs, c)
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("set max.message.bytes: %v %+v", err, resp)
	}
	h.appendLines("a.log", 0, 3000)
	f, err := os.OpenFile(h.path("a.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Repeat("x", 30000) + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.appendLines("a.log", 3000, 4000)
	a := h.start(h.config("*.log"))
	recs := h.records(4000, 30*time.Second)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for i := range 4000 {
		if v := fmt.Sprintf("L%06d", i); seen[v] == 0 {
			t.Fatalf("line %s missing (%d records)", v, len(recs))
		}
	}
	eventually(t, "the long line dropped", func() bool { return testutilCounter(t, a, "gregor_agent_records_dropped_total") == 1 })
	eventually(t, "checkpoint at the end", func() bool {
		for _, s := range a.Status() {
			if s.Path == h.path("a.log") && s.Acked == int64(4000*8+30001) {
				return true
			}
		}
		return false
	})
}

// TestRotatedWhileDownWithSharedBanner: files that all start with the same
// banner (a longer head than the fingerprint) are rotated by rename while
// the agent is down. The new file is not taken for the old one moved to
// a new inode: it is read from its start, and the rotated file is
// finished, lines written to it after the stop included.
func TestRotatedWhileDownWithSharedBanner(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	lines := func(n int) map[string]int {
		seen := map[string]int{}
		for _, r := range h.records(n, 20*time.Second) {
			seen[string(r.Value)]++
		}
		return seen
	}
	h.appendBannered("app.log", 0, 100)
	h.start(cfg)
	if seen := lines(101); seen["L000099"] == 0 {
		t.Fatalf("first lines not shipped: %d distinct", len(seen))
	}
	h.stop()
	h.appendBannered("app.log", 100, 150) // written after the stop, before the rotation
	if err := os.Rename(h.path("app.log"), h.path("app.log.1")); err != nil {
		t.Fatal(err)
	}
	h.appendBannered("app.log", 150, 300)
	h.start(cfg)
	seen := lines(302)
	for i := range 300 {
		if v := fmt.Sprintf("L%06d", i); seen[v] == 0 {
			t.Fatalf("line %s missing", v)
		}
	}
}

// TestTruncatedAndRewrittenWithSharedBanner: a file truncated and written
// again with the same banner (no copy of it is matched) is read from its
// start: it is not taken for the copy of its own old content.
func TestTruncatedAndRewrittenWithSharedBanner(t *testing.T) {
	h := newHarness(t)
	h.appendBannered("app.log", 0, 500)
	a := h.start(h.config("*.log"))
	eventually(t, "first lines read", func() bool {
		for _, s := range a.Status() {
			if s.Read >= int64(len(banner)+500*8) {
				return true
			}
		}
		return false
	})
	if err := os.Truncate(h.path("app.log"), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "truncation seen", func() bool { return testutilCounter(t, a, "gregor_agent_file_truncations_total") >= 1 })
	h.appendBannered("app.log", 500, 1500) // past the old offset
	seen := map[string]int{}
	recs := h.records(1502, 20*time.Second)
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for i := range 1500 {
		if v := fmt.Sprintf("L%06d", i); seen[v] == 0 {
			t.Fatalf("line %s missing", v)
		}
	}
}

// TestCopyTruncateCopyNotMatched: a copytruncate rotation whose copy no
// glob matches (app.log -> app.log.1 with the glob *.log), done while the
// agent is behind (here: stopped): the lines it had not read are read from
// the copy.
func TestCopyTruncateCopyNotMatched(t *testing.T) {
	h := newHarness(t)
	cfg := h.config("*.log")
	h.appendLines("app.log", 0, 300) // 2,400 bytes: a full fingerprint
	h.start(cfg)
	h.expectLines(0, 300, false)
	h.stop()
	h.appendLines("app.log", 300, 500) // not read before the rotation
	h.copyTruncate("app.log", "app.log.1")
	h.appendLines("app.log", 500, 600)
	h.start(cfg)
	h.expectLines(0, 600, false)
}

// TestCopyOfFileBeingReadSaysSo: a file that holds the same bytes as one
// being read is taken for its copy and not read, and the agent says so,
// once.
func TestCopyOfFileBeingReadSaysSo(t *testing.T) {
	h := newHarness(t)
	core, logs := observer.New(zap.InfoLevel)
	h.logger = zap.New(core)
	h.appendLines("app.log", 0, 300)
	a := h.start(h.config("*.log"))
	h.expectLines(0, 300, false)
	h.copyFile("app.log", "copy.log")
	eventually(t, "the copy noted", func() bool {
		return logs.FilterMessageSnippet("a copy").Len() > 0
	})
	time.Sleep(300 * time.Millisecond) // three more scans
	if n := logs.FilterMessageSnippet("a copy").Len(); n != 1 {
		t.Fatalf("copy logged %d times", n)
	}
	for _, s := range a.Status() {
		if s.Path == h.path("copy.log") {
			t.Fatalf("the copy is tracked: %+v", s)
		}
	}
}

// TestBehindGrowsWhileBrokerStalls: while the broker does not take
// records (the files are the buffer, and the tailer waits), the status's
// size and behind still follow the file as it grows.
func TestBehindGrowsWhileBrokerStalls(t *testing.T) {
	h := newHarness(t)
	h.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cfg := h.config("*.log")
	cfg.Producer.MaxInFlightBytes = 64 << 10
	h.appendLines("app.log", 0, 20000) // 160 KB: more than may be in flight
	a := h.start(cfg)
	status := func() FileStatus {
		for _, s := range a.Status() {
			if s.Path == h.path("app.log") {
				return s
			}
		}
		return FileStatus{}
	}
	eventually(t, "reading stalled", func() bool { s := status(); return s.Pending > 0 && s.Acked == 0 })
	h.appendLines("app.log", 20000, 40000)
	eventually(t, "size and behind follow the file", func() bool {
		s := status()
		return s.Size == 40000*8 && s.Behind == 40000*8
	})
}

// TestOpenFilesBounded: the tailers never hold more files open than the
// agent allows itself (the open-file limit less a reserve), and the files
// over it are read as open ones close for inactivity: every line arrives.
func TestOpenFilesBounded(t *testing.T) {
	defer func(f func() int64) { maxOpenFiles = f }(maxOpenFiles)
	maxOpenFiles = func() int64 { return 4 }
	h := newHarness(t)
	for i := range 20 {
		h.appendLines(fmt.Sprintf("f%02d.log", i), i*5, i*5+5)
	}
	a := h.start(h.config("*.log"))
	var most atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				if n := a.openFiles.Load(); n > most.Load() {
					most.Store(n)
				}
			}
		}
	}()
	h.expectLines(0, 100, true)
	close(stop)
	<-sampled
	if n := most.Load(); n > 4 || n == 0 {
		t.Fatalf("at most %d files open at once, want 1 to 4", n)
	}
}

// TestFailingCheckpointUnhealthy: while checkpoint writes fail (a full
// disk), /healthz answers 503 naming the error, the failure is logged
// once rather than at every interval, and both clear once writes succeed.
func TestFailingCheckpointUnhealthy(t *testing.T) {
	h := newHarness(t)
	efs := vfs.NewErrorFS(vfs.OS)
	h.fs = efs
	core, logs := observer.New(zap.InfoLevel)
	h.logger = zap.New(core)
	a := h.start(h.config("*.log"))
	health := func() (int, string) {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	h.appendLines("app.log", 0, 10)
	h.expectLines(0, 10, false)
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("healthy agent: /healthz %d %q", code, body)
	}

	efs.FailOn(vfs.OpAny, "checkpoint", syscall.ENOSPC)
	h.appendLines("app.log", 10, 20)
	eventually(t, "/healthz 503 naming the error", func() bool {
		code, body := health()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "checkpoint") && strings.Contains(body, "no space left")
	})
	eventually(t, "ten failed writes", func() bool { return testutilCounter(t, a, "gregor_agent_checkpoint_errors_total") >= 10 })
	if n := logs.FilterMessageSnippet("write checkpoint").Len(); n != 1 {
		t.Fatalf("%d log lines for a run of failed checkpoint writes, want 1", n)
	}

	efs.Clear()
	eventually(t, "/healthz 200 again", func() bool { code, _ := health(); return code == http.StatusOK })
	if logs.FilterMessage("checkpoint writes recovered").Len() != 1 {
		t.Fatal("the recovery was not logged")
	}
	h.stop()
	entries, _, err := readCheckpoint(vfs.OS, h.dataDir)
	if err != nil || len(entries) != 1 || entries[0].Offset != 20*8 {
		t.Fatalf("checkpoint after recovery: %+v %v", entries, err)
	}
}
