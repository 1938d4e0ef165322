package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Transactions end to end, through standard clients only (franz-go's
// transactional producer and GroupTransactSession, sarama's transactional
// producer, raw kmsg requests where a client has no API for a step).
//
// Offsets are asserted exactly: as in Kafka, each transaction's end
// (commit or abort) writes one control record per partition, which takes
// one offset, and consumers never return control records. So a
// partition's log for "commit 10, abort 5, commit 10" is records 0-9,
// marker 10, records 11-15, marker 16, records 17-26, marker 27, and its
// end offset is 28.

// Isolation levels of ListOffsets and Fetch.
const (
	readUncommitted int8 = 0
	readCommitted   int8 = 1
)

// txnAbortCheckProp is Kafka's broker property for how often timed-out
// transactions are looked for (default 10 s). Tests set it low when the
// broker knows it.
const txnAbortCheckProp = "transaction.abort.timed.out.transaction.cleanup.interval.ms"

// txnProducer returns a transactional franz-go producer (acks=all,
// idempotent) with the given transactional id that writes each record to
// Record.Partition; it is closed at test end.
func txnProducer(t testing.TB, addr, txnID string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return manualClient(t, addr, append([]kgo.Opt{kgo.TransactionalID(txnID)}, opts...)...)
}

// txnValues returns n values per partition, "prefix-p<partition>-000000"..,
// for partitions 0..partitions-1.
func txnValues(prefix string, partitions int32, n int) map[int32][]string {
	out := map[int32][]string{}
	for p := range partitions {
		out[p] = seqValues(fmt.Sprintf("%s-p%d", prefix, p), 0, n)
	}
	return out
}

// txnSend produces vals[p] to topic/p for every partition p and waits for
// every ack. A transaction must be open on cl.
func txnSend(t testing.TB, cl *kgo.Client, topic string, vals map[int32][]string) {
	t.Helper()
	parts := make([]int32, 0, len(vals))
	for p := range vals {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		produceSync(t, cl, topic, p, vals[p]...)
	}
}

// txnRun runs one whole transaction on cl: begin, produce vals (see
// txnSend), then commit or abort as end says.
func txnRun(t testing.TB, cl *kgo.Client, topic string, vals map[int32][]string, end kgo.TransactionEndTry) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin transaction: %v", err)
	}
	txnSend(t, cl, topic, vals)
	txnEnd(t, cl, end)
}

// txnEnd commits or aborts cl's open transaction and fails the test if
// that does not succeed.
func txnEnd(t testing.TB, cl *kgo.Client, end kgo.TransactionEndTry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatalf("end transaction (commit %v): %v", bool(end), err)
	}
}

// listOffsetIso sends ListOffsets for the latest offset (timestamp -1) of
// one partition with the given isolation level and returns it: the high
// watermark for read_uncommitted, the last stable offset for
// read_committed. An error code fails the test.
func listOffsetIso(t testing.TB, cl *kgo.Client, topic string, partition int32, isolation int8) int64 {
	t.Helper()
	off, _, code := listOffsetAt(t, cl, topic, partition, -1, isolation)
	if err := kerr.ErrorForCode(code); err != nil {
		t.Fatalf("list offsets %s/%d (isolation %d): %v", topic, partition, isolation, err)
	}
	return off
}

// checkEnds asserts a partition's read_uncommitted end (high watermark)
// and read_committed end (last stable offset) from ListOffsets.
func checkEnds(t testing.TB, cl *kgo.Client, topic string, partition int32, wantHWM, wantLSO int64, when string) {
	t.Helper()
	hwm := listOffsetIso(t, cl, topic, partition, readUncommitted)
	lso := listOffsetIso(t, cl, topic, partition, readCommitted)
	if hwm != wantHWM || lso != wantLSO {
		t.Fatalf("%s: %s/%d: ListOffsets latest is %d read_uncommitted, %d read_committed; want %d and %d",
			when, topic, partition, hwm, lso, wantHWM, wantLSO)
	}
}

// readPartition reads topic/partition from offset `from` with a franz-go
// consumer (read_committed if committed is set) until it has n records or
// timeout passes, then keeps polling for settle to catch any record past
// the n expected, and returns everything it got.
func readPartition(t testing.TB, addr, topic string, partition int32, from int64, committed bool, n int, timeout, settle time.Duration) []*kgo.Record {
	t.Helper()
	opts := []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := rawClient(t, addr, opts...)
	defer cl.Close()
	recs := pollN(t, cl, n, timeout)
	if len(recs) >= n {
		recs = append(recs, pollN(t, cl, 1, settle)...)
	}
	return recs
}

// fetchIso sends one Fetch for a partition at offset with the given
// isolation level and a short wait, and returns the partition's response;
// an error code fails the test.
func fetchIso(t testing.TB, cl *kgo.Client, topic string, partition int32, offset int64, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	p := fetchOne(t, cl, topic, partition, offset, isolation)
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatalf("fetch %s/%d@%d (isolation %d): %v", topic, partition, offset, isolation, err)
	}
	return p
}

// wantRec is a record a consumer must return: its offset and value.
type wantRec struct {
	offset int64
	value  string
}

// at returns vals as records at consecutive offsets from first.
func at(first int64, vals []string) []wantRec {
	out := make([]wantRec, len(vals))
	for i, v := range vals {
		out[i] = wantRec{first + int64(i), v}
	}
	return out
}

