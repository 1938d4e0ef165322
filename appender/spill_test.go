package appender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gregor-log/gregor/internal/vfs"
)

// gateSink is a fake broker that can be down: while down it holds records
// (as kgo holds them while it retries); when up it completes held records
// in order, then every new one at once. Completed values are recorded.
type gateSink struct {
	mu    sync.Mutex
	up    bool
	limit int // if set, the sink goes down by itself after this many records
	held  []*entry
	got   []string
}

func (g *gateSink) produce(e *entry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limit > 0 && len(g.got) >= g.limit {
		g.up = false
	}
	if !g.up {
		g.held = append(g.held, e)
		return
	}
	g.got = append(g.got, string(e.rec.Value))
	e.s.finish(e, nil)
}

func (g *gateSink) setUp(up bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.up = up
	if !up {
		return
	}
	for _, e := range g.held {
		g.got = append(g.got, string(e.rec.Value))
		e.s.finish(e, nil)
	}
	g.held = nil
}

// close fails what is still held, as kgo's Close does.
func (g *gateSink) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.held {
		e.s.finish(e, errors.New("client closed"))
	}
	g.held = nil
}

func (g *gateSink) values() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.got...)
}

// checkSeq checks that vals are JSON records whose "i" runs from..from+n-1.
func checkSeq(t *testing.T, vals []string, from, n int) {
	t.Helper()
	if len(vals) != n {
		t.Fatalf("got %d records, want %d", len(vals), n)
	}
	for j, v := range vals {
		var m struct{ I int }
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("record %d: %v: %s", j, err, v)
		}
		if m.I != from+j {
			t.Fatalf("record %d has i=%d, want %d", j, m.I, from+j)
		}
	}
}

// checkIncreasing checks that the records' i fields strictly increase.
func checkIncreasing(t *testing.T, vals []string) {
	t.Helper()
	prev := -1
	for j, v := range vals {
		var m struct{ I int }
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("record %d: %v: %s", j, err, v)
		}
		if m.I <= prev {
			t.Fatalf("record %d has i=%d after %d: out of order or duplicated", j, m.I, prev)
		}
		prev = m.I
	}
}

func newSpillHandler(t *testing.T, sink testSink, dir string, extra ...Option) *Handler {
	t.Helper()
	opts := append([]Option{WithBrokers("127.0.0.1:1"), WithTopic("logs"), withSink(sink),
		WithBuffer(8<<20, 50), WithSpillOnFull(dir, 64<<20)}, extra...)
	h, err := NewHandler(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSpillKeepsOrderAcrossOutage(t *testing.T) {
	dir := t.TempDir()
	g := &gateSink{}
	h := newSpillHandler(t, g, dir)
	log := slog.New(h)
	const n = 5000
	for i := range n {
		log.Info("m", "i", i, "pad", "some padding to make the records longer than trivial")
	}
	st := h.Stats()
	if st.Spilled < n-50 || st.Dropped != 0 {
		t.Fatalf("while down: %+v", st)
	}
	if st.BufferedRecords > 50 {
		t.Fatalf("buffer bound exceeded: %+v", st)
	}
	waitFor(t, 5*time.Second, "spill segments on disk", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "logs.*.spill"))
		return len(files) > 0
	})
	g.setUp(true)
	// More records while the spill drains: they must queue behind it.
	for i := n; i < n+1000; i++ {
		log.Info("m", "i", i)
	}
	if err := h.Sync(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	checkSeq(t, g.values(), 0, n+1000)
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	st = h.Stats()
	if st.Sent != n+1000 || st.Enqueued+st.Spilled != n+1000 || st.Replayed != st.Spilled || st.SpillBytes != 0 {
		t.Fatalf("final stats %+v", st)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "logs.*")); len(files) != 1 { // only the lock file
		t.Fatalf("left in spill dir: %v", files)
	}
}

