package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// connReporter is a kgo hook that reports on stderr when a broker cannot
// be reached, so that a command retrying against a cluster that is down
// says so instead of hanging silently: the first failure to connect to a
// broker at once, then at most one line per broker every interval, and
// one line when a reported broker is reached again. Safe for concurrent
// use; after stop it prints nothing.
type connReporter struct {
	out io.Writer
	// prefix starts every line: "\r\x1b[K" when a progress line that
	// overwrites itself shares the terminal.
	prefix   string
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	stopped bool
	brokers map[string]*brokerReach
	// refused is the last produce error the cluster answered, and
	// refusedAt when it was last reported.
	refused   error
	refusedAt time.Time
	// fetchFailedAt is when a fetch error the client retries was last
	// reported.
	fetchFailedAt time.Time
	// groupErr is the last error that broke the group membership (a
	// join or sync the coordinator refused), and groupErrAt when one was
	// last reported.
	groupErr   error
	groupErrAt time.Time
}

// brokerReach is what a connReporter knows of one broker address.
type brokerReach struct {
	lastReport time.Time // zero: no failure reported yet
	failing    bool      // a failure was reported and no connect succeeded since
}

var (
	_ kgo.HookBrokerConnect    = (*connReporter)(nil)
	_ kgo.HookGroupManageError = (*connReporter)(nil)
	_ kgo.Logger               = (*connReporter)(nil)
)

// connReportInterval is how often a connReporter repeats itself per broker.
const connReportInterval = 5 * time.Second

func newConnReporter(out io.Writer) *connReporter {
	return &connReporter{out: out, interval: connReportInterval, now: time.Now, brokers: map[string]*brokerReach{}}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (r *connReporter) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	r.connectResult(net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), err)
}

// connectResult records one connection attempt to addr.
func (r *connReporter) connectResult(addr string, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return // the command is stopping
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	b := r.brokers[addr]
	if b == nil {
		b = &brokerReach{}
		r.brokers[addr] = b
	}
	if err == nil {
		if b.failing {
			fmt.Fprintf(r.out, "%sgregor: reached broker %s again\n", r.prefix, addr)
		}
		b.failing = false
		return
	}
	now := r.now()
	if !b.lastReport.IsZero() && now.Sub(b.lastReport) < r.interval {
		return
	}
	b.lastReport, b.failing = now, true
	fmt.Fprintf(r.out, "%sgregor: cannot reach broker %s: %s; retrying\n", r.prefix, addr, dialFailure(err))
}

// OnGroupManageError implements kgo.HookGroupManageError: a join, sync or
// heartbeat of the group member failed and the client retries (the
// coordinator cannot write the group's state, say), which it otherwise
// does silently: the first at once, then at most one line every
// interval.
func (r *connReporter) OnGroupManageError(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return // the command is stopping
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groupErr = err
	now := r.now()
	if r.stopped || (!r.groupErrAt.IsZero() && now.Sub(r.groupErrAt) < r.interval) {
		return
	}
	r.groupErrAt = now
	fmt.Fprintf(r.out, "%sgregor: the group membership failed: %v; retrying\n", r.prefix, err)
}

// lastGroupError is the last error OnGroupManageError saw, or nil.
func (r *connReporter) lastGroupError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groupErr
}

// Level implements kgo.Logger. The client tells of batches it retries
// only in its debug lines.
func (r *connReporter) Level() kgo.LogLevel { return kgo.LogLevelDebug }

// retryingBatch finds, in the client's debug line of a produce response,
// a partition's batch the cluster refused with an error the client
// retries: `topic[0{retrying@-1,20(KAFKA_STORAGE_ERROR: ...)}]`.
var retryingBatch = regexp.MustCompile(`(\d+)\{retrying@-?\d+,\d+\((.*?)\)\}`)