// checkRead asserts a consumer returned exactly want, in order.
func checkRead(t testing.TB, what string, recs []*kgo.Record, want []wantRec) {
	t.Helper()
	for i := 0; i < len(recs) || i < len(want); i++ {
		switch {
		case i >= len(recs):
			t.Fatalf("%s: got %d records, want %d: missing %q at offset %d and on", what, len(recs), len(want), want[i].value, want[i].offset)
		case i >= len(want):
			t.Fatalf("%s: got %d records, want %d: unexpected %q at offset %d", what, len(recs), len(want), recs[i].Value, recs[i].Offset)
		case string(recs[i].Value) != want[i].value || recs[i].Offset != want[i].offset:
			t.Fatalf("%s: record %d is %q at offset %d, want %q at offset %d", what, i, recs[i].Value, recs[i].Offset, want[i].value, want[i].offset)
		}
	}
}

// isFenced reports whether err says the producer's epoch is no longer
// current: another producer took over its transactional id, or its
// transaction was aborted for it.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// isFencedCommit is isFenced for a commit (EndTxn). With KIP-890 (EndTxn
// v5) a broker that bumped the epoch by exactly one when it aborted the
// transaction takes the old epoch for a retried EndTxn of that abort, and
// refuses the commit with INVALID_TXN_STATE instead.
func isFencedCommit(err error) bool {
	return isFenced(err) || errors.Is(err, kerr.InvalidTxnState)
}

