package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// runConsume is consumeRecords, ending as a reader that goes away
// (`gregor consume ... | head -3`) should end it: when the pipe's reader
// closes, the command stops as on an interrupt (a group member commits
// what it wrote and leaves the group), even while no record comes; a
// write to the closed pipe ends it quietly instead of killing it with
// SIGPIPE before it could commit and leave.
func runConsume(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f, ok := stdout.(*os.File); ok && isPipe(f) {
		go watchReaderGone(ctx, f, cancel)
	}
	err := consumeRecords(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// isPipe reports whether f is a pipe (or FIFO).
func isPipe(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// watchReaderGone calls gone once the reading end of the pipe f is
// closed (poll reports POLLERR on the writing end), or returns when ctx
// ends.
func watchReaderGone(ctx context.Context, f *os.File, gone context.CancelFunc) {
	fd := int32(f.Fd())
	for ctx.Err() == nil {
		fds := []unix.PollFd{{Fd: fd, Events: 0}}
		n, err := unix.Poll(fds, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			gone()
			return
		}
	}
}

// consumeRecords prints the records of a topic, consuming its partitions
// directly (no group). Without --follow it stops at the end offsets the
// partitions had when it started; with -n it stops after that many records.
// An interrupt ends it cleanly. With --group it consumes as a member of
// that consumer group instead (see runGroupConsume), stopping the same way
// at the end of the partitions the group assigned it.
func consumeRecords(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("consume", "", stderr)
	cf := addClientFlags(fs)
	var topic, from, format string
	var follow bool
	var count int64
	fs.StringVar(&topic, "topic", "", "topic to consume (required)")
	fs.StringVar(&topic, "t", "", "topic to consume (shorthand)")
	fs.StringVar(&from, "from", "beginning", "where to start in each partition: beginning, end, OFFSET, @TIMESTAMP_MS or -N (the last N records)")
	partition := fs.Int("partition", -1, "consume only this partition (-1: all)")
	fs.Int64Var(&count, "n", 0, "stop after this many records (0: no limit)")
	fs.Int64Var(&count, "max-messages", 0, "stop after this many records (0: no limit); -n, by the name kafka-console-consumer gives it")
	fromBeginning := fs.Bool("from-beginning", false, "--from beginning (the default), by the name kafka-console-consumer gives it")
	fs.BoolVar(&follow, "follow", false, "keep waiting for new records instead of stopping at the end")
	fs.BoolVar(&follow, "f", false, "follow (shorthand)")
	fs.StringVar(&format, "format", `%s\n`, `output template, with kcat's -f directives: %s value, %k key, %S and %K their lengths (-1 for null), %R the value length as a big-endian int32, %t topic, %p partition, %o offset, %T timestamp ms, %h headers (k=v,k=v; a null value prints k=NULL), %%, \n, \t, \r, \0, \\, \xHH`)
	var printNull bool
	fs.BoolVar(&printNull, "print-null", false, "print a null key or value as NULL (kcat -Z prints empty ones as NULL too; gregor keeps them empty); without it, null prints as nothing, like empty")
	fs.BoolVar(&printNull, "Z", false, "print-null (shorthand)")
	fetchMaxWait := fs.Duration("fetch-max-wait", 0, "how long the broker may hold a fetch waiting for data (0: client default)")
	timeout := fs.Duration("timeout", 2*time.Minute, "without --follow, give up when the cluster cannot be reached, or no record arrives while some are left to read, for this long")
	cf.timeout = timeout
	isolation := fs.String("isolation-level", "read_uncommitted", "read_uncommitted reads every record; read_committed only those of committed transactions (and non-transactional ones), up to the last stable offset")
	group := fs.String("group", "", "consume as a member of this consumer group, committing what was printed; stops, as without it, at the end of the partitions the group assigned it unless --follow (--from applies where the group has no committed offset)")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if topic == "" {
		return usagef("--topic is required")
	}
	if *fromBeginning && from != "beginning" {
		return usagef("--from-beginning and --from %s name different starts", from)
	}
	// -n and --max-messages share a variable: the last would win.
	counts := 0
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "n" || f.Name == "max-messages" {
			counts++
		}
	})
	if counts > 1 {
		return usagef("-n and --max-messages are one setting: give one of them")
	}
	if count < 0 {
		return usagef("-n must not be negative")
	}
	if *partition < -1 || *partition > 1<<31-1 {
		return usagef("--partition %d out of range: want a partition number, or -1 for all", *partition)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	var committed bool
	switch *isolation {
	case "read_uncommitted":
	case "read_committed":
		committed = true
	default:
		return usagef("--isolation-level %q: want read_uncommitted or read_committed", *isolation)
	}
	isoOpt := kgo.FetchIsolationLevel(kgo.ReadUncommitted())
	if committed {
		isoOpt = kgo.FetchIsolationLevel(kgo.ReadCommitted())
	}
	spec, err := parseStartSpec(from)
	if err != nil {
		return &usageError{err: err}
	}
	recFmt, err := parseRecordFormat(format)
	if err != nil {
		return &usageError{err: err}
	}
	if printNull {
		recFmt.null = []byte("NULL")
	}
	conn := newConnReporter(stderr)
	defer conn.stop()
	if *group != "" {
		if *partition >= 0 {
			return usagef("--partition cannot be used with --group: the group assigns partitions")
		}
		reset, err := spec.groupReset()
		if err != nil {
			return &usageError{err: err}
		}
		opts := []kgo.Opt{kgo.ConsumerGroup(*group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset), kgo.AutoCommitMarks(), kgo.WithHooks(conn), kgo.WithLogger(conn), kgo.KeepRetryableFetchErrors(), isoOpt}
		if *fetchMaxWait > 0 {
			opts = append(opts, kgo.FetchMaxWait(*fetchMaxWait))
		}
		if follow {
			low := &lowCommits{cf: cf, topic: topic, reset: reset, spec: spec, from: from, notify: conn.printf, opts: []kgo.Opt{kgo.WithHooks(conn)}, starts: newStartMarks(topic)}
			opts = append(opts, kgo.AdjustFetchOffsetsFn(low.adjust))
			return runGroupConsume(ctx, cf, opts, recFmt, count, stdout, conn, nil, low.starts, 0)
		}
		// Without --follow a member stops where the topic ended when it
		// started, as a direct consume does: it needs those ends and,
		// for partitions the group has no offset for, where --from
		// starts.
		planCtx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		plan, err := planConsume(planCtx, cf, topic, -1, spec, committed, kgo.WithHooks(conn))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return timeoutErr(ctx, planCtx, *timeout, err)
		}
		end := newGroupEnd(plan, reset)
		end.from, end.notify, end.starts = from, conn.printf, newStartMarks(topic)
		opts = append(opts,
			kgo.KeepControlRecords(), // their offsets tell us we passed the end
			kgo.OnPartitionsAssigned(end.assigned),
			kgo.AdjustFetchOffsetsFn(end.adjust),
			kgo.OnPartitionsRevoked(end.revoked),
			kgo.OnPartitionsLost(end.lost))
		return runGroupConsume(ctx, cf, opts, recFmt, count, stdout, conn, end, end.starts, *timeout)
	}

	planCtx := ctx
	if !follow {
		var cancel context.CancelFunc
		planCtx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	plan, err := planConsume(planCtx, cf, topic, int32(*partition), spec, committed, kgo.WithHooks(conn))
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while waiting for the cluster
		}
		return timeoutErr(ctx, planCtx, *timeout, err)
	}
	for _, n := range plan.outOfRange(spec) {
		conn.printf("gregor consume: %s\n", n)
	}
	c := newConsumer(plan, recFmt, follow, count, stdout)
	if !follow {
		c.idle = *timeout
	}
	if c.finished() {
		return nil
	}
	opts := []kgo.Opt{
		kgo.ConsumePartitions(plan.kgoOffsets(c.wants)),
		kgo.KeepControlRecords(), // their offsets tell us we passed the end
		kgo.WithHooks(conn),
		kgo.KeepRetryableFetchErrors(),
		isoOpt,
	}
	if *fetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(*fetchMaxWait))
	}
	cl, err := cf.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if follow && *partition < 0 {
		watchCtx, stopWatch := context.WithCancel(ctx)
		var watching sync.WaitGroup
		watching.Add(1)
		go func() {
			defer watching.Done()
			followNewPartitions(watchCtx, cl, topic, plan.start, partitionCheckEvery, conn.printf)
		}()
		defer func() { stopWatch(); watching.Wait() }() // before cl.Close
	}
	return c.run(ctx, cl, conn)
}

