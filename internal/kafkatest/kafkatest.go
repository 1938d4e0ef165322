// Package kafkatest holds helpers for tests that speak the Kafka protocol
// to a broker with raw kmsg requests.
package kafkatest

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FillFetchTopicIDs fills in the topic ids of a fetch built by topic name,
// looked up with Metadata: kgo sends Fetch at v13+, where topics are named
// by id only.
func FillFetchTopicIDs(ctx context.Context, cl *kgo.Client, req *kmsg.FetchRequest) error {
	ids := map[string][16]byte{}
	lookup := func(name string) ([16]byte, error) {
		if id, ok := ids[name]; ok {
			return id, nil
		}
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(name)
		mreq.Topics = append(mreq.Topics, mt)
		resp, err := mreq.RequestWith(ctx, cl)
		if err != nil {
			return [16]byte{}, fmt.Errorf("metadata of %s: %w", name, err)
		}
		if len(resp.Topics) != 1 {
			return [16]byte{}, fmt.Errorf("metadata of %s: %d topics answered", name, len(resp.Topics))
		}
		ids[name] = resp.Topics[0].TopicID
		return ids[name], nil
	}
	var err error
	for i := range req.Topics {
		if req.Topics[i].TopicID, err = lookup(req.Topics[i].Topic); err != nil {
			return err
		}
	}
	for i := range req.ForgottenTopics {
		if req.ForgottenTopics[i].TopicID, err = lookup(req.ForgottenTopics[i].Topic); err != nil {
			return err
		}
	}
	return nil
}