// TestTxnCommitAbortVisibility commits, aborts and commits transactions of
// a franz-go transactional producer over three partitions: read_committed
// consumers see exactly the committed records, in order, at their offsets,
// and none of the aborted ones; read_uncommitted consumers see all. While a
// transaction is open (its records acknowledged, not committed), the
// read_committed end (last stable offset) from ListOffsets stays at the
// transaction's first offset while the read_uncommitted end (high
// watermark) is past its records, and a read_committed consumer gets
// nothing past it until the commit, which then wakes it.
func TestTxnCommitAbortVisibility(t *testing.T) {
	t.Parallel()
	const (
		topic      = "txn-visibility"
		partitions = 3
	)
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)
	producer := txnProducer(t, b.Addr, "txn-visibility")

	// Per partition: A at 0-9 (commit marker 10), B at 11-15 (abort marker
	// 16), C at 17-26 (commit marker 27).
	a := txnValues("A-committed", partitions, 10)
	bAborted := txnValues("B-aborted", partitions, 5)
	c := txnValues("C-committed", partitions, 10)
	txnRun(t, producer, topic, a, kgo.TryCommit)
	txnRun(t, producer, topic, bAborted, kgo.TryAbort)
	txnRun(t, producer, topic, c, kgo.TryCommit)

	for p := int32(0); p < partitions; p++ {
		what := fmt.Sprintf("p%d read_committed", p)
		got := readPartition(t, b.Addr, topic, p, 0, true, 20, 30*time.Second, 500*time.Millisecond)
		checkRead(t, what, got, append(at(0, a[p]), at(17, c[p])...))

		what = fmt.Sprintf("p%d read_uncommitted", p)
		got = readPartition(t, b.Addr, topic, p, 0, false, 25, 30*time.Second, 500*time.Millisecond)
		checkRead(t, what, got, slices.Concat(at(0, a[p]), at(11, bAborted[p]), at(17, c[p])))

		checkEnds(t, admin, topic, p, 28, 28, "after the last commit")
	}

	// D is open: its records at 28-32 are acknowledged but not committed.
	d := txnValues("D-open", partitions, 5)
	if err := producer.BeginTransaction(); err != nil {
		t.Fatalf("begin transaction D: %v", err)
	}
	txnSend(t, producer, topic, d)
	pid, _, err := producer.ProducerID(testCtx(t, requestTimeout))
	if err != nil {
		t.Fatalf("producer id: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 33, 28, "transaction D open")
		got := readPartition(t, b.Addr, topic, p, 28, false, 5, 30*time.Second, 200*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_uncommitted, D open", p), got, at(28, d[p]))

		// The fetch itself, read_committed: the broker returns nothing
		// past the last stable offset, and lists B as aborted.
		what := fmt.Sprintf("p%d read_committed Fetch@0, D open", p)
		fp := fetchIso(t, admin, topic, p, 0, readCommitted)
		if fp.HighWatermark != 33 || fp.LastStableOffset != 28 {
			t.Fatalf("%s: high watermark %d, last stable offset %d; want 33 and 28", what, fp.HighWatermark, fp.LastStableOffset)
		}
		batches := parseBatchHeaders(fp.RecordBatches)
		if len(batches) == 0 || batches[len(batches)-1].LastOffset != 27 {
			t.Fatalf("%s: batches %+v, want them to end at offset 27 (C's commit marker)", what, batches)
		}
		if len(fp.AbortedTransactions) != 1 || fp.AbortedTransactions[0].ProducerID != pid || fp.AbortedTransactions[0].FirstOffset != 11 {
			t.Fatalf("%s: aborted transactions %+v, want one: producer %d from offset 11", what, fp.AbortedTransactions, pid)
		}
		fp = fetchIso(t, admin, topic, p, 28, readCommitted)
		if len(fp.RecordBatches) != 0 || fp.LastStableOffset != 28 {
			t.Fatalf("p%d read_committed Fetch@28, D open: %d bytes of batches %+v, last stable offset %d; want none, 28",
				p, len(fp.RecordBatches), parseBatchHeaders(fp.RecordBatches), fp.LastStableOffset)
		}
	}

	// A read_committed consumer positioned at the last stable offset gets
	// nothing while D is open, then D's records once it commits.
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offsets[p] = kgo.NewOffset().At(28)
	}
	waiting := newClient(t, b.Addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if early := pollN(t, waiting, 1, 1500*time.Millisecond); len(early) > 0 {
		t.Fatalf("read_committed consumer got %q at %s/%d@%d while its transaction is open",
			early[0].Value, early[0].Topic, early[0].Partition, early[0].Offset)
	}
	txnEnd(t, producer, kgo.TryCommit)
	got := pollN(t, waiting, 3*5, 30*time.Second)
	got = append(got, pollN(t, waiting, 1, 300*time.Millisecond)...)
	byPart := map[int32][]*kgo.Record{}
	for _, r := range got {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	for p := int32(0); p < partitions; p++ {
		checkRead(t, fmt.Sprintf("p%d read_committed after D's commit", p), byPart[p], at(28, d[p]))
		checkEnds(t, admin, topic, p, 34, 34, "after D's commit")
	}
}

// eosMember is one member of the consume-transform-produce group of
// TestTxnEOSGroupSession.
type eosMember struct {
	name    string
	s       *kgo.GroupTransactSession
	done    chan error    // the loop's result; nil when it stopped as asked
	closed  bool          // s is closed
	crashed []*kgo.Record // what it left in its open transaction; valid once done says errCrashed
}

// errCrashed is what a member's loop returns when it stopped mid
// transaction as told (see eosLoop).
var errCrashed = errors.New("stopped mid-transaction")

// eosLoop is a consume-transform-produce loop: each transaction polls up
// to 100 input records, produces "out:"+value for each to the same
// partition of topic out, and commits, with the consumed offsets. It runs
// until stop is closed. With crashAfter > 0 it stops after that many
// committed transactions with records: it begins one more, produces and
// flushes its records (kept in m.crashed), and returns errCrashed with the
// transaction open, as a process that died there would leave it.
func eosLoop(m *eosMember, out string, stop <-chan struct{}, crashAfter int) error {
	s := m.s
	committed := 0
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		pollCtx, cancelPoll := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := s.PollRecords(pollCtx, 100)
		cancelPoll()
		var loopErr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && loopErr == nil {
				loopErr = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
		})
		in := fs.Records()
		outRecs := make([]*kgo.Record, len(in))
		for i, r := range in {
			outRecs[i] = &kgo.Record{Topic: out, Partition: r.Partition, Value: append([]byte("out:"), r.Value...)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if loopErr == nil && len(outRecs) > 0 {
			loopErr = s.ProduceSync(ctx, outRecs...).FirstErr()
		}
		if loopErr != nil {
			_, _ = s.End(ctx, kgo.TryAbort)
			cancel()
			return loopErr
		}
		if crashAfter > 0 && committed >= crashAfter && len(in) > 0 {
			cancel()
			m.crashed = outRecs
			return errCrashed
		}
		ok, err := s.End(ctx, kgo.TryCommit)
		cancel()
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if ok && len(in) > 0 {
			committed++
		}
	}
}

// TestTxnEOSGroupSession runs a consume-transform-produce group of franz-go
// GroupTransactSessions from a 4-partition input topic of 5,000 records to
// an output topic, committing the consumed offsets in each transaction.
// Two members start together; once the first has committed three
// transactions it produces (and flushes) one more batch and leaves the
// group without ending that transaction, as if its process died there
// (the output's last stable offset stays at or before its records); a
// replacement with the same transactional id joins, and initialising it
// aborts the dead member's transaction. When the group's committed
// offsets reach the input's ends, every output partition read with
// read_committed holds its input partition's records, transformed, each
// exactly once and in input order.
func TestTxnEOSGroupSession(t *testing.T) {
	t.Parallel()
	const (
		in         = "eos-in"
		out        = "eos-out"
		group      = "eos-group"
		partitions = 4
		perPart    = 1250 // 5,000 records
	)
	b := StartBroker(t)
	admin := manualClient(t, b.Addr)
	createTopic(t, admin, in, partitions, nil)
	createTopic(t, admin, out, partitions, nil)
	input := txnValues("in", partitions, perPart)
	for p := int32(0); p < partitions; p++ {
		produceSync(t, admin, in, p, input[p]...)
	}

	stop := make(chan struct{})
	var members []*eosMember
	start := func(name, txnID string, crashAfter int) *eosMember {
		s, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(b.Addr),
			kgo.TransactionalID(txnID),
			kgo.TransactionTimeout(20*time.Second),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(100*time.Millisecond),
			kgo.SessionTimeout(6*time.Second),
			kgo.HeartbeatInterval(200*time.Millisecond),
		)
		if err != nil {
			t.Fatalf("member %s: new session: %v", name, err)
		}
		m := &eosMember{name: name, s: s, done: make(chan error, 1)}
		members = append(members, m)
		if crashAfter == 0 {
			// Initialise the producer id now: for a replacement this
			// aborts what its predecessor left open.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, _, err := s.Client().ProducerID(ctx); err != nil {
				t.Fatalf("member %s: init producer id: %v", name, err)
			}
		}
		go func() { m.done <- eosLoop(m, out, stop, crashAfter) }() // ends when stop is closed (or it crashes)
		return m
	}
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		close(stop)
		for _, m := range members {
			if err := <-m.done; err != nil && !errors.Is(err, errCrashed) {
				t.Errorf("member %s: %v", m.name, err)
			}
			if !m.closed {
				m.s.Close()
			}
		}
	}
	defer stopAll()

	doomed := start("m1", "eos-m1", 3)
	start("m2", "eos-m2", 0)
	select {
	case err := <-doomed.done:
		if !errors.Is(err, errCrashed) {
			t.Fatalf("member m1 ended before its crash: %v", err)
		}
		doomed.done <- err // for stopAll
	case <-time.After(30 * time.Second):
		t.Fatal("member m1 did not commit three transactions within 30s")
	}
	doomed.s.Close() // leaves the group; its transaction stays open
	doomed.closed = true
	// The dead member's transaction holds each partition it wrote to at
	// or before its first record there, until the replacement aborts it.
	first, last := map[int32]int64{}, map[int32]int64{}
	for _, r := range doomed.crashed {
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
		last[r.Partition] = r.Offset
	}
	for p, off := range first {
		if lso := listOffsetIso(t, admin, out, p, readCommitted); lso > off {
			t.Fatalf("output p%d: last stable offset %d while m1's open transaction has a record at %d", p, lso, off)
		}
	}
	start("m1-restarted", "eos-m1", 0)
	eventually(t, 10*time.Second, "the replacement's init aborts m1's transaction", func() error {
		for p, off := range last {
			if lso := listOffsetIso(t, admin, out, p, readCommitted); lso <= off {
				return fmt.Errorf("output p%d: last stable offset %d, m1's last record at %d", p, lso, off)
			}
		}
		return nil
	})
	t.Logf("m1 died with %d records in its open transaction, on output partitions %v", len(doomed.crashed), slices.Sorted(maps.Keys(first)))

	eventually(t, 30*time.Second, "group commits every input offset", func() error {
		got := committedOffsets(t, admin, group, in)
		for p := int32(0); p < partitions; p++ {
			if got[p] != perPart {
				return fmt.Errorf("committed offsets %v, want %d for each of %d partitions", got, perPart, partitions)
			}
		}
		return nil
	})
	stopAll()

	got := committedOffsets(t, admin, group, in)
	for p := int32(0); p < partitions; p++ {
		if got[p] != perPart {
			t.Errorf("committed offsets after the members stopped: %v, want %d for each of %d partitions", got, perPart, partitions)
			break
		}
	}
	for p := int32(0); p < partitions; p++ {
		recs := readPartition(t, b.Addr, out, p, 0, true, perPart, 30*time.Second, 500*time.Millisecond)
		want := make([]string, perPart)
		for i, v := range input[p] {
			want[i] = "out:" + v
		}
		if d := diffStrings(values(recs), want); d != "" {
			t.Errorf("output p%d read_committed: %s", p, d)
			continue
		}
		hwm := listOffsetIso(t, admin, out, p, readUncommitted)
		lso := listOffsetIso(t, admin, out, p, readCommitted)
		if lso != hwm {
			t.Errorf("output p%d: last stable offset %d, high watermark %d: a transaction is still open", p, lso, hwm)
		}
		t.Logf("output p%d: %d records committed, log end %d (the rest aborted records and markers)", p, len(recs), hwm)
	}
}