// runGroupConsume prints records as a group member until ctx ends (an
// interrupt), limit records (0: none) were printed or, with end set, the
// partitions assigned to it reached their ends. Only printed records are
// committed: marked as they are printed, committed every few seconds and
// once more, synchronously, before leaving the group. With idle set it
// fails when no record arrives for that long before it is done.
func runGroupConsume(ctx context.Context, cf *clientFlags, opts []kgo.Opt, format *recordFormat, limit int64, stdout io.Writer, conn *connReporter, end *groupEnd, starts *startMarks, idle time.Duration) error {
	cl, err := cf.newClient(opts...)
	if err != nil {
		return err
	}
	defer closeGroupClient(cl, conn) // leaves the group
	out := bufio.NewWriterSize(stdout, 64<<10)
	commit := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := commitStarts(cctx, cl, starts); err != nil { // found since the last poll
			return err
		}
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			return fmt.Errorf("commit offsets: %w", err)
		}
		return nil
	}
	var printed int64
	var buf []byte
	var batch []*kgo.Record
	lastRecord := time.Now()
	for (limit == 0 || printed < limit) && !end.done() {
		var pollCtx context.Context
		var cancel context.CancelFunc
		if idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, min(idle, tailCheckAfter))
		} else {
			pollCtx, cancel = context.WithCancel(ctx)
		}
		end.setWake(cancel)
		starts.setWake(cancel)
		fetches := cl.PollFetches(pollCtx)
		timedOut := ctx.Err() == nil && errors.Is(pollCtx.Err(), context.DeadlineExceeded)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		if timedOut && !end.done() {
			if !end.isJoined() && time.Since(lastRecord) >= idle {
				why := "no answer from the group coordinator"
				if err := conn.lastGroupError(); err != nil {
					why = "the last error: " + err.Error()
				}
				return fmt.Errorf("could not join the group within %v (%s); giving up (see --timeout)", idle, why)
			}
			if end.emptyTails(ctx, cl) || time.Since(lastRecord) < idle {
				continue
			}
			_ = out.Flush()
			return errors.Join(fmt.Errorf("no record arrived for %v before the partitions assigned to this member reached their ends; giving up (see --timeout)", idle), commit())
		}
		if fetches.NumRecords() > 0 {
			lastRecord = time.Now()
		}
		// Where the group had no offset, the start is committed even if
		// nothing follows it, as a Kafka consumer commits its position:
		// a member that started at the end and printed nothing leaves
		// the group there, not at the reset of the next run. Committed
		// before the partition's records are marked (they come after
		// the adjust that found the start), so it never goes back.
		if err := commitStarts(ctx, cl, starts); err != nil && ctx.Err() == nil {
			_ = out.Flush()
			return err
		}
		if fetchErr := conn.fetchErrors(fetches, context.Canceled); fetchErr != nil {
			_ = out.Flush()
			return errors.Join(fetchErr, commit())
		}
		batch = batch[:0]
		fetches.EachRecord(func(r *kgo.Record) {
			if limit > 0 && printed >= limit {
				return
			}
			if !r.Attrs.IsControl() {
				buf = format.appendRecord(buf[:0], r)
				_, _ = out.Write(buf) // the error is sticky; Flush reports it
				printed++
			}
			batch = append(batch, r)
			end.advance(r.Partition, r.Offset+1)
		})
		if err := out.Flush(); err != nil {
			// Not marked: what may not have reached the reader is
			// not committed (a closed pipe, say); leaving the group
			// commits what was written before.
			return fmt.Errorf("write output: %w", err)
		}
		// Marked once written out, so only those are committed.
		cl.MarkCommitRecords(batch...)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return commit()
}

