// Package txn is the transaction coordinator (Kafka's KIP-98): it maps
// transactional ids to producer ids and epochs, tracks which partitions
// and groups each open transaction touched, and ends transactions by
// writing commit or abort markers to those partitions and, on commit,
// applying the transaction's group offsets. Its state is kept as one
// record per transactional id in a compacted log (a partition of
// __transaction_state), written before any answer that depends on it.
//
// The package does not own partitions, groups or the protocol: the broker
// supplies them through Partitions, Offsets and Log.
package txn

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
)

// StateTopic is the internal topic that keeps transaction state.
const StateTopic = "__transaction_state"

// ErrMarkerFenced is what Partitions.WriteMarker wraps when the partition
// refuses a marker because it knows the producer in a newer epoch.
var ErrMarkerFenced = errors.New("transaction marker fenced by a newer producer epoch")

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
}

// Offset is a group offset committed within a transaction.
type Offset struct {
	TopicPartition
	Offset      int64  `json:"o"`
	LeaderEpoch int32  `json:"e"`
	Metadata    string `json:"m,omitempty"`
	// AtMs is when TxnOffsetCommit gave the offset (Unix ms; 0 in state
	// written before gregor kept it). It is the offset's commit time once
	// the transaction commits, and an offset committed outside the
	// transaction after it wins (see group.CommitRequest.Transactional).
	AtMs int64 `json:"at,omitempty"`
}

// Log is where the coordinator keeps its state.
type Log interface {
	Append(batch []byte) error
	Replay(fn func(batch []byte) error) error
}

// Partitions are the broker's partitions, as the coordinator needs them.
type Partitions interface {
	// Exists reports whether the partition exists.
	Exists(tp TopicPartition) bool
	// WriteMarker appends a commit or abort marker for producer pid in
	// epoch to the partition.
	WriteMarker(tp TopicPartition, pid int64, epoch int16, commit bool) error
}

// Offsets are the group coordinator's, as the coordinator needs them.
type Offsets interface {
	// CheckMember checks a TxnOffsetCommit's member and generation
	// against the group (generation < 0 is not checked).
	CheckMember(group, member, instance string, generation int32) error
	// Commit applies a committed transaction's offsets.
	Commit(group string, offsets []Offset) error
}

// Config tunes the coordinator.
type Config struct {
	MaxTimeout    time.Duration // transaction.max.timeout.ms
	AbortInterval time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
	IDExpiration  time.Duration // transactional.id.expiration.ms
}

// Options are the coordinator's dependencies.
type Options struct {
	Log        Log
	Partitions Partitions
	Offsets    Offsets
	// NextProducerID allocates a producer id that was never used.
	NextProducerID func() (int64, error)
	Logger         *zap.Logger
	Now            func() time.Time
	// OnEnd, if set, is told each transaction's outcome once its markers
	// are written: "commit", "abort" or "timeout".
	OnEnd func(outcome string)
}

// State is a transaction's state, as Kafka names them.
type State string

// Transaction states. A transaction is Ongoing from its first added
// partition or group until EndTxn; Prepare* is the decision, durable
// before any marker is written; Complete* once every marker is written.
const (
	Empty          State = "Empty"
	Ongoing        State = "Ongoing"
	PrepareCommit  State = "PrepareCommit"
	PrepareAbort   State = "PrepareAbort"
	CompleteCommit State = "CompleteCommit"
	CompleteAbort  State = "CompleteAbort"
)

// txnState is what is kept per transactional id (the JSON value of its
// record in the state log).
type txnState struct {
	ProducerID int64            `json:"pid"`
	Epoch      int16            `json:"epoch"`
	LastEpoch  int16            `json:"lastEpoch"` // the epoch before the coordinator's last bump, -1
	TimeoutMs  int32            `json:"timeoutMs"`
	State      State            `json:"state"`
	StartMs    int64            `json:"startMs"`  // when the transaction became Ongoing
	UpdateMs   int64            `json:"updateMs"` // last change
	Partitions []TopicPartition `json:"partitions,omitempty"`
	// Groups are the groups added to the transaction, with the offsets
	// committed in it.
	Groups map[string][]Offset `json:"groups,omitempty"`
	// TimedOut marks an abort decided by the coordinator's timeout.
	TimedOut bool `json:"timedOut,omitempty"`
	// Rotate marks a decision taken at the last epoch: once it is
	// complete the id moves to a new producer id, which fences the old
	// producer as a bumped epoch would.
	Rotate bool `json:"rotate,omitempty"`
}

