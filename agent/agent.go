// Package agent tails log files into topics, every line at least once.
//
// An Agent runs one `agents:` entry of pipeline.yaml (config.Agent): it
// expands the inputs' glob patterns, follows each matching file through
// rename and copytruncate rotation, deletion and restarts, splits it into
// lines (optionally joined into multiline records and parsed as JSON or by
// a regular expression) and produces each as a record with franz-go, with
// host, path and offset headers.
//
// Files are identified by device and inode, and by a SHA-256 fingerprint
// of their first 1 KiB (see fingerprint.go): an inode that now holds other
// bytes is a new file, and a new inode whose first 1 KiB equals that of a
// file truncated under us is the copy of a copytruncate rotation and
// continues where that file stopped; such a copy that no glob matches is
// looked for next to the truncated file. Files that share a head (a banner
// every log file of a service starts with) are told apart by the bytes
// after it (up to 64 KiB) while both exist; a file is never the copy of
// its own truncated content; a file under two paths (a symlink) is read
// once; a file shorter than what was read of it was truncated, whatever
// its head. One case is not told apart: with the agent down, a file
// deleted and created again (or its inode reused) with the same first
// 1 KiB and at least as long as what was read of the old one is continued
// at the old offset.
// A deleted file is finished once read to its end and quiet for 2 s.
//
// Delivery is at least once. Each file's checkpoint (checkpoint.go) is the
// end of the longest run of its lines that the broker acknowledged
// (tracker.go); it is written atomically on an interval, on shutdown, and
// as soon as a scan finds a new file (so that one rotated out of the globs
// while the agent is down is still found by the next run).
// Lines acknowledged and checkpointed are never read again; lines in flight
// when the agent dies are read again after a restart. When the broker is
// down, the producer's buffer (producer.max-in-flight-bytes) fills and
// reading stops: the files on disk are the buffer.
//
// Watching uses fsnotify on the directories the patterns name, with a
// periodic rescan and per-file polling as the fallback for lost or
// overflowed events and file systems without inotify.
//
// The package owns reading, identity, checkpoints and delivery. It does
// not own the config format (internal/config) or the process: cmd/gregor
// starts it and serves its HTTP handler.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/config"
	"github.com/gregor-log/gregor/internal/vfs"
)

// readChunk is how much of a file is read at once.
const readChunk = 256 << 10

// Options are an Agent's dependencies; the zero value is usable.
type Options struct {
	// Logger receives the agent's logs. Default: a no-op logger.
	Logger *zap.Logger
	// FS holds the data dir (checkpoint and lock). Default vfs.OS. The
	// tailed files themselves are always read through the operating system,
	// which alone knows devices, inodes and inotify.
	FS vfs.FS
	// ExtraProducerOpts are appended to the producer's options (tests).
	ExtraProducerOpts []kgo.Opt
}

// Agent tails the files of one config.Agent. Create it with New and run it
// with Run; Status, Handler and Metrics may be used concurrently.
type Agent struct {
	cfg     config.Agent
	log     *zap.Logger
	fs      vfs.FS
	host    []byte
	inputs  []*input
	reg     *registry
	metrics *metrics
	ship    *shipper

	// scanNow asks the scan loop for a scan (capacity 1, non-blocking send).
	scanNow chan struct{}
	// tailers counts running tailer goroutines; Run waits for them.
	tailers sync.WaitGroup
	// openFiles counts the files tailers hold open (see roomToOpen);
	// limitWarned is when running into the limit was last logged (unix ns).
	openFiles   atomic.Int64
	limitWarned atomic.Int64
	maxOpen     int64 // maxOpenFiles at New
	ran         atomic.Bool
	// ckptHealth follows failing checkpoint writes for /healthz and
	// the log.
	ckptHealth ckptHealth

	// Owned by the scan loop goroutine.
	scan scanState
}

