package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKill9Restart: records acknowledged with acks=all survive kill -9 with
// the same offsets; after the restart produces continue at the right
// offset, both from a new client and from the idempotent producer that was
// connected before the crash (whose producer state the broker must have
// rebuilt from the log).
func TestKill9Restart(t *testing.T) {
	t.Parallel()
	const (
		topic      = "crash"
		partitions = 3
		perPart    = 2000
	)
	b := StartBroker(t)
	admin := b.Client()
	createTopic(t, admin, topic, partitions, nil)

	before := manualClient(t, b.Addr, kgo.RetryTimeout(60*time.Second))
	want := map[int32][]string{}
	for p := int32(0); p < partitions; p++ {
		want[p] = seqValues(fmt.Sprintf("p%d", p), 0, perPart)
		recs := produceSync(t, before, topic, p, want[p]...)
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("p%d: record %d acknowledged at offset %d", p, i, r.Offset)
			}
		}
	}

	b.Kill9()
	b.Start()

	for p := int32(0); p < partitions; p++ {
		checkRecords(t, consumePartition(t, b.Addr, topic, p, 0, perPart, 30*time.Second), want[p], 0)
		if end, code := listOffset(t, admin, topic, p, -1); code != 0 || end != perPart {
			t.Fatalf("p%d after restart: log end offset %d (code %d), want %d", p, end, code, perPart)
		}
	}

	// The producer from before the crash keeps its id and sequence numbers.
	for p := int32(0); p < partitions; p++ {
		more := seqValues(fmt.Sprintf("p%d-after", p), 0, 100)
		recs := produceSync(t, before, topic, p, more...)
		if recs[0].Offset != perPart {
			t.Fatalf("p%d: old producer's first record after restart at offset %d, want %d", p, recs[0].Offset, perPart)
		}
		want[p] = append(want[p], more...)
	}
	// A new producer continues at the right offset too.
	after := manualClient(t, b.Addr)
	for p := int32(0); p < partitions; p++ {
		more := seqValues(fmt.Sprintf("p%d-new", p), 0, 100)
		recs := produceSync(t, after, topic, p, more...)
		if recs[0].Offset != int64(len(want[p])) {
			t.Fatalf("p%d: new producer's first record at offset %d, want %d", p, recs[0].Offset, len(want[p]))
		}
		want[p] = append(want[p], more...)
	}

	// And everything survives a second crash.
	b.Kill9()
	b.Start()
	for p := int32(0); p < partitions; p++ {
		checkRecords(t, consumePartition(t, b.Addr, topic, p, 0, len(want[p]), 30*time.Second), want[p], 0)
	}
}

// TestIdempotentStateSurvivesRestart replays an acknowledged idempotent
// batch after kill -9: the broker must answer with the original offset and
// not append it again, and must reject a sequence gap.
func TestIdempotentStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	const topic = "idem"
	b := StartBroker(t)
	cl := b.Client()
	createTopic(t, cl, topic, 1, nil)

	pid, epoch := initProducerID(t, cl)
	now := time.Now().UnixMilli()
	first := batchSpec{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0, BaseTimestamp: now, Values: seqValues("a", 0, 5)}
	second := batchSpec{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 5, BaseTimestamp: now, Values: seqValues("b", 0, 5)}
	if off, code := rawProduce(t, cl, topic, 0, first.build()); code != 0 || off != 0 {
		t.Fatalf("first batch: offset %d code %v", off, kerr.ErrorForCode(code))
	}
	if off, code := rawProduce(t, cl, topic, 0, second.build()); code != 0 || off != 5 {
		t.Fatalf("second batch: offset %d code %v", off, kerr.ErrorForCode(code))
	}
	// A duplicate before the restart, for comparison.
	if off, code := rawProduce(t, cl, topic, 0, second.build()); code != 0 || off != 5 {
		t.Fatalf("duplicate before restart: offset %d code %v, want offset 5 and no error", off, kerr.ErrorForCode(code))
	}

	b.Kill9()
	b.Start()

	if off, code := rawProduce(t, cl, topic, 0, second.build()); code != 0 || off != 5 {
		t.Fatalf("duplicate after restart: offset %d code %v, want offset 5 and no error", off, kerr.ErrorForCode(code))
	}
	if end, _ := listOffset(t, cl, topic, 0, -1); end != 10 {
		t.Fatalf("log end offset %d after duplicate, want 10 (duplicate appended?)", end)
	}
	gap := batchSpec{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 20, BaseTimestamp: now, Values: seqValues("gap", 0, 1)}
	if _, code := rawProduce(t, cl, topic, 0, gap.build()); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap after restart: code %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(code))
	}
	next := batchSpec{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 10, BaseTimestamp: now, Values: seqValues("c", 0, 5)}
	if off, code := rawProduce(t, cl, topic, 0, next.build()); code != 0 || off != 10 {
		t.Fatalf("next batch after restart: offset %d code %v, want 10", off, kerr.ErrorForCode(code))
	}
	want := append(append(seqValues("a", 0, 5), seqValues("b", 0, 5)...), seqValues("c", 0, 5)...)
	checkRecords(t, consumePartition(t, b.Addr, topic, 0, 0, len(want), 30*time.Second), want, 0)
}