// groupLeaveWait bounds how long a group member waits to leave the group
// at exit: a coordinator that cannot complete the rebalance (a full disk,
// say) would otherwise hold the command.
const groupLeaveWait = 10 * time.Second

// closeGroupClient closes cl, which leaves the group, waiting at most
// groupLeaveWait; past it the command exits without the leave, and the
// group rebalances when the member's session times out.
func closeGroupClient(cl *kgo.Client, conn *connReporter) {
	done := make(chan struct{})
	go func() { cl.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(groupLeaveWait):
		conn.printf("gregor: leaving the group did not finish within %v; exiting without it (the group rebalances when this member's session times out)\n", groupLeaveWait)
	}
}

// groupEnd follows, for a group member consuming without --follow, how
// far each partition assigned to it is from the end the topic had when
// the command started (plan.end); the member is done once it was assigned
// its partitions and all of them are there. Its methods are kgo group
// callbacks and the poll loop's, safe for concurrent use; a nil *groupEnd
// is never done (--follow).
type groupEnd struct {
	plan  *consumePlan
	reset kgo.Offset // the group's reset offset, marking "no committed offset"
	// from is --from, and notify prints a notice, for a committed offset
	// below the log start.
	from   string
	notify func(format string, args ...any)
	starts *startMarks // where partitions without a committed offset start

	mu       sync.Mutex
	joined   bool
	position map[int32]int64 // of each assigned partition
	wake     context.CancelFunc
}

