package broker

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errStopping is what a wait for the request budget ends with at shutdown.
var errStopping = errors.New("broker stopping")

// budgetFrom is the smallest frame that takes from the request budget:
// metadata, heartbeats, offset commits and fetches never wait on it.
const budgetFrom = 64 << 10

// budgetBodyTimeout is how long a frame that holds budget may take to
// arrive whole (100 MB at 2 MB/s); past it the connection is closed.
var budgetBodyTimeout = 60 * time.Second // a variable for tests

// requestBudget bounds the bytes of large request frames all connections
// hold at once (queued.max.request.bytes), as Kafka's memory pool does. A
// connection reserves a frame's size once it has read its size prefix and
// before it reads the body, and gives it back when the request has been
// handled; without it, clients claiming 100 MB frames and trickling them
// in held their bytes broker-wide without limit. A frame larger than the
// whole budget goes alone.
//
// A client could claim large frames on a few connections and send them a
// byte a second, holding the whole budget for budgetBodyTimeout and
// stalling every large request meanwhile (a probe did it with six
// connections). So a connection reading a frame is a frameHolder, and a
// connection that has waited slowCheckAfter for the budget closes the
// holders that are not sending: those whose bytes came slower than
// stallRate over the last slowWindow (a trickle, or all but the last
// bytes sent at once and then nothing), and those, holding for
// slowProjectAfter or more, whose frames would not be whole within
// budgetBodyTimeout of their reservation at that recent rate. Judged by
// the recent rate, an honest client whose request starts slowly (TCP's
// slow start on a long round trip) is left alone once it speeds up.
// Slow frames are cut only when someone waits for what they hold.
type requestBudget struct {
	limit   int64 // <= 0: unbounded
	mu      sync.Mutex
	used    int64
	done    bool          // the broker is stopping: nobody waits any more
	changed chan struct{} // closed, and replaced, when used drops or done is set
	holders map[*frameHolder]struct{}
}

// frameHolder is a connection's frame holding budget while it is read.
type frameHolder struct {
	read  *atomic.Int64 // bytes read from the connection so far
	ahead func() int64  // of those, bytes buffered but not yet taken
	evict func()        // closes the connection's reading side

	// Set by reserveFrame; read and sampled under the budget's mu.
	size     int64     // the frame's size
	since    time.Time // when it took the budget
	start    int64     // bytes of the frame arrived before: read minus ahead then
	sampleAt time.Time // the last sample of its progress
	sampled  int64     // *read at sampleAt
	evicted  atomic.Bool
}

// How slow holders are found (see requestBudget); variables for tests.
var (
	slowCheckAfter   = time.Second     // a waiter's wait before it looks
	slowWindow       = time.Second     // progress is judged over at least this
	stallRate        = int64(16 << 10) // bytes a second below which a holder is stalled
	slowProjectAfter = 5 * time.Second // holding this long, its projection is judged
)

func newRequestBudget(limit int64) *requestBudget {
	return &requestBudget{limit: limit, changed: make(chan struct{}), holders: map[*frameHolder]struct{}{}}
}

// wakeLocked wakes every waiter.
func (rb *requestBudget) wakeLocked() {
	close(rb.changed)
	rb.changed = make(chan struct{})
}

// stop wakes every waiter, for good: the broker is stopping.
func (rb *requestBudget) stop() {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if !rb.done {
		rb.done = true
		rb.wakeLocked()
	}
}

// reserve takes n bytes, waiting while others hold too much; it returns
// the bytes taken (0 for a small frame or no limit), to give back with
// release, and an error if the broker stops meanwhile.
func (rb *requestBudget) reserve(n int) (int64, error) { return rb.reserveFrame(n, nil) }

// reserveFrame is reserve for a frame being read: h (unless nil) is
// registered as holding the bytes, until releaseFrame, and may be closed
// by a connection waiting meanwhile if its frame arrives too slowly.
func (rb *requestBudget) reserveFrame(n int, h *frameHolder) (int64, error) {
	if rb.limit <= 0 || n < budgetFrom {
		return 0, nil
	}
	want := int64(n)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	waitStart := time.Time{}
	for rb.used > 0 && rb.used+want > rb.limit {
		if rb.done {
			return 0, errStopping
		}
		now := time.Now()
		if waitStart.IsZero() {
			waitStart = now
		} else if now.Sub(waitStart) >= slowCheckAfter {
			rb.evictSlowLocked(now)
		}
		ch := rb.changed
		rb.mu.Unlock()
		t := time.NewTimer(slowCheckAfter)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		rb.mu.Lock()
	}
	rb.used += want
	if h != nil {
		now, read := time.Now(), h.read.Load()
		h.size, h.since, h.start = want, now, read-h.ahead()
		h.sampleAt, h.sampled = now, read
		h.evicted.Store(false)
		rb.holders[h] = struct{}{}
	}
	return want, nil
}

// evictSlowLocked closes the holders that are not sending (see
// requestBudget), judging each by its progress since its last sample, at
// least slowWindow ago. Their connections end and give their budget back.
func (rb *requestBudget) evictSlowLocked(now time.Time) {
	for h := range rb.holders {
		window := now.Sub(h.sampleAt)
		if window < slowWindow || h.evicted.Load() {
			continue
		}
		read := h.read.Load()
		progress := read - h.sampled
		h.sampleAt, h.sampled = now, read
		remaining := h.size - (read - h.start)
		if remaining <= 0 {
			continue // read whole: being handled
		}
		stalled := float64(progress) < float64(stallRate)*window.Seconds()
		// At progress bytes a window, the rest arrives after
		// remaining/progress windows; compared without dividing.
		late := now.Sub(h.since) >= slowProjectAfter &&
			float64(remaining)*float64(window) > float64(h.since.Add(budgetBodyTimeout).Sub(now))*float64(progress)
		if stalled || late {
			h.evicted.Store(true)
			h.evict()
		}
	}
}

// releaseFrame gives back what reserveFrame took for h.
func (rb *requestBudget) releaseFrame(n int64, h *frameHolder) {
	if n == 0 {
		return
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	delete(rb.holders, h)
	rb.used -= n
	rb.wakeLocked()
}

// tryReserve is reserve without the wait: ok is false, and nothing is
// taken, when others hold too much. A holder of budget adding to it uses
// this, since waiting for what it holds itself would never end.
func (rb *requestBudget) tryReserve(n int) (taken int64, ok bool) {
	if rb.limit <= 0 || n < budgetFrom {
		return 0, true
	}
	want := int64(n)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.done || (rb.used > 0 && rb.used+want > rb.limit) {
		return 0, false
	}
	rb.used += want
	return want, true
}

func (rb *requestBudget) release(n int64) { rb.releaseFrame(n, nil) }

// inUse is the bytes reserved now.
func (rb *requestBudget) inUse() int64 {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.used
}
