package appender

import (
	"runtime"
	"sync/atomic"
)

// mpscQueue is an intrusive, unbounded, lock-free multi-producer
// single-consumer FIFO of entries (Dmitry Vyukov's design). Any goroutine
// may push; only the shipper goroutine pops. Pushing is one atomic swap and
// one atomic store and never blocks or allocates. The queue itself is
// unbounded: the shipper's reservation of buffer space (see Shipper.reserve)
// is what bounds it.
//
// The zero value is not usable; call init.
type mpscQueue struct {
	head atomic.Pointer[entry] // most recently pushed; producers swap it
	_    [56]byte              // keep producers' line apart from the consumer's
	tail *entry                // consumer-owned: next to pop is tail.next
	stub entry
}

func (q *mpscQueue) init() {
	q.head.Store(&q.stub)
	q.tail = &q.stub
}

// push appends e. Safe for concurrent use.
func (q *mpscQueue) push(e *entry) {
	e.next.Store(nil)
	prev := q.head.Swap(e)
	// Between the swap and this store the queue is briefly "broken": pop
	// sees prev with no next. pop waits that window out (see pop).
	prev.next.Store(e)
}

// pop removes and returns the oldest entry, or nil if the queue is empty.
// Only the consumer may call it. If a producer is between its swap and its
// link, pop waits for the link rather than report empty: a record pushed
// after that one (by the same goroutine that later spills) must not be
// overtaken.
func (q *mpscQueue) pop() *entry {
	for spins := 0; ; spins++ {
		tail := q.tail
		next := tail.next.Load()
		if tail == &q.stub {
			if next == nil {
				if q.head.Load() == tail {
					return nil
				}
				q.yield(spins)
				continue
			}
			q.tail = next
			tail = next
			next = next.next.Load()
		}
		if next != nil {
			q.tail = next
			return tail
		}
		if q.head.Load() != tail {
			// A producer swapped head but has not linked yet.
			q.yield(spins)
			continue
		}
		// tail is the last entry: put the stub behind it so tail can be
		// handed out.
		q.push(&q.stub)
		next = tail.next.Load()
		if next != nil {
			q.tail = next
			return tail
		}
		q.yield(spins)
	}
}

// empty reports whether nothing is queued (consumer only; a push in
// progress counts as queued).
func (q *mpscQueue) empty() bool {
	return q.head.Load() == q.tail && q.tail == &q.stub
}

func (q *mpscQueue) yield(spins int) {
	if spins > 16 {
		runtime.Gosched()
	}
}