func newGroupEnd(plan *consumePlan, reset kgo.Offset) *groupEnd {
	return &groupEnd{plan: plan, reset: reset, position: map[int32]int64{}}
}

// assigned is the kgo.OnPartitionsAssigned callback, called after every
// join, even one that assigned nothing: the new partitions are behind
// until adjust, which kgo calls next, says where they start.
func (g *groupEnd) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joined = true
	for _, p := range parts[g.plan.topic] {
		if _, ok := g.position[p]; !ok {
			g.position[p] = -1
		}
	}
	g.wakeIfDone()
}

// adjust is the kgo.AdjustFetchOffsetsFn: it learns where the newly
// assigned partitions start. Where the group has no committed offset it
// starts them where the plan resolved --from, so that the start is known.
func (g *groupEnd) adjust(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joined = true
	for part, o := range offsets[g.plan.topic] {
		at := o.EpochOffset().Offset
		if earliest, ok := g.plan.earliest[part]; ok && o != g.reset && at >= 0 && at < earliest && g.notify != nil {
			// Records deleted since the group committed: starting where
			// --from says, as a group with no offset here does (and as
			// the client would, after an out-of-range fetch).
			g.notify("gregor consume: %s\n", belowLogStart(g.plan.topic, part, at, earliest, g.from))
			at = -1
		}
		if o == g.reset || at < 0 {
			start, ok := g.plan.start[part]
			if !ok { // a partition added since the command started
				g.position[part] = 0 // its end is taken as 0: done
				continue
			}
			offsets[g.plan.topic][part] = kgo.NewOffset().At(start)
			at = start
			g.starts.add(part, start)
		}
		g.position[part] = at
	}
	g.wakeIfDone()
	return offsets, nil
}

// revoked is the kgo.OnPartitionsRevoked callback: it commits what was
// printed, as kgo does without a callback, and forgets the partitions.
func (g *groupEnd) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	_ = cl.CommitMarkedOffsets(ctx) // a failure shows at the final commit
	g.lost(ctx, cl, parts)
}

// lost is the kgo.OnPartitionsLost callback.
func (g *groupEnd) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range parts[g.plan.topic] {
		delete(g.position, p)
	}
	g.wakeIfDone()
}

// advance records that partition was read up to offset.
func (g *groupEnd) advance(partition int32, offset int64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if pos, ok := g.position[partition]; ok && offset > pos {
		g.position[partition] = offset
	}
}