// TestTxnFencing: each new franz-go producer with a transactional id
// fences the one before it. Initialising the new one aborts the old one's
// open transaction (an abort marker), and the old one then fails with a
// fencing error (PRODUCER_FENCED or INVALID_PRODUCER_EPOCH) whichever way
// it reaches the broker: EndTxn (its commit), Produce to a partition
// already in its transaction, AddPartitionsToTxn (a produce to a new
// partition). None of the fenced transactions' records reach
// read_committed consumers; the last producer's transaction commits and
// is seen.
func TestTxnFencing(t *testing.T) {
	t.Parallel()
	const (
		topic = "txn-fencing"
		txnID = "txn-fencing"
	)
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, 2, nil)
	ctx := testCtx(t, 60*time.Second)

	// takeOver starts a producer with txnID, initialises it (fencing the
	// previous one) and checks it got a newer epoch than prev's.
	var prevID int64 = -1
	var prevEpoch int16 = -1
	takeOver := func(name string) *kgo.Client {
		t.Helper()
		cl := txnProducer(t, b.Addr, txnID)
		id, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatalf("%s: init producer id: %v", name, err)
		}
		if id == prevID && epoch <= prevEpoch {
			t.Fatalf("%s: got producer id %d epoch %d, not newer than the fenced producer's epoch %d", name, id, epoch, prevEpoch)
		}
		t.Logf("%s: producer id %d epoch %d", name, id, epoch)
		prevID, prevEpoch = id, epoch
		return cl
	}
	begin := func(name string, cl *kgo.Client) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("%s: begin: %v", name, err)
		}
	}
	noneCommitted := func(when string) {
		t.Helper()
		for p := int32(0); p < 2; p++ {
			if got := readPartition(t, b.Addr, topic, p, 0, true, 0, 0, 500*time.Millisecond); len(got) > 0 {
				t.Fatalf("%s: read_committed returned a fenced transaction's %q at p%d@%d", when, got[0].Value, p, got[0].Offset)
			}
		}
	}

	// 1. The commit of a fenced producer. p0: 0-4, abort marker 5.
	first := takeOver("first")
	begin("first", first)
	fenced1 := txnValues("fenced1", 1, 5)
	txnSend(t, first, topic, fenced1)
	checkEnds(t, admin, topic, 0, 5, 0, "first producer's transaction open")
	second := takeOver("second")
	checkEnds(t, admin, topic, 0, 6, 6, "after the second producer's init")
	if err := first.EndTransaction(ctx, kgo.TryCommit); !isFencedCommit(err) {
		t.Errorf("fenced producer's commit: got error %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH (or INVALID_TXN_STATE, EndTxn v5)", err)
	} else {
		t.Logf("fenced producer's commit: %v", err)
	}
	noneCommitted("after the first producer's commit attempt")
	checkEnds(t, admin, topic, 0, 6, 6, "after the first producer's commit attempt")

	// 2. A produce of a fenced producer to a partition already in its
	// transaction. p0: 6-8, abort marker 9; the late record is refused.
	begin("second", second)
	fenced2 := txnValues("fenced2", 1, 3)
	txnSend(t, second, topic, fenced2)
	third := takeOver("third")
	checkEnds(t, admin, topic, 0, 10, 10, "after the third producer's init")
	err := second.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("fenced2-late")}).FirstErr()
	if !isFenced(err) {
		t.Errorf("fenced producer's produce to p0: got error %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	noneCommitted("after the second producer's late produce")
	checkEnds(t, admin, topic, 0, 10, 10, "after the second producer's late produce")

	// 3. A fenced producer's produce to a partition new to its
	// transaction (AddPartitionsToTxn). p0: 10-12, abort marker 13.
	begin("third", third)
	fenced3 := txnValues("fenced3", 1, 3)
	txnSend(t, third, topic, fenced3)
	last := takeOver("last")
	checkEnds(t, admin, topic, 0, 14, 14, "after the last producer's init")
	err = third.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("fenced3-late")}).FirstErr()
	if !isFenced(err) {
		t.Errorf("fenced producer's produce to p1: got error %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	noneCommitted("after the third producer's late produce")
	checkEnds(t, admin, topic, 1, 0, 0, "after the third producer's late produce")

	// The last producer works: p0 at 14-16, marker 17; p1 at 0-2, marker 3.
	good := txnValues("last", 2, 3)
	txnRun(t, last, topic, good, kgo.TryCommit)
	checkRead(t, "p0 read_committed", readPartition(t, b.Addr, topic, 0, 0, true, 3, 30*time.Second, 500*time.Millisecond), at(14, good[0]))
	checkRead(t, "p1 read_committed", readPartition(t, b.Addr, topic, 1, 0, true, 3, 30*time.Second, 500*time.Millisecond), at(0, good[1]))
	checkRead(t, "p0 read_uncommitted", readPartition(t, b.Addr, topic, 0, 0, false, 14, 30*time.Second, 500*time.Millisecond),
		slices.Concat(at(0, fenced1[0]), at(6, fenced2[0]), at(10, fenced3[0]), at(14, good[0])))
	checkEnds(t, admin, topic, 0, 18, 18, "after the last producer's commit")
	checkEnds(t, admin, topic, 1, 4, 4, "after the last producer's commit")
}

// TestTxnTimeoutAborts: a franz-go producer with a 3 s transaction timeout
// produces in a transaction and then stalls. The broker aborts the
// transaction by itself: the last stable offset moves past it (an abort
// marker), read_committed consumers reach the end without seeing its
// records, and the stalled producer's commit then fails. A new producer
// with the same transactional id then commits normally.
func TestTxnTimeoutAborts(t *testing.T) {
	t.Parallel()
	const topic = "txn-timeout"
	b := StartBroker(t, WithSet(txnAbortCheckProp+"=200"))
	admin := b.Client()
	createTopic(t, admin, topic, 2, nil)

	stalled := txnProducer(t, b.Addr, "txn-timeout", kgo.TransactionTimeout(3*time.Second))
	if err := stalled.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	vals := txnValues("timed-out", 2, 5)
	began := time.Now()
	txnSend(t, stalled, topic, vals)
	for p := int32(0); p < 2; p++ {
		checkEnds(t, admin, topic, p, 5, 0, "transaction open")
	}

	eventually(t, 20*time.Second, "broker aborts the timed-out transaction", func() error {
		for p := int32(0); p < 2; p++ {
			if lso := listOffsetIso(t, admin, topic, p, readCommitted); lso != 6 {
				return fmt.Errorf("p%d: last stable offset %d, want 6 (after the abort marker at 5)", p, lso)
			}
		}
		return nil
	})
	took := time.Since(began)
	t.Logf("transaction aborted %v after its first produce (timeout 3s)", took.Round(time.Millisecond))
	if took < 3*time.Second {
		t.Errorf("transaction aborted after %v, before its 3s timeout", took)
	}
	for p := int32(0); p < 2; p++ {
		checkEnds(t, admin, topic, p, 6, 6, "after the timeout")
		if got := readPartition(t, b.Addr, topic, p, 0, true, 0, 0, time.Second); len(got) > 0 {
			t.Fatalf("p%d: read_committed returned the timed-out transaction's %q at offset %d", p, got[0].Value, got[0].Offset)
		}
	}

	ctx := testCtx(t, 30*time.Second)
	if err := stalled.EndTransaction(ctx, kgo.TryCommit); !isFencedCommit(err) {
		t.Errorf("committing the timed-out transaction: got error %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH (or INVALID_TXN_STATE, EndTxn v5)", err)
	} else {
		t.Logf("committing the timed-out transaction: %v", err)
	}
	if got := readPartition(t, b.Addr, topic, 0, 0, true, 0, 0, time.Second); len(got) > 0 {
		t.Fatalf("read_committed returned the timed-out transaction's %q at offset %d after its commit attempt", got[0].Value, got[0].Offset)
	}

	next := txnProducer(t, b.Addr, "txn-timeout")
	after := txnValues("after", 2, 3)
	txnRun(t, next, topic, after, kgo.TryCommit)
	for p := int32(0); p < 2; p++ {
		got := readPartition(t, b.Addr, topic, p, 0, true, 3, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed", p), got, at(6, after[p]))
	}
}

// TestTxnSurvivesKill9: a committed transaction and an open one (records
// acknowledged, not committed) on two partitions, then kill -9 and
// restart. The committed records are still visible to read_committed
// consumers and the open transaction is still open (its records are on
// the log, the last stable offset stays before them); a new producer with
// the same transactional id initialises, which aborts it, and
// read_committed consumers never see its records. A new transaction then
// commits, survives a second kill -9, and the producer that wrote it
// commits again after that restart.
func TestTxnSurvivesKill9(t *testing.T) {
	t.Parallel()
	const (
		topic      = "txn-kill9"
		partitions = 2
		txnID      = "txn-kill9"
	)
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)

	// Per partition: committed at 0-9 (marker 10), open at 11-20.
	before := rawClient(t, b.Addr, kgo.TransactionalID(txnID), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60*time.Second))
	committed := txnValues("committed", partitions, 10)
	txnRun(t, before, topic, committed, kgo.TryCommit)
	open := txnValues("open", partitions, 10)
	if err := before.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	txnSend(t, before, topic, open)
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 21, 11, "before kill -9")
	}
	before.Close() // sends no EndTxn: the transaction stays open

	b.Kill9()
	b.Start()

	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 21, 11, "after kill -9, transaction still open")
		got := readPartition(t, b.Addr, topic, p, 0, true, 10, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed after kill -9", p), got, at(0, committed[p]))
	}

	after := txnProducer(t, b.Addr, txnID)
	ctx := testCtx(t, 60*time.Second)
	if _, _, err := after.ProducerID(ctx); err != nil {
		t.Fatalf("new producer after restart: init producer id: %v", err)
	}
	// Abort marker at 21.
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 22, 22, "after the new producer's init")
		got := readPartition(t, b.Addr, topic, p, 0, true, 10, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed after the abort", p), got, at(0, committed[p]))
		got = readPartition(t, b.Addr, topic, p, 0, false, 20, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_uncommitted after the abort", p), got, append(at(0, committed[p]), at(11, open[p])...))
	}

	// A new transaction: 22-26, marker 27.
	third := txnValues("third", partitions, 5)
	txnRun(t, after, topic, third, kgo.TryCommit)
	wantCommitted := func(p int32) []wantRec { return append(at(0, committed[p]), at(22, third[p])...) }
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 28, 28, "after the third transaction")
		got := readPartition(t, b.Addr, topic, p, 0, true, 15, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed after the third transaction", p), got, wantCommitted(p))
	}

	b.Kill9()
	b.Start()
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 28, 28, "after the second kill -9")
		got := readPartition(t, b.Addr, topic, p, 0, true, 15, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed after the second kill -9", p), got, wantCommitted(p))
	}
	// The producer from before the second crash keeps its id and epoch: 28-30, marker 31.
	fourth := txnValues("fourth", partitions, 3)
	txnRun(t, after, topic, fourth, kgo.TryCommit)
	for p := int32(0); p < partitions; p++ {
		checkEnds(t, admin, topic, p, 32, 32, "after the fourth transaction")
		got := readPartition(t, b.Addr, topic, p, 0, true, 18, 30*time.Second, 500*time.Millisecond)
		checkRead(t, fmt.Sprintf("p%d read_committed after the fourth transaction", p), got, append(wantCommitted(p), at(28, fourth[p])...))
	}
}

