package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// connReporter is a kgo hook that reports on stderr when a broker cannot
// be reached, so that a command retrying against a cluster that is down
// says so instead of hanging silently: the first failure to connect to a
// broker at once, then at most one line per broker every interval, and
// one line when a reported broker is reached again. Safe for concurrent
// use; after stop it prints nothing.
type connReporter struct {
	out      io.Writer
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	stopped bool
	brokers map[string]*brokerReach
}

// brokerReach is what a connReporter knows of one broker address.
type brokerReach struct {
	lastReport time.Time // zero: no failure reported yet
	failing    bool      // a failure was reported and no connect succeeded since
}

var _ kgo.HookBrokerConnect = (*connReporter)(nil)

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
			fmt.Fprintf(r.out, "gregor: reached broker %s again\n", addr)
		}
		b.failing = false
		return
	}
	now := r.now()
	if !b.lastReport.IsZero() && now.Sub(b.lastReport) < r.interval {
		return
	}
	b.lastReport, b.failing = now, true
	fmt.Fprintf(r.out, "gregor: cannot reach broker %s: %s; retrying\n", addr, dialFailure(err))
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
