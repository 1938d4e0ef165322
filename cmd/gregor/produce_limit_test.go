package main

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceLargeRecords checks that produce sends records as large as
// the topic's max.message.bytes (or, for a topic it creates, the broker's
// message.max.bytes) and names a line that cannot fit.
func TestProduceLargeRecords(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "small"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.ListenAddrs()[0]
	twoMB := strings.Repeat("g", 2_000_000)

	// A 2 MB line into a topic allowing 5 MB batches round-trips.
	mustRun(t, "", "topic", "create", "big", "-b", b, "--config", "max.message.bytes=5000000")
	if out := mustRun(t, "k\t"+twoMB+"\n", "produce", "-b", b, "-t", "big", "-k", "\t"); !strings.Contains(out, "produced 1 record(s)") {
		t.Errorf("produce: %q", out)
	}
	if got := mustRun(t, "", "consume", "-b", b, "-t", "big", "--format", `%k %v\n`); got != "k "+twoMB+"\n" {
		t.Errorf("consumed %d bytes, want the 2 MB record", len(got))
	}

	// Into a topic with the default limit it is refused, naming the
	// line, its size, the limit and the config to raise; the lines
	// before it are produced.
	code, stdout, stderr := runCLI(t, "a\nb\n"+twoMB+"\nc\n", "produce", "-b", b, "-t", "small")
	want := "line 3 is 2000000 bytes, more than the 1048588 allowed by the max.message.bytes of topic small; " +
		"raise it with: gregor topic alter-config small --set max.message.bytes=N"
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stdout, "produced 2 record(s)") {
		t.Errorf("default topic: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
	// A topic whose max.message.bytes is 0 refuses every batch: said at
	// once, not as franz-go's default limit nor as a timeout.
	mustRun(t, "", "topic", "create", "zero", "-b", b, "--config", "max.message.bytes=0")
	code, _, stderr = runCLI(t, "x\n", "produce", "-b", b, "-t", "zero")
	if want := "topic zero has max.message.bytes=0, so it refuses every batch"; code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "gave up") {
		t.Errorf("max.message.bytes=0: exit %d, stderr %q; want %q", code, stderr, want)
	}
	// A line that fits while its record and batch headers do not.
	code, _, stderr = runCLI(t, strings.Repeat("x", 1048580)+"\n", "produce", "-b", b, "-t", "small")
	if want := "line 1 is 1048580 bytes, 1048658 as a record batch, more than the 1048588 allowed by"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("near the limit: exit %d, stderr %q; want %q", code, stderr, want)
	}

	// A topic produce creates gets the broker's default, 1048588, above
	// franz-go's own default of 1000012.
	if out := mustRun(t, strings.Repeat("m", 1_000_000)+"\n", "produce", "-b", b, "-t", "created"); !strings.Contains(out, "produced 1 record(s)") {
		t.Errorf("produce to a new topic: %q", out)
	}
	code, _, stderr = runCLI(t, twoMB, "produce", "-b", b, "-t", "created2")
	if want := "more than the 1048588 allowed by the broker's message.max.bytes, which topic created2 gets when produce creates it; " +
		"create the topic first with: gregor topic create created2 --config max.message.bytes=N"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("new topic: exit %d, stderr %q; want %q", code, stderr, want)
	}

	// --max-message-bytes overrides the lookup; the broker still refuses
	// what is above the topic's limit.
	code, _, stderr = runCLI(t, twoMB, "produce", "-b", b, "-t", "small", "--max-message-bytes", "3000000")
	if code != 1 || !strings.Contains(stderr, "MESSAGE_TOO_LARGE") || !strings.Contains(stderr, "batches were up to 3000000 bytes, --max-message-bytes") {
		t.Errorf("--max-message-bytes above the topic's: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, twoMB, "produce", "-b", b, "-t", "big", "--max-message-bytes", "1000000")
	if code != 1 || !strings.Contains(stderr, "line 1 is 2000000 bytes, more than the 1000000 allowed by --max-message-bytes") {
		t.Errorf("--max-message-bytes below the line: exit %d, stderr %q", code, stderr)
	}
	for _, bad := range []string{"100", "-1", "2000000000"} {
		if code, _, stderr := runCLI(t, "", "produce", "-b", b, "-t", "big", "--max-message-bytes", bad); code != 2 || !strings.Contains(stderr, "--max-message-bytes") {
			t.Errorf("--max-message-bytes %s: exit %d, stderr %q", bad, code, stderr)
		}
	}
	code, _, stderr = runCLI(t, "12345\n123456\n", "produce", "-b", b, "-t", "big", "--max-line-bytes", "5")
	if code != 1 || !strings.Contains(stderr, "line 2 is 6 bytes, more than --max-line-bytes 5") {
		t.Errorf("--max-line-bytes: exit %d, stderr %q", code, stderr)
	}
}

// TestProduceBatchesUpToLimit checks that small lines share batches up to
// the topic's limit, and that the broker takes every full batch.
func TestProduceBatchesUpToLimit(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.ListenAddrs()[0]
	var requests atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		requests.Add(1)
		return nil, nil, false // only counting
	})
	var in strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&in, "%04d%s\n", i, strings.Repeat("v", 96))
	}

	mustRun(t, "", "topic", "create", "tiny", "-b", b, "--config", "max.message.bytes=2000")
	if out := mustRun(t, in.String(), "produce", "-b", b, "-t", "tiny"); !strings.Contains(out, "produced 2000 record(s)") {
		t.Errorf("2000-byte batches: %q", out)
	}
	if n := requests.Load(); n < 2000*100/2000 {
		t.Errorf("%d produce requests carried 200 KB in batches of at most 2000 bytes", n)
	}

	requests.Store(0)
	mustRun(t, "", "topic", "create", "roomy", "-b", b)
	if out := mustRun(t, in.String(), "produce", "-b", b, "-t", "roomy"); !strings.Contains(out, "produced 2000 record(s)") {
		t.Errorf("default batches: %q", out)
	}
	if n := requests.Load(); n > 20 {
		t.Errorf("2000 small lines took %d produce requests: not batched", n)
	}
	if n := len(lines(mustRun(t, "", "consume", "-b", b, "-t", "roomy"))); n != 2000 {
		t.Errorf("consumed %d records", n)
	}
}