// input is one config.Input, compiled.
type input struct {
	idx      int
	cfg      *config.Input
	topic    string
	patterns []string // absolute glob patterns
	exclude  []string
	enc      *encoder
	start    *regexp.Regexp // multiline start, or nil
	cont     *regexp.Regexp // multiline continuation, or nil
	maxLine  int
	m        inputMetrics
}

// New builds an agent for cfg, which must have its defaults filled in and
// be valid (config.Parse does both). It does not touch the disk or the
// network; Run does.
func New(cfg config.Agent, opts Options) (*Agent, error) {
	a := &Agent{
		cfg:     cfg,
		log:     opts.Logger,
		fs:      opts.FS,
		scanNow: make(chan struct{}, 1),
	}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	a.log = a.log.With(zap.String("agent", cfg.Name))
	if a.fs == nil {
		a.fs = vfs.OS
	}
	host := cfg.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent %s: hostname: %w", cfg.Name, err)
		}
		host = h
	}
	a.host = []byte(host)
	a.maxOpen = maxOpenFiles()
	a.metrics = newMetrics(a)
	if len(cfg.Inputs) == 0 {
		return nil, fmt.Errorf("agent %s: no inputs", cfg.Name)
	}
	for i := range cfg.Inputs {
		in, err := a.compileInput(i, &a.cfg.Inputs[i])
		if err != nil {
			return nil, fmt.Errorf("agent %s: inputs[%d]: %w", cfg.Name, i, err)
		}
		a.inputs = append(a.inputs, in)
	}
	a.reg = newRegistry()
	ship, err := newShipper(a, opts.ExtraProducerOpts)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Name, err)
	}
	a.ship = ship
	return a, nil
}

func (a *Agent) compileInput(i int, c *config.Input) (*input, error) {
	in := &input{idx: i, cfg: c, topic: c.Topic, exclude: c.Exclude, maxLine: int(c.MaxLineBytes)}
	for _, p := range c.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
		in.patterns = append(in.patterns, abs)
	}
	enc, err := newEncoder(c)
	if err != nil {
		return nil, err
	}
	in.enc = enc
	if m := c.Multiline; m != nil {
		if m.Start != "" {
			if in.start, err = regexp.Compile(m.Start); err != nil {
				return nil, fmt.Errorf("multiline start: %w", err)
			}
		}
		if m.Continuation != "" {
			if in.cont, err = regexp.Compile(m.Continuation); err != nil {
				return nil, fmt.Errorf("multiline continuation: %w", err)
			}
		}
	}
	in.m = a.metrics.forInput(in)
	return in, nil
}

// newMultiline returns the input's line joiner, or nil.
func (in *input) newMultiline() *multiline {
	m := in.cfg.Multiline
	if m == nil {
		return nil
	}
	return &multiline{start: in.start, continuation: in.cont, maxLines: m.MaxLines, maxBytes: in.maxLine, flushTimeout: m.FlushTimeout}
}

// Name is the agent's name from its config.
func (a *Agent) Name() string { return a.cfg.Name }

// ErrAlreadyRan is returned by a second call to Run.
var ErrAlreadyRan = errors.New("agent already ran")

