package broker

import (
	"sync"
	"sync/atomic"
)

type topicPartition struct {
	topic     string
	partition int32
}

// waiters wakes long-polling fetches when a partition they read grows.
// A fetch registers one capacity-1 channel on every partition it reads;
// an append does a non-blocking send to each registered channel.
type waiters struct {
	count atomic.Int64 // registered channels; lets notify skip the lock when idle
	mu    struct {
		sync.Mutex
		m map[topicPartition]map[chan struct{}]struct{}
	}
}

func newWaiters() *waiters {
	w := &waiters{}
	w.mu.m = make(map[topicPartition]map[chan struct{}]struct{})
	return w
}

func (w *waiters) add(tps []topicPartition, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tp := range tps {
		set := w.mu.m[tp]
		if set == nil {
			set = make(map[chan struct{}]struct{})
			w.mu.m[tp] = set
		}
		set[ch] = struct{}{}
		w.count.Add(1)
	}
}

func (w *waiters) remove(tps []topicPartition, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tp := range tps {
		set := w.mu.m[tp]
		if _, ok := set[ch]; ok {
			delete(set, ch)
			w.count.Add(-1)
		}
		if len(set) == 0 {
			delete(w.mu.m, tp)
		}
	}
}

// notify wakes the fetches waiting on a partition.
func (w *waiters) notify(topic string, partition int32) {
	if w.count.Load() == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.mu.m[topicPartition{topic, partition}] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
