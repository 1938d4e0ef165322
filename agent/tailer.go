package agent

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// tailer reads one open file from a goroutine of its own, from the scan
// that opened it until the file is idle (closed, to be reopened by a scan
// when it grows), finished (renamed away or deleted, read to its end), or
// the agent stops.
type tailer struct {
	a  *Agent
	f  *os.File
	in *input
	// st is the file's current state. Only the tailer goroutine replaces
	// it, under the registry lock (on truncation); others read it under
	// that lock.
	st   *fileState
	path []byte // the path header; fixed for the life of the tailer

	lr *lineReader
	ml *multiline

	// detached is set by scans that did not find the inode under any
	// matched path (renamed away or deleted).
	detached atomic.Bool
	// wake is poked by file-system events (capacity 1).
	wake chan struct{}
}

// startTailerLocked starts a tailer for st on the open file f, reading from
// offset. The registry lock is held.
func (a *Agent) startTailerLocked(ctx context.Context, st *fileState, f *os.File, offset int64, detached bool) {
	in := st.input
	t := &tailer{
		a:    a,
		f:    f,
		in:   in,
		st:   st,
		path: []byte(st.path),
		lr:   newLineReader(f, offset, in.maxLine, readChunk),
		ml:   in.newMultiline(),
		wake: make(chan struct{}, 1),
	}
	t.detached.Store(detached)
	st.tailer = t
	st.idleSize = -1
	st.readOffset.Store(offset)
	a.metrics.filesOpen.Inc()
	a.openFiles.Add(1)
	a.tailers.Add(1)
	go t.run(ctx)
}

// removedGrace is how long a deleted file must stay quiet at its end before
// it is finished, whatever close-inactive says: a writer that still holds
// it open may add a last few lines, but nobody can open it again, and
// waiting out close-inactive held its descriptor, and its disk space, for
// minutes (Filebeat's close_removed finishes it at once).
const removedGrace = 2 * time.Second

// removed reports whether the file has been deleted (no name links to it).
func (t *tailer) removed() bool {
	fi, err := t.f.Stat()
	if err != nil {
		return false
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && sys.Nlink == 0
}

// poke wakes the tailer if it is waiting.
func (t *tailer) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tailer) run(ctx context.Context) {
	defer t.a.tailers.Done()
	reason := t.loop(ctx)
	t.exit(reason)
}

// exit reasons.
const (
	exitStopped   = "stopped"   // the agent stops
	exitIdle      = "idle"      // at the end for close-inactive; reopened when it grows
	exitFinished  = "finished"  // renamed away or deleted, read to the end
	exitError     = "error"     // a read failed; a later scan retries
	exitDuplicate = "duplicate" // a copy of a file being read
)

func (t *tailer) exit(reason string) {
	a := t.a
	var idleSize int64 = -1
	var idleMod time.Time
	if reason == exitIdle {
		if fi, err := t.f.Stat(); err == nil {
			idleSize, idleMod = fi.Size(), fi.ModTime()
		}
	}
	t.f.Close()
	a.openFiles.Add(-1)
	a.reg.mu.Lock()
	if t.st.tailer == t {
		t.st.tailer = nil
		t.st.idleSize, t.st.idleMod = idleSize, idleMod
	}
	a.reg.mu.Unlock()
	a.metrics.filesOpen.Dec()
	a.log.Debug("file closed", zap.ByteString("path", t.path), zap.String("reason", reason))
}

