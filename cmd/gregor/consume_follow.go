package main

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionCheckEvery is how often `consume --follow` (all partitions,
// no group) looks for partitions added to its topic since it started.
// Kafka's console consumer finds them at its next metadata refresh
// (metadata.max.age.ms, 5 minutes); kcat -C never does.
const partitionCheckEvery = 10 * time.Second

// followNewPartitions adds to cl, read from their start, the partitions
// of topic beyond those in known, checking every interval until ctx ends;
// note reports each addition. A partition added after the command started
// holds nothing older than the command, so its start is where following
// it begins. Failed checks are retried at the next interval.
func followNewPartitions(ctx context.Context, cl *kgo.Client, topic string, known map[int32]int64, interval time.Duration, note func(format string, args ...any)) {
	have := make(map[int32]bool, len(known))
	for p := range known {
		have[p] = true
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			continue
		}
		added := map[int32]kgo.Offset{}
		for _, p := range resp.Topics[0].Partitions {
			if !have[p.Partition] {
				have[p.Partition] = true
				added[p.Partition] = kgo.NewOffset().AtStart()
				note("gregor consume: partition %d of %s was added; following it from its start\n", p.Partition, topic)
			}
		}
		if len(added) > 0 {
			cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: added})
		}
	}
}