// Log implements kgo.Logger. It reports produce batches the cluster
// refused with an error the client retries (a full disk, say), which the
// client otherwise retries silently until the delivery timeout: the first
// at once, then at most one line every interval.
func (r *connReporter) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	if msg == "join group failed" || msg == "sync group failed" {
		// Retried inside the client before (if ever) it gives up the
		// session: reported here, as it happens.
		for i := 0; i+1 < len(keyvals); i += 2 {
			if k, _ := keyvals[i].(string); k == "err" {
				if err, ok := keyvals[i+1].(error); ok {
					r.OnGroupManageError(err)
				}
			}
		}
		return
	}
	if msg == "retrying request" {
		// A group request the coordinator refused with an error the
		// client retries itself (NOT_COORDINATOR from one that cannot
		// write the group's state): as silent as the rest otherwise.
		var req string
		var rerr error
		for i := 0; i+1 < len(keyvals); i += 2 {
			switch k, _ := keyvals[i].(string); k {
			case "request":
				req, _ = keyvals[i+1].(string)
			case "response_error":
				rerr, _ = keyvals[i+1].(error)
			}
		}
		if rerr != nil && (req == "JoinGroup" || req == "SyncGroup") {
			r.OnGroupManageError(fmt.Errorf("%s: %w", req, rerr))
		}
		return
	}
	if msg != "produced" {
		return
	}
	var update string
	for i := 0; i+1 < len(keyvals); i += 2 {
		if k, _ := keyvals[i].(string); k == "to" {
			update, _ = keyvals[i+1].(string)
		}
	}
	if !strings.Contains(update, "retrying@") {
		return
	}
	m := retryingBatch.FindStringSubmatch(update)
	if m == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reason := strings.TrimSuffix(m[2], ".")
	r.refused = errors.New(reason)
	now := r.now()
	if r.stopped || (!r.refusedAt.IsZero() && now.Sub(r.refusedAt) < r.interval) {
		return
	}
	r.refusedAt = now
	fmt.Fprintf(r.out, "%sgregor: the cluster refused records for partition %s: %s; retrying\n", r.prefix, m[1], reason)
}

// lastRefusal is the last produce error the cluster answered, or nil.
func (r *connReporter) lastRefusal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// explainTimeout adds the cluster's last refusal to err when err is
// records timing out: "records have timed out" alone does not say why.
func (r *connReporter) explainTimeout(err error) error {
	if refused := r.lastRefusal(); refused != nil && errors.Is(err, kgo.ErrRecordTimeout) {
		return fmt.Errorf("%w (the cluster's last answer: %v)", err, refused)
	}
	return err
}

// fetchErrors goes through a poll's fetch errors, ignoring ignore (the
// cancellation that ends a run). Errors the client retries, which
// kgo.KeepRetryableFetchErrors makes it return so that they can be told
// (a broker whose disk failed answers KAFKA_STORAGE_ERROR for as long as
// it lasts), are reported, the first at once and then at most one line
// every interval; the first other error is returned, with its partition.
func (r *connReporter) fetchErrors(fetches kgo.Fetches, ignore error) error {
	var first error
	fetches.EachError(func(topic string, partition int32, err error) {
		switch {
		case first != nil || errors.Is(err, ignore):
		case kerr.IsRetriable(err) && !errors.Is(err, kerr.UnknownTopicID) && !errors.Is(err, kerr.InconsistentTopicID):
			r.mu.Lock()
			defer r.mu.Unlock()
			now := r.now()
			if r.stopped || (!r.fetchFailedAt.IsZero() && now.Sub(r.fetchFailedAt) < r.interval) {
				return
			}
			r.fetchFailedAt = now
			fmt.Fprintf(r.out, "%sgregor: fetching %s[%d] failed: %s; retrying\n", r.prefix, topic, partition, strings.TrimSuffix(err.Error(), "."))
		default:
			first = fetchError(topic, partition, err)
		}
	})
	return first
}

// printf prints a line of the command's own, never in the middle of a
// report.
func (r *connReporter) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, format, args...)
}

// stop ends reporting; the command's own last words follow.
func (r *connReporter) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// dialFailure is the short reason of a failed connection: "connection
// refused" rather than "dial tcp 127.0.0.1:9092: connect: connection
// refused", which would repeat the address.
func dialFailure(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	return err.Error()
}

// syncWriter serialises writes to w, for a writer two goroutines print to
// (a progress line and a connReporter).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