func TestSpillSurvivesRestart(t *testing.T) {
	fs := vfs.NewMem()
	dir := "/spill"
	g := &gateSink{}
	h := newSpillHandler(t, g, dir, withFS(fs))
	log := slog.New(h)
	const n = 3000
	for i := range n {
		log.Info("m", "i", i)
	}
	// Let part of the spill drain, then go down again and close.
	g.mu.Lock()
	g.limit = 1000
	g.mu.Unlock()
	g.setUp(true)
	waitFor(t, 5*time.Second, "the broker to go down again", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.held) == 50 // the buffer's bound
	})
	err := h.Close(closeCtx(t, 100*time.Millisecond))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Spilled == 0 {
		t.Fatalf("close: %v, want a DeliveryError with records left in spill", err)
	}
	sent := g.values()
	st := h.Stats()
	t.Logf("first run: %+v", st)

	g2 := &gateSink{up: true}
	h2 := newSpillHandler(t, g2, dir, withFS(fs))
	slog.New(h2).Info("m", "i", n)
	if err := h2.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := h2.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The records unacknowledged in the first run's memory at Close were
	// kept in the spill files, before what was left there: everything
	// arrives once, in order.
	if st.Kept != 50 || st.Failed != 0 {
		t.Fatalf("first run kept %d and failed %d records, want 50 and 0", st.Kept, st.Failed)
	}
	all := append(sent, g2.values()...)
	var is []int
	for _, v := range all {
		var m struct{ I int }
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatal(err)
		}
		is = append(is, m.I)
	}
	lost := 0
	for j := 1; j < len(is); j++ {
		if is[j] <= is[j-1] {
			t.Fatalf("order broken at %d: %d after %d", j, is[j], is[j-1])
		}
		lost += is[j] - is[j-1] - 1
	}
	if is[len(is)-1] != n || int64(lost) != st.Failed {
		t.Fatalf("lost %d records (first run failed %d); last %d", lost, st.Failed, is[len(is)-1])
	}
}

func TestSpillFullDrops(t *testing.T) {
	g := &gateSink{}
	h := newSpillHandler(t, g, t.TempDir(), WithSpillOnFull(t.TempDir(), 64<<10))
	log := slog.New(h)
	for i := range 2000 {
		log.Info("m", "i", i)
	}
	st := h.Stats()
	if st.Dropped == 0 || st.SpillBytes > 64<<10 {
		t.Fatalf("stats %+v", st)
	}
	g.setUp(true)
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// What was kept is in order with no duplicates. It is usually a prefix,
	// but when the spill writer catches up between two full moments a
	// later record may be kept after earlier ones were dropped.
	vals := g.values()
	checkIncreasing(t, vals)
	if int64(len(vals))+h.Stats().Dropped != 2000 {
		t.Fatalf("sent %d + dropped %d != 2000", len(vals), h.Stats().Dropped)
	}
}

