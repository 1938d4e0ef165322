package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func deleteTopicNamed(t *testing.T, cl *kgo.Client, name string) {
	t.Helper()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	req.TopicNames = append(req.TopicNames, name)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete topic %s: %v %+v", name, err, resp)
	}
}

// TestFetchByTopicID: Fetch v13 names topics by id, in the request and in
// the answer; an id that names no topic is UNKNOWN_TOPIC_ID.
func TestFetchByTopicID(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ids", 1, nil)
	produceN(t, cl, "ids", 0, 3)
	req := withTopicIDs(t, cl, fetchRequest("ids", 0, 0, 0))
	id := req.Topics[0].TopicID
	if id == ([16]byte{}) {
		t.Fatal("metadata gave the topic no id")
	}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version < 13 || len(resp.Topics) != 1 || resp.Topics[0].TopicID != id {
		t.Fatalf("v%d answer names %d topics, id %x, want %x", resp.Version, len(resp.Topics), resp.Topics[0].TopicID, id)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 3 || len(p.RecordBatches) == 0 {
		t.Fatalf("partition: %v, high watermark %d, %d bytes", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, len(p.RecordBatches))
	}

	unknown := fetchRequest("ids", 0, 0, 0)
	unknown.Topics[0].TopicID = [16]byte{1, 2, 3}
	resp, err = unknown.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if rt := resp.Topics[0]; rt.TopicID != [16]byte{1, 2, 3} || rt.Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown id answered for %x with %v", rt.TopicID, kerr.ErrorForCode(rt.Partitions[0].ErrorCode))
	}
}

// TestFetchSessionTopicRecreated: a session partition whose topic was
// deleted and created again under its name is INCONSISTENT_TOPIC_ID, not
// the new topic read from the old offset.
func TestFetchSessionTopicRecreated(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "again", 1, nil)
	produceN(t, cl, "again", 0, 2)
	resp := sessionFetch(t, cl, 0, 0, "again", map[int32]int64{0: 2}, nil, 0)
	if resp.SessionID == 0 || resp.ErrorCode != 0 {
		t.Fatalf("no session: %+v", resp)
	}
	deleteTopicNamed(t, cl, "again")
	createTopic(t, cl, "again", 1, nil)
	produceN(t, cl, "again", 0, 5)
	resp = sessionFetch(t, cl, resp.SessionID, 1, "", nil, nil, 0)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.InconsistentTopicID.Code {
		t.Fatalf("session after the topic was created again: %+v", resp.Topics)
	}
	if n := len(resp.Topics[0].Partitions[0].RecordBatches); n != 0 {
		t.Fatalf("%d bytes of the new topic served to the old one's session", n)
	}
}

// TestConsumerSeesTopicRecreated: franz-go, reading a topic by id, is told
// when it is deleted and created again, rather than reading the new one
// from where it was in the old (skipping its first records).
func TestConsumerSeesTopicRecreated(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "re", 1, nil)
	produceN(t, cl, "re", 0, 3)
	cons := newClient(t, b, kgo.ConsumeTopics("re"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := 0
	for got < 3 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 3 records", got)
		}
		got += fs.NumRecords()
	}
	deleteTopicNamed(t, cl, "re")
	createTopic(t, cl, "re", 1, nil)
	produceN(t, cl, "re", 0, 5)
	for {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the consumer was never told the topic was created again")
		}
		if n := fs.NumRecords(); n > 0 {
			t.Fatalf("the consumer read %d records of the new topic from the old one's offset", n)
		}
		var idErr error
		fs.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.InconsistentTopicID) {
				idErr = err
			}
		})
		if idErr != nil {
			return
		}
	}
}
