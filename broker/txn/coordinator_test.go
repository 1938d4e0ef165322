package txn

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memLog is a Log in memory.
type memLog struct {
	mu      sync.Mutex
	batches [][]byte
	fail    error
}

func (l *memLog) Append(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.batches = append(l.batches, slices.Clone(b))
	return nil
}

func (l *memLog) Replay(fn func([]byte) error) error {
	l.mu.Lock()
	bs := slices.Clone(l.batches)
	l.mu.Unlock()
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

type markerCall struct {
	tp     TopicPartition
	pid    int64
	epoch  int16
	commit bool
}

// fakeParts are partitions t0-0..t0-3 that record markers and fail them
// while fail is set.
type fakeParts struct {
	mu      sync.Mutex
	markers []markerCall
	fail    bool
	fenced  map[TopicPartition]bool // refuse markers as from an older epoch
}

func (p *fakeParts) Exists(tp TopicPartition) bool { return tp.Topic == "t0" && tp.Partition < 4 }

func (p *fakeParts) WriteMarker(tp TopicPartition, pid int64, epoch int16, commit bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("disk full")
	}
	if p.fenced[tp] {
		return fmt.Errorf("epoch %d is older: %w", epoch, ErrMarkerFenced)
	}
	p.markers = append(p.markers, markerCall{tp, pid, epoch, commit})
	return nil
}

func (p *fakeParts) take() []markerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.markers
	p.markers = nil
	return m
}

type fakeOffsets struct {
	mu        sync.Mutex
	committed map[string][]Offset
}

func (o *fakeOffsets) CheckMember(group, member, _ string, generation int32) error {
	if generation >= 0 && member != "m1" {
		return kerr.UnknownMemberID
	}
	return nil
}

func (o *fakeOffsets) Commit(group string, offs []Offset) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.committed == nil {
		o.committed = map[string][]Offset{}
	}
	o.committed[group] = append(o.committed[group], offs...)
	return nil
}

type env struct {
	log   *memLog
	parts *fakeParts
	offs  *fakeOffsets
	now   time.Time
	mu    sync.Mutex
	pids  int64
}