func TestSpillDiskFullIsStickyThenRecovers(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	var reported []error
	var mu sync.Mutex
	g := &gateSink{}
	h := newSpillHandler(t, g, "/spill", withFS(efs), WithErrorHandler(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}))
	log := slog.New(h)
	efs.FailOn(vfs.OpWrite, ".spill", syscall.ENOSPC)
	for i := range 200 {
		log.Info("m", "i", i, "pad", string(make([]byte, 1000)))
	}
	// The spill writes in the background: once its write has failed
	// (and been reported), records are dropped. (Checked at once, this
	// failed when the loop outran the writer.)
	waitFor(t, 5*time.Second, "the failed spill write reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reported) > 0
	})
	for i := 200; i < 210; i++ {
		log.Info("m", "i", i, "pad", string(make([]byte, 1000)))
	}
	st := h.Stats()
	if st.Dropped == 0 {
		t.Fatalf("nothing dropped with a full disk: %+v", st)
	}
	mu.Lock()
	if len(reported) == 0 || !errors.Is(reported[0], syscall.ENOSPC) {
		t.Fatalf("reported %v", reported)
	}
	mu.Unlock()
	efs.Clear()
	g.setUp(true)
	// The first Sync reports the records the failed write lost.
	var de *DeliveryError
	if err := h.Sync(); !errors.As(err, &de) || de.Failed == 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync after a failed spill write: %v", err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	// After the spill drained, and spillRetryAfter after the failure, it
	// works again.
	g.setUp(false)
	i := 1000
	waitFor(t, 5*time.Second, "the spill to take records again", func() bool {
		for range 100 {
			log.Info("m", "i", i)
			i++
		}
		return h.Stats().Spilled > st.Spilled
	})
	g.setUp(true)
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestSpillCorruptionIsSkipped(t *testing.T) {
	fs := vfs.NewMem()
	// A previous run left a segment whose second frame is corrupt.
	g := &gateSink{}
	h := newSpillHandler(t, g, "/spill", withFS(fs))
	log := slog.New(h)
	for i := range 100 {
		log.Info("m", "i", i)
	}
	if err := h.Close(closeCtx(t, 10*time.Millisecond)); err == nil {
		t.Fatal("close with the broker down: no error")
	}
	segs, err := fs.ReadDir("/spill")
	if err != nil {
		t.Fatal(err)
	}
	var seg string
	for _, de := range segs {
		if filepath.Ext(de.Name()) == ".spill" {
			seg = filepath.Join("/spill", de.Name())
			break
		}
	}
	f, err := fs.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	if err := f.Truncate(size - 3); err != nil { // a torn last frame
		t.Fatal(err)
	}
	f.Close()

	var reported []error
	g2 := &gateSink{up: true}
	h2 := newSpillHandler(t, g2, "/spill", withFS(fs), WithErrorHandler(func(err error) { reported = append(reported, err) }))
	if err := h2.Sync(); err != nil {
		t.Fatal(err)
	}
	vals := g2.values()
	if len(vals) == 0 {
		t.Fatal("nothing replayed")
	}
	var first struct{ I int }
	json.Unmarshal([]byte(vals[0]), &first)
	checkSeq(t, vals, first.I, len(vals))
	var ce *SpillCorruptionError
	if len(reported) != 1 || !errors.As(reported[0], &ce) {
		t.Fatalf("reported %v", reported)
	}
	if ce.Reason == "" || ce.Skipped <= 0 {
		t.Fatalf("corruption error %v", ce)
	}
	if err := h2.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestSpillDirLocked(t *testing.T) {
	dir := t.TempDir()
	h := newSpillHandler(t, &gateSink{up: true}, dir)
	defer h.Close(context.Background())
	_, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("logs"), WithSpillOnFull(dir, 1<<20))
	if !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second appender on the same spill files: %v", err)
	}
}

// stallSpillWrites makes every write to a spill segment wait until the
// returned release is called, and fails t if a write comes from a log
// call rather than the spill writer goroutine: a log call never does I/O.
func stallSpillWrites(t *testing.T) (fs *vfs.ErrorFS, stalled func() bool, release func()) {
	fs = vfs.NewErrorFS(vfs.OS)
	gate := make(chan struct{})
	var once sync.Once
	var inWrite atomic.Bool
	fs.SetHook(func(op vfs.Op, path string) error {
		if op != vfs.OpWrite || filepath.Ext(path) != ".spill" {
			return nil
		}
		if stack := debugStack(); strings.Contains(stack, "(*Handler).Handle") || !strings.Contains(stack, "(*spill).writeLoop") {
			t.Errorf("spill segment written outside the writer goroutine:\n%s", stack)
		}
		inWrite.Store(true)
		<-gate
		return nil
	})
	return fs, inWrite.Load, func() { once.Do(func() { close(gate) }) }
}

func debugStack() string {
	buf := make([]byte, 64<<10)
	return string(buf[:runtime.Stack(buf, false)])
}

