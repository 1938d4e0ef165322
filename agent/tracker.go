package agent

import "sync"

// ackTracker turns out-of-order acknowledgements of a file's records into
// the file's checkpoint offset: the end of the longest prefix of records
// that are all acknowledged. Records are registered in file order with
// add, which returns the sequence number of the first; ack marks one done.
// Safe for concurrent use (acknowledgements arrive on the producer's
// goroutines).
type ackTracker struct {
	mu struct {
		sync.Mutex
		acked   int64        // checkpoint: every byte before it is acknowledged
		base    uint64       // sequence number of ents[0]
		ents    []trackEntry // ents[head:] are pending, in file order
		head    int
		pending int // entries not yet done
	}
}

type trackEntry struct {
	end  int64
	done bool
}

// newAckTracker starts a tracker whose checkpoint is at offset.
func newAckTracker(offset int64) *ackTracker {
	t := &ackTracker{}
	t.mu.acked = offset
	return t
}

// add registers entries (in file order) and returns the sequence number of
// the first. Entries already done (markers) count as acknowledged.
func (t *ackTracker) add(ents []trackEntry) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	first := t.mu.base + uint64(len(t.mu.ents))
	t.mu.ents = append(t.mu.ents, ents...)
	for _, e := range ents {
		if !e.done {
			t.mu.pending++
		}
	}
	t.advanceLocked()
	return first
}

// ack marks entry seq acknowledged.
func (t *ackTracker) ack(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.mu.base+uint64(t.mu.head) {
		return // already behind the checkpoint
	}
	i := int(seq - t.mu.base)
	if i >= len(t.mu.ents) || t.mu.ents[i].done {
		return
	}
	t.mu.ents[i].done = true
	t.mu.pending--
	t.advanceLocked()
}

func (t *ackTracker) advanceLocked() {
	for t.mu.head < len(t.mu.ents) && t.mu.ents[t.mu.head].done {
		if e := t.mu.ents[t.mu.head].end; e > t.mu.acked {
			t.mu.acked = e
		}
		t.mu.head++
	}
	// Compact once the done prefix is at least half the slice, so each
	// entry is copied O(1) times on average.
	if t.mu.head > 0 && t.mu.head*2 >= len(t.mu.ents) {
		n := copy(t.mu.ents, t.mu.ents[t.mu.head:])
		clear(t.mu.ents[n:])
		t.mu.ents = t.mu.ents[:n]
		t.mu.base += uint64(t.mu.head)
		t.mu.head = 0
	}
}

// acked returns the checkpoint offset and how many records are still
// unacknowledged.
func (t *ackTracker) acked() (offset int64, pending int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.acked, t.mu.pending
}