// emptyTails moves each assigned partition that holds no record from its
// position up to its end (see emptyTails) to its end, marking the end for
// the group's commit as a Kafka consumer's position would, and reports
// whether it moved any.
func (g *groupEnd) emptyTails(ctx context.Context, cl *kgo.Client) bool {
	g.mu.Lock()
	behind := map[int32]int64{}
	for p, pos := range g.position {
		if pos >= 0 && pos < g.plan.end[p] {
			behind[p] = pos
		}
	}
	g.mu.Unlock()
	empty := emptyTails(ctx, cl, g.plan.topic, behind, g.plan.end, g.plan.committed)
	if len(empty) == 0 {
		return false
	}
	moved := make(map[int32]kgo.EpochOffset, len(empty))
	for p, epoch := range empty {
		// At the leader's epoch: kgo takes a mark only if it is after
		// the last, by epoch first.
		moved[p] = kgo.EpochOffset{Epoch: epoch, Offset: g.plan.end[p]}
	}
	cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{g.plan.topic: moved})
	for p, eo := range moved {
		g.advance(p, eo.Offset)
	}
	return true
}

// done reports whether every assigned partition reached its end.
func (g *groupEnd) done() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.doneLocked()
}

// isJoined reports whether the member was assigned its partitions (a nil
// *groupEnd, with --follow, does not tell: true).
func (g *groupEnd) isJoined() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joined
}

func (g *groupEnd) doneLocked() bool {
	if !g.joined {
		return false
	}
	for p, pos := range g.position {
		if pos < g.plan.end[p] {
			return false
		}
	}
	return true
}

// setWake registers the cancel func of the poll under way, called once
// done, so that the poll does not wait for records that will not come.
func (g *groupEnd) setWake(cancel context.CancelFunc) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wake = cancel
	g.wakeIfDone()
}

func (g *groupEnd) wakeIfDone() {
	if g.wake != nil && g.doneLocked() {
		g.wake()
	}
}

// firstFetchError returns the first fetch error in fetches, with its
// partition, ignoring ignore (the cancellation that ends a run).
func firstFetchError(fetches kgo.Fetches, ignore error) error {
	var first error
	fetches.EachError(func(topic string, partition int32, err error) {
		if first == nil && !errors.Is(err, ignore) {
			first = fetchError(topic, partition, err)
		}
	})
	return first
}

// fetchError is err, a failed fetch of topic[partition], with the
// partition and, for a topic deleted under the reader, what happened.
func fetchError(topic string, partition int32, err error) error {
	if errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.InconsistentTopicID) {
		return fmt.Errorf("fetch %s[%d]: the topic was deleted while it was read (and perhaps created again: read the new one with --from beginning): %w", topic, partition, err)
	}
	return fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
}

// consumePlan is where each partition starts and, without --follow, ends.
type consumePlan struct {
	topic    string
	start    map[int32]int64
	end      map[int32]int64 // the end offsets when the command started
	earliest map[int32]int64 // the log start offsets then
	// committed: read_committed, ends are last stable offsets.
	committed bool
}

// outOfRange returns a notice for each partition where spec, an offset,
// was outside the partition's offsets and was moved to its start or end,
// in partition order.
func (p *consumePlan) outOfRange(spec startSpec) []string {
	if spec.kind != startOffset {
		return nil
	}
	var out []string
	for _, part := range slices.Sorted(maps.Keys(p.start)) {
		start, earliest, end := p.start[part], p.earliest[part], p.end[part]
		if start == spec.n {
			continue
		}
		held := fmt.Sprintf("which holds offsets %d to %d", earliest, end-1)
		if earliest == end {
			held = fmt.Sprintf("which is empty (its next offset is %d)", end)
		}
		where := "its end"
		if start == earliest && start != end {
			where = "its first record"
		}
		out = append(out, fmt.Sprintf("offset %d is out of range in %s[%d], %s; starting at %d, %s", spec.n, p.topic, part, held, start, where))
	}
	return out
}

// planConsume looks up the topic's partitions and their offsets and
// resolves spec for each partition (only one if partition >= 0). While
// the cluster cannot be reached it retries until ctx ends.
// committed ends the plan at the last stable offsets (read_committed).
func planConsume(ctx context.Context, cf *clientFlags, topic string, partition int32, spec startSpec, committed bool, opts ...kgo.Opt) (*consumePlan, error) {
	cl, err := cf.newClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var plan *consumePlan
	err = untilReachable(ctx, func() error {
		plan, err = planConsumeOnce(ctx, cl, topic, partition, spec, committed)
		return err
	})
	return plan, err
}

