package broker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnProduce produces values to topic in one transaction of cl and ends
// it with commit.
func txnProduce(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// readValues reads topic from the start with the given isolation level
// until no record comes for a second (control records are never
// returned, so a partition's end offset may never be reached).
func readValues(t *testing.T, b *Broker, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := newClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond))
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, string(r.Value))
			n++
		})
		if n == 0 {
			break
		}
	}
	slices.Sort(out)
	return out
}

// listEnds returns the end offset of each of topic's two partitions.
func listEnds(t *testing.T, cl *kgo.Client, topic string, committed bool) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	if committed {
		req.IsolationLevel = 1
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(2) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("list offsets: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		ends[p.Partition] = p.Offset
	}
	return ends
}

// TestTransactionsCommitAbort: committed transactions are seen by both
// isolation levels, aborted ones only by read_uncommitted; an open
// transaction holds the last stable offset back; state survives a
// restart, and a producer with the same transactional id fences the old
// one and aborts its open transaction.
func TestTransactionsCommitAbort(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	admin := newClient(t, b)
	createTopic(t, admin, "tx", 2, nil)

	p1 := newClient(t, b, kgo.TransactionalID("tid"), kgo.DefaultProduceTopic("tx"))
	txnProduce(t, p1, "tx", true, "c1", "c2", "c3")
	txnProduce(t, p1, "tx", false, "a1", "a2")
	txnProduce(t, p1, "tx", true, "c4")
	if got, want := readValues(t, b, "tx", true), []string{"c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %q, want %q", got, want)
	}
	if got, want := readValues(t, b, "tx", false), []string{"a1", "a2", "c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted: %q, want %q", got, want)
	}

	// An open transaction: the LSO stays at its first record.
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	before := listEnds(t, admin, "tx", true)
	if err := p1.ProduceSync(context.Background(), &kgo.Record{Topic: "tx", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := listEnds(t, admin, "tx", true); !maps.Equal(got, before) {
		t.Fatalf("LSO moved with a transaction open: %v -> %v", before, got)
	}
	if got := listEnds(t, admin, "tx", false); got[0]+got[1] != before[0]+before[1]+1 {
		t.Fatalf("high watermarks %v, want one more than %v", got, before)
	}

	// Restart; the open transaction is still open.
	p1.Close()
	stopBroker(t, b)
	b = startBroker(t, nil, dir, nil)
	admin = newClient(t, b)
	if got := listEnds(t, admin, "tx", true); !maps.Equal(got, before) {
		t.Fatalf("after restart LSO %v, want %v", got, before)
	}
	// A new producer with the id aborts it and fences the old epoch.
	p2 := newClient(t, b, kgo.TransactionalID("tid"), kgo.DefaultProduceTopic("tx"))
	txnProduce(t, p2, "tx", true, "c5")
	if got, want := readValues(t, b, "tx", true), []string{"c1", "c2", "c3", "c4", "c5"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed after restart: %q, want %q", got, want)
	}
	if got, want := readValues(t, b, "tx", false), []string{"a1", "a2", "c1", "c2", "c3", "c4", "c5", "open"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted after restart: %q, want %q", got, want)
	}
}

// TestTransactionTimeoutFences: a transaction left open past its timeout
// is aborted by the broker, which fences its producer.
func TestTransactionTimeoutFences(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) {
		c.Props = map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"}
	})
	admin := newClient(t, b)
	createTopic(t, admin, "tt", 2, nil)
	p := newClient(t, b, kgo.TransactionalID("slow"), kgo.TransactionTimeout(time.Second), kgo.DefaultProduceTopic("tt"))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(context.Background(), &kgo.Record{Topic: "tt", Partition: 1, Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		committed, all := listEnds(t, admin, "tt", true), listEnds(t, admin, "tt", false)
		if maps.Equal(committed, all) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timed-out transaction is still open: LSO %v, HW %v", committed, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := p.EndTransaction(context.Background(), kgo.TryCommit)
	if err == nil {
		t.Fatal("commit of a transaction aborted on timeout succeeded")
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.InvalidTxnState) {
		t.Logf("commit after the timeout failed with %v", err)
	}
	if got := readValues(t, b, "tt", true); len(got) != 0 {
		t.Fatalf("read_committed sees %q", got)
	}
	var m dto.Metric
	if err := b.metrics.txnEnded.WithLabelValues("timeout").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("gregor_transactions_ended_total{outcome=timeout} %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
	if n := (*b.metrics.openTxns.Load())(); n != 0 {
		t.Errorf("open transactions %d, want 0", n)
	}
}

// TestTransactionAdminAPIs: ListTransactions, DescribeTransactions and
// DescribeProducers show an open transaction.
func TestTransactionAdminAPIs(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	admin := newClient(t, b)
	createTopic(t, admin, "ta", 1, nil)
	p := newClient(t, b, kgo.TransactionalID("admin-tx"), kgo.DefaultProduceTopic("ta"))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	lt := kmsg.NewPtrListTransactionsRequest()
	lt.StateFilters = []string{"Ongoing", "Bogus"}
	ltr, err := lt.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(ltr.TransactionStates) != 1 || ltr.TransactionStates[0].TransactionalID != "admin-tx" ||
		!slices.Equal(ltr.UnknownStateFilters, []string{"Bogus"}) {
		t.Fatalf("list transactions %+v", ltr)
	}
	pid := ltr.TransactionStates[0].ProducerID

	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"admin-tx", "nope"}
	dtr, err := dt.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if s := dtr.TransactionStates; len(s) != 2 || s[0].State != "Ongoing" || s[0].ProducerID != pid ||
		len(s[0].Topics) != 1 || s[0].Topics[0].Topic != "ta" || s[0].StartTimestamp <= 0 ||
		s[1].ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe transactions %+v", s)
	}
	// A group added with AddOffsetsToTxn shows as its __consumer_offsets
	// partition (helper-76).
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "admin-tx", pid, dtr.TransactionStates[0].ProducerEpoch, "tg"
	if aor, err := ao.RequestWith(ctx, admin); err != nil || aor.ErrorCode != 0 {
		t.Fatalf("add offsets to txn: %v %+v", err, aor)
	}
	dt.TransactionalIDs = []string{"admin-tx"}
	if dtr, err = dt.RequestWith(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if tops := dtr.TransactionStates[0].Topics; len(tops) != 2 || tops[0].Topic != "__consumer_offsets" ||
		!slices.Equal(tops[0].Partitions, []int32{b.coord.PartitionFor("tg")}) || tops[1].Topic != "ta" {
		t.Fatalf("describe transactions after AddOffsetsToTxn: %+v", tops)
	}

	dp := kmsg.NewPtrDescribeProducersRequest()
	dpt := kmsg.NewDescribeProducersRequestTopic()
	dpt.Topic, dpt.Partitions = "ta", []int32{0}
	dp.Topics = append(dp.Topics, dpt)
	dpr, err := dp.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	parts := dpr.Topics[0].Partitions
	if len(parts) != 1 || len(parts[0].ActiveProducers) != 1 || parts[0].ActiveProducers[0].ProducerID != pid ||
		parts[0].ActiveProducers[0].CurrentTxnStartOffset != 0 {
		t.Fatalf("describe producers %+v", parts)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// TestTxnBatchesOfTwoProducersRefused: one partition's records holding
// transactional batches of two producers (or a producer's batches around
// another's, which once took one transaction's lock twice and deadlocked
// against its EndTxn) is INVALID_RECORD, and nothing is appended.
func TestTxnBatchesOfTwoProducersRefused(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	admin := newClient(t, b)
	createTopic(t, admin, "tm", 2, nil)
	ctx := context.Background()
	var pids []kmsg.InitProducerIDResponse
	for _, id := range []string{"ma", "mb"} {
		init := kmsg.NewPtrInitProducerIDRequest()
		init.TransactionalID = kmsg.StringPtr(id)
		init.TransactionTimeoutMillis = 60000
		r, err := init.RequestWith(ctx, admin)
		if err != nil || r.ErrorCode != 0 {
			t.Fatalf("init %s: %v %v", id, err, r)
		}
		add := kmsg.NewPtrAddPartitionsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, r.ProducerID, r.ProducerEpoch
		at := kmsg.NewAddPartitionsToTxnRequestTopic()
		at.Topic, at.Partitions = "tm", []int32{0}
		add.Topics = append(add.Topics, at)
		if ar, err := add.RequestWith(ctx, admin); err != nil || ar.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("add %s: %v %+v", id, err, ar)
		}
		pids = append(pids, *r)
	}
	batch := func(p kmsg.InitProducerIDResponse, seq int32) []byte {
		rb := record.NewBuilder()
		rb.SetProducer(p.ProducerID, p.ProducerEpoch, seq).SetTransactional(true)
		rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
		return rb.Build()
	}
	recs := append(append(batch(pids[0], 0), batch(pids[1], 0)...), batch(pids[0], 1)...)
	req := produceRequest("tm", 0, recs)
	req.TransactionID = kmsg.StringPtr("ma")
	resp, err := req.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRecord.Code {
		t.Fatalf("mixed producers: %v, want INVALID_RECORD", kerr.ErrorForCode(code))
	}
	if ends := listEnds(t, admin, "tm", false); ends[0] != 0 {
		t.Fatalf("end offset %d after a refused produce", ends[0])
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = "ma", pids[0].ProducerID, pids[0].ProducerEpoch, true
	if er, err := end.RequestWith(ctx, admin); err != nil || er.ErrorCode != 0 {
		t.Fatalf("end: %v %+v", err, er)
	}
}

// TestTxnOffsetsYieldToLaterCommits: a transaction's offset is applied at
// its commit only over an offset committed before its TxnOffsetCommit, as
// Kafka applies it only over one older in the log. A plain commit made
// while the transaction was open wins; one made before it does not, nor
// does another transaction's offset given earlier and committed later.
func TestTxnOffsetsYieldToLaterCommits(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "to", 3, nil)
	begin := func(id string) (int64, int16) {
		ip := kmsg.NewPtrInitProducerIDRequest()
		ip.TransactionalID, ip.TransactionTimeoutMillis = &id, 60000
		r := request[*kmsg.InitProducerIDResponse](t, cl, ip)
		if r.ErrorCode != 0 {
			t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		ao := kmsg.NewPtrAddOffsetsToTxnRequest()
		ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = id, r.ProducerID, r.ProducerEpoch, "g"
		if c := request[*kmsg.AddOffsetsToTxnResponse](t, cl, ao).ErrorCode; c != 0 {
			t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(c))
		}
		return r.ProducerID, r.ProducerEpoch
	}
	txnCommit := func(id string, pid int64, epoch int16, partition int32, offset int64) {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, "g", pid, epoch
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "to"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if c := request[*kmsg.TxnOffsetCommitResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode; c != 0 {
			t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(c))
		}
		time.Sleep(5 * time.Millisecond) // commit times are in milliseconds
	}
	plainCommit := func(partition int32, offset int64) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = "g", -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "to"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if c := request[*kmsg.OffsetCommitResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode; c != 0 {
			t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(c))
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := func(id string, pid int64, epoch int16) {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, true
		if c := request[*kmsg.EndTxnResponse](t, cl, req).ErrorCode; c != 0 {
			t.Fatalf("EndTxn: %v", kerr.ErrorForCode(c))
		}
	}
	fetch := func() map[int32]int64 {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = "g"
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = "to", []int32{0, 1, 2}
		req.Topics = append(req.Topics, rt)
		out := map[int32]int64{}
		for _, p := range request[*kmsg.OffsetFetchResponse](t, cl, req).Topics[0].Partitions {
			out[p.Partition] = p.Offset
		}
		return out
	}

	pa, ea := begin("ta")
	plainCommit(1, 20) // before the transaction's offset: overwritten
	txnCommit("ta", pa, ea, 0, 9)
	txnCommit("ta", pa, ea, 1, 21)
	txnCommit("ta", pa, ea, 2, 30)
	plainCommit(0, 2) // after it: stays
	pb, eb := begin("tb")
	txnCommit("tb", pb, eb, 2, 31) // another transaction's, given later
	end("ta", pa, ea)
	end("tb", pb, eb)
	want := map[int32]int64{0: 2, 1: 21, 2: 31}
	if got := fetch(); !maps.Equal(got, want) {
		t.Fatalf("committed offsets %v, want %v", got, want)
	}
	cl.Close()
	stopBroker(t, b)
	cl = newClient(t, startBroker(t, nil, dir, nil))
	if got := fetch(); !maps.Equal(got, want) {
		t.Fatalf("after a restart: committed offsets %v, want %v", got, want)
	}
}