// TestSpillBorrowsIdleBufferWhenWriterIsBusy: with the spill active and its
// writer stuck in a write (a stalled disk), records beyond the writer's
// pending share are not dropped while the in-memory buffer's share has
// room: the spill borrows it, within the overall bound. Log calls return
// at once all along. Once the write completes the room is given back and
// every record kept arrives, in order.
func TestSpillBorrowsIdleBufferWhenWriterIsBusy(t *testing.T) {
	fs, stalled, release := stallSpillWrites(t)
	defer release()
	g := &gateSink{}
	const bufferBytes = 1 << 20 // pending share 256 KiB
	h := newSpillHandler(t, g, t.TempDir(), WithBuffer(bufferBytes, 100), withFS(fs))
	log := slog.New(h)
	sp := h.s.spill
	// Fill the in-memory queue to its record limit (100 small records,
	// held by the down broker) so the spill takes over; most of the
	// queue's byte share is idle.
	for i := range 100 {
		log.Info("m", "i", i)
	}
	log.Info("m", "i", 100) // spills: the queue is full
	if !sp.active.Load() {
		t.Fatal("spill not active")
	}
	waitFor(t, 5*time.Second, "the spill writer to be stuck in its first write", stalled)
	n := 101
	var slowest time.Duration
	for ; n < 6000; n++ {
		t0 := time.Now()
		log.Info("m", "i", n, "pad", string(make([]byte, 100)))
		slowest = max(slowest, time.Since(t0))
	}
	st := h.Stats()
	pending, borrowed, _ := sp.pendingSizes(func() int64 { return 0 })
	if idle := bufferBytes - spillPendingMax(bufferBytes) - 100*200; borrowed < idle*9/10 {
		t.Fatalf("borrowed %d of about %d idle bytes before dropping", borrowed, idle)
	}
	if pending <= spillPendingMax(bufferBytes) {
		t.Fatalf("pending %d, borrowed %d: the spill did not grow past its share", pending, borrowed)
	}
	if held := st.BufferedBytes + st.SpillPendingBytes; held > bufferBytes {
		t.Fatalf("holding %d bytes, bound %d", held, bufferBytes)
	}
	if st.Dropped == 0 {
		t.Fatalf("nothing dropped with the writer stuck and the room gone: %+v", st)
	}
	release()
	waitFor(t, 5*time.Second, "the writer to catch up", func() bool {
		pending, borrowed, _ := sp.pendingSizes(func() int64 { return 0 })
		return pending == 0 && borrowed == 0
	})
	g.setUp(true)
	if err := h.Close(closeCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st = h.Stats()
	vals := g.values()
	checkIncreasing(t, vals)
	if int64(len(vals))+st.Dropped != int64(n) {
		t.Fatalf("sent %d + dropped %d != logged %d", len(vals), st.Dropped, n)
	}
	t.Logf("logged %d, dropped %d once the borrowed room ran out; slowest call %v", n, st.Dropped, slowest)
}

// TestSpillLogCallsNeverWrite: with one P, a tight logging loop keeps the
// spill writer goroutine off the CPU until the scheduler preempts the
// loop, so the writer's pending share fills while it is not writing. The
// log calls must drop and count then, not write the frames themselves (a
// write can stall for as long as the kernel throttles dirty pages).
// stallSpillWrites fails the test on a write from a log call.
func TestSpillLogCallsNeverWrite(t *testing.T) {
	fs, _, release := stallSpillWrites(t)
	release() // writes go through; only their caller is checked
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	g := &gateSink{}
	h := newSpillHandler(t, g, t.TempDir(), WithBuffer(1<<20, 10), withFS(fs)) // pending share 256 KiB
	log := slog.New(h)
	pad := string(make([]byte, 500))
	const n = 20000
	for i := range n {
		log.Info("m", "i", i, "pad", pad)
	}
	g.setUp(true)
	if err := h.Close(closeCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	vals := g.values()
	checkIncreasing(t, vals)
	if int64(len(vals))+st.Dropped != n || st.Spilled == 0 {
		t.Fatalf("sent %d + dropped %d != logged %d (stats %+v)", len(vals), st.Dropped, n, st)
	}
	t.Logf("logged %d: spilled %d, dropped %d", n, st.Spilled, st.Dropped)
}

// TestCloseDuringOutageKeepsMemory: with the spill policy, a Close whose
// deadline passes while the broker is down writes the records still in
// memory to the spill files instead of failing them (helper-78 lost 792
// records that way), ahead of the records already spilled; a run that
// closes again while replaying them keeps its own, and the last run ships
// every record once, in order.
func TestCloseDuringOutageKeepsMemory(t *testing.T) {
	fs := vfs.NewMem()
	dir := "/spill"
	var shipped []string
	i := 0
	logN := func(h *Handler, n int) {
		log := slog.New(h)
		for range n {
			log.Info("m", "i", i)
			i++
		}
	}
	// Run 1: 30 records in memory, none spilled.
	g1 := &gateSink{}
	h1 := newSpillHandler(t, g1, dir, withFS(fs))
	logN(h1, 30)
	err := h1.Close(closeCtx(t, 50*time.Millisecond))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Kept != 30 || de.Failed != 0 || de.Spilled == 0 {
		t.Fatalf("run 1 close: %v, want 30 kept, none failed", err)
	}
	if st := h1.Stats(); st.Kept != 30 || st.Failed != 0 || st.Enqueued != 30 {
		t.Fatalf("run 1 stats %+v", st)
	}
	// Run 2: memory fills (50) and 200 more spill; the broker takes 20,
	// so the kept segment is being replayed, then goes down; Close keeps
	// what memory holds again.
	g2 := &gateSink{limit: 20}
	h2 := newSpillHandler(t, g2, dir, withFS(fs))
	g2.setUp(true)
	logN(h2, 250)
	waitFor(t, 5*time.Second, "the broker to go down", func() bool {
		g2.mu.Lock()
		defer g2.mu.Unlock()
		return len(g2.got) == 20 && len(g2.held) > 0
	})
	if err := h2.Close(closeCtx(t, 50*time.Millisecond)); !errors.As(err, &de) || de.Kept == 0 || de.Failed != 0 {
		t.Fatalf("run 2 close: %v, want records kept, none failed", err)
	}
	shipped = append(shipped, g2.values()...)
	// Run 3: everything else, in order.
	g3 := &gateSink{up: true}
	h3 := newSpillHandler(t, g3, dir, withFS(fs))
	logN(h3, 5)
	if err := h3.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := h3.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("run 3 close: %v", err)
	}
	shipped = append(shipped, g3.values()...)
	checkSeq(t, shipped, 0, i)
	files, _ := fs.ReadDir(dir)
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".lock") {
			t.Errorf("left in the spill dir: %s", f.Name())
		}
	}
}