// TestTxnSarama: sarama's transactional producer (idempotent, acks=all,
// one request in flight) commits a transaction, aborts one and commits
// another over two partitions; a sarama consumer with read_committed
// gets exactly the committed messages at their offsets, one with
// read_uncommitted gets every message.
func TestTxnSarama(t *testing.T) {
	t.Parallel()
	const topic = "txn-sarama"
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, 2, nil)

	cfg := saramaConfig(true)
	cfg.Producer.Transaction.ID = "txn-sarama"
	cfg.Producer.Transaction.Retry.Backoff = 20 * time.Millisecond
	producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	if err != nil {
		t.Fatalf("sarama transactional producer: %v", err)
	}
	defer producer.Close()
	if !producer.IsTransactional() {
		t.Fatal("sarama producer is not transactional")
	}

	// Per partition: first at 0-9 (marker 10), aborted at 11-15 (marker
	// 16), second at 17-21 (marker 22).
	first := txnValues("first", 2, 10)
	aborted := txnValues("aborted", 2, 5)
	second := txnValues("second", 2, 5)
	run := func(name string, vals map[int32][]string, commit bool) {
		t.Helper()
		if err := producer.BeginTxn(); err != nil {
			t.Fatalf("%s: begin: %v", name, err)
		}
		var msgs []*sarama.ProducerMessage
		for p := int32(0); p < 2; p++ {
			for _, v := range vals[p] {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(v)})
			}
		}
		if err := producer.SendMessages(msgs); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		if commit {
			err = producer.CommitTxn()
		} else {
			err = producer.AbortTxn()
		}
		if err != nil {
			t.Fatalf("%s: end (commit %v): %v", name, commit, err)
		}
	}
	run("first", first, true)
	run("aborted", aborted, false)
	run("second", second, true)

	read := func(isolation sarama.IsolationLevel, p int32, want []wantRec) {
		t.Helper()
		ccfg := saramaConfig(false)
		ccfg.Consumer.IsolationLevel = isolation
		consumer, err := sarama.NewConsumer([]string{b.Addr}, ccfg)
		if err != nil {
			t.Fatalf("sarama consumer: %v", err)
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume partition %d: %v", p, err)
		}
		defer pc.Close()
		deadline := time.After(30 * time.Second)
		for i, w := range want {
			select {
			case m := <-pc.Messages():
				if string(m.Value) != w.value || m.Offset != w.offset {
					t.Fatalf("isolation %d p%d: message %d is %q at %d, want %q at %d", isolation, p, i, m.Value, m.Offset, w.value, w.offset)
				}
			case err := <-pc.Errors():
				t.Fatalf("isolation %d p%d: consumer error: %v", isolation, p, err)
			case <-deadline:
				t.Fatalf("isolation %d p%d: timed out after %d of %d messages", isolation, p, i, len(want))
			}
		}
		select {
		case m := <-pc.Messages():
			t.Fatalf("isolation %d p%d: unexpected message %q at %d after the last expected one", isolation, p, m.Value, m.Offset)
		case err := <-pc.Errors():
			t.Fatalf("isolation %d p%d: consumer error: %v", isolation, p, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	for p := int32(0); p < 2; p++ {
		read(sarama.ReadCommitted, p, append(at(0, first[p]), at(17, second[p])...))
		read(sarama.ReadUncommitted, p, slices.Concat(at(0, first[p]), at(11, aborted[p]), at(17, second[p])))
		checkEnds(t, admin, topic, p, 23, 23, "after sarama's transactions")
	}
}

// txnRequest issues a raw request with cl, retrying for up to 15 s while
// the response's error code (read by code) is retriable, such as
// CONCURRENT_TRANSACTIONS or COORDINATOR_LOAD_IN_PROGRESS. It returns the
// last response and its error code.
func txnRequest[R kmsg.Response](t testing.TB, cl *kgo.Client, req kmsg.Request, code func(R) int16) (R, int16) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		kresp, err := cl.Request(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		resp := kresp.(R)
		c := code(resp)
		if err := kerr.ErrorForCode(c); err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return resp, c
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// offsetFetch returns the committed offset and error code of
// group's topic/partition from OffsetFetch (v7 or later), sent with c.
func offsetFetch(t testing.TB, c *kgo.Client, group, topic string, partition int32, requireStable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.RequireStable = requireStable
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, c)
	if err != nil {
		t.Fatalf("offset fetch (require stable %v): %v", requireStable, err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("offset fetch (require stable %v, v%d): group error %v", requireStable, resp.Version, kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp.Version < 7 {
		t.Fatalf("offset fetch was sent as v%d, want 7 or later (RequireStable)", resp.Version)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("offset fetch: malformed response %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// stableOffsets checks a group's committed offset of one partition with
// OffsetFetch, sent by each of its clients (of different versions).
type stableOffsets struct {
	t       testing.TB
	clients []*kgo.Client
	group   string
	topic   string
}

// check asserts every client gets wantCode and, when that is 0, wantOffset.
func (o stableOffsets) check(when string, requireStable bool, wantOffset int64, wantCode int16) {
	o.t.Helper()
	for _, c := range o.clients {
		off, code := offsetFetch(o.t, c, o.group, o.topic, 0, requireStable)
		if code != wantCode || (wantCode == 0 && off != wantOffset) {
			o.t.Fatalf("%s: OffsetFetch (require stable %v) gave offset %d, error %v; want offset %d, error %v",
				when, requireStable, off, kerr.ErrorForCode(code), wantOffset, kerr.ErrorForCode(wantCode))
		}
	}
}

// stableAt waits until every client gets offset want with RequireStable.
func (o stableOffsets) stableAt(what string, want int64) {
	o.t.Helper()
	eventually(o.t, 10*time.Second, what, func() error {
		for _, c := range o.clients {
			if off, code := offsetFetch(o.t, c, o.group, o.topic, 0, true); code != 0 || off != want {
				return fmt.Errorf("offset %d, error %v; want %d", off, kerr.ErrorForCode(code), want)
			}
		}
		return nil
	})
}

// commitPlain commits offset for group's topic/partition 0 outside any
// transaction, as a group with no members (generation -1), with c.
func commitPlain(t testing.TB, c *kgo.Client, group, topic string, offset int64) {
	t.Helper()
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group = group
	commit.Generation = -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = topic
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset, cp.LeaderEpoch = 0, offset, -1
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	_, code := txnRequest(t, c, commit, func(r *kmsg.OffsetCommitResponse) int16 {
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			t.Fatalf("offset commit: malformed response %+v", r)
		}
		return r.Topics[0].Partitions[0].ErrorCode
	})
	if code != 0 {
		t.Fatalf("offset commit: %v", kerr.ErrorForCode(code))
	}
}

// TestTxnOffsetFetchRequireStable: offsets committed in a transaction
// (AddOffsetsToTxn, TxnOffsetCommit through raw requests) are pending until
// the transaction ends. Meanwhile OffsetFetch with RequireStable (v7 and
// v8) answers UNSTABLE_OFFSET_COMMIT for the partition, and without it the
// offset committed before. After the commit the new offset is returned;
// offsets of an aborted transaction are dropped.
func TestTxnOffsetFetchRequireStable(t *testing.T) {
	t.Parallel()
	const (
		topic = "txn-stable"
		group = "txn-stable-group"
		txnID = "txn-stable"
	)
	b := StartBroker(t)
	cl := b.Client()
	createTopic(t, cl, topic, 1, nil)
	produceSync(t, manualClient(t, b.Addr), topic, 0, seqValues("v", 0, 20)...)
	// A client speaking Kafka 2.8's versions (OffsetFetch v7; OffsetCommit
	// and TxnOffsetCommit by topic name; no KIP-890) sends the
	// transactional requests; OffsetFetch is checked with it and with the
	// newest version.
	kafka28 := b.Client(kgo.MaxVersions(kversion.V2_8_0()))
	offsets := stableOffsets{t: t, clients: []*kgo.Client{kafka28, cl}, group: group, topic: topic}

	commitPlain(t, kafka28, group, topic, 3)
	offsets.check("before the transaction", true, 3, 0)

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr(txnID)
	init.TransactionTimeoutMillis = 60000
	init.ProducerID, init.ProducerEpoch = -1, -1
	ir, code := txnRequest(t, kafka28, init, func(r *kmsg.InitProducerIDResponse) int16 { return r.ErrorCode })
	if code != 0 {
		t.Fatalf("init producer id: %v", kerr.ErrorForCode(code))
	}
	tx := rawTxn{cl: kafka28, id: txnID, pid: ir.ProducerID, epoch: ir.ProducerEpoch}

	tx.commitOffset(t, group, topic, 0, 7)
	offsets.check("transaction with offset 7 open", true, 0, kerr.UnstableOffsetCommit.Code)
	offsets.check("transaction with offset 7 open", false, 3, 0)
	tx.end(t, true)
	offsets.stableAt("offset 7 stable after the commit", 7)
	offsets.check("after the commit", false, 7, 0)

	tx.commitOffset(t, group, topic, 0, 9)
	offsets.check("transaction with offset 9 open", true, 0, kerr.UnstableOffsetCommit.Code)
	offsets.check("transaction with offset 9 open", false, 7, 0)
	tx.end(t, false)
	offsets.stableAt("offset 7 stable again after the abort", 7)
}

// TestTxnPendingOffsetsSurviveKill9: a transaction with records and
// offsets, as a consume-transform-produce loop makes, is open across kill
// -9. The producer is franz-go's (it adds the output partition and ends
// the transaction); the offsets are committed in it with raw requests
// under its producer id and epoch. After the restart the offsets are
// still pending (UNSTABLE_OFFSET_COMMIT with RequireStable, the old
// offset without), and the producer's commit then makes the records and
// the offsets visible together, as Kafka does: records committed without
// their offsets would be consumed and transformed again.
func TestTxnPendingOffsetsSurviveKill9(t *testing.T) {
	t.Parallel()
	const (
		in    = "txn-pending-in"
		out   = "txn-pending-out"
		group = "txn-pending-group"
		txnID = "txn-pending"
	)
	b := StartBroker(t)
	cl := b.Client()
	createTopic(t, cl, in, 1, nil)
	createTopic(t, cl, out, 1, nil)
	produceSync(t, manualClient(t, b.Addr), in, 0, seqValues("v", 0, 20)...)
	kafka28 := b.Client(kgo.MaxVersions(kversion.V2_8_0())) // see TestTxnOffsetFetchRequireStable
	offsets := stableOffsets{t: t, clients: []*kgo.Client{kafka28, cl}, group: group, topic: in}
	commitPlain(t, kafka28, group, in, 7)

	eos := txnProducer(t, b.Addr, txnID, kgo.MaxVersions(kversion.V2_8_0()))
	if err := eos.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	produceSync(t, eos, out, 0, "eos-0", "eos-1")
	ctx := testCtx(t, 60*time.Second)
	pid, epoch, err := eos.ProducerID(ctx)
	if err != nil {
		t.Fatalf("producer id: %v", err)
	}
	tx := rawTxn{cl: eos, id: txnID, pid: pid, epoch: epoch}
	tx.commitOffset(t, group, in, 0, 11)
	offsets.check("transaction with records and offset 11 open", true, 0, kerr.UnstableOffsetCommit.Code)
	checkEnds(t, cl, out, 0, 2, 0, "transaction with records and offset 11 open")

	b.Kill9()
	b.Start()
	checkEnds(t, cl, out, 0, 2, 0, "after kill -9, transaction with records and offset 11 open")
	// Errors, not fatal: what the commit then does tells more.
	for _, c := range offsets.clients {
		off, code := offsetFetch(t, c, group, in, 0, true)
		if code != kerr.UnstableOffsetCommit.Code {
			t.Errorf("after kill -9, transaction with records and offset 11 open: OffsetFetch (require stable) gave offset %d, error %v; want UNSTABLE_OFFSET_COMMIT (the pending offset is lost)",
				off, kerr.ErrorForCode(code))
		}
		if off, code := offsetFetch(t, c, group, in, 0, false); code != 0 || off != 7 {
			t.Errorf("after kill -9, transaction with records and offset 11 open: OffsetFetch gave offset %d, error %v; want 7", off, kerr.ErrorForCode(code))
		}
	}
	if err := eos.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after kill -9: %v (the transaction must survive the restart)", err)
	}
	checkRead(t, "output read_committed after the commit", readPartition(t, b.Addr, out, 0, 0, true, 2, 30*time.Second, 300*time.Millisecond),
		at(0, []string{"eos-0", "eos-1"}))
	offsets.stableAt("the offset committed with the records (11): a transaction commits its records and offsets together", 11)
	offsets.check("after the commit", false, 11, 0)
}

// rawTxn is a transactional producer's identity, for transactional
// requests sent raw with cl.
type rawTxn struct {
	cl    *kgo.Client
	id    string
	pid   int64
	epoch int16
}

// commitOffset adds group to the transaction (AddOffsetsToTxn) and commits
// offset for topic/partition in it (TxnOffsetCommit, as a group with no
// members: generation -1).
func (tx rawTxn) commitOffset(t testing.TB, group, topic string, partition int32, offset int64) {
	t.Helper()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = tx.id, tx.pid, tx.epoch, group
	if _, code := txnRequest(t, tx.cl, add, func(r *kmsg.AddOffsetsToTxnResponse) int16 { return r.ErrorCode }); code != 0 {
		t.Fatalf("add offsets to txn: %v", kerr.ErrorForCode(code))
	}
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch = tx.id, group, tx.pid, tx.epoch
	tc.Generation = -1
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic = topic
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Partition, tp.Offset, tp.LeaderEpoch = partition, offset, -1
	tt.Partitions = append(tt.Partitions, tp)
	tc.Topics = append(tc.Topics, tt)
	_, code := txnRequest(t, tx.cl, tc, func(r *kmsg.TxnOffsetCommitResponse) int16 {
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			t.Fatalf("txn offset commit: malformed response %+v", r)
		}
		return r.Topics[0].Partitions[0].ErrorCode
	})
	if code != 0 {
		t.Fatalf("txn offset commit: %v", kerr.ErrorForCode(code))
	}
}

// end commits or aborts the transaction with EndTxn.
func (tx rawTxn) end(t testing.TB, commit bool) {
	t.Helper()
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = tx.id, tx.pid, tx.epoch, commit
	if _, code := txnRequest(t, tx.cl, end, func(r *kmsg.EndTxnResponse) int16 { return r.ErrorCode }); code != 0 {
		t.Fatalf("end txn (commit %v): %v", commit, kerr.ErrorForCode(code))
	}
}
