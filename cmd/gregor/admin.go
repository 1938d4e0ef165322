package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Helpers shared by the commands that speak raw kmsg requests to a cluster.

// codeErr turns a Kafka error code into an error, nil for 0. The result
// wraps the *kerr.Error for the code (so errors.Is(err, kerr.X) works) and,
// when the broker sent one, its message. kerr errors print their name
// ("TOPIC_ALREADY_EXISTS: ...").
func codeErr(code int16, msg *string) error {
	if code == 0 {
		return nil
	}
	err := kerr.ErrorForCode(code)
	if msg != nil && *msg != "" {
		return &brokerError{err: err, msg: *msg}
	}
	return err
}

// brokerError is an error code with the broker's own message, which says
// more than the code's generic description: it prints the code's name
// and the message (INVALID_PARTITIONS: topic t has 4 partitions; ...).
type brokerError struct {
	err error // a *kerr.Error, or kerr's unknown-code error
	msg string
}

func (e *brokerError) Error() string {
	if ke, ok := e.err.(*kerr.Error); ok {
		return ke.Message + ": " + e.msg
	}
	return fmt.Sprintf("%v (%s)", e.err, e.msg)
}

func (e *brokerError) Unwrap() error { return e.err }

// fetchMetadata requests metadata for topics (nil: all topics) without
// asking the broker to create them.
func fetchMetadata(ctx context.Context, cl *kgo.Client, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if topics != nil {
		req.Topics = make([]kmsg.MetadataRequestTopic, 0, len(topics))
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata request: %w", err)
	}
	return resp, nil
}

// topicMetadata returns the metadata of one topic, with its partitions
// sorted by id, or the topic's error (kerr.UnknownTopicOrPartition when it
// does not exist).
func topicMetadata(ctx context.Context, cl *kgo.Client, topic string) (*kmsg.MetadataResponseTopic, error) {
	resp, err := fetchMetadata(ctx, cl, []string{topic})
	if err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := codeErr(t.ErrorCode, nil); err != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, err)
		}
		slices.SortFunc(t.Partitions, func(a, b kmsg.MetadataResponseTopicPartition) int {
			return int(a.Partition) - int(b.Partition)
		})
		return t, nil
	}
	return nil, fmt.Errorf("topic %s: %w", topic, kerr.UnknownTopicOrPartition)
}

// partitionIDs returns the partition ids of a topic's metadata.
func partitionIDs(t *kmsg.MetadataResponseTopic) []int32 {
	ids := make([]int32, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		ids = append(ids, p.Partition)
	}
	return ids
}

// ListOffsets timestamps with a special meaning. offsetStable is not
// Kafka's: it asks for the latest offset with isolation level
// read_committed (the last stable offset).
const (
	offsetLatest   int64 = -1
	offsetEarliest int64 = -2
	offsetStable   int64 = math.MinInt64
)

// partitionOffset is one partition's answer to ListOffsets.
type partitionOffset struct {
	offset int64
	err    error
}

// listOffsets asks the partition leaders for the offset at timestamp
// (offsetEarliest, offsetLatest, or milliseconds: the first offset whose
// timestamp is at or after it, -1 if none) of each partition. Per-partition
// failures are in the map; the error is for the request as a whole.
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions []int32, timestamp int64) (map[int32]partitionOffset, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = timestamp
		if timestamp == offsetStable {
			rp.Timestamp, req.IsolationLevel = offsetLatest, 1
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make(map[int32]partitionOffset, len(partitions))
	for _, t := range resp.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			po := partitionOffset{offset: p.Offset, err: codeErr(p.ErrorCode, nil)}
			if resp.Version == 0 && po.err == nil {
				po.offset = -1
				if len(p.OldStyleOffsets) > 0 {
					po.offset = p.OldStyleOffsets[0]
				}
			}
			out[p.Partition] = po
		}
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			out[p] = partitionOffset{offset: -1, err: fmt.Errorf("no answer for partition %d", p)}
		}
	}
	return out, nil
}

// listOffsetsStrict is listOffsets that fails on any partition's error.
func listOffsetsStrict(ctx context.Context, cl *kgo.Client, topic string, partitions []int32, timestamp int64) (map[int32]int64, error) {
	res, err := listOffsets(ctx, cl, topic, partitions, timestamp)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(res))
	for p, po := range res {
		if po.err != nil {
			return nil, fmt.Errorf("list offsets of %s[%d]: %w", topic, p, po.err)
		}
		out[p] = po.offset
	}
	return out, nil
}

// ensureTopic creates topic with the given partition count (replication
// factor 1) unless it exists, then waits until every partition has a
// leader. It returns the partition ids.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) ([]int32, error) {
	if _, err := topicMetadata(ctx, cl, topic); errors.Is(err, kerr.UnknownTopicOrPartition) {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = topic
		rt.NumPartitions = partitions
		rt.ReplicationFactor = 1
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("create topic %s: %w", topic, err)
		}
		for _, t := range resp.Topics {
			if err := codeErr(t.ErrorCode, t.ErrorMessage); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return nil, fmt.Errorf("create topic %s: %w", topic, err)
			}
		}
	} else if err != nil {
		return nil, err
	}
	return waitForLeaders(ctx, cl, topic, 10*time.Second)
}

// waitForLeaders polls metadata until every partition of topic has a
// leader, or the timeout passes.
func waitForLeaders(ctx context.Context, cl *kgo.Client, topic string, timeout time.Duration) ([]int32, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		t, err := topicMetadata(ctx, cl, topic)
		if err == nil {
			ready := len(t.Partitions) > 0
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 || p.Leader < 0 {
					ready = false
				}
			}
			if ready {
				return partitionIDs(t), nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("partitions have no leader")
			}
			return nil, fmt.Errorf("wait for topic %s: %w (%w)", topic, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
