package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestUnknownTopicMessages: the error message for a topic or group that
// does not exist says so. The message is the error's text less the Kafka
// error's own, which before left only `topic "nope"` (helper-58, with
// @platformatic/kafka's admin client).
func TestUnknownTopicMessages(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	says := func(what string, code int16, msg *string, want *kerr.Error, text string) {
		t.Helper()
		if code != want.Code || msg == nil || *msg != text {
			m := "<nil>"
			if msg != nil {
				m = *msg
			}
			t.Fatalf("%s: code %d, message %q; want %d, %q", what, code, m, want.Code, text)
		}
	}

	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"nope"}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr("nope")
	dt.Topics = append(dt.Topics, rt)
	dtr, err := dt.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	says("DeleteTopics", dtr.Topics[0].ErrorCode, dtr.Topics[0].ErrorMessage, kerr.UnknownTopicOrPartition, `topic "nope" does not exist`)

	dc := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "nope"
	dc.Resources = append(dc.Resources, r)
	dcr, err := dc.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	says("DescribeConfigs", dcr.Resources[0].ErrorCode, dcr.Resources[0].ErrorMessage, kerr.UnknownTopicOrPartition, `topic "nope" does not exist`)

	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeTopic, "nope"
	ia.Resources = append(ia.Resources, ir)
	iar, err := ia.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	says("IncrementalAlterConfigs", iar.Resources[0].ErrorCode, iar.Resources[0].ErrorMessage, kerr.UnknownTopicOrPartition, `topic "nope" does not exist`)
}
