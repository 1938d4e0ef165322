package e2e

// A broker frozen with SIGSTOP (a "zombie": its sockets stay open, nothing
// answers) while a franz-go idempotent producer (acks=all) and a consumer
// run. The clients' requests time out and their connections are dropped,
// but the requests already sit in the broker's socket buffers: on SIGCONT
// the broker reads and appends them, and the producer's retries must be
// recognised as duplicates. The history checker then proves every
// acknowledged record was read exactly once, in order. A second test kills
// the frozen broker with SIGKILL instead and restarts it.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pauseClientTimeout is how long the clients in these tests wait for a
// response beyond what the request itself asks for; the broker is frozen
// for longer than that.
const pauseClientTimeout = time.Second

// timeoutCounter is a kgo hook counting reads that timed out.
type timeoutCounter struct{ n atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (c *timeoutCounter) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.n.Add(1)
	}
}

// pauseWorkload is a producer writing increasing sequence numbers at a
// steady rate and a consumer reading the topic concurrently; both are
// franz-go clients with short timeouts. Its goroutines are owned by the
// workload and stopped by stopProducing and finish (or the test's end).
type pauseWorkload struct {
	t        *testing.T
	h        *history
	producer *kgo.Client
	consumer *kgo.Client
	prodTO   timeoutCounter
	consTO   timeoutCounter

	stopProduce chan struct{}
	produceDone chan struct{}
	cancel      context.CancelFunc // stops the consumer
	consumeDone chan struct{}

	mu        sync.Mutex
	reads     []read
	fetchErrs int
	firstErr  error
}

