package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
)

// history records what a producer was told (every acknowledged record's
// partition, offset and sequence number) and checks what a reader later
// saw against it. Values are decimal sequence numbers, unique across the
// run and increasing in the order Produce was called, so within a
// partition a later offset must carry a larger sequence number.
//
// Its report lists lost acknowledged records, duplicates, records that were
// never acknowledged, reordering within a partition and offsets that went
// backwards.
type history struct {
	mu      sync.Mutex
	acked   map[int32]map[int64]int64 // partition → offset → seq
	failed  int
	firstEr error
}

func newHistory() *history {
	return &history{acked: make(map[int32]map[int64]int64)}
}

// ack records the outcome of one produced record; it is a kgo promise.
func (h *history) ack(partition int32, offset, seq int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.failed++
		if h.firstEr == nil {
			h.firstEr = err
		}
		return
	}
	m := h.acked[partition]
	if m == nil {
		m = make(map[int64]int64)
		h.acked[partition] = m
	}
	m[offset] = seq
}

// ackedCount returns how many records were acknowledged.
func (h *history) ackedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.acked {
		n += len(m)
	}
	return n
}

// read is one record as a reader saw it.
type read struct {
	partition int32
	offset    int64
	value     string
}

// maxProblems caps the report so a broken run stays readable.
const maxProblems = 20

// check compares what readers saw with what was acknowledged and returns
// the problems found (nil when the history is clean). Reads must be in the
// order each partition delivered them.
func (h *history) check(reads []read) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == maxProblems {
			problems = append(problems, "... more problems not shown")
		}
	}
	if h.failed > 0 {
		add("%d produce calls failed, first: %v", h.failed, h.firstEr)
	}

	type state struct {
		lastOffset int64
		lastSeq    int64
		seen       map[int64]bool // offsets read
	}
	states := make(map[int32]*state)
	for _, r := range reads {
		st := states[r.partition]
		if st == nil {
			st = &state{lastOffset: -1, lastSeq: -1, seen: make(map[int64]bool)}
			states[r.partition] = st
		}
		seq, err := strconv.ParseInt(r.value, 10, 64)
		if err != nil {
			add("p%d@%d: value %q is not a sequence number", r.partition, r.offset, r.value)
			continue
		}
		if r.offset <= st.lastOffset {
			add("p%d: offset went backwards or repeated: %d after %d", r.partition, r.offset, st.lastOffset)
		}
		if seq <= st.lastSeq {
			add("p%d@%d: reordered: seq %d after seq %d", r.partition, r.offset, seq, st.lastSeq)
		}
		if st.seen[r.offset] {
			add("p%d@%d: duplicate read", r.partition, r.offset)
		}
		st.seen[r.offset] = true
		st.lastOffset, st.lastSeq = r.offset, seq
		wantSeq, ok := h.acked[r.partition][r.offset]
		switch {
		case !ok:
			add("p%d@%d: read seq %d that was never acknowledged at this offset", r.partition, r.offset, seq)
		case wantSeq != seq:
			add("p%d@%d: read seq %d, acknowledged seq %d", r.partition, r.offset, seq, wantSeq)
		}
	}

	parts := make([]int32, 0, len(h.acked))
	for p := range h.acked {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		lost := 0
		var firstLost int64 = -1
		for off := range h.acked[p] {
			if st := states[p]; st == nil || !st.seen[off] {
				lost++
				if firstLost < 0 || off < firstLost {
					firstLost = off
				}
			}
		}
		if lost > 0 {
			add("p%d: %d acknowledged records never read (lowest offset %d)", p, lost, firstLost)
		}
	}
	return problems
}
