package broker

import (
	"errors"
	"sync"
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
type requestBudget struct {
	limit int64 // <= 0: unbounded
	mu    sync.Mutex
	cond  *sync.Cond
	used  int64
	done  bool // the broker is stopping: nobody waits any more
}

func newRequestBudget(limit int64) *requestBudget {
	rb := &requestBudget{limit: limit}
	rb.cond = sync.NewCond(&rb.mu)
	return rb
}

// stop wakes every waiter, for good: the broker is stopping.
func (rb *requestBudget) stop() {
	rb.mu.Lock()
	rb.done = true
	rb.mu.Unlock()
	rb.cond.Broadcast()
}

// reserve takes n bytes, waiting while others hold too much; it returns
// the bytes taken (0 for a small frame or no limit), to give back with
// release, and an error if the broker stops meanwhile.
func (rb *requestBudget) reserve(n int) (int64, error) {
	if rb.limit <= 0 || n < budgetFrom {
		return 0, nil
	}
	want := int64(n)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	for rb.used > 0 && rb.used+want > rb.limit {
		if rb.done {
			return 0, errStopping
		}
		rb.cond.Wait()
	}
	rb.used += want
	return want, nil
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

func (rb *requestBudget) release(n int64) {
	if n == 0 {
		return
	}
	rb.mu.Lock()
	rb.used -= n
	rb.mu.Unlock()
	rb.cond.Broadcast()
}

// inUse is the bytes reserved now.
func (rb *requestBudget) inUse() int64 {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.used
}
