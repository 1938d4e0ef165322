package appender

import "sync/atomic"

// epochSlots is how many Sync epochs can have records in flight at once.
const epochSlots = 64

// epochTracker counts in-flight records per epoch so that Sync can wait
// for exactly the records produced before it, while newer records keep
// flowing. A Sync barrier closes the current epoch; it is done once no
// record of that epoch or an earlier one is in flight.
//
// The shipper goroutine owns cur and tags and increments counts; promises
// decrement counts.
type epochTracker struct {
	counts  [epochSlots]atomic.Int64
	tags    [epochSlots]uint64 // the epoch each slot currently counts
	cur     uint64
	waiting atomic.Int32 // barriers waiting for acknowledgements
}

// add counts one more record in the current epoch and returns its counter.
func (t *epochTracker) add() *atomic.Int64 {
	c := &t.counts[t.cur%epochSlots]
	c.Add(1)
	return c
}

// advance closes the current epoch and returns it. If the next slot is
// still busy (epochSlots Syncs outstanding), the epoch is not closed and
// the barrier waits for newer records too.
func (t *epochTracker) advance() uint64 {
	target := t.cur
	next := t.cur + 1
	if t.counts[next%epochSlots].Load() == 0 {
		t.cur = next
		t.tags[next%epochSlots] = next
	}
	return target
}

// pending counts records of epochs up to target still in flight.
func (t *epochTracker) pending(target uint64) int64 {
	var n int64
	for i := range t.counts {
		if t.tags[i] <= target {
			n += t.counts[i].Load()
		}
	}
	return n
}

// barrier is a Sync or Close waiting for the records logged before it.
type barrier struct {
	hasSpill bool
	spillPos spillPos // the spill replay must pass this first
	target   uint64   // the epoch to be acknowledged, once known
	done     chan struct{}
	finished atomic.Bool
}

func (b *barrier) finish() {
	if b.finished.CompareAndSwap(false, true) {
		close(b.done)
	}
}

// pendingAtEnd is what the waiter reports: zero if the barrier completed,
// else the records held in memory (queued or in flight) at the deadline,
// an upper bound of those logged before the barrier.
func (b *barrier) pendingAtEnd(s *Shipper) int64 {
	select {
	case <-b.done:
		return 0
	default:
		return s.held.records.Load()
	}
}

// addBarrier takes a barrier popped from the queue: everything queued
// before it has been produced.
func (s *Shipper) addBarrier(b *barrier) {
	if b.hasSpill && s.spill != nil && !s.spillReplayedPast(b.spillPos) {
		s.barriers.replay = append(s.barriers.replay, b)
		return
	}
	s.closeEpoch(b)
}

func (s *Shipper) closeEpoch(b *barrier) {
	b.target = s.epochs.advance()
	s.barriers.acks = append(s.barriers.acks, b)
	s.epochs.waiting.Add(1)
}

// checkBarriers finishes the barriers whose records are all done.
func (s *Shipper) checkBarriers() {
	if len(s.barriers.replay) > 0 {
		keep := s.barriers.replay[:0]
		for _, b := range s.barriers.replay {
			if s.spillReplayedPast(b.spillPos) {
				s.closeEpoch(b)
			} else {
				keep = append(keep, b)
			}
		}
		clear(s.barriers.replay[len(keep):])
		s.barriers.replay = keep
	}
	if len(s.barriers.acks) == 0 {
		return
	}
	keep := s.barriers.acks[:0]
	for _, b := range s.barriers.acks {
		if s.epochs.pending(b.target) == 0 {
			s.epochs.waiting.Add(-1)
			b.finish()
		} else {
			keep = append(keep, b)
		}
	}
	clear(s.barriers.acks[len(keep):])
	s.barriers.acks = keep
}