// planConsumeOnce is one attempt of planConsume.
func planConsumeOnce(ctx context.Context, cl *kgo.Client, topic string, partition int32, spec startSpec, committed bool) (*consumePlan, error) {
	t, err := topicMetadata(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	ids := partitionIDs(t)
	if partition >= 0 {
		if !slices.Contains(ids, partition) {
			return nil, fmt.Errorf("topic %s has no partition %d (it has %d)", topic, partition, len(ids))
		}
		ids = []int32{partition}
	}
	earliest, err := listOffsetsStrict(ctx, cl, topic, ids, offsetEarliest)
	if err != nil {
		return nil, err
	}
	latestAt := offsetLatest
	if committed {
		latestAt = offsetStable
	}
	latest, err := listOffsetsStrict(ctx, cl, topic, ids, latestAt)
	if err != nil {
		return nil, err
	}
	var byTime map[int32]int64
	if spec.needsTimestampLookup() {
		if byTime, err = listOffsetsStrict(ctx, cl, topic, ids, spec.n); err != nil {
			return nil, err
		}
	}
	plan := &consumePlan{topic: topic, start: map[int32]int64{}, end: latest, earliest: earliest, committed: committed}
	for _, p := range ids {
		bt := int64(-1)
		if byTime != nil {
			bt = byTime[p]
		}
		plan.start[p] = spec.resolve(earliest[p], latest[p], bt)
	}
	return plan, nil
}

// kgoOffsets returns the start offsets of the partitions that want (nil:
// all) accepts, in the form kgo.ConsumePartitions takes.
func (p *consumePlan) kgoOffsets(want func(partition int32) bool) map[string]map[int32]kgo.Offset {
	offsets := make(map[int32]kgo.Offset, len(p.start))
	for part, o := range p.start {
		if want == nil || want(part) {
			offsets[part] = kgo.NewOffset().At(o)
		}
	}
	return map[string]map[int32]kgo.Offset{p.topic: offsets}
}

// consumer writes the records of a plan. Not safe for concurrent use.
type consumer struct {
	plan   *consumePlan
	format *recordFormat
	follow bool
	limit  int64 // 0: none
	out    *bufio.Writer
	// idle, if positive, is how long a poll may go without records
	// before run gives up (--timeout; not with follow).
	idle time.Duration

	printed int64
	buf     []byte
	// pending holds the partitions that have not reached their end yet
	// (only without follow).
	pending map[int32]bool
	// next is where each partition that printed a record goes on.
	next map[int32]int64
}

// newConsumer returns a consumer printing to out that stops after limit
// records (0: no limit) and, unless follow, at the plan's end offsets.
func newConsumer(plan *consumePlan, format *recordFormat, follow bool, limit int64, out io.Writer) *consumer {
	c := &consumer{
		plan:    plan,
		format:  format,
		follow:  follow,
		limit:   limit,
		out:     bufio.NewWriterSize(out, 64<<10),
		pending: map[int32]bool{},
		next:    map[int32]int64{},
	}
	if !follow {
		for p, start := range plan.start {
			if start < plan.end[p] {
				c.pending[p] = true
			}
		}
	}
	return c
}

// finished reports whether there is nothing (left) to print.
func (c *consumer) finished() bool {
	if c.limit > 0 && c.printed >= c.limit {
		return true
	}
	return !c.follow && len(c.pending) == 0
}

// wants reports whether partition needs fetching at all: with follow
// every partition does, without only those not yet at their end.
func (c *consumer) wants(partition int32) bool {
	return c.follow || c.pending[partition]
}

// run polls until finished, ctx is cancelled (a clean stop), a fetch
// fails or, with idle set, no record arrives for that long.
func (c *consumer) run(ctx context.Context, cl *kgo.Client, conn *connReporter) error {
	lastRecord := time.Now()
	for !c.finished() {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if c.idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, min(c.idle, tailCheckAfter))
		}
		fetches := cl.PollFetches(pollCtx)
		timedOut := ctx.Err() == nil && pollCtx.Err() != nil
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return c.flush()
		}
		if timedOut {
			if done := c.emptyTails(ctx, cl); len(done) > 0 {
				cl.PauseFetchPartitions(map[string][]int32{c.plan.topic: done})
				continue
			}
			if time.Since(lastRecord) < c.idle {
				continue
			}
			_ = c.flush()
			return fmt.Errorf("no record arrived for %v though %d partition(s) of %s have records left to read; giving up (see --timeout)",
				c.idle, len(c.pending), c.plan.topic)
		}
		if fetches.NumRecords() > 0 {
			lastRecord = time.Now()
		}
		if fetchErr := conn.fetchErrors(fetches, context.Canceled); fetchErr != nil {
			_ = c.flush()
			return fetchErr
		}
		var done []int32
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if !c.record(r) {
					done = append(done, fp.Partition)
					return
				}
			}
		})
		if len(done) > 0 {
			cl.PauseFetchPartitions(map[string][]int32{c.plan.topic: done})
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
	return nil
}

