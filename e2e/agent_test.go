package e2e

// End-to-end tests of `gregor agent`: real broker and agent processes, a
// writer appending numbered lines at speed while files are rotated under
// the agent, the agent killed and restarted, the broker stopped. The
// assertions: every line arrives at least once, and no line that the
// agent had checkpointed arrives again (see checkDelivery).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// agentBrokerDown is how long TestAgentBrokerDown keeps the broker
// stopped: GREGOR_E2E_AGENT_BROKER_DOWN (a Go duration), default 60s.
func agentBrokerDown(t *testing.T) time.Duration {
	if s := os.Getenv("GREGOR_E2E_AGENT_BROKER_DOWN"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GREGOR_E2E_AGENT_BROKER_DOWN: %v", err)
		}
		return d
	}
	return 60 * time.Second
}

// agentSpec is what writeAgentConfig puts in a pipeline file.
type agentSpec struct {
	brokers       string
	topic         string
	globs         []string
	exclude       []string
	closeInactive time.Duration
	pollInterval  time.Duration
}

// AgentProc is one `gregor agent` process (restartable) owned by a test.
type AgentProc struct {
	t        testing.TB
	Config   string // pipeline file
	DataDir  string
	HTTPAddr string

	logs *logBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// StartAgent writes a pipeline file for spec in a temp dir and starts the
// agent on it. The agent is stopped when the test ends and its output is
// printed if the test failed.
func StartAgent(t testing.TB, spec agentSpec) *AgentProc {
	t.Helper()
	dir := t.TempDir()
	a := &AgentProc{
		t:        t,
		Config:   filepath.Join(dir, "pipeline.yaml"),
		DataDir:  filepath.Join(dir, "data"),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		logs:     &logBuffer{},
	}
	if spec.closeInactive == 0 {
		spec.closeInactive = time.Second
	}
	if spec.pollInterval == 0 {
		spec.pollInterval = 100 * time.Millisecond
	}
	quote := func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	cfg := fmt.Sprintf(`brokers: [%s]
agents:
  - name: e2e
    data-dir: %s
    http-addr: %s
    rescan-interval: 200ms
    poll-interval: %s
    checkpoint-interval: 100ms
    close-inactive: %s
    shutdown-timeout: 5s
    producer: {linger: 5ms}
    inputs:
      - paths: %s
        exclude: %s
        topic: %s
`, spec.brokers, a.DataDir, a.HTTPAddr, spec.pollInterval, spec.closeInactive, quote(spec.globs), quote(spec.exclude), spec.topic)
	if err := os.WriteFile(a.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop()
		if strings.Contains(a.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("agent reported a data race")
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", tail(a.logs.String(), 32<<10))
		}
	})
	a.Start()
	return a
}

