package broker

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestErrorMetrics: error codes are counted by name only, admin requests'
// errors included.
func TestErrorMetrics(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "m", 1, nil)

	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = "m", 1, 1
	ct.Topics = append(ct.Topics, ctt)
	resp, err := ct.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].ErrorCode; code != kerr.TopicAlreadyExists.Code {
		t.Fatalf("creating m again: %v", kerr.ErrorForCode(code))
	}
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	name := "no-such-topic"
	dtt.Topic = &name
	dt.Topics = append(dt.Topics, dtt)
	dt.TopicNames = append(dt.TopicNames, name)
	if _, err := dt.RequestWith(context.Background(), cl); err != nil {
		t.Fatal(err)
	}

	body := scrapeMetrics(t, b)
	for _, want := range []string{
		`gregor_partition_errors_total{api="CreateTopics",error="TOPIC_ALREADY_EXISTS"} 1`,
		`gregor_partition_errors_total{api="DeleteTopics",error="UNKNOWN_TOPIC_OR_PARTITION"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "gregor_partition_errors_total{") && strings.Contains(line, ": ") {
			t.Errorf("error label holds a sentence: %s", line)
		}
	}
}

// TestProduceDurationCountsTheAppend: a produce's duration in
// gregor_request_duration_seconds includes the append, which happens while
// the request is read, before it is decoded (helper-65: on a slow disk
// clients waited seconds while the histogram showed milliseconds).
func TestProduceDurationCountsTheAppend(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "slowp", 1, nil)
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpWrite && strings.Contains(path, "slowp-0") && strings.HasSuffix(path, ".log") {
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	})
	defer efs.Clear()
	rb := record.NewBuilder()
	rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
	if p := rawProduce(t, cl, "slowp", 0, rb.Build()); p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	body := scrapeMetrics(t, b)
	sum, ok := metricValue(body, `gregor_request_duration_seconds_sum{api="Produce"}`)
	if !ok {
		t.Fatal("/metrics lacks the Produce duration")
	}
	if sum < 0.3 {
		t.Fatalf("Produce duration sum %v after a 300 ms append", sum)
	}
}

// TestFlushLagMetric: gregor_flush_lag_seconds is the age of the oldest
// append not yet fsynced: growing while a topic's flush.ms holds its
// appends back, 0 once everything is flushed.
func TestFlushLagMetric(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lazy", 1, map[string]string{"flush.ms": "3600000"})
	if lag := b.flushLag(); lag != 0 {
		t.Fatalf("lag %v before any append", lag)
	}
	rb := record.NewBuilder()
	rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
	if p := rawProduce(t, cl, "lazy", 0, rb.Build()); p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	time.Sleep(200 * time.Millisecond)
	if lag := b.flushLag(); lag < 200*time.Millisecond || lag > time.Minute {
		t.Fatalf("lag %v 200 ms after an unflushed append", lag)
	}
	body := scrapeMetrics(t, b)
	if shown, _ := metricValue(body, "gregor_flush_lag_seconds"); shown < 0.2 {
		t.Errorf("/metrics shows gregor_flush_lag_seconds %v, want at least 0.2", shown)
	}
	// While the flush's fsync is under way the data is not durable yet.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.Contains(path, "lazy-0") {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	defer efs.Clear()
	flushed := make(chan error, 1)
	go func() { flushed <- b.logs.Log("lazy", 0).Flush() }()
	<-entered
	lag := b.flushLag()
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if lag < 200*time.Millisecond {
		t.Fatalf("lag %v during the flush's fsync", lag)
	}
	if lag := b.flushLag(); lag != 0 {
		t.Fatalf("lag %v after a flush", lag)
	}
}

// scrapeMetrics returns b's /metrics page.
func scrapeMetrics(t *testing.T, b *Broker) string {
	t.Helper()
	hr, err := http.Get("http://" + b.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue returns the value of the series named exactly series (with
// its labels) in a /metrics page.
func metricValue(page, series string) (float64, bool) {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