// TestDropsReported: records a full buffer drops reach the error handler,
// counted, once a second at most (helper-78 saw 33,187 dropped in silence).
func TestDropsReported(t *testing.T) {
	g := &gateSink{}
	var errs errorLog
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("logs"), withSink(g), WithBuffer(8<<20, 10),
		WithErrorHandler(errs.add))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 100 {
		log.Info("m", "i", i)
	}
	// The first drop is reported at once, possibly while the loop above
	// still drops; the rest then come a second later, in one report.
	waitFor(t, 5*time.Second, "a report of all 90 drops", func() bool {
		got := errs.messages()
		return len(got) > 0 && strings.Contains(got[len(got)-1], "(90 in all")
	})
	got := errs.messages()
	if len(got) > 2 || !strings.Contains(got[0], "memory buffer is full") {
		t.Fatalf("reports %q, want at most two, together naming the 90 records dropped", got)
	}
	for i := range 100 {
		log.Info("m", "i", i)
	}
	g.setUp(true)
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The later drops are reported once, at Close if it comes within a
	// second of the last report (as it does unless the machine stalls).
	if reports := errs.messages(); len(reports) != len(got)+1 || !strings.Contains(reports[len(got)], "100 log records") ||
		!strings.Contains(reports[len(got)], "190 in all") {
		t.Fatalf("reports %q, want one more after %d, naming the 100 later drops", reports, len(got))
	}
}

// runLog logs n records numbered from *i through h.
func runLog(h *Handler, i *int, n int) {
	log := slog.New(h)
	for range n {
		log.Info("m", "i", *i)
		*i++
	}
}