// Start starts the agent process and waits for its /healthz.
func (a *AgentProc) Start() {
	a.t.Helper()
	a.mu.Lock()
	a.runs++
	fmt.Fprintf(a.logs, "=== agent run %d\n", a.runs)
	cmd := exec.Command(gregorBin, "agent", "--config", a.Config, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		a.t.Fatalf("start agent: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	hc := &http.Client{Timeout: time.Second}
	eventually(a.t, 20*time.Second, "agent /healthz", func() error {
		select {
		case <-done:
			return fmt.Errorf("agent exited")
		default:
		}
		resp, err := hc.Get("http://" + a.HTTPAddr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func (a *AgentProc) current() (*exec.Cmd, chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cmd, done := a.cmd, a.done
	a.cmd, a.done = nil, nil
	return cmd, done
}

// Stop sends SIGTERM and waits (SIGKILL after 15s). No-op when stopped.
func (a *AgentProc) Stop() {
	cmd, done := a.current()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		a.t.Errorf("agent did not stop within 15s of SIGTERM")
	}
}

// Kill9 kills the agent with SIGKILL and waits for it to be gone.
func (a *AgentProc) Kill9() {
	cmd, done := a.current()
	if cmd == nil {
		a.t.Fatal("agent not running")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// PeakRSS returns the running agent's peak resident memory (VmHWM) in
// bytes.
func (a *AgentProc) PeakRSS() (int64, error) {
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("agent not running")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		return 0, fmt.Errorf("no VmHWM in /proc/%d/status", cmd.Process.Pid)
	}
	kb, err := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, err
}

// Signal sends sig to the running agent (SIGSTOP/SIGCONT).
func (a *AgentProc) Signal(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		_ = a.cmd.Process.Signal(sig)
	}
}

// agentFileStatus mirrors agent.FileStatus as JSON.
type agentFileStatus struct {
	Path   string `json:"path"`
	Ino    uint64 `json:"ino"`
	State  string `json:"state"`
	Size   int64  `json:"size"`
	Acked  int64  `json:"acked"`
	Behind int64  `json:"behind"`
}

// Status runs `gregor agent status --json` (live when the agent answers,
// else from its checkpoint).
func (a *AgentProc) Status(offline bool) []agentFileStatus {
	a.t.Helper()
	args := []string{"agent", "status", "--config", a.Config, "--json"}
	if offline {
		args = append(args, "--offline")
	}
	out, err := exec.Command(gregorBin, args...).Output()
	if err != nil {
		a.t.Fatalf("gregor agent status: %v\n%s", err, out)
	}
	var rep struct {
		Files []agentFileStatus `json:"files"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		a.t.Fatalf("agent status JSON: %v\n%s", err, out)
	}
	return rep.Files
}

// Metric returns the sum of a metric's samples from the agent's /metrics.
func (a *AgentProc) Metric(name string) (float64, error) {
	resp, err := http.Get("http://" + a.HTTPAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	found := false
	for _, m := range re.FindAllSubmatch(body, -1) {
		v, err := strconv.ParseFloat(string(m[2]), 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// lineLoc is where the writer put one numbered line.
type lineLoc struct {
	ino        uint64
	start, end int64
}

// lineWriter appends numbered lines to the current file of a directory and
// remembers where each went. Not safe for concurrent use.
type lineWriter struct {
	t    testing.TB
	dir  string
	f    *os.File
	ino  uint64
	size int64
	locs []lineLoc // by line number
}

func newLineWriter(t testing.TB, dir, name string) *lineWriter {
	w := &lineWriter{t: t, dir: dir}
	w.open(name)
	t.Cleanup(func() {
		if w.f != nil {
			w.f.Close()
		}
	})
	return w
}

func (w *lineWriter) path(name string) string { return filepath.Join(w.dir, name) }

// open makes name (created if missing) the file lines are appended to.
func (w *lineWriter) open(name string) {
	w.t.Helper()
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
	w.restat()
}

// restat re-reads the current file's inode and size (after a truncation).
func (w *lineWriter) restat() {
	fi, err := w.f.Stat()
	if err != nil {
		w.t.Fatal(err)
	}
	w.ino = fi.Sys().(*syscall.Stat_t).Ino
	w.size = fi.Size()
}

// lineText is line n as written (without its newline); 40 bytes with it.
func lineText(n int) string { return fmt.Sprintf("L%07d-abcdefghijklmnopqrstuvwxyz-012", n) }

// write appends k lines in one write.
func (w *lineWriter) write(k int) {
	w.t.Helper()
	var b strings.Builder
	for i := 0; i < k; i++ {
		n := len(w.locs)
		s := lineText(n) + "\n"
		w.locs = append(w.locs, lineLoc{ino: w.ino, start: w.size + int64(b.Len()), end: w.size + int64(b.Len()+len(s))})
		b.WriteString(s)
	}
	if _, err := w.f.WriteString(b.String()); err != nil {
		w.t.Fatal(err)
	}
	w.size += int64(b.Len())
}

// writeFor writes batches of k lines for d.
func (w *lineWriter) writeFor(d time.Duration, k int) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		w.write(k)
		time.Sleep(time.Millisecond)
	}
}

func (w *lineWriter) rename(from, to string) {
	w.t.Helper()
	if err := os.Rename(w.path(from), w.path(to)); err != nil {
		w.t.Fatal(err)
	}
}

// copyTruncate copies name to copyName and truncates name, as logrotate's
// copytruncate does (the writer pauses meanwhile).
func (w *lineWriter) copyTruncate(name, copyName string) {
	w.t.Helper()
	data, err := os.ReadFile(w.path(name))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(w.path(copyName), data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Truncate(w.path(name), 0); err != nil {
		w.t.Fatal(err)
	}
	w.restat()
}

// checkpointSnap is what an agent had checkpointed when it was killed or
// stopped (acked offset by inode), and the topic's end offset once the dead
// agent's last requests were in: records at or after hw come from later runs.
type checkpointSnap struct {
	acked map[uint64]int64
	hw    int64
}

// snapCheckpoint reads the checkpoint of a stopped agent and the topic's
// end offset (once it stopped moving).
func snapCheckpoint(t *testing.T, a *AgentProc, addr, topic string) checkpointSnap {
	t.Helper()
	snap := checkpointSnap{acked: map[uint64]int64{}}
	for _, f := range a.Status(true) {
		if f.State != "orphan" && f.Acked > snap.acked[f.Ino] {
			snap.acked[f.Ino] = f.Acked
		}
	}
	cl := rawClient(t, addr)
	defer cl.Close()
	end := func() int64 {
		off, code := listOffset(t, cl, topic, 0, -1)
		if code != 0 {
			return 0 // no topic yet
		}
		return off
	}
	last := end()
	for {
		time.Sleep(300 * time.Millisecond) // a dead producer's requests settle
		now := end()
		if now == last {
			break
		}
		last = now
	}
	snap.hw = last
	return snap
}

// checkDelivery consumes topic until every line the writer wrote arrived
// (failing after timeout) and then up to the end of the partition, and
// checks duplicates: with no snapshots, none at all; with snapshots (one
// per agent kill/stop, in order), a line checkpointed at a stop must not
// arrive again at or after that stop's end offset.
func checkDelivery(t *testing.T, addr, topic string, w *lineWriter, snaps []checkpointSnap, timeout time.Duration) {
	t.Helper()
	total := len(w.locs)
	cl := rawClient(t, addr,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seen := make(map[int][]int64, total) // line -> offsets
	var maxOffset int64 = -1
	consume := func() bool {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return false
		}
		fs.EachError(func(tp string, p int32, err error) { t.Errorf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			n, err := strconv.Atoi(strings.TrimPrefix(v[:strings.IndexByte(v+"-", '-')], "L"))
			if err != nil || n < 0 || n >= total || v != lineText(n) {
				t.Errorf("unexpected record %q at offset %d", v, r.Offset)
				return
			}
			seen[n] = append(seen[n], r.Offset)
			if r.Offset > maxOffset {
				maxOffset = r.Offset
			}
		})
		return !t.Failed()
	}
	for len(seen) < total && consume() {
	}
	if len(seen) < total {
		var missing []int
		for i := 0; i < total && len(missing) < 10; i++ {
			if len(seen[i]) == 0 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("%d of %d lines arrived after %v; first missing: %v", len(seen), total, timeout, missing)
	}
	// Read to the end, so that late duplicates are seen too.
	hw, _ := listOffset(t, cl, topic, 0, -1)
	for maxOffset+1 < hw && consume() {
	}

	dups := 0
	for n, occ := range seen {
		if len(occ) < 2 {
			continue
		}
		dups++
		if len(snaps) == 0 {
			t.Errorf("line %d arrived %d times (offsets %v) with no agent restart", n, len(occ), occ)
			continue
		}
		loc := w.locs[n]
		for k, snap := range snaps {
			if off, ok := snap.acked[loc.ino]; !ok || loc.end > off {
				continue // not checkpointed at stop k
			}
			for _, o := range occ {
				if o >= snap.hw {
					t.Errorf("line %d was checkpointed at stop %d (topic end %d) but arrived again at offset %d (all: %v)", n, k+1, snap.hw, o, occ)
				}
			}
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d lines, %d records, %d lines duplicated, %d agent run(s)", total, maxOffset+1, dups, len(snaps)+1)
}

// waitCaughtUp waits until the agent acknowledged every byte of every open
// file.
func waitCaughtUp(t *testing.T, a *AgentProc, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "agent caught up", func() error {
		for _, f := range a.Status(false) {
			if f.Behind > 0 {
				return fmt.Errorf("%s is %d bytes behind", f.Path, f.Behind)
			}
		}
		return nil
	})
}

// TestAgentRotationMatrix runs each rotation scheme against one broker,
// each with its own topic, directory and agent.
func TestAgentRotationMatrix(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	run := func(name string, fn func(t *testing.T, dir, topic string)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, t.TempDir(), "rot-"+name)
		})
	}
	spec := func(topic, dir string, globs ...string) agentSpec {
		s := agentSpec{brokers: b.Addr, topic: topic}
		for _, g := range globs {
			s.globs = append(s.globs, filepath.Join(dir, g))
		}
		return s
	}

	run("rename-create", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		StartAgent(t, spec(topic, dir, "*.log")) // app.log.N are not matched
		for i := 1; i <= 3; i++ {
			w.writeFor(300*time.Millisecond, 20)
			w.rename("app.log", fmt.Sprintf("app.log.%d", i))
			w.write(300) // the old descriptor still gets lines
			w.open("app.log")
		}
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, nil, 30*time.Second)
	})

	run("copytruncate", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		StartAgent(t, spec(topic, dir, "app.log*"))
		for i := 1; i <= 3; i++ {
			w.writeFor(300*time.Millisecond, 20)
			w.copyTruncate("app.log", fmt.Sprintf("app.log.%d", i))
		}
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, nil, 30*time.Second)
	})

	run("rotate-twice-between-reads", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		a := StartAgent(t, spec(topic, dir, "app.log*"))
		w.writeFor(300*time.Millisecond, 20)
		// The agent is frozen while the files rotate twice, so it cannot
		// read in between.
		a.Signal(syscall.SIGSTOP)
		w.write(200)
		w.rename("app.log", "app.log.1")
		w.open("app.log")
		w.write(200)
		w.rename("app.log.1", "app.log.2")
		w.rename("app.log", "app.log.1")
		w.open("app.log")
		w.write(200)
		a.Signal(syscall.SIGCONT)
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, nil, 30*time.Second)
	})

	run("inode-reuse", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		a := StartAgent(t, spec(topic, dir, "*.log"))
		waitCaughtUp(t, a, 20*time.Second)
		a.Stop()
		snaps := []checkpointSnap{snapCheckpoint(t, a, b.Addr, topic)}
		oldIno := w.ino
		// Delete the file and create a new one at the same path; with the
		// agent stopped nothing holds the inode, so the file system may
		// hand it out again. Retry a few times to get the same inode.
		for try := 0; try < 50; try++ {
			w.f.Close()
			w.f = nil
			if err := os.Remove(w.path("app.log")); err != nil {
				t.Fatal(err)
			}
			w.open("app.log")
			if w.ino == oldIno {
				break
			}
		}
		if w.ino != oldIno {
			t.Logf("file system did not reuse inode %d (got %d); checking a plain delete and recreate", oldIno, w.ino)
		}
		w.write(20) // shorter than what was read: no resume at the old offset
		a.Start()
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, snaps, 30*time.Second)
	})

	run("delete-while-open", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		StartAgent(t, spec(topic, dir, "*.log"))
		w.writeFor(300*time.Millisecond, 20)
		if err := os.Remove(w.path("app.log")); err != nil {
			t.Fatal(err)
		}
		w.writeFor(300*time.Millisecond, 20) // into the deleted file
		w.open("app.log")
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, nil, 30*time.Second)
	})

	run("restart-mid-rotation", func(t *testing.T, dir, topic string) {
		w := newLineWriter(t, dir, "app.log")
		w.write(500)
		a := StartAgent(t, spec(topic, dir, "*.log")) // app.log.1 is not matched
		w.writeFor(300*time.Millisecond, 20)
		a.Kill9()
		snaps := []checkpointSnap{snapCheckpoint(t, a, b.Addr, topic)}
		// While the agent is down: more lines, the rename, more lines to
		// the old descriptor, a new file.
		w.write(300)
		w.rename("app.log", "app.log.1")
		w.write(300)
		w.open("app.log")
		w.write(300)
		a.Start()
		w.writeFor(300*time.Millisecond, 20)
		checkDelivery(t, b.Addr, topic, w, snaps, 30*time.Second)
	})
}

// TestAgentKill9 kills the agent ten times while it ships a file that is
// being written: no line is lost, and no checkpointed line is sent again.
func TestAgentKill9(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	dir := t.TempDir()
	w := newLineWriter(t, dir, "app.log")
	w.write(2000)
	a := StartAgent(t, agentSpec{brokers: b.Addr, topic: "kill9", globs: []string{filepath.Join(dir, "*.log")}})
	var snaps []checkpointSnap
	for i := 0; i < 10; i++ {
		w.writeFor(time.Duration(150+30*i)*time.Millisecond, 50)
		a.Kill9()
		snaps = append(snaps, snapCheckpoint(t, a, b.Addr, "kill9"))
		w.write(500)
		a.Start()
	}
	w.writeFor(200*time.Millisecond, 50)
	checkDelivery(t, b.Addr, "kill9", w, snaps, 60*time.Second)
}

// TestAgentBrokerDown stops the broker for GREGOR_E2E_AGENT_BROKER_DOWN
// (60s by default) while lines keep being written: none is lost, and the
// agent's memory stays bounded (it stops reading ahead).
func TestAgentBrokerDown(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	dir := t.TempDir()
	w := newLineWriter(t, dir, "app.log")
	w.write(1000)
	a := StartAgent(t, agentSpec{brokers: b.Addr, topic: "down", globs: []string{filepath.Join(dir, "*.log")}})
	waitCaughtUp(t, a, 20*time.Second)
	if _, err := b.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	down := agentBrokerDown(t)
	end := time.Now().Add(down)
	for time.Now().Before(end) {
		w.write(100)
		time.Sleep(20 * time.Millisecond)
	}
	behind := a.Status(false)
	var total int64
	for _, f := range behind {
		total += f.Behind
	}
	if total == 0 {
		t.Fatalf("nothing behind with the broker down: %+v", behind)
	}
	b.Start()
	w.writeFor(300*time.Millisecond, 50)
	checkDelivery(t, b.Addr, "down", w, nil, 90*time.Second)
	// Files are the buffer: memory stays bounded however long the outage
	// (the race detector's shadow memory makes the figure meaningless).
	if rss, err := a.PeakRSS(); err != nil {
		t.Errorf("peak RSS: %v", err)
	} else if os.Getenv("GREGOR_E2E_RACE") != "1" && rss > 128<<20 {
		t.Errorf("agent peak RSS %d MiB with the broker down", rss>>20)
	} else {
		t.Logf("agent peak RSS %d MiB", rss>>20)
	}
}

// TestAgentThousandFiles watches 1,000 files at once.
func TestAgentThousandFiles(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	dir := t.TempDir()
	const files, per = 1000, 5
	for i := 0; i < files; i++ {
		var sb strings.Builder
		for j := 0; j < per; j++ {
			fmt.Fprintf(&sb, "f%04d-%d\n", i, j)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := StartAgent(t, agentSpec{brokers: b.Addr, topic: "many", globs: []string{filepath.Join(dir, "*.log")},
		closeInactive: 5 * time.Minute, pollInterval: time.Second})
	recs := consumeTopic(t, b.Addr, "many", files*per, 60*time.Second)
	if len(recs) != files*per {
		t.Fatalf("got %d records, want %d", len(recs), files*per)
	}
	eventually(t, 10*time.Second, "1000 files watched", func() error {
		v, err := a.Metric("gregor_agent_files_watched")
		if err != nil {
			return err
		}
		if v != files {
			return fmt.Errorf("files_watched = %v", v)
		}
		return nil
	})
	// One more line in every file: all of them are still followed.
	for i := 0; i < files; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "f%04d-%d\n", i, per)
		f.Close()
	}
	recs = consumeTopic(t, b.Addr, "many", files*(per+1), 60*time.Second)
	got := map[string]bool{}
	for _, r := range recs {
		got[string(r.Value)] = true
	}
	if len(recs) != files*(per+1) || len(got) != files*(per+1) {
		t.Fatalf("got %d records (%d distinct), want %d", len(recs), len(got), files*(per+1))
	}
	waitCaughtUp(t, a, 20*time.Second)
}

// TestAgentCLI checks the config validation and status output of the
// command.
func TestAgentCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("agents:\n  - inputs:\n      - paths: [x]\n        multilne: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gregorBin, "agent", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "agents[0].inputs[0].multilne: unknown key") ||
		!strings.Contains(string(out), "agents[0].inputs[0].topic: required") {
		t.Fatalf("bad config: %v\n%s", err, out)
	}

	b := StartBroker(t)
	logs := t.TempDir()
	w := newLineWriter(t, logs, "app.log")
	w.write(100)
	a := StartAgent(t, agentSpec{brokers: b.Addr, topic: "cli", globs: []string{filepath.Join(logs, "*.log")}})
	waitCaughtUp(t, a, 20*time.Second)
	a.Stop()
	out, err = exec.Command(gregorBin, "agent", "status", "--config", a.Config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), w.path("app.log")) || !strings.Contains(string(out), "1 file(s), 0 byte(s) behind") {
		t.Fatalf("offline status: %v\n%s", err, out)
	}
	w.write(10)
	out, err = exec.Command(gregorBin, "agent", "status", "--config", a.Config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 file(s), 400 byte(s) behind") {
		t.Fatalf("offline status after a write: %v\n%s", err, out)
	}
}
