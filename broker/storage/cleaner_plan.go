package storage

import (
	"fmt"
	"github.com/gregor-log/gregor/broker/record"
	"time"
)

// cleanPlan is what a pass works from, taken under the log's lock.
type cleanPlan struct {
	l     *Log
	cfg   *Config
	nowMs int64
	// all is every live segment when planned, each referenced until
	// release; all[:n] may be rewritten, and all[n] exists.
	all     []*segment
	n       int
	tails   []uint64 // tails of all[:n] when planned
	release func()

	state            cleanerState // copy of the log's cleaner state
	gen              uint64
	firstDirty       int64
	firstUncleanable int64
	// lastBatch maps each producer id to the base offset of its last
	// batch: that batch is kept, even empty.
	lastBatch map[int64]int64
	// aborted maps producer ids to their aborted transactions: their
	// records are removed, and never shadow a committed record's key.
	aborted map[int64][]AbortedTxn
}

// abortedBatch reports whether transactional batch h belongs to an
// aborted transaction.
func (p *cleanPlan) abortedBatch(h *record.Header) bool {
	if !h.Transactional() || h.Control() {
		return false
	}
	for _, a := range p.aborted[h.ProducerID] {
		if a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}

// planClean takes the picture a pass works from. It returns nil (and no
// error) when the log is not compacted.
func (l *Log) planClean() (*cleanPlan, error) {
	cfg := l.cfg.Load()
	if !cfg.CleanupPolicy.Compact() {
		return nil, nil
	}
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if l.mu.werr != nil {
		err := l.mu.werr
		l.mu.Unlock()
		return nil, err
	}
	segs := l.segments()
	for _, s := range segs {
		s.tryRef() // cannot fail: the log holds a reference on live segments
	}
	p := &cleanPlan{
		l:     l,
		cfg:   cfg,
		nowMs: l.now().UnixMilli(),
		all:   segs,
		state: l.mu.cleaner,
		gen:   l.mu.cleanerGen,
		release: func() {
			for _, s := range segs {
				s.unref()
			}
		},
		lastBatch: make(map[int64]int64, len(l.mu.producers)),
	}
	p.state.tombstones = append([]tombstoneRange(nil), l.mu.cleaner.tombstones...)
	for id, e := range l.mu.producers {
		if e.n > 0 {
			p.lastBatch[id] = e.last().firstOffset
		}
	}
	for _, a := range l.mu.aborted {
		if p.aborted == nil {
			p.aborted = map[int64][]AbortedTxn{}
		}
		p.aborted[a.ProducerID] = append(p.aborted[a.ProducerID], a)
	}
	// Nothing at or after the last stable offset is cleaned: whether an
	// open transaction's records count is not known yet.
	hwm := min(l.hwm.Load(), l.unstable.Load())
	logStart := l.logStart.Load()
	fu := min(segs[len(segs)-1].base, l.mu.recovery.SegmentBase)
	l.mu.Unlock()

	p.firstDirty = max(p.state.firstDirty, logStart)
	for i := 0; i+1 < len(segs); i++ {
		s := segs[i]
		next := segs[i+1].base
		if next > fu {
			break
		}
		if end, _ := s.end(); end > hwm {
			break
		}
		if cfg.MinCompactionLagMs > 0 && next > p.firstDirty {
			ts, _, err := s.maxTimestamp()
			if err != nil {
				p.release()
				return nil, fmt.Errorf("plan clean: %w", err)
			}
			if ts > p.nowMs-cfg.MinCompactionLagMs {
				break
			}
		}
		p.n = i + 1
	}
	// The segments taken end at a segment boundary.
	p.firstUncleanable = segs[p.n].base
	p.tails = make([]uint64, p.n)
	for i := range p.n {
		p.tails[i] = segs[i].tail.Load()
	}
	return p, nil
}

// size returns the size of all[i] when planned.
func (p *cleanPlan) size(i int) int64 {
	_, size := unpackTail(p.tails[i])
	return int64(size)
}

// dirtiness returns the bytes of the cleanable segments that have been
// cleaned and those that have not.
func (p *cleanPlan) dirtiness() (clean, dirty int64) {
	for i := range p.n {
		if p.all[i+1].base <= p.firstDirty {
			clean += p.size(i)
		} else {
			dirty += p.size(i)
		}
	}
	return clean, dirty
}

// tombstonesDue reports whether a retained tombstone in the cleaned
// section has outlived delete.retention.ms.
func (p *cleanPlan) tombstonesDue() bool {
	retention := p.cfg.deleteRetention()
	for _, r := range p.state.tombstones {
		if r.start < p.firstDirty && r.start < p.firstUncleanable && tombstoneExpiry(r.cleanedAtMs, retention) <= p.nowMs {
			return true
		}
	}
	return false
}

// cleanability reports a compacted log's dirty ratio and whether the
// cleaner should take it now: its ratio is above min.cleanable.dirty.ratio
// or a tombstone is due for removal, and it is not waiting after a failed
// or fruitless pass.
func (l *Log) cleanability(now time.Time) (ratio float64, eligible bool) {
	l.mu.Lock()
	wait := now.Before(l.mu.cleanRetryAt)
	l.mu.Unlock()
	if wait {
		return 0, false
	}
	p, err := l.planClean()
	if err != nil || p == nil {
		return 0, false
	}
	defer p.release()
	if p.n == 0 {
		return 0, false
	}
	clean, dirty := p.dirtiness()
	if clean+dirty > 0 {
		ratio = float64(dirty) / float64(clean+dirty)
	}
	return ratio, (dirty > 0 && (ratio > p.cfg.minCleanableRatio() || p.overdue())) || p.tombstonesDue()
}

// overdue reports whether the oldest uncleaned batch of the cleanable
// segments is older than max.compaction.lag.ms. Like Kafka, it goes by the
// first dirty batch's timestamp.
func (p *cleanPlan) overdue() bool {
	lag := p.cfg.MaxCompactionLagMs
	if lag <= 0 || lag >= p.nowMs {
		return false // no limit (the default is Long.MAX): nothing to read
	}
	cutoff := p.nowMs - lag
	for i := range p.n {
		s := p.all[i]
		if p.all[i+1].base <= p.firstDirty {
			continue // cleaned already
		}
		size := p.size(i)
		pos, _, err := s.lookup(max(p.firstDirty, s.base), size)
		if err != nil {
			return false
		}
		// The index is sparse: step to the batch holding firstDirty.
		c := s.headerCursor()
		defer c.close()
		for pos < size {
			h, err := c.header(pos, size)
			if err != nil {
				return false
			}
			if h.LastOffset() >= p.firstDirty {
				return h.MaxTimestamp < cutoff
			}
			pos += h.Size()
		}
		return false
	}
	return false
}