// spillFiles lists the segment files in dir.
func spillFiles(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".spill") || strings.HasSuffix(e.Name(), ".kept") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestReplayedSegmentsKeptUntilAcknowledged: a spill segment read back
// into memory stays on disk until its records are acknowledged, so a crash
// of the app while the broker is down loses none of them (helper-79: a
// kill -9 then lost every spilled record), and goes once they are.
func TestReplayedSegmentsKeptUntilAcknowledged(t *testing.T) {
	fs := vfs.NewMem()
	dir := "/spill"
	i := 0
	g1 := &gateSink{}
	h1 := newSpillHandler(t, g1, dir, withFS(fs))
	runLog(h1, &i, 300) // 50 in memory, 250 spilled
	if err := h1.Close(closeCtx(t, 50*time.Millisecond)); !errors.As(err, new(*DeliveryError)) {
		t.Fatalf("close: %v", err)
	}
	before := spillFiles(t, fs, dir)
	g2 := &gateSink{}
	h2 := newSpillHandler(t, g2, dir, withFS(fs), WithBuffer(8<<20, 1000))
	waitFor(t, 5*time.Second, "everything replayed into memory", func() bool {
		g2.mu.Lock()
		defer g2.mu.Unlock()
		return len(g2.held) == 300
	})
	if got := spillFiles(t, fs, dir); len(got) != len(before) {
		t.Fatalf("spill files %v while their records are unacknowledged, want %v", got, before)
	}
	g2.setUp(true)
	waitFor(t, 5*time.Second, "the replayed segments deleted once acknowledged", func() bool {
		return len(spillFiles(t, fs, dir)) == 0
	})
	if err := h2.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, g2.values(), 0, 300)
}

// TestKeptSegmentSmallerNextBuffer: a run whose memory bound is smaller
// than the kept segment it replays, closed during an outage, records
// where every later segment starts, so nothing is replayed twice
// (helper-79: 2,993 duplicates); a failing position write leaves the
// segments to be replayed again rather than lost.
func TestKeptSegmentSmallerNextBuffer(t *testing.T) {
	for _, failPos := range []bool{false, true} {
		t.Run(fmt.Sprintf("failPos=%v", failPos), func(t *testing.T) { testKeptSegments(t, failPos) })
	}
}

func testKeptSegments(t *testing.T, failPos bool) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	dir := "/spill"
	i := 0
	var shipped []string
	run := func(records, n, ackN int, failPosNow bool) {
		g := &gateSink{limit: ackN, up: ackN > 0}
		h := newSpillHandler(t, g, dir, withFS(efs), WithBuffer(8<<20, records))
		runLog(h, &i, n)
		if ackN > 0 {
			waitFor(t, 5*time.Second, "the acknowledged share", func() bool {
				g.mu.Lock()
				defer g.mu.Unlock()
				return len(g.got) >= ackN && len(g.held) > 0
			})
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		if failPosNow {
			efs.FailOn(vfs.OpRename, ".spillpos", syscall.EIO)
		}
		_ = h.Close(closeCtx(t, 50*time.Millisecond))
		efs.Clear()
		shipped = append(shipped, g.values()...)
	}
	run(50, 1000, 0, false)  // 50 in memory, the rest spilled
	run(400, 0, 100, false)  // replays: 100 acknowledged, a kept segment of 400
	run(30, 0, 60, false)    // replays part of the kept segment
	run(30, 20, 40, failPos) // the position write fails, or not
	g := &gateSink{up: true}
	h := newSpillHandler(t, g, dir, withFS(efs), WithBuffer(8<<20, 5000))
	runLog(h, &i, 10)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	shipped = append(shipped, g.values()...)
	// Every record arrives; only the failed position write may repeat
	// some, and the first arrivals keep the order.
	seen := map[int]bool{}
	prev := -1
	dups := 0
	for _, v := range shipped {
		var m struct{ I int }
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatal(err)
		}
		if seen[m.I] {
			dups++
			continue
		}
		if m.I != prev+1 {
			t.Fatalf("record %d after %d: lost or out of order", m.I, prev)
		}
		seen[m.I], prev = true, m.I
	}
	if prev != i-1 {
		t.Fatalf("last record %d, want %d", prev, i-1)
	}
	if dups > 0 && !failPos {
		t.Fatalf("%d records replayed twice after clean closes", dups)
	}
	t.Logf("%d records, %d duplicates", i, dups)
}

// errorLog collects what an appender passes to its error handler.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *errorLog) messages() []string {
	var out []string
	for _, err := range l.all() {
		out = append(out, err.Error())
	}
	return out
}