// emptyTails finishes the pending partitions that hold no record from
// where they were read up to their end (see emptyTails) and returns them.
func (c *consumer) emptyTails(ctx context.Context, cl *kgo.Client) []int32 {
	from := make(map[int32]int64, len(c.pending))
	for p := range c.pending {
		at, ok := c.next[p]
		if !ok {
			at = c.plan.start[p]
		}
		from[p] = at
	}
	var done []int32
	for p := range emptyTails(ctx, cl, c.plan.topic, from, c.plan.end, c.plan.committed) {
		delete(c.pending, p)
		done = append(done, p)
	}
	return done
}

// record prints r unless it is a control record, past the end, or past
// the limit. It returns false once r's partition needs nothing more.
func (c *consumer) record(r *kgo.Record) bool {
	if c.limit > 0 && c.printed >= c.limit {
		return false
	}
	c.next[r.Partition] = r.Offset + 1
	if !c.follow {
		end := c.plan.end[r.Partition]
		if r.Offset >= end {
			delete(c.pending, r.Partition)
			return false
		}
		if r.Offset+1 >= end {
			delete(c.pending, r.Partition)
		}
	}
	if !r.Attrs.IsControl() {
		c.buf = c.format.appendRecord(c.buf[:0], r)
		_, _ = c.out.Write(c.buf) // the error is sticky; flush reports it
		c.printed++
	}
	return c.follow || c.pending[r.Partition]
}

func (c *consumer) flush() error {
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// unreachable reports whether err says the cluster could not be reached
// (a failed dial or a broken connection) rather than that it answered.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		var dns *net.DNSError
		return !errors.As(err, &dns) || !dns.IsNotFound
	}
	return kgo.IsRetryableBrokerErr(err)
}