// TestTornTail damages the last batch of the active segment while the
// broker is down (after kill -9) and checks recovery: every batch before the
// damage is served, nothing after it, and new produces work.
func TestTornTail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// damage changes the segment file; it returns the log end offset
		// expected after recovery.
		damage func(t *testing.T, path string, last segmentBatch) int64
	}{
		{"truncate-mid-batch", func(t *testing.T, path string, last segmentBatch) int64 {
			if err := os.Truncate(path, last.Pos+last.Size/2); err != nil {
				t.Fatal(err)
			}
			return last.BaseOffset
		}},
		{"flip-bytes", func(t *testing.T, path string, last segmentBatch) int64 {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Inside the records, past the 61-byte header, so only the CRC
			// can tell.
			at := last.Pos + 61 + (last.Size-61)/2
			buf := make([]byte, 4)
			if _, err := f.ReadAt(buf, at); err != nil {
				t.Fatal(err)
			}
			for i := range buf {
				buf[i] ^= 0xff
			}
			if _, err := f.WriteAt(buf, at); err != nil {
				t.Fatal(err)
			}
			return last.BaseOffset
		}},
		{"append-zeros", func(t *testing.T, path string, last segmentBatch) int64 {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			return last.LastOffset + 1
		}},
		{"flip-length", func(t *testing.T, path string, last segmentBatch) int64 {
			// A batch length pointing far past the end of the file.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0x7f, 0xff, 0xff, 0xf0}, last.Pos+8); err != nil {
				t.Fatal(err)
			}
			return last.BaseOffset
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const topic = "torn"
			b := StartBroker(t)
			cl := manualClient(t, b.Addr)
			createTopic(t, cl, topic, 1, nil)

			var all []string
			for round := 0; round < 20; round++ {
				vals := seqValues("r"+strconv.Itoa(round), 0, 50)
				produceSync(t, cl, topic, 0, vals...)
				all = append(all, vals...)
			}
			b.Kill9()

			segs, err := segmentFiles(b.DataDir, topic, 0)
			if err != nil || len(segs) == 0 {
				t.Fatalf("no segment files in %s: %v", partitionDir(b.DataDir, topic, 0), err)
			}
			active := segs[len(segs)-1]
			batches, err := readSegmentBatches(active)
			if err != nil {
				t.Fatal(err)
			}
			if len(batches) < 2 {
				t.Fatalf("active segment %s has %d batches, want at least 2", active, len(batches))
			}
			last := batches[len(batches)-1]
			if last.LastOffset != int64(len(all)-1) {
				t.Fatalf("last batch on disk ends at offset %d, want %d", last.LastOffset, len(all)-1)
			}
			wantEnd := tc.damage(t, active, last)

			b.Start()
			end, code := listOffset(t, cl, topic, 0, -1)
			if code != 0 || end != wantEnd {
				t.Fatalf("log end offset after recovery %d (code %d), want %d", end, code, wantEnd)
			}
			checkRecords(t, consumePartition(t, b.Addr, topic, 0, 0, int(wantEnd), 30*time.Second), all[:wantEnd], 0)
			noMoreRecords(t, b.Addr, topic, 0, wantEnd, 500*time.Millisecond)

			fresh := manualClient(t, b.Addr)
			more := seqValues("after", 0, 100)
			recs := produceSync(t, fresh, topic, 0, more...)
			if recs[0].Offset != wantEnd {
				t.Fatalf("first produce after recovery at offset %d, want %d", recs[0].Offset, wantEnd)
			}
			want := append(append([]string(nil), all[:wantEnd]...), more...)
			checkRecords(t, consumePartition(t, b.Addr, topic, 0, 0, len(want), 30*time.Second), want, 0)

			// The repaired log also survives a clean restart.
			b.Restart()
			checkRecords(t, consumePartition(t, b.Addr, topic, 0, 0, len(want), 30*time.Second), want, 0)
		})
	}
}

// TestGracefulShutdown: SIGTERM with a fetch long-polling makes the broker
// exit 0 within a few seconds, and a restart has all data.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const topic = "graceful"
	b := StartBroker(t)
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, topic, 2, nil)
	want := map[int32][]string{}
	for p := int32(0); p < 2; p++ {
		want[p] = seqValues(fmt.Sprintf("g%d", p), 0, 1000)
		produceSync(t, cl, topic, p, want[p]...)
	}

	// A fetch long-polling at the end of the log (10 s max wait) is in the
	// broker when SIGTERM arrives; shutdown must not wait it out.
	conn, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(11) // non-flexible: the v1 request header below fits
	fetch.ReplicaID = -1
	fetch.MaxWaitMillis = 10000
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = 1000
	fp.CurrentLeaderEpoch = -1
	fp.LogStartOffset = -1
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	raw := frame(fetch.AppendTo(requestHeader(1, 11, 99)))
	before := metricValue(t, b, "gregor_network_received_bytes_total")
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "broker read the long-poll fetch", func() error {
		if got := metricValue(t, b, "gregor_network_received_bytes_total"); got < before+float64(len(raw)) {
			return fmt.Errorf("received bytes %v, want >= %v: %w", got, before+float64(len(raw)), errNotYet)
		}
		return nil
	})

	took, err := b.Stop(10 * time.Second)
	if err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("graceful stop took %v, want under 5s", took)
	}
	// The long poll was answered or its connection closed, not left hanging.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("long-poll connection neither answered nor closed after shutdown")
		}
	}
	b.Start()
	for p := int32(0); p < 2; p++ {
		checkRecords(t, consumePartition(t, b.Addr, topic, p, 0, len(want[p]), 30*time.Second), want[p], 0)
	}
	more := produceSync(t, manualClient(t, b.Addr), topic, 0, "after-restart")
	if more[0].Offset != 1000 {
		t.Fatalf("produce after restart at offset %d, want 1000", more[0].Offset)
	}
}