// Run tails files until ctx is cancelled, then stops reading, waits up to
// the shutdown timeout for in-flight records to be acknowledged, writes the
// last checkpoint and returns. It fails early if the data dir cannot be
// locked or the checkpoint cannot be read.
func (a *Agent) Run(ctx context.Context) error {
	if a.ran.Swap(true) {
		return ErrAlreadyRan
	}
	defer a.ship.close()
	if err := vfs.MkdirAllDurable(a.fs, a.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("agent %s: data dir: %w", a.cfg.Name, err)
	}
	lock, err := vfs.Lock(a.fs, filepath.Join(a.cfg.DataDir, lockName))
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.Name, err)
	}
	defer lock.Close()

	entries, damage, err := readCheckpoint(a.fs, a.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.Name, err)
	}
	for _, d := range damage {
		a.metrics.checkpointDamage.Inc()
		a.log.Error("damaged checkpoint: the files it no longer covers are read again from their beginning", zap.Error(d))
	}
	a.reg.load(entries, time.Now())
	a.log.Info("agent starting", zap.Int("inputs", len(a.inputs)), zap.Int("checkpointed_files", len(entries)),
		zap.Strings("brokers", a.cfg.Brokers))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("no file-system events; relying on rescans and polling", zap.Error(err))
		watcher = nil
	}
	a.scan.watcher = watcher
	if watcher != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			a.watchLoop(runCtx, watcher)
		}()
	}
	bg.Add(3)
	go func() {
		defer bg.Done()
		a.ship.retryLoop(runCtx)
	}()
	go func() {
		defer bg.Done()
		a.ship.stallLoop(runCtx)
	}()
	go func() {
		defer bg.Done()
		a.checkpointLoop(runCtx)
	}()

	a.scanLoop(runCtx)

	// Stop: tailers and the helpers see runCtx done.
	cancel()
	a.tailers.Wait()
	if watcher != nil {
		watcher.Close()
	}
	bg.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	ferr := a.ship.flush(fctx)
	fcancel()
	if ferr != nil {
		a.log.Warn("not every record was acknowledged before the shutdown timeout; they will be read again on restart", zap.Error(ferr))
	}
	if err := a.writeCheckpoint(); err != nil {
		return fmt.Errorf("agent %s: final checkpoint: %w", a.cfg.Name, err)
	}
	a.log.Info("agent stopped")
	return nil
}

// topics returns the topics the inputs ship to, sorted, once each.
func (a *Agent) topics() []string {
	var ts []string
	for _, in := range a.inputs {
		if !slices.Contains(ts, in.topic) {
			ts = append(ts, in.topic)
		}
	}
	slices.Sort(ts)
	return ts
}

// requestScan asks for a rescan soon.
func (a *Agent) requestScan() {
	select {
	case a.scanNow <- struct{}{}:
	default:
	}
}

// scanLoop scans at start, on every rescan interval and on request, until
// ctx is done.
func (a *Agent) scanLoop(ctx context.Context) {
	a.scanAndCheckpoint(ctx, true)
	ticker := time.NewTicker(a.cfg.RescanInterval)
	defer ticker.Stop()
	const minGap = 50 * time.Millisecond // bounds scans caused by event storms
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-a.scanNow:
			t := time.NewTimer(minGap)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		a.scanAndCheckpoint(ctx, false)
	}
}

// scanAndCheckpoint runs doScan and, if it found a file it did not know, writes the
// checkpoint at once rather than at the next interval: a file that is
// rotated out of the globs while the agent is down is found again only
// through the checkpoint, so one first seen just before a kill -9 would
// otherwise lose whatever of it was not read yet.
func (a *Agent) scanAndCheckpoint(ctx context.Context, first bool) {
	if a.doScan(ctx, first) {
		a.checkpointNow()
	}
}

// checkpointLoop writes the checkpoint every interval while ctx lives.
func (a *Agent) checkpointLoop(ctx context.Context) {
	ticker := time.NewTicker(a.cfg.CheckpointInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			a.checkpointNow()
		}
	}
}

// writeCheckpoint writes the checkpoint if it changed since the last write.
func (a *Agent) writeCheckpoint() error {
	a.reg.ckptMu.Lock()
	defer a.reg.ckptMu.Unlock()
	data := encodeCheckpoint(a.reg.snapshot())
	if string(data) == string(a.reg.lastCkpt) {
		return nil
	}
	if err := writeCheckpoint(a.fs, a.cfg.DataDir, data); err != nil {
		return err
	}
	a.reg.lastCkpt = data
	a.metrics.checkpointWrites.Inc()
	return nil
}

// Handler serves /metrics (Prometheus), /healthz and /status (JSON, the
// per-file Status).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := a.ckptHealth.unhealthy(time.Now()); msg != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(msg + "\n"))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/status", a.serveStatus)
	return mux
}

// Registry returns the Prometheus registry holding the agent's metrics.
func (a *Agent) Registry() *prometheus.Registry { return a.metrics.reg }