// untilReachable calls f until it returns nil or an error other than the
// cluster being unreachable, or ctx ends, waiting a second between tries.
// It returns f's last error. The clients' connReporter tells the user
// about the failures meanwhile.
func untilReachable(ctx context.Context, f func() error) error {
	var last error // the last unreachable error, which says more than ctx's
	for {
		err := f()
		switch {
		case err != nil && ctx.Err() != nil && last != nil:
			return last
		case err == nil || !unreachable(err) || ctx.Err() != nil:
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// timeoutErr explains err when it ended an operation bounded by --timeout
// (opCtx, derived from ctx): the timeout passed while the cluster could
// not be reached or did not answer.
func timeoutErr(ctx, opCtx context.Context, timeout time.Duration, err error) error {
	if ctx.Err() == nil && errors.Is(opCtx.Err(), context.DeadlineExceeded) { // not a cancel after the fact
		return fmt.Errorf("gave up after --timeout %v: %w", timeout, err)
	}
	return err
}

// belowLogStart is the notice for a committed offset below the log start.
func belowLogStart(topic string, part int32, committed, earliest int64, from string) string {
	return fmt.Sprintf("the group's committed offset %d in %s[%d] is below the partition's first offset %d (records deleted by retention or DeleteRecords); starting where --from %s puts it", committed, topic, part, earliest, from)
}

// lowCommits is the kgo.AdjustFetchOffsetsFn of a --follow group member:
// it reports the committed offsets below their partition's log start,
// which the client would otherwise move past silently, and starts those
// partitions at the reset offset (where --from puts them), as the client
// does after an out-of-range fetch.
//
// It also resolves the reset offset (--from) of partitions without a
// committed offset, to commit where they start (see startMarks).
type lowCommits struct {
	cf     *clientFlags
	topic  string
	reset  kgo.Offset
	spec   startSpec
	from   string
	notify func(format string, args ...any)
	opts   []kgo.Opt
	starts *startMarks
}

func (l *lowCommits) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	ids := slices.Sorted(maps.Keys(offsets[l.topic]))
	if len(ids) == 0 {
		return offsets, nil
	}
	// Any failure below leaves the offsets to the client: its fetch
	// finds an offset out of range, and it resets.
	cl, err := l.cf.newClient(l.opts...)
	if err != nil {
		return offsets, nil
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	earliest, err := listOffsetsStrict(lctx, cl, l.topic, ids, offsetEarliest)
	if err != nil {
		return offsets, nil
	}
	var latest, byTime map[int32]int64
	for _, part := range ids {
		o := offsets[l.topic][part]
		at := o.EpochOffset().Offset
		if o != l.reset && at >= 0 {
			if e, ok := earliest[part]; !ok || at >= e {
				continue
			}
			l.notify("gregor consume: %s\n", belowLogStart(l.topic, part, at, earliest[part], l.from))
		}
		if latest == nil {
			if latest, err = listOffsetsStrict(lctx, cl, l.topic, ids, offsetLatest); err != nil {
				offsets[l.topic][part] = l.reset
				continue
			}
			if l.spec.needsTimestampLookup() {
				if byTime, err = listOffsetsStrict(lctx, cl, l.topic, ids, l.spec.n); err != nil {
					offsets[l.topic][part] = l.reset
					continue
				}
			}
		}
		bt := int64(-1)
		if byTime != nil {
			bt = byTime[part]
		}
		start := l.spec.resolve(earliest[part], latest[part], bt)
		offsets[l.topic][part] = kgo.NewOffset().At(start)
		l.starts.add(part, start)
	}
	return offsets, nil
}

// commitStarts commits the starts collected since the last call. (Marking
// them for the client's own commits does not take for a partition that
// no record was polled from.)
func commitStarts(ctx context.Context, cl *kgo.Client, starts *startMarks) error {
	m := starts.take()
	if m == nil {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, m, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("commit where the group starts: %w", cerr)
	}
	return nil
}

// startMarks collects, from a group member's AdjustFetchOffsetsFn, where
// the partitions the group has no committed offset for start, for the poll
// loop to mark for commit. Safe for concurrent use; a nil *startMarks
// holds nothing.
type startMarks struct {
	topic string
	mu    sync.Mutex
	m     map[int32]int64
	wake  context.CancelFunc // of the poll under way, to commit them now
}

func newStartMarks(topic string) *startMarks { return &startMarks{topic: topic} }

func (s *startMarks) add(part int32, offset int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int32]int64{}
	}
	s.m[part] = offset
	if s.wake != nil {
		s.wake()
	}
}

// setWake registers the cancel func of the poll under way, called when a
// start is found, so that the poll loop commits it at once rather than
// with the first record (none may come for a long time with --follow).
func (s *startMarks) setWake(cancel context.CancelFunc) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wake = cancel
	if len(s.m) > 0 {
		cancel()
	}
}

// take returns the starts collected since the last take, in the form
// kgo.Client.MarkCommitOffsets takes, or nil.
func (s *startMarks) take() map[string]map[int32]kgo.EpochOffset {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) == 0 {
		return nil
	}
	out := make(map[int32]kgo.EpochOffset, len(s.m))
	for p, o := range s.m {
		out[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	s.m = nil
	return map[string]map[int32]kgo.EpochOffset{s.topic: out}
}