// entry is one transactional id.
type entry struct {
	id string
	// op serialises the operations on one transactional id.
	op sync.Mutex
	// write is held shared by produce requests writing in the
	// transaction, and exclusively while it stops being Ongoing, so no
	// batch lands after its markers.
	write sync.RWMutex
	// st is guarded by Coordinator.mu (and changed only under op).
	st    txnState
	parts map[TopicPartition]struct{}
}

// Coordinator is the transaction coordinator.
type Coordinator struct {
	cfg    Config
	opts   Options
	logger *zap.Logger
	now    func() time.Time

	mu    sync.Mutex
	txns  map[string]*entry
	byPID map[int64]*entry
	// open holds the entries with a transaction open (Ongoing or
	// decided and not complete), which PendingOffset and Open look at.
	open map[*entry]struct{}

	stop chan struct{}
	done chan struct{}
}

// Errors are kerr errors, wrapped with context; the broker maps them to
// codes with errors.As.

// New loads the coordinator's state from opts.Log and starts its
// background work: transactions decided before a restart are completed,
// and timed-out ones aborted. Close stops it.
func New(cfg Config, opts Options) (*Coordinator, error) {
	c := &Coordinator{
		cfg:    cfg,
		opts:   opts,
		logger: opts.Logger,
		now:    opts.Now,
		txns:   map[string]*entry{},
		byPID:  map[int64]*entry{},
		open:   map[*entry]struct{}{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.cfg.AbortInterval <= 0 {
		c.cfg.AbortInterval = 10 * time.Second
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	n := 0
	for _, e := range c.txns {
		if e.st.State == PrepareCommit || e.st.State == PrepareAbort {
			n++
			c.complete(e)
		}
	}
	c.logger.Info("transaction state loaded", zap.Int("transactional_ids", len(c.txns)), zap.Int("completed_at_start", n))
	go c.run()
	return c, nil
}

// Close stops the background work.
func (c *Coordinator) Close() {
	if c == nil {
		return
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *Coordinator) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.AbortInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep aborts timed-out transactions, retries unfinished completions and
// forgets transactional ids idle past their expiration.
func (c *Coordinator) sweep() {
	now := c.now().UnixMilli()
	c.mu.Lock()
	entries := slices.Collect(maps.Values(c.txns))
	c.mu.Unlock()
	for _, e := range entries {
		c.mu.Lock()
		st := e.st
		c.mu.Unlock()
		switch {
		case st.State == Ongoing && now-st.StartMs > int64(st.TimeoutMs):
			c.abortTimedOut(e)
		case st.State == PrepareCommit || st.State == PrepareAbort:
			e.op.Lock()
			c.complete(e)
			e.op.Unlock()
		case (st.State == Empty || st.State == CompleteCommit || st.State == CompleteAbort) &&
			c.cfg.IDExpiration > 0 && now-st.UpdateMs > c.cfg.IDExpiration.Milliseconds():
			c.expire(e)
		}
	}
}

// abortTimedOut aborts an Ongoing transaction past its timeout, bumping
// the epoch so that its producer is fenced.
func (c *Coordinator) abortTimedOut(e *entry) {
	e.op.Lock()
	defer e.op.Unlock()
	c.mu.Lock()
	st := e.st
	c.mu.Unlock()
	if st.State != Ongoing || c.now().UnixMilli()-st.StartMs <= int64(st.TimeoutMs) {
		return
	}
	c.logger.Info("aborting a timed-out transaction", zap.String("transactional_id", e.id),
		zap.Int64("producer_id", st.ProducerID), zap.Int16("epoch", st.Epoch), zap.Int32("timeout_ms", st.TimeoutMs))
	// A new epoch fences the producer; it may recover by InitProducerId
	// naming its old epoch (KIP-588), so that is kept as LastEpoch.
	if st.Epoch < math.MaxInt16-1 {
		st.LastEpoch, st.Epoch = st.Epoch, st.Epoch+1
	} else {
		st.Rotate = true
	}
	st.TimedOut = true
	if err := c.decide(e, st, false); err != nil {
		c.logger.Warn("abort a timed-out transaction", zap.String("transactional_id", e.id), zap.Error(err))
	}
}

// expire forgets an idle transactional id.
func (c *Coordinator) expire(e *entry) {
	e.op.Lock()
	defer e.op.Unlock()
	c.mu.Lock()
	st := e.st
	c.mu.Unlock()
	if st.State == Ongoing || st.State == PrepareCommit || st.State == PrepareAbort ||
		c.now().UnixMilli()-st.UpdateMs <= c.cfg.IDExpiration.Milliseconds() {
		return
	}
	if err := c.opts.Log.Append(encodeTombstone(e.id, c.now().UnixMilli())); err != nil {
		c.logger.Warn("expire a transactional id", zap.String("transactional_id", e.id), zap.Error(err))
		return
	}
	c.mu.Lock()
	delete(c.txns, e.id)
	if c.byPID[st.ProducerID] == e {
		delete(c.byPID, st.ProducerID)
	}
	c.mu.Unlock()
	c.logger.Debug("expired a transactional id", zap.String("transactional_id", e.id))
}

// persist writes st as e's state and installs it.
func (c *Coordinator) persist(e *entry, st txnState) error {
	st.UpdateMs = c.now().UnixMilli()
	batch, err := encodeState(e.id, &st, st.UpdateMs)
	if err != nil {
		return err
	}
	if err := c.opts.Log.Append(batch); err != nil {
		return fmt.Errorf("write transaction state of %q: %w", e.id, err)
	}
	c.install(e, st)
	return nil
}

// install makes st e's state in memory.
func (c *Coordinator) install(e *entry, st txnState) {
	parts := make(map[TopicPartition]struct{}, len(st.Partitions))
	for _, tp := range st.Partitions {
		parts[tp] = struct{}{}
	}
	c.mu.Lock()
	if old := e.st.ProducerID; old != st.ProducerID && c.byPID[old] == e {
		delete(c.byPID, old)
	}
	e.st, e.parts = st, parts
	c.byPID[st.ProducerID] = e
	c.txns[e.id] = e
	switch st.State {
	case Ongoing, PrepareCommit, PrepareAbort:
		c.open[e] = struct{}{}
	default:
		delete(c.open, e)
	}
	c.mu.Unlock()
}

// decide makes the end of e's transaction durable (st, with the state
// set to PrepareCommit or PrepareAbort) and completes it. Callers hold
// e.op. Produce requests in the transaction are waited for and later ones
// refused.
func (c *Coordinator) decide(e *entry, st txnState, commit bool) error {
	st.State = PrepareAbort
	if commit {
		st.State = PrepareCommit
	}
	e.write.Lock()
	err := c.persist(e, st)
	e.write.Unlock()
	if err != nil {
		return err
	}
	c.complete(e)
	return nil
}

// complete writes the markers of a decided transaction and, for a
// commit, its offsets, then records it complete. A failure leaves it
// decided, to be retried by the sweep (and by the producer's next call,
// which gets CONCURRENT_TRANSACTIONS meanwhile). Callers hold e.op.
func (c *Coordinator) complete(e *entry) bool {
	c.mu.Lock()
	st := e.st
	c.mu.Unlock()
	commit := st.State == PrepareCommit
	if !commit && st.State != PrepareAbort {
		return true
	}
	var errs []error
	for _, tp := range st.Partitions {
		if !c.opts.Partitions.Exists(tp) {
			continue // deleted meanwhile: nothing to end
		}
		err := c.opts.Partitions.WriteMarker(tp, st.ProducerID, st.Epoch, commit)
		if errors.Is(err, ErrMarkerFenced) {
			// The partition knows the producer in a newer epoch than the
			// transaction's, so it has no open transaction of this one
			// to end (Kafka's coordinator gives up on such a partition
			// too); retrying would hold the id forever.
			c.logger.Warn("a transaction marker was refused: the partition knows a newer epoch of the producer",
				zap.String("transactional_id", e.id), zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Error(err))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.logger.Warn("write transaction markers; will retry", zap.String("transactional_id", e.id), zap.Error(err))
		return false
	}
	if commit {
		for _, g := range slices.Sorted(maps.Keys(st.Groups)) {
			if offs := st.Groups[g]; len(offs) > 0 {
				if err := c.opts.Offsets.Commit(g, offs); err != nil {
					c.logger.Warn("apply a committed transaction's offsets; will retry", zap.String("transactional_id", e.id), zap.String("group", g), zap.Error(err))
					return false
				}
			}
		}
	}
	st.State = CompleteAbort
	outcome := "abort"
	if st.TimedOut {
		outcome = "timeout"
	}
	if commit {
		st.State, outcome = CompleteCommit, "commit"
	}
	st.Partitions, st.Groups, st.TimedOut = nil, nil, false
	if st.Rotate {
		pid, err := c.opts.NextProducerID()
		if err != nil {
			c.logger.Warn("allocate a producer id for an id at its last epoch; will retry", zap.String("transactional_id", e.id), zap.Error(err))
			return false
		}
		st.ProducerID, st.Epoch, st.LastEpoch, st.Rotate = pid, 0, -1, false
	}
	if err := c.persist(e, st); err != nil {
		c.logger.Warn("record a transaction complete; will retry", zap.String("transactional_id", e.id), zap.Error(err))
		return false
	}
	if c.opts.OnEnd != nil {
		c.opts.OnEnd(outcome)
	}
	return true
}

// Open counts the transactions open: Ongoing, or decided with markers
// still to write.
func (c *Coordinator) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// lookup returns the entry of a transactional id, creating an empty one
// (not yet persisted, ProducerID -1) if create is set.
func (c *Coordinator) lookup(id string, create bool) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.txns[id]
	if e == nil && create {
		e = &entry{id: id, st: txnState{ProducerID: -1, Epoch: -1, LastEpoch: -1}}
		c.txns[id] = e
	}
	return e
}

// Result is the answer to InitProducerID.
type Result struct {
	ProducerID int64
	Epoch      int16
}

// InitProducerID handles InitProducerId for a transactional id: a new id
// gets a new producer id in epoch 0; a known one gets its epoch bumped
// (fencing any older producer), after its open transaction is aborted.
// reqPID and reqEpoch are the v3+ fields (-1 when absent).
func (c *Coordinator) InitProducerID(id string, timeout time.Duration, reqPID int64, reqEpoch int16) (Result, error) {
	if id == "" {
		return Result{}, fmt.Errorf("empty transactional id: %w", kerr.InvalidRequest)
	}
	if timeout <= 0 || timeout > c.cfg.MaxTimeout {
		return Result{}, fmt.Errorf("transaction timeout %v, transaction.max.timeout.ms is %v: %w", timeout, c.cfg.MaxTimeout, kerr.InvalidTransactionTimeout)
	}
	e := c.lookup(id, true)
	e.op.Lock()
	defer e.op.Unlock()
	c.mu.Lock()
	st := e.st
	c.mu.Unlock()
	if st.ProducerID < 0 {
		pid, err := c.opts.NextProducerID()
		if err != nil {
			return Result{}, fmt.Errorf("allocate a producer id: %w", kerr.CoordinatorNotAvailable)
		}
		st = txnState{ProducerID: pid, Epoch: 0, LastEpoch: -1, State: Empty, TimeoutMs: int32(timeout.Milliseconds())}
		if err := c.persist(e, st); err != nil {
			c.forgetUnpersisted(e)
			return Result{}, fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
		}
		return Result{st.ProducerID, st.Epoch}, nil
	}
	// An id in use. reqPID names the producer asking (v3+, KIP-360): one
	// that was told its epoch is stale bumps its own epoch, and a retry of
	// that bump gets the epoch it was given. Without reqPID it is a new
	// instance, which fences every earlier one for good (LastEpoch -1).
	retry := false
	if reqPID >= 0 {
		switch {
		case reqPID != st.ProducerID:
			return Result{}, fmt.Errorf("transactional id %q has producer id %d, not %d: %w", id, st.ProducerID, reqPID, kerr.InvalidProducerIDMapping)
		case reqEpoch == st.Epoch:
		case st.LastEpoch >= 0 && reqEpoch == st.LastEpoch && st.State != Ongoing:
			retry = true
		default:
			return Result{}, fmt.Errorf("transactional id %q is at epoch %d, not %d: %w", id, st.Epoch, reqEpoch, kerr.ProducerFenced)
		}
	}
	if !c.settled(e) {
		return Result{}, fmt.Errorf("transactional id %q is completing a transaction: %w", id, kerr.ConcurrentTransactions)
	}
	c.mu.Lock()
	st = e.st
	c.mu.Unlock()
	if retry && st.State != Ongoing {
		return Result{st.ProducerID, st.Epoch}, nil
	}
	last := int16(-1)
	if reqPID >= 0 {
		last = st.Epoch
	}
	if st.State == Ongoing {
		// Abort the open transaction in a new epoch, which fences its
		// producer; the producer asking continues in that epoch. At the
		// last epoch the abort keeps it and the id moves to a new
		// producer id instead (Rotate).
		if st.Epoch >= math.MaxInt16-1 {
			st.Rotate = true
		} else {
			st.Epoch++
		}
		if err := c.decide(e, st, false); err != nil {
			return Result{}, fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
		}
		if !c.settled(e) {
			return Result{}, fmt.Errorf("transactional id %q is completing a transaction: %w", id, kerr.ConcurrentTransactions)
		}
		c.mu.Lock()
		st = e.st
		c.mu.Unlock()
		if st.Epoch == 0 {
			last = -1 // a new producer id
		}
	} else if st.Epoch >= math.MaxInt16-1 {
		pid, err := c.opts.NextProducerID()
		if err != nil {
			return Result{}, fmt.Errorf("allocate a producer id: %w", kerr.CoordinatorNotAvailable)
		}
		st.ProducerID, st.Epoch, last = pid, 0, -1
	} else {
		st.Epoch++
	}
	st.LastEpoch = last
	st.State = Empty
	st.TimeoutMs = int32(timeout.Milliseconds())
	st.Partitions, st.Groups = nil, nil
	if err := c.persist(e, st); err != nil {
		return Result{}, fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
	}
	return Result{st.ProducerID, st.Epoch}, nil
}

// forgetUnpersisted drops an entry created by lookup whose first write
// failed.
func (c *Coordinator) forgetUnpersisted(e *entry) {
	c.mu.Lock()
	if e.st.ProducerID < 0 && c.txns[e.id] == e {
		delete(c.txns, e.id)
	}
	c.mu.Unlock()
}

// settled completes a decided transaction if it can and reports whether
// e is no longer between decision and completion. Callers hold e.op.
func (c *Coordinator) settled(e *entry) bool {
	c.mu.Lock()
	s := e.st.State
	c.mu.Unlock()
	if s != PrepareCommit && s != PrepareAbort {
		return true
	}
	return c.complete(e)
}

// acquire finds id's entry, locks its operations and checks the
// request's producer id and epoch; with settle it also completes a
// decided transaction first (CONCURRENT_TRANSACTIONS if it cannot). On
// success the caller unlocks e.op. An empty id is INVALID_REQUEST.
func (c *Coordinator) acquire(id string, pid int64, epoch int16, settle bool) (*entry, txnState, error) {
	if id == "" {
		// A malformed request, as Kafka's coordinator answers it.
		return nil, txnState{}, fmt.Errorf("empty transactional id: %w", kerr.InvalidRequest)
	}
	e := c.lookup(id, false)
	if e == nil {
		return nil, txnState{}, fmt.Errorf("transactional id %q is unknown: %w", id, kerr.InvalidProducerIDMapping)
	}
	e.op.Lock()
	st, err := c.check(id, e, pid, epoch)
	if err == nil && settle && !c.settled(e) {
		err = fmt.Errorf("transactional id %q is completing a transaction: %w", id, kerr.ConcurrentTransactions)
	}
	if err != nil {
		e.op.Unlock()
		return nil, st, err
	}
	if settle {
		c.mu.Lock()
		st = e.st
		c.mu.Unlock()
	}
	return e, st, nil
}

// check validates a request's producer id and epoch against the
// transactional id and returns the state; callers hold e.op.
func (c *Coordinator) check(id string, e *entry, pid int64, epoch int16) (txnState, error) {
	if e == nil {
		return txnState{}, fmt.Errorf("transactional id %q is unknown: %w", id, kerr.InvalidProducerIDMapping)
	}
	c.mu.Lock()
	st := e.st
	c.mu.Unlock()
	switch {
	case st.ProducerID < 0 || st.ProducerID != pid:
		return st, fmt.Errorf("transactional id %q has producer id %d, not %d: %w", id, st.ProducerID, pid, kerr.InvalidProducerIDMapping)
	case epoch != st.Epoch:
		return st, fmt.Errorf("transactional id %q is at epoch %d, not %d: %w", id, st.Epoch, epoch, kerr.ProducerFenced)
	}
	return st, nil
}

// AddPartitions handles AddPartitionsToTxn: one error per partition, nil
// when added. Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION
// and the others OPERATION_NOT_ATTEMPTED, as in Kafka.
func (c *Coordinator) AddPartitions(id string, pid int64, epoch int16, tps []TopicPartition) []error {
	errs := make([]error, len(tps))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	e, st, err := c.acquire(id, pid, epoch, true)
	if err != nil {
		return fail(err)
	}
	defer e.op.Unlock()
	unknown := false
	for i, tp := range tps {
		if !c.opts.Partitions.Exists(tp) {
			errs[i] = fmt.Errorf("%s-%d does not exist: %w", tp.Topic, tp.Partition, kerr.UnknownTopicOrPartition)
			unknown = true
		}
	}
	if unknown {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = kerr.OperationNotAttempted
			}
		}
		return errs
	}
	return fail(c.begin(e, st, func(st *txnState) bool {
		have := make(map[TopicPartition]bool, len(st.Partitions))
		for _, tp := range st.Partitions {
			have[tp] = true
		}
		changed := false
		for _, tp := range tps {
			if !have[tp] {
				have[tp] = true
				st.Partitions = append(st.Partitions, tp)
				changed = true
			}
		}
		return changed
	}))
}

// begin applies add to st, opening the transaction if it is not open, and
// persists it if anything changed. Callers hold e.op.
func (c *Coordinator) begin(e *entry, st txnState, add func(*txnState) bool) error {
	changed := false
	if st.State != Ongoing {
		st.State, st.StartMs = Ongoing, c.now().UnixMilli()
		st.Partitions, st.Groups = nil, nil
		changed = true
	}
	st.Partitions = slices.Clone(st.Partitions)
	st.Groups = maps.Clone(st.Groups)
	if add(&st) {
		changed = true
	}
	if !changed {
		return nil
	}
	if err := c.persist(e, st); err != nil {
		return fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
	}
	return nil
}

// AddOffsets handles AddOffsetsToTxn: the group's offsets may then be
// committed in the transaction.
func (c *Coordinator) AddOffsets(id string, pid int64, epoch int16, group string) error {
	e, st, err := c.acquire(id, pid, epoch, true)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	return c.begin(e, st, func(st *txnState) bool {
		if _, ok := st.Groups[group]; ok {
			return false
		}
		if st.Groups == nil {
			st.Groups = map[string][]Offset{}
		}
		st.Groups[group] = nil
		return true
	})
}

// CommitOffsets handles TxnOffsetCommit: the offsets wait in the
// transaction until it commits. The transaction must have added the
// group (AddOffsetsToTxn).
func (c *Coordinator) CommitOffsets(id string, pid int64, epoch int16, group, member, instance string, generation int32, offsets []Offset) error {
	e, st, err := c.acquire(id, pid, epoch, false)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	if st.State != Ongoing {
		return fmt.Errorf("transactional id %q is %s: %w", id, st.State, kerr.InvalidTxnState)
	}
	if _, ok := st.Groups[group]; !ok {
		return fmt.Errorf("group %q was not added to transaction %q: %w", group, id, kerr.InvalidTxnState)
	}
	if generation >= 0 || member != "" {
		if err := c.opts.Offsets.CheckMember(group, member, instance, generation); err != nil {
			return err
		}
	}
	// The offsets are written with the transaction's state before the
	// answer: a producer that commits after a broker restart must not
	// lose them.
	pending := slices.Clone(st.Groups[group])
	now := c.now().UnixMilli()
	for _, o := range offsets {
		o.AtMs = now
		i := slices.IndexFunc(pending, func(p Offset) bool { return p.TopicPartition == o.TopicPartition })
		if i >= 0 {
			pending[i] = o
		} else {
			pending = append(pending, o)
		}
	}
	st.Groups = maps.Clone(st.Groups)
	st.Groups[group] = pending
	st.Partitions = slices.Clone(st.Partitions)
	if err := c.persist(e, st); err != nil {
		return fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
	}
	return nil
}

// PendingOffset reports whether an open transaction holds an offset of
// group for tp not yet committed (OffsetFetch's RequireStable).
func (c *Coordinator) PendingOffset(group string, tp TopicPartition) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := range c.open {
		if e.st.State == PrepareAbort {
			continue
		}
		for _, o := range e.st.Groups[group] {
			if o.TopicPartition == tp {
				return true
			}
		}
	}
	return false
}

// EndTxn handles EndTxn: commit or abort the open transaction. A retry of
// an EndTxn already done succeeds.
func (c *Coordinator) EndTxn(id string, pid int64, epoch int16, commit bool) error {
	e, st, err := c.acquire(id, pid, epoch, false)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	want, decided, verb := CompleteAbort, PrepareAbort, "abort"
	if commit {
		want, decided, verb = CompleteCommit, PrepareCommit, "commit"
	}
	switch st.State {
	case Ongoing:
		if err := c.decide(e, st, commit); err != nil {
			return fmt.Errorf("%w: %w", err, kerr.CoordinatorNotAvailable)
		}
		return nil
	case want:
		return nil
	case decided:
		if !c.settled(e) {
			return fmt.Errorf("transactional id %q is completing a transaction: %w", id, kerr.ConcurrentTransactions)
		}
		return nil
	case PrepareCommit, PrepareAbort:
		return fmt.Errorf("transactional id %q is %s: %w", id, st.State, kerr.ConcurrentTransactions)
	}
	return fmt.Errorf("transactional id %q is %s, cannot %s: %w", id, st.State, verb, kerr.InvalidTxnState)
}

// BeginWrite checks that producer pid in epoch may write transactional
// batches to tp: its transaction is Ongoing and added tp. On success the
// returned release must be called once the batches are appended; until
// then the transaction cannot end.
func (c *Coordinator) BeginWrite(pid int64, epoch int16, tp TopicPartition) (release func(), err error) {
	c.mu.Lock()
	e := c.byPID[pid]
	c.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("producer id %d has no transaction: %w", pid, kerr.InvalidTxnState)
	}
	e.write.RLock()
	c.mu.Lock()
	st := e.st
	_, added := e.parts[tp]
	c.mu.Unlock()
	switch {
	case st.ProducerID != pid:
		err = fmt.Errorf("producer id %d has no transaction: %w", pid, kerr.InvalidTxnState)
	case epoch < st.Epoch:
		err = fmt.Errorf("producer %d epoch %d is fenced by epoch %d: %w", pid, epoch, st.Epoch, kerr.InvalidProducerEpoch)
	case epoch > st.Epoch:
		err = fmt.Errorf("producer %d epoch %d is newer than the coordinator's %d: %w", pid, epoch, st.Epoch, kerr.InvalidProducerEpoch)
	case st.State != Ongoing || !added:
		err = fmt.Errorf("%s-%d is not in producer %d's transaction (%s): %w", tp.Topic, tp.Partition, pid, st.State, kerr.InvalidTxnState)
	}
	if err != nil {
		e.write.RUnlock()
		return nil, err
	}
	return e.write.RUnlock, nil
}

// Description is a transactional id's state, for DescribeTransactions and
// ListTransactions.
type Description struct {
	ID         string
	ProducerID int64
	Epoch      int16
	State      State
	TimeoutMs  int32
	StartMs    int64
	Partitions []TopicPartition
	Groups     []string // added by AddOffsetsToTxn, sorted
}

// Describe returns the state of every transactional id (ids nil) or of
// the ids given (unknown ones omitted).
func (c *Coordinator) Describe(ids []string) []Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Description
	add := func(e *entry) {
		if e.st.ProducerID < 0 {
			return
		}
		out = append(out, Description{ID: e.id, ProducerID: e.st.ProducerID, Epoch: e.st.Epoch, State: e.st.State,
			TimeoutMs: e.st.TimeoutMs, StartMs: e.st.StartMs, Partitions: slices.Clone(e.st.Partitions),
			Groups: slices.Sorted(maps.Keys(e.st.Groups))})
	}
	if ids == nil {
		for _, id := range slices.Sorted(maps.Keys(c.txns)) {
			add(c.txns[id])
		}
		return out
	}
	for _, id := range ids {
		if e := c.txns[id]; e != nil {
			add(e)
		}
	}
	return out
}