func newEnv() *env {
	return &env{log: &memLog{}, parts: &fakeParts{}, offs: &fakeOffsets{}, now: time.UnixMilli(1_700_000_000_000)}
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *env) open(t *testing.T) *Coordinator {
	t.Helper()
	c, err := New(Config{MaxTimeout: 15 * time.Minute, AbortInterval: time.Hour, IDExpiration: 7 * 24 * time.Hour}, Options{
		Log: e.log, Partitions: e.parts, Offsets: e.offs, Logger: zaptest.NewLogger(t), Now: e.clock,
		NextProducerID: func() (int64, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.pids++
			return 100 + e.pids, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func wantErr(t *testing.T, what string, err error, want *kerr.Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

var tp0, tp1 = TopicPartition{"t0", 0}, TopicPartition{"t0", 1}

func TestCommitAppliesMarkersAndOffsets(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, err := c.InitProducerID("a", time.Minute, -1, -1)
	wantErr(t, "init", err, nil)
	if r.ProducerID != 101 || r.Epoch != 0 {
		t.Fatalf("init %+v", r)
	}
	if errs := c.AddPartitions("a", r.ProducerID, r.Epoch, []TopicPartition{tp0, tp1, {"nope", 0}}); !errors.Is(errs[2], kerr.UnknownTopicOrPartition) || !errors.Is(errs[0], kerr.OperationNotAttempted) {
		t.Fatalf("add with an unknown partition: %v", errs)
	}
	for _, err := range c.AddPartitions("a", r.ProducerID, r.Epoch, []TopicPartition{tp0, tp1}) {
		wantErr(t, "add", err, nil)
	}
	release, err := c.BeginWrite(r.ProducerID, r.Epoch, tp0)
	wantErr(t, "begin write", err, nil)
	release()
	_, err = c.BeginWrite(r.ProducerID, r.Epoch, TopicPartition{"t0", 2})
	wantErr(t, "write to a partition not added", err, kerr.InvalidTxnState)
	wantErr(t, "offsets before AddOffsets", c.CommitOffsets("a", r.ProducerID, r.Epoch, "g", "m1", "", 3, nil), kerr.InvalidTxnState)
	wantErr(t, "add offsets", c.AddOffsets("a", r.ProducerID, r.Epoch, "g"), nil)
	wantErr(t, "bad member", c.CommitOffsets("a", r.ProducerID, r.Epoch, "g", "m2", "", 3, []Offset{{TopicPartition: tp0, Offset: 5}}), kerr.UnknownMemberID)
	wantErr(t, "txn offset commit", c.CommitOffsets("a", r.ProducerID, r.Epoch, "g", "m1", "", 3, []Offset{{TopicPartition: tp0, Offset: 5}}), nil)
	if !c.PendingOffset("g", tp0) || c.PendingOffset("g", tp1) {
		t.Fatal("pending offsets wrong")
	}
	wantErr(t, "end with a stale epoch", c.EndTxn("a", r.ProducerID, r.Epoch-1, true), kerr.ProducerFenced)
	wantErr(t, "commit", c.EndTxn("a", r.ProducerID, r.Epoch, true), nil)
	got := e.parts.take()
	want := []markerCall{{tp0, 101, 0, true}, {tp1, 101, 0, true}}
	if !slices.Equal(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	if o := e.offs.committed["g"]; len(o) != 1 || o[0].Offset != 5 {
		t.Fatalf("offsets committed %+v", e.offs.committed)
	}
	if c.PendingOffset("g", tp0) {
		t.Fatal("offset still pending after the commit")
	}
	wantErr(t, "commit retried", c.EndTxn("a", r.ProducerID, r.Epoch, true), nil)
	wantErr(t, "abort after commit", c.EndTxn("a", r.ProducerID, r.Epoch, false), kerr.InvalidTxnState)
	_, err = c.BeginWrite(r.ProducerID, r.Epoch, tp0)
	wantErr(t, "write after the end", err, kerr.InvalidTxnState)

	// The state survives a restart; a new producer bumps the epoch.
	c.Close()
	c = e.open(t)
	r2, err := c.InitProducerID("a", time.Minute, -1, -1)
	wantErr(t, "init again", err, nil)
	if r2.ProducerID != 101 || r2.Epoch != 1 {
		t.Fatalf("re-init %+v", r2)
	}
	wantErr(t, "old producer", c.EndTxn("a", r.ProducerID, r.Epoch, true), kerr.ProducerFenced)
	_, err = c.InitProducerID("a", time.Minute, 999, 1)
	wantErr(t, "init naming another producer id", err, kerr.InvalidProducerIDMapping)
	_, err = c.InitProducerID("a", 16*time.Minute, -1, -1)
	wantErr(t, "timeout above the max", err, kerr.InvalidTransactionTimeout)
	// An empty transactional id is a malformed request, as in Kafka.
	wantErr(t, "end with no id", c.EndTxn("", r2.ProducerID, r2.Epoch, true), kerr.InvalidRequest)
	wantErr(t, "add offsets with no id", c.AddOffsets("", r2.ProducerID, r2.Epoch, "g"), kerr.InvalidRequest)
	wantErr(t, "add partitions with no id", c.AddPartitions("", r2.ProducerID, r2.Epoch, []TopicPartition{tp0})[0], kerr.InvalidRequest)
}

// TestDecidedTransactionCompletesAfterFailure: markers that cannot be
// written leave the transaction decided; it completes on a retry, and at
// the next start.
func TestDecidedTransactionCompletesAfterFailure(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, _ := c.InitProducerID("b", time.Minute, -1, -1)
	c.AddPartitions("b", r.ProducerID, r.Epoch, []TopicPartition{tp0})
	wantErr(t, "add offsets", c.AddOffsets("b", r.ProducerID, r.Epoch, "g"), nil)
	wantErr(t, "txn offsets", c.CommitOffsets("b", r.ProducerID, r.Epoch, "g", "", "", -1, []Offset{{TopicPartition: tp1, Offset: 9}}), nil)
	e.parts.fail = true
	wantErr(t, "commit with markers failing", c.EndTxn("b", r.ProducerID, r.Epoch, true), nil)
	errs := c.AddPartitions("b", r.ProducerID, r.Epoch, []TopicPartition{tp0})
	wantErr(t, "add while completing", errs[0], kerr.ConcurrentTransactions)
	if len(e.offs.committed) != 0 {
		t.Fatal("offsets applied before the markers")
	}
	// A crash: the next start finishes the commit.
	c.Close()
	e.parts.fail = false
	c = e.open(t)
	if got := e.parts.take(); len(got) != 1 || !got[0].commit || got[0].tp != tp0 {
		t.Fatalf("markers at start %+v", got)
	}
	if o := e.offs.committed["g"]; len(o) != 1 || o[0].Offset != 9 {
		t.Fatalf("offsets at start %+v", e.offs.committed)
	}
	wantErr(t, "commit retried", c.EndTxn("b", r.ProducerID, r.Epoch, true), nil)
}

// TestTimeoutAbortsAndFences: the sweep aborts a transaction past its
// timeout with a bumped epoch; the producer is fenced, and may recover by
// InitProducerId naming its old epoch (KIP-360).
func TestTimeoutAbortsAndFences(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, _ := c.InitProducerID("c", 10*time.Second, -1, -1)
	c.AddPartitions("c", r.ProducerID, r.Epoch, []TopicPartition{tp1})
	e.advance(5 * time.Second)
	c.sweep()
	if got := e.parts.take(); len(got) != 0 {
		t.Fatalf("aborted early: %+v", got)
	}
	e.advance(6 * time.Second)
	c.sweep()
	got := e.parts.take()
	if len(got) != 1 || got[0].commit || got[0].epoch != r.Epoch+1 {
		t.Fatalf("timeout markers %+v", got)
	}
	wantErr(t, "commit after the timeout", c.EndTxn("c", r.ProducerID, r.Epoch, true), kerr.ProducerFenced)
	_, err := c.BeginWrite(r.ProducerID, r.Epoch, tp1)
	wantErr(t, "write after the timeout", err, kerr.InvalidProducerEpoch)
	// KIP-588: the producer recovers with the epoch the abort gave.
	r2, err := c.InitProducerID("c", 10*time.Second, r.ProducerID, r.Epoch)
	wantErr(t, "init with the old epoch", err, nil)
	if r2.ProducerID != r.ProducerID || r2.Epoch != r.Epoch+1 {
		t.Fatalf("recovered %+v from %+v", r2, r)
	}
	wantErr(t, "add after recovering", c.AddPartitions("c", r2.ProducerID, r2.Epoch, []TopicPartition{tp0})[0], nil)
}

// TestNewInstanceFencesForGood: once a new instance (InitProducerId
// without a producer id) took the id over, the old producer cannot get
// it back through the KIP-360 bump, whether or not a transaction is open.
func TestNewInstanceFencesForGood(t *testing.T) {
	for _, open := range []bool{false, true} {
		e := newEnv()
		c := e.open(t)
		p, _ := c.InitProducerID("z", time.Minute, -1, -1)
		c.AddPartitions("z", p.ProducerID, p.Epoch, []TopicPartition{tp0})
		q, err := c.InitProducerID("z", time.Minute, -1, -1)
		wantErr(t, "new instance", err, nil)
		if open {
			c.AddPartitions("z", q.ProducerID, q.Epoch, []TopicPartition{tp1})
		}
		_, err = c.InitProducerID("z", time.Minute, p.ProducerID, p.Epoch)
		wantErr(t, "the old producer's KIP-360 bump", err, kerr.ProducerFenced)
		// The new instance is untouched: its own bump works.
		q2, err := c.InitProducerID("z", time.Minute, q.ProducerID, q.Epoch)
		wantErr(t, "the new instance's own bump", err, nil)
		if q2.Epoch != q.Epoch+1 {
			t.Fatalf("bump %+v -> %+v", q, q2)
		}
		// A retry of that bump gets the same epoch, no further bump.
		q3, err := c.InitProducerID("z", time.Minute, q.ProducerID, q.Epoch)
		wantErr(t, "retry of the bump", err, nil)
		if q3 != q2 {
			t.Fatalf("retry gave %+v, want %+v", q3, q2)
		}
	}
}

// TestLastEpochMovesToNewProducerID: at the last epoch, a new instance
// over an open transaction, or a timeout, moves the id to a new producer
// id, so the old producer is fenced.
func TestLastEpochMovesToNewProducerID(t *testing.T) {
	for _, how := range []string{"init", "timeout"} {
		e := newEnv()
		c := e.open(t)
		r, _ := c.InitProducerID("x", 10*time.Second, -1, -1)
		// Fast-forward to the last epoch.
		c.mu.Lock()
		ent := c.txns["x"]
		ent.st.Epoch = 32766
		c.mu.Unlock()
		wantErr(t, "add", c.AddPartitions("x", r.ProducerID, 32766, []TopicPartition{tp0})[0], nil)
		var nr Result
		if how == "init" {
			var err error
			nr, err = c.InitProducerID("x", 10*time.Second, -1, -1)
			wantErr(t, "init over the open transaction", err, nil)
		} else {
			e.advance(11 * time.Second)
			c.sweep()
			d := c.Describe([]string{"x"})
			nr = Result{d[0].ProducerID, d[0].Epoch}
		}
		if nr.ProducerID == r.ProducerID || nr.Epoch != 0 {
			t.Fatalf("%s at the last epoch gave %+v (old producer id %d)", how, nr, r.ProducerID)
		}
		if m := e.parts.take(); len(m) != 1 || m[0].commit || m[0].pid != r.ProducerID || m[0].epoch != 32766 {
			t.Fatalf("%s: abort markers %+v", how, m)
		}
		errs := c.AddPartitions("x", r.ProducerID, 32766, []TopicPartition{tp0})
		wantErr(t, how+": the old producer adds a partition", errs[0], kerr.InvalidProducerIDMapping)
		_, err := c.BeginWrite(r.ProducerID, 32766, tp0)
		wantErr(t, how+": the old producer writes", err, kerr.InvalidTxnState)
	}
}

// TestFencedMarkerGivesUp: a partition that refuses a marker because it
// knows a newer epoch of the producer is skipped, not retried forever.
func TestFencedMarkerGivesUp(t *testing.T) {
	e := newEnv()
	e.parts.fenced = map[TopicPartition]bool{tp1: true}
	c := e.open(t)
	r, _ := c.InitProducerID("f", time.Minute, -1, -1)
	c.AddPartitions("f", r.ProducerID, r.Epoch, []TopicPartition{tp0, tp1})
	wantErr(t, "commit", c.EndTxn("f", r.ProducerID, r.Epoch, true), nil)
	if d := c.Describe([]string{"f"}); d[0].State != CompleteCommit {
		t.Fatalf("state %s, want CompleteCommit", d[0].State)
	}
	if m := e.parts.take(); len(m) != 1 || m[0].tp != tp0 {
		t.Fatalf("markers %+v", m)
	}
}

// TestInitAbortsOpenTransaction: InitProducerId over an open transaction
// aborts it in a new epoch, which the new producer keeps.
func TestInitAbortsOpenTransaction(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, _ := c.InitProducerID("d", time.Minute, -1, -1)
	c.AddPartitions("d", r.ProducerID, r.Epoch, []TopicPartition{tp0, tp1})
	r2, err := c.InitProducerID("d", time.Minute, -1, -1)
	wantErr(t, "init", err, nil)
	got := e.parts.take()
	if len(got) != 2 || got[0].commit || got[0].epoch != r2.Epoch || r2.Epoch != r.Epoch+1 {
		t.Fatalf("markers %+v, new producer %+v", got, r2)
	}
}

// TestEndWaitsForWrites: a transaction does not end while a produce in
// it is appending.
func TestEndWaitsForWrites(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, _ := c.InitProducerID("w", time.Minute, -1, -1)
	c.AddPartitions("w", r.ProducerID, r.Epoch, []TopicPartition{tp0})
	release, err := c.BeginWrite(r.ProducerID, r.Epoch, tp0)
	wantErr(t, "begin write", err, nil)
	ended := make(chan error, 1)
	go func() { ended <- c.EndTxn("w", r.ProducerID, r.Epoch, true) }()
	select {
	case err := <-ended:
		t.Fatalf("EndTxn returned (%v) while a write was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	wantErr(t, "end", <-ended, nil)
	if got := e.parts.take(); len(got) != 1 {
		t.Fatalf("markers %+v", got)
	}
}

// TestExpiredIDForgotten: an idle id is forgotten, for good.
func TestExpiredIDForgotten(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	if _, err := c.InitProducerID("old", time.Minute, -1, -1); err != nil {
		t.Fatal(err)
	}
	e.advance(8 * 24 * time.Hour)
	c.sweep()
	if d := c.Describe(nil); len(d) != 0 {
		t.Fatalf("still described: %+v", d)
	}
	c.Close()
	c = e.open(t)
	r, _ := c.InitProducerID("old", time.Minute, -1, -1)
	if r.Epoch != 0 || r.ProducerID == 101 {
		t.Fatalf("expired id came back as %+v", r)
	}
}

// TestPendingOffsetsKeepTheirTime: a TxnOffsetCommit's offsets keep when
// they were given, through a restart, and are committed with that time.
func TestPendingOffsetsKeepTheirTime(t *testing.T) {
	e := newEnv()
	c := e.open(t)
	r, err := c.InitProducerID("a", time.Minute, -1, -1)
	wantErr(t, "init", err, nil)
	wantErr(t, "add offsets", c.AddOffsets("a", r.ProducerID, r.Epoch, "g"), nil)
	given := e.clock().UnixMilli()
	wantErr(t, "txn offset commit", c.CommitOffsets("a", r.ProducerID, r.Epoch, "g", "", "", -1, []Offset{{TopicPartition: tp1, Offset: 7}}), nil)
	e.advance(time.Second)
	c.Close()
	c = e.open(t)
	defer c.Close()
	wantErr(t, "commit", c.EndTxn("a", r.ProducerID, r.Epoch, true), nil)
	want := []Offset{{TopicPartition: tp1, Offset: 7, AtMs: given}}
	if got := e.offs.committed["g"]; !slices.Equal(got, want) {
		t.Fatalf("offsets committed %+v, want %+v", got, want)
	}
}