func startPauseWorkload(t *testing.T, b *Broker, topic string) *pauseWorkload {
	w := &pauseWorkload{
		t:           t,
		h:           newHistory(),
		stopProduce: make(chan struct{}),
		produceDone: make(chan struct{}),
		consumeDone: make(chan struct{}),
	}
	// Default producer (idempotent, acks=all) with short timeouts, and
	// retries long enough to outlast the freeze and a restart.
	w.producer = newClient(t, b.Addr,
		kgo.WithHooks(&w.prodTO),
		kgo.RequestTimeoutOverhead(pauseClientTimeout),
		kgo.ProduceRequestTimeout(time.Second),
		kgo.RetryTimeout(2*time.Minute),
		kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.MaxBufferedRecords(200_000),
		kgo.ProducerLinger(2*time.Millisecond),
	)
	w.consumer = newClient(t, b.Addr,
		kgo.WithHooks(&w.consTO),
		kgo.RequestTimeoutOverhead(pauseClientTimeout),
		kgo.RetryTimeout(2*time.Minute),
		kgo.FetchMaxWait(300*time.Millisecond),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	t.Cleanup(func() { w.stopProducing(); cancel(); <-w.consumeDone })

	go func() { // producer: about 2,000 records/s until stopProduce
		defer close(w.produceDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var seq int64
		for {
			select {
			case <-w.stopProduce:
				return
			case <-tick.C:
			}
			for i := 0; i < 10; i++ {
				s := seq
				seq++
				r := &kgo.Record{Topic: topic, Value: []byte(strconv.FormatInt(s, 10))}
				w.producer.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					w.h.ack(r.Partition, r.Offset, s, err)
				})
			}
		}
	}()
	go func() { // consumer: until cancel
		defer close(w.consumeDone)
		for {
			fs := w.consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			fs.EachError(func(_ string, _ int32, err error) {
				w.fetchErrs++
				if w.firstErr == nil {
					w.firstErr = err
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				w.reads = append(w.reads, read{partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			})
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pauseWorkload) readCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.reads)
}

func (w *pauseWorkload) stopProducing() {
	select {
	case <-w.stopProduce:
	default:
		close(w.stopProduce)
	}
	<-w.produceDone
}

// waitProgress waits until at least acked records are acknowledged and
// reads records read.
func (w *pauseWorkload) waitProgress(acked, reads int, timeout time.Duration) {
	w.t.Helper()
	eventually(w.t, timeout, "producer and consumer make progress", func() error {
		if a, r := w.h.ackedCount(), w.readCount(); a < acked || r < reads {
			return errNotYet
		}
		return nil
	})
}

// finish stops the producer, waits for every buffered record to be
// acknowledged and for the consumer to read them all, and checks the
// history.
func (w *pauseWorkload) finish() {
	w.t.Helper()
	w.stopProducing()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.producer.Flush(ctx); err != nil {
		w.t.Fatalf("flush producer: %v", err)
	}
	acked := w.h.ackedCount()
	eventually(w.t, time.Minute, "consumer reads every acknowledged record", func() error {
		if r := w.readCount(); r < acked {
			return errors.New(strconv.Itoa(r) + " of " + strconv.Itoa(acked) + " read")
		}
		return nil
	})
	w.cancel()
	<-w.consumeDone
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetchErrs > 0 {
		w.t.Logf("consumer saw %d fetch errors, first: %v", w.fetchErrs, w.firstErr)
	}
	if len(w.reads) != acked {
		w.t.Errorf("read %d records, acknowledged %d", len(w.reads), acked)
	}
	for _, p := range w.h.check(w.reads) {
		w.t.Error(p)
	}
	w.t.Logf("%d records acknowledged and read; client read timeouts: producer %d, consumer %d",
		acked, w.prodTO.n.Load(), w.consTO.n.Load())
}

// freeze sends SIGSTOP to the broker and waits until both clients have had
// a request time out, so the freeze outlasts their timeouts.
func (w *pauseWorkload) freeze(b *Broker) {
	w.t.Helper()
	prod, cons := w.prodTO.n.Load(), w.consTO.n.Load()
	if err := syscall.Kill(b.Pid(), syscall.SIGSTOP); err != nil {
		w.t.Fatalf("SIGSTOP broker: %v", err)
	}
	eventually(w.t, 30*time.Second, "both clients time out against the frozen broker", func() error {
		if w.prodTO.n.Load() == prod || w.consTO.n.Load() == cons {
			return errNotYet
		}
		return nil
	})
}

// TestSIGSTOPClientsRecover freezes the broker under load for longer than
// the clients' timeouts, thaws it, and checks that the clients recover and
// that every acknowledged record is read exactly once, in order.
func TestSIGSTOPClientsRecover(t *testing.T) {
	t.Parallel()
	const topic = "paused"
	b := StartBroker(t)
	createTopic(t, b.Client(), topic, 4, nil)
	w := startPauseWorkload(t, b, topic)
	w.waitProgress(2000, 1000, 30*time.Second)

	w.freeze(b)
	ackedFrozen := w.h.ackedCount()
	if err := syscall.Kill(b.Pid(), syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT broker: %v", err)
	}
	w.waitProgress(ackedFrozen+4000, ackedFrozen, 60*time.Second)
	if !b.Alive() {
		t.Fatal("broker exited after SIGCONT")
	}
	w.finish()
}

// TestSIGSTOPThenKill9 freezes the broker under load, kills it with
// SIGKILL while frozen, and restarts it: nothing acknowledged before the
// freeze is lost, the idempotent producer's retries are not duplicated,
// and the history is clean.
func TestSIGSTOPThenKill9(t *testing.T) {
	t.Parallel()
	const topic = "paused-killed"
	b := StartBroker(t)
	createTopic(t, b.Client(), topic, 4, nil)
	w := startPauseWorkload(t, b, topic)
	w.waitProgress(2000, 1000, 30*time.Second)

	w.freeze(b)
	ackedFrozen := w.h.ackedCount()
	b.Kill9()
	b.Start()
	w.waitProgress(ackedFrozen+4000, ackedFrozen, 60*time.Second)
	w.finish()
}
