package agent

import (
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ckptLogEvery is how often a run of failing checkpoint writes is logged
// again after its first failure.
const ckptLogEvery = time.Minute

// checkpointNow writes the checkpoint if it changed, and records how the
// write went: a failing checkpoint (full or read-only disk, a removed
// data dir) does not lose lines, but every line shipped since the last
// good write is shipped again after a restart, so it shows in /healthz
// and in the log, once a minute rather than at every interval.
func (a *Agent) checkpointNow() {
	err := a.writeCheckpoint()
	now := time.Now()
	if err == nil {
		if n, since := a.ckptHealth.succeeded(); n > 0 {
			a.log.Info("checkpoint writes recovered", zap.Int("failed_writes", n), zap.Duration("failing_for", now.Sub(since).Round(time.Millisecond)))
		}
		return
	}
	a.metrics.checkpointErrors.Inc()
	if n, log := a.ckptHealth.failed(now, err); log {
		// Warn, not Error: the error says what failed, and a stack trace
		// at every report says nothing more.
		a.log.Warn("write checkpoint: lines shipped since the last good write will be shipped again after a restart",
			zap.Error(err), zap.Int("failed_writes", n))
	}
}

// ckptHealth is the state of the latest checkpoint writes.
type ckptHealth struct {
	mu       sync.Mutex
	failures int       // consecutive failed writes, 0 when the last succeeded
	since    time.Time // the first of them
	lastErr  error
	logged   time.Time // when the run was last logged
}

// failed records a failed write at now and says whether to log it: the
// first of a run, then at most once per ckptLogEvery.
func (h *ckptHealth) failed(now time.Time, err error) (failures int, log bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == 0 {
		h.since = now
	}
	h.failures++
	h.lastErr = err
	if h.failures == 1 || now.Sub(h.logged) >= ckptLogEvery {
		h.logged = now
		return h.failures, true
	}
	return h.failures, false
}

// succeeded ends a run of failures, returning how many writes it had
// failed and since when.
func (h *ckptHealth) succeeded() (failures int, since time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	failures, since = h.failures, h.since
	h.failures, h.lastErr = 0, nil
	return failures, since
}

// unhealthy describes a failing checkpoint, or returns "" when the last
// write succeeded.
func (h *ckptHealth) unhealthy(now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == 0 {
		return ""
	}
	return fmt.Sprintf("checkpoint: %d writes failed in a row over %s: %v", h.failures, now.Sub(h.since).Round(time.Second), h.lastErr)
}
