package appender

import (
	"sync"
	"testing"
)

// TestQueueConcurrent: many producers, one consumer; nothing is lost or
// duplicated and each producer's entries come out in the order pushed.
func TestQueueConcurrent(t *testing.T) {
	var q mpscQueue
	q.init()
	const producers, each = 8, 20000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := &entry{size: int64(p*each + i)}
				q.push(e)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	next := make([]int64, producers)
	got := 0
	for got < producers*each {
		e := q.pop()
		if e == nil {
			select {
			case <-done:
				if q.empty() && got < producers*each {
					if e = q.pop(); e == nil {
						t.Fatalf("queue empty after %d of %d entries", got, producers*each)
					}
				}
			default:
				continue
			}
			if e == nil {
				continue
			}
		}
		p, i := e.size/each, e.size%each
		if i != next[p] {
			t.Fatalf("producer %d: entry %d after %d", p, i, next[p]-1)
		}
		next[p]++
		got++
	}
	if e := q.pop(); e != nil || !q.empty() {
		t.Fatal("entries left over")
	}
}
