package appender

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/goleak"
)

func TestMissingTopicFailsAndCounts(t *testing.T) {
	tb := startBroker(t, nil)
	var errs errorLog
	h, err := NewHandler(WithBrokers(tb.addr), WithTopic("no-such-topic"), WithErrorHandler(errs.add))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 100 {
		log.Info("m", "i", i)
	}
	waitFor(t, 60*time.Second, "records to fail", func() bool { return h.Stats().Failed == 100 })
	err = h.Close(closeCtx(t, 10*time.Second))
	var de *DeliveryError
	if !errors.As(err, &de) || !errors.Is(err, ErrUndelivered) || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("close: %v", err)
	}
	if reported := errs.all(); len(reported) == 0 || !errors.Is(reported[0], kerr.UnknownTopicOrPartition) {
		t.Fatalf("reported %v", reported)
	}
}

func TestRecordTooLargeForBrokerFailsOnce(t *testing.T) {
	tb := startBroker(t, nil)
	createTopic(t, tb.addr, "small", 1, map[string]string{"max.message.bytes": "2000"})
	h, err := NewHandler(WithBrokers(tb.addr), WithTopic("small"), WithCompression("none"), WithMaxRecordBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	log.Info("small one")
	log.Info("big one", "blob", strings.Repeat("x", 10000)) // fits MaxRecordBytes, not the topic
	log.Info("huge one", "blob", strings.Repeat("y", 100000))
	log.Info("small two")
	err = h.Close(closeCtx(t, 20*time.Second))
	st := h.Stats()
	if st.Sent != 2 || st.Failed+st.DroppedTooLarge != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The big one fails on its own (and Close reports it) when it went to
	// the producer before the topic's limit was known; if the limit was
	// known by its log call, the call dropped it, which Close does not
	// report. Which happens depends on how fast the broker answered.
	switch {
	case st.Failed > 0 && !errors.Is(err, kerr.MessageTooLarge):
		t.Fatalf("close with %d failed: %v", st.Failed, err)
	case st.Failed == 0 && err != nil:
		t.Fatalf("close with none failed: %v", err)
	}
	// Once the limit is known, a log call drops such a record at once.
	h2, err := NewHandler(WithBrokers(tb.addr), WithTopic("small"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the topic's limit", func() bool { return h2.Shipper().topicLimit.Load() == 2000 })
	slog.New(h2).Info("big", "blob", strings.Repeat("x", 3000))
	if st := h2.Stats(); st.DroppedTooLarge != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := h2.Close(closeCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, tb.addr, "small", 2, 10*time.Second)
	if len(recs) != 2 || !strings.Contains(string(recs[1].Value), "small two") {
		t.Fatalf("topic holds %d records", len(recs))
	}
}

func TestSyncAndCloseReportUndelivered(t *testing.T) {
	g := &gateSink{}
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g), WithSyncTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 10 {
		log.Info("m", "i", i)
	}
	err = h.Sync()
	var de *DeliveryError
	if !errors.As(err, &de) || de.Pending != 10 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync with the broker down: %v", err)
	}
	g.setUp(true)
	if err := h.Sync(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	g.setUp(false)
	log.Info("m", "i", 10)
	err = h.Close(closeCtx(t, 50*time.Millisecond))
	if !errors.As(err, &de) || de.Failed != 1 {
		t.Fatalf("close: %v", err)
	}
	if err := h.Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if err := h.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	before := h.Stats().Dropped
	log.Info("after close")
	if h.Stats().Dropped != before+1 {
		t.Fatalf("a record logged after Close was not counted as dropped: %+v", h.Stats())
	}
}

func TestSyncWaitsOnlyForEarlierRecords(t *testing.T) {
	g := &gateSink{up: true}
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g), WithBuffer(1<<20, 1000))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	log := slog.New(h)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					log.Info("background")
				}
			}
		}()
	}
	// Sync must return while others keep logging.
	for range 5 {
		if err := h.Sync(); err != nil {
			t.Fatalf("sync under load: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestBlockPolicy(t *testing.T) {
	g := &gateSink{}
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g),
		WithBuffer(1<<20, 5), WithBlockOnFull(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 5 {
		log.Info("m", "i", i)
	}
	start := time.Now()
	log.Info("m", "i", 5) // blocks, then drops
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("the full-buffer call returned after %v", d)
	}
	if st := h.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A call that blocks gets in when room frees up meanwhile.
	h2, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g),
		WithBuffer(1<<20, 5), WithBlockOnFull(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	log2 := slog.New(h2)
	for i := range 5 {
		log2.Info("m", "i", i)
	}
	done := make(chan struct{})
	go func() {
		log2.Info("m", "i", 5)
		close(done)
	}()
	waitFor(t, 5*time.Second, "the call to block", func() bool { return h2.Shipper().blockers.Load() == 1 })
	g.setUp(true)
	<-done
	if err := h2.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := h2.Stats(); st.Sent != 6 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestDropPolicyBound(t *testing.T) {
	g := &gateSink{}
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g), WithBuffer(256<<10, 100000),
		WithMaxRecordBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 10000 {
		log.Info("m", "i", i, "pad", strings.Repeat("p", 100))
	}
	st := h.Stats()
	if st.BufferedBytes > 256<<10 || st.Dropped == 0 || st.Enqueued+st.Dropped != 10000 {
		t.Fatalf("stats %+v", st)
	}
	g.setUp(true)
	if err := h.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, g.values(), 0, int(st.Enqueued)) // the first ones, in order
}

