package kgoopt

import (
	"context"
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrNoMaxMessageBytes means the cluster answered without the topic's
// max.message.bytes.
var ErrNoMaxMessageBytes = errors.New("broker did not report max.message.bytes")

// MaxMessageBytes asks the cluster for topic's max.message.bytes, the
// largest record batch it takes. Errors are the request's, the topic's
// error code (kerr.UnknownTopicOrPartition for a topic not created yet),
// or ErrNoMaxMessageBytes.
func MaxMessageBytes(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	rr.ConfigNames = []string{"max.message.bytes"}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return 0, err
		}
		for _, c := range r.Configs {
			if c.Name != "max.message.bytes" || c.Value == nil {
				continue
			}
			v, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil || v <= 0 {
				return 0, ErrNoMaxMessageBytes
			}
			return v, nil
		}
	}
	return 0, ErrNoMaxMessageBytes
}
