package broker

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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

	hr, err := http.Get("http://" + b.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	for _, want := range []string{
		`gregor_partition_errors_total{api="CreateTopics",error="TOPIC_ALREADY_EXISTS"} 1`,
		`gregor_partition_errors_total{api="DeleteTopics",error="UNKNOWN_TOPIC_OR_PARTITION"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gregor_partition_errors_total{") && strings.Contains(line, ": ") {
			t.Errorf("error label holds a sentence: %s", line)
		}
	}
}