func TestLineReaderTooLong(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the reader's buffer
	for _, tt := range []struct {
		in         string
		line, size int64
	}{
		{"ok\n" + long + "\nafter\n", 2, 200 << 10},
		{"ok\n" + long + "\r\n", 2, 200 << 10},
		{"a\nb\nc\n" + long, 4, 200 << 10}, // no newline at the end
		{"123456\n", 1, 6},
	} {
		lr := newLineReader(iotest.HalfReader(strings.NewReader(tt.in)), 5)
		_, err := readAllLines(t, lr)
		var tl *lineTooLongError
		if !errors.As(err, &tl) || !errors.Is(err, errLineTooLong) || tl.line != tt.line || tl.size != tt.size || tl.max != 5 {
			t.Errorf("%.20q...: %v; want line %d of %d bytes", tt.in, err, tt.line, tt.size)
		}
	}
}

func TestRecordBatchBytes(t *testing.T) {
	// 65 bytes of batch overhead, a 1 byte record length, attributes,
	// timestamp and offset deltas, key and value lengths and the header
	// count: 72 for an empty record.
	if n := recordBatchBytes(&kgo.Record{}); n != 72 {
		t.Errorf("empty record: %d", n)
	}
	r := &kgo.Record{Key: []byte("k"), Value: make([]byte, 1000), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	// record: 3 + 1+1 + 2+1000 + 1 + (1+1+1+1) = 1012, its length 2 bytes
	if n := recordBatchBytes(r); n != 65+2+1012 {
		t.Errorf("record: %d", n)
	}
}
