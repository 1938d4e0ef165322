package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestConnReporterRateLimit(t *testing.T) {
	var out syncBuffer
	r := newConnReporter(&out)
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	const a, b = "127.0.0.1:9092", "127.0.0.1:9093"

	r.connectResult(a, refused) // the first failure: at once
	now = now.Add(time.Second)
	r.connectResult(a, refused) // within 5s of the last report: quiet
	r.connectResult(b, refused) // another broker: its own limit
	now = now.Add(3 * time.Second)
	r.connectResult(a, refused) // 4s since the report: quiet
	now = now.Add(time.Second)
	r.connectResult(a, refused)                 // 5s: reported again
	r.connectResult(a, context.Canceled)        // the client closing: never reported
	r.connectResult(b, nil)                     // b is back
	r.connectResult(b, nil)                     // said once only
	r.connectResult("127.0.0.1:9094", nil)      // never failed: nothing to say
	r.connectResult(b, errors.New("i/o error")) // 4s after b's report: quiet
	now = now.Add(time.Second)
	r.connectResult(b, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}})
	r.stop()
	now = now.Add(time.Minute)
	r.connectResult(a, refused) // stopped: quiet

	want := []string{
		"gregor: cannot reach broker 127.0.0.1:9092: connection refused; retrying",
		"gregor: cannot reach broker 127.0.0.1:9093: connection refused; retrying",
		"gregor: cannot reach broker 127.0.0.1:9092: connection refused; retrying",
		"gregor: reached broker 127.0.0.1:9093 again",
		"gregor: cannot reach broker 127.0.0.1:9093: timed out; retrying",
	}
	if got := lines(out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnreachableBroker checks that produce and consume say at once that
// the broker cannot be reached while they retry, and give up after
// --timeout.
func TestUnreachableBroker(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	msg := fmt.Sprintf("gregor: cannot reach broker %s: connection refused; retrying", addr)
	for _, args := range [][]string{
		{"produce", "-b", addr, "-t", "x", "--timeout", "2s"},
		{"consume", "-b", addr, "-t", "x", "--timeout", "2s"},
	} {
		start := time.Now()
		code, _, stderr := runCLI(t, "hi\n", args...)
		if took := time.Since(start); code != 1 || !strings.Contains(stderr, msg) || took > 10*time.Second {
			t.Errorf("%q: exit %d after %v, stderr %q; want exit 1 soon with %q", args, code, took, stderr, msg)
		}
	}

	// With --follow, consume keeps trying, reporting it, until interrupted.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "-b", addr, "-t", "x", "-f"}, strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the report", func() bool { return strings.Contains(errOut.String(), msg) })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("interrupted follow exited %d: %s", code, errOut.String())
	}
}

// TestConsumeTimeout checks that consume without --follow gives up when
// the broker stops answering fetches while records are left to read.
func TestConsumeTimeout(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "stuck"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.ListenAddrs()[0]
	mustRun(t, "a\nb\n", "produce", "-b", b, "-t", "stuck")
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errors.New("no fetching"), true // closes the connection
	})
	start := time.Now()
	code, stdout, stderr := runCLI(t, "", "consume", "-b", b, "-t", "stuck", "--timeout", "1s")
	if took := time.Since(start); code != 1 || stdout != "" || took > 10*time.Second ||
		!strings.Contains(stderr, "no record arrived for 1s though 1 partition(s) of stuck have records left to read") {
		t.Errorf("exit %d after %v, stdout %q, stderr %q", code, took, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "", "consume", "-b", b, "-t", "stuck", "--timeout", "0s"); code != 2 || !strings.Contains(stderr, "--timeout must be positive") {
		t.Errorf("--timeout 0s: exit %d, stderr %q", code, stderr)
	}
}

// TestConsumeReportsRetriedFetchErrors: a partition whose fetches fail
// with an error the client retries (a broker whose disk failed answers
// KAFKA_STORAGE_ERROR) is reported on stderr while consume retries, with
// and without a group, and the records come once the fetches work again.
// Before, consume printed nothing: the client retried silently.
func TestConsumeReportsRetriedFetchErrors(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sick"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.ListenAddrs()[0]
	mustRun(t, "a\nb\n", "produce", "-b", b, "-t", "sick")
	for _, args := range [][]string{
		{"consume", "-b", b, "-t", "sick", "--from", "beginning", "--timeout", "20s"},
		{"consume", "-b", b, "-t", "sick", "--group", "g", "--from", "beginning", "--timeout", "20s"},
	} {
		var failed atomic.Int32
		c.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			if failed.Add(1) > 3 {
				return nil, nil, false // kfake answers from now on
			}
			c.KeepControl()
			req := kreq.(*kmsg.FetchRequest)
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewFetchResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = kerr.KafkaStorageError.Code
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		})
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 0 || stdout != "a\nb\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		if want := "gregor: fetching sick[0] failed: KAFKA_STORAGE_ERROR: Disk error when trying to access log file on the disk; retrying\n"; !strings.Contains(stderr, want) {
			t.Errorf("%q: stderr %q, want %q", args, stderr, want)
		}
	}
}

// TestConsumeGroupJoinRefused: a group member whose joins the coordinator
// keeps refusing (one that cannot write the group's state answers so)
// says so on stderr while it retries, and without --follow gives up at
// --timeout; before, it waited silently and for ever (helper-87).
func TestConsumeGroupJoinRefused(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "grp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.ListenAddrs()[0]
	mustRun(t, "a\nb\n", "produce", "-b", b, "-t", "grp")
	var refuse atomic.Bool
	refuse.Store(true)
	c.ControlKey(int16(kmsg.SyncGroup), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		resp := kreq.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.NotCoordinator.Code // as gregor answers when it cannot write the group
		return resp, nil, true
	})
	start := time.Now()
	code, stdout, stderr := runCLI(t, "", "consume", "-b", b, "-t", "grp", "--group", "g", "--timeout", "2s")
	if took := time.Since(start); code != 1 || stdout != "" || took > 20*time.Second ||
		!strings.Contains(stderr, "the group membership failed") || !strings.Contains(stderr, "NOT_COORDINATOR") ||
		!strings.Contains(stderr, "could not join the group within 2s") {
		t.Errorf("exit %d after %v, stdout %q, stderr %q", code, took, stdout, stderr)
	}
	// The leave it gave up waiting for goes on in the background (the
	// process would have exited); let it finish for the leak check.
	refuse.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, out, _ := runCLI(t, "", "group", "describe", "g", "-b", b)
		if strings.Contains(out, "Members: 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member never left:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the client's own goroutines end after the leave
}

// TestConsumeStopsWhenReaderGoes: `consume --follow --group g | head -1`
// ends once head exits, even with no record coming (it waited for the next
// record, then died of SIGPIPE without committing or leaving the group),
// and commits what it wrote (helper-87).
func TestConsumeStopsWhenReaderGoes(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "piped"))
	mustRun(t, "a\nb\n", "produce", "-b", b, "-t", "piped")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		done <- runConsume(context.Background(), []string{"-b", b, "-t", "piped", "--group", "g", "--follow"}, nil, w, io.Discard)
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || line != "a\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	time.Sleep(500 * time.Millisecond) // both records written
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consume after its reader went: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consume still running 15 s after its reader went")
	}
	out := mustRun(t, "", "group", "describe", "g", "-b", b)
	if !strings.Contains(out, "Members: 0") || !containsFields(out, "piped", "0", "2", "2", "0", "-") {
		t.Fatalf("group after the reader went:\n%s", out)
	}
}