func TestCollector(t *testing.T) {
	h, c := newCaptureHandler(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(h.Shipper().Collector()); err != nil {
		t.Fatal(err)
	}
	slog.New(h).Info("one")
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	c.take()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					name += "/" + l.GetValue()
				}
			}
			if m.GetCounter() != nil {
				found[name] = m.GetCounter().GetValue()
			} else {
				found[name] = m.GetGauge().GetValue()
			}
		}
	}
	if found["gregor_appender_records_total/sent"] != 1 || found["gregor_appender_records_total/enqueued"] != 1 ||
		found["gregor_appender_buffer_limit_bytes"] != DefaultBufferBytes {
		t.Fatalf("metrics %v", found)
	}
}

func TestConcurrentLoggingAccounts(t *testing.T) {
	g := &gateSink{up: true}
	h, err := NewHandler(WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(g), WithBuffer(16<<20, 1000),
		WithSpillOnFull(t.TempDir(), 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	var wg sync.WaitGroup
	const workers, each = 8, 3000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				log.Info("m", "w", w, "i", i)
				if i%1000 == 0 {
					g.setUp(i%2000 == 0) // the broker flaps
				}
			}
		}()
	}
	wg.Wait()
	g.setUp(true)
	if err := h.Close(closeCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Records may be dropped (a starved spill writer), but every record is
	// accounted for once, and each goroutine's records arrive in the order
	// it logged them.
	st := h.Stats()
	if st.Enqueued+st.Spilled+st.Dropped != workers*each || st.Sent != st.Enqueued+st.Spilled || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	last := map[float64]float64{}
	for _, v := range g.values() {
		var m struct{ W, I float64 }
		if err := jsonUnmarshal(v, &m); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[m.W]; ok && m.I <= prev {
			t.Fatalf("worker %v: %v after %v", m.W, m.I, prev)
		}
		last[m.W] = m.I
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tb := startBroker(t, nil)
	createTopic(t, tb.addr, "leak", 1, nil)
	for _, policy := range []Option{WithDropOnFull(), WithSpillOnFull(t.TempDir(), 1<<20), WithBlockOnFull(time.Second)} {
		h, err := NewHandler(WithBrokers(tb.addr), WithTopic("leak"), policy)
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).Info("x")
		if err := h.Close(closeCtx(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	core, err := NewCore(WithBrokers("127.0.0.1:1"), WithTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	if err := core.Close(closeCtx(t, time.Second)); err != nil {
		t.Fatal(err)
	}
	tb.stop()
}