// loop reads until the tailer should stop and returns why.
func (t *tailer) loop(ctx context.Context) string {
	a := t.a
	lastSize := int64(-1)
	lastActive := time.Now()
	var lines, out []line
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return exitStopped
		}
		fi, err := t.f.Stat()
		if err != nil {
			a.log.Error("stat open file", zap.ByteString("path", t.path), zap.Error(err))
			return exitError
		}
		size := fi.Size()
		t.st.size.Store(size)
		if size != lastSize {
			switch t.checkIdentity(ctx, size) {
			case identityRestart:
				lastSize = -1
				continue
			case identityDuplicate:
				return exitDuplicate
			}
			lastSize = size
		}
		if avail := size - t.lr.off; avail > 0 {
			var n int
			lines, n, err = t.lr.read(avail, lines[:0])
			if err != nil {
				a.metrics.fileErrors.WithLabelValues("read").Inc()
				a.log.Error("read file", zap.ByteString("path", t.path), zap.Error(err))
				return exitError
			}
			if n > 0 {
				lastActive = time.Now()
			}
			out = t.process(lines, lastActive, out[:0])
			if !t.ship(ctx, out) {
				return exitStopped
			}
			if n > 0 {
				continue
			}
		}

		// At the end of the file.
		now := time.Now()
		if t.ml != nil && t.ml.pending() && !now.Before(t.ml.deadline()) {
			if !t.ship(ctx, t.ml.flush(out[:0])) {
				return exitStopped
			}
		}
		idle := now.Sub(lastActive)
		if idle >= a.cfg.CloseInactive || idle >= removedGrace && t.detached.Load() && t.removed() {
			if t.detached.Load() {
				// Renamed away or deleted and quiet: ship what is left,
				// including a last line without a newline, and finish.
				out = out[:0]
				if l, ok := t.lr.flushPartial(); ok {
					out = t.process([]line{l}, now, out)
				}
				if t.ml != nil {
					out = t.ml.flush(out)
				}
				if !t.ship(ctx, out) {
					return exitStopped
				}
				return exitFinished
			}
			if t.ml == nil || !t.ml.pending() {
				return exitIdle
			}
		}
		wait := a.cfg.PollInterval
		if d := a.cfg.CloseInactive - idle; d < wait {
			wait = d
		}
		if t.ml != nil && t.ml.pending() {
			if d := time.Until(t.ml.deadline()); d < wait {
				wait = d
			}
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return exitStopped
		case <-t.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// identity outcomes of checkIdentity.
const (
	identitySame      = iota // still the bytes already read
	identityRestart          // truncated: reading starts over (or continues an orphan)
	identityDuplicate        // a copy of a file already being read: stop
)

// checkIdentity verifies, after the size changed, that the file still
// holds the bytes already read. If it does not (copytruncate, or
// truncated and rewritten), the old state is orphaned for a copy to
// continue and reading starts over at 0 in a new state.
//
// It also catches a copy whose first 1 KiB arrived only after the file was
// found (a copy being written): if nothing was read from it yet and its
// head now equals an orphan's, it continues that orphan; if it equals a
// file being read, it is a duplicate and the tailer stops.
func (t *tailer) checkIdentity(ctx context.Context, size int64) int {
	a := t.a
	a.reg.mu.Lock()
	fp := t.st.fp
	a.reg.mu.Unlock()
	same, now, err := checkFingerprint(t.f, size, fp)
	if err != nil {
		a.log.Warn("fingerprint", zap.ByteString("path", t.path), zap.Error(err))
		return identitySame // try again on the next change
	}
	consumed := t.lr.consumed()
	if same && size >= consumed {
		if now.n > fp.n {
			a.reg.mu.Lock()
			defer a.reg.mu.Unlock()
			if !fp.full() && now.full() && consumed == 0 && !t.lr.pending() {
				if o := a.reg.findOrphanLocked(now, t.st.key); o != nil {
					a.log.Info("continuing a truncated file in its copy", zap.ByteString("path", t.path),
						zap.String("was", o.path), zap.Int64("offset", o.readOffset.Load()))
					fresh := t.st
					a.reg.dropLocked(fresh)
					a.reg.bindLocked(o, fresh.key, fresh.path)
					o.input, o.tailer, o.seen = t.in, t, time.Now()
					t.st = o
					t.lr.reset(o.readOffset.Load())
					return identityRestart
				}
				if b := a.reg.findBoundByFPLocked(now, t.st.key); b != nil && b.tailer != nil {
					// Forget it: the next scan decides again, once the
					// original is truncated or gone.
					a.reg.dropLocked(t.st)
					return identityDuplicate
				}
			}
			t.st.fp = now
		}
		return identitySame
	}
	// Truncated. Lines joined so far are complete lines of the old content:
	// ship them into the old state before it is orphaned.
	if t.ml != nil && t.ml.pending() {
		t.ship(ctx, t.ml.flush(nil))
	}
	a.log.Info("file truncated; reading it again from the start", zap.ByteString("path", t.path),
		zap.Int64("read_offset", consumed), zap.Int64("size", size))
	a.metrics.truncations.Inc()
	nowTime := time.Now()
	a.reg.mu.Lock()
	old := t.st
	a.reg.retireLocked(old, nowTime)
	st := a.reg.newStateLocked(old.key, true, old.path, now, 0, nowTime)
	st.input = t.in
	st.tailer = t
	t.st = st
	a.reg.mu.Unlock()
	t.lr.reset(0)
	a.requestScan() // a copy of the old content may be waiting for it
	return identityRestart
}

// process turns read lines into records to ship: it counts them and joins
// multiline records.
func (t *tailer) process(lines []line, now time.Time, out []line) []line {
	m := t.in.m
	var n, truncated int
	for _, l := range lines {
		if !l.marker {
			n++
			if l.truncated {
				truncated++
			}
		}
		if t.ml != nil {
			out = t.ml.add(l, now, out)
		} else {
			out = append(out, l)
		}
	}
	if n > 0 {
		m.linesRead.Add(float64(n))
	}
	if truncated > 0 {
		m.truncated.Add(float64(truncated))
	}
	return out
}

// ship produces lines and advances the read offset. It returns false when
// the agent is stopping.
func (t *tailer) ship(ctx context.Context, lines []line) bool {
	if len(lines) > 0 {
		if err := t.a.ship.produce(ctx, t.st, t.in, t.path, lines); err != nil {
			return false
		}
	}
	off := t.lr.consumed()
	if t.ml != nil && t.ml.pending() {
		off = t.ml.rec.start
	}
	t.st.readOffset.Store(off)
	return ctx.Err() == nil
}
