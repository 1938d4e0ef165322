package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requiredAPIs are the keys issue 2 asks the broker to implement.
var requiredAPIs = map[int16]string{
	0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions",
	19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
	23: "OffsetForLeaderEpoch", 32: "DescribeConfigs", 37: "CreatePartitions",
	44: "IncrementalAlterConfigs", 60: "DescribeCluster",
}

// TestAdminAPIs covers ApiVersions, Metadata, CreateTopics, DeleteTopics,
// CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
// DescribeCluster and OffsetForLeaderEpoch through kmsg.
func TestAdminAPIs(t *testing.T) {
	t.Parallel()
	b := StartBroker(t, WithArgs("--auto-create-topics=true", "--num-partitions", "3"))
	cl := manualClient(t, b.Addr)
	ctx := testCtx(t, 2*time.Minute)

	t.Run("api-versions", func(t *testing.T) {
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		have := map[int16]bool{}
		for _, k := range resp.ApiKeys {
			have[k.ApiKey] = true
			if k.MinVersion > k.MaxVersion {
				t.Errorf("api %d: min version %d > max %d", k.ApiKey, k.MinVersion, k.MaxVersion)
			}
		}
		for key, name := range requiredAPIs {
			if !have[key] {
				t.Errorf("ApiVersions does not advertise %s (%d)", name, key)
			}
		}
	})

	t.Run("create-metadata-delete", func(t *testing.T) {
		createTopic(t, cl, "adm", 2, map[string]string{"retention.ms": "3600000"})
		if code := createTopicCode(t, cl, "adm", 2, nil); code != kerr.TopicAlreadyExists.Code {
			t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", kerr.ErrorForCode(code))
		}
		if code := createTopicCode(t, cl, "adm-zero", 0, nil); code != kerr.InvalidPartitions.Code {
			t.Fatalf("create with 0 partitions: %v, want INVALID_PARTITIONS", kerr.ErrorForCode(code))
		}
		if code := createTopicCode(t, cl, "bad/name", 1, nil); code != kerr.InvalidTopicException.Code {
			t.Fatalf("create bad/name: %v, want INVALID_TOPIC_EXCEPTION", kerr.ErrorForCode(code))
		}
		if code := createTopicCode(t, cl, "adm-badcfg", 1, map[string]string{"retention.ms": "soon"}); code != kerr.InvalidConfig.Code {
			t.Fatalf("create with retention.ms=soon: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
		}

		md := metadataFor(t, cl, "adm")
		if len(md.Brokers) != 1 || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != b.Addr {
			t.Fatalf("metadata brokers %+v, want one at %s", md.Brokers, b.Addr)
		}
		if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 || len(md.Topics[0].Partitions) != 2 {
			t.Fatalf("metadata for adm: %+v", md.Topics)
		}
		for _, p := range md.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Leader != md.Brokers[0].NodeID || len(p.Replicas) != 1 || len(p.ISR) != 1 {
				t.Fatalf("adm partition %d: %+v", p.Partition, p)
			}
		}

		// CreatePartitions 2 → 5; the new partitions take writes.
		cp := kmsg.NewPtrCreatePartitionsRequest()
		cp.TimeoutMillis = 10000
		ct := kmsg.NewCreatePartitionsRequestTopic()
		ct.Topic = "adm"
		ct.Count = 5
		cp.Topics = append(cp.Topics, ct)
		cpResp, err := cp.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := cpResp.Topics[0].ErrorCode; code != 0 {
			t.Fatalf("create partitions: %v", kerr.ErrorForCode(code))
		}
		if got := len(metadataFor(t, cl, "adm").Topics[0].Partitions); got != 5 {
			t.Fatalf("after CreatePartitions: %d partitions, want 5", got)
		}
		// Shrinking is invalid.
		ct.Count = 3
		cp.Topics = []kmsg.CreatePartitionsRequestTopic{ct}
		cpResp, err = cp.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := cpResp.Topics[0].ErrorCode; code != kerr.InvalidPartitions.Code {
			t.Fatalf("shrink partitions: %v, want INVALID_PARTITIONS", kerr.ErrorForCode(code))
		}
		fresh := manualClient(t, b.Addr) // sees 5 partitions from the start
		recs := produceSync(t, fresh, "adm", 4, "in-new-partition")
		if recs[0].Partition != 4 || recs[0].Offset != 0 {
			t.Fatalf("produce to new partition: %d@%d", recs[0].Partition, recs[0].Offset)
		}

		// DeleteTopics; the topic is gone and its directories too.
		dt := kmsg.NewPtrDeleteTopicsRequest()
		dt.TimeoutMillis = 10000
		dt.TopicNames = []string{"adm"}
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr("adm")
		dt.Topics = append(dt.Topics, rt)
		dtResp, err := dt.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := dtResp.Topics[0].ErrorCode; code != 0 {
			t.Fatalf("delete topic: %v", kerr.ErrorForCode(code))
		}
		if md := metadataFor(t, cl, "adm"); len(md.Topics) != 1 || md.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("metadata after delete: %+v, want UNKNOWN_TOPIC_OR_PARTITION", md.Topics)
		}
		dtResp, err = dt.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := dtResp.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("second delete: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(code))
		}
		eventually(t, 30*time.Second, "partition dirs of a deleted topic removed", func() error {
			segs, err := segmentFiles(b.DataDir, "adm", 0)
			if err != nil {
				return err
			}
			if len(segs) > 0 {
				return fmt.Errorf("%v still present: %w", segs, errNotYet)
			}
			return nil
		})
		// Recreated under the same name, it starts empty.
		createTopic(t, cl, "adm", 1, nil)
		// A new client: cl's metadata cache still says "adm" is gone, and
		// kgo answers sharded requests for unknown partitions itself.
		if end, code := listOffset(t, manualClient(t, b.Addr), "adm", 0, -1); code != 0 || end != 0 {
			t.Fatalf("recreated topic: end offset %d code %d, want 0", end, code)
		}
	})

	t.Run("auto-create", func(t *testing.T) {
		// Producing to an unknown topic creates it with --num-partitions.
		auto := manualClient(t, b.Addr, kgo.AllowAutoTopicCreation())
		produceSync(t, auto, "auto-made", 2, "hello")
		md := metadataFor(t, cl, "auto-made")
		if len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
			t.Fatalf("auto-created topic: %+v, want 3 partitions", md.Topics)
		}
	})

	t.Run("configs", func(t *testing.T) {
		createTopic(t, cl, "cfg", 1, map[string]string{"retention.ms": "123456"})
		describe := func() map[string]string {
			t.Helper()
			req := kmsg.NewPtrDescribeConfigsRequest()
			r := kmsg.NewDescribeConfigsRequestResource()
			r.ResourceType = kmsg.ConfigResourceTypeTopic
			r.ResourceName = "cfg"
			req.Resources = append(req.Resources, r)
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
				t.Fatalf("describe configs: %+v", resp.Resources)
			}
			out := map[string]string{}
			for _, c := range resp.Resources[0].Configs {
				if c.Value != nil {
					out[c.Name] = *c.Value
				}
			}
			return out
		}
		got := describe()
		if got["retention.ms"] != "123456" {
			t.Fatalf("retention.ms = %q, want 123456", got["retention.ms"])
		}
		for _, k := range []string{"segment.bytes", "retention.bytes", "cleanup.policy", "max.message.bytes"} {
			if _, ok := got[k]; !ok {
				t.Errorf("DescribeConfigs lacks %s (defaults should be listed)", k)
			}
		}

		alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
		ar := kmsg.NewIncrementalAlterConfigsRequestResource()
		ar.ResourceType = kmsg.ConfigResourceTypeTopic
		ar.ResourceName = "cfg"
		set := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		set.Name = "segment.bytes"
		set.Op = kmsg.IncrementalAlterConfigOpSet
		set.Value = kmsg.StringPtr("1048576")
		del := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		del.Name = "retention.ms"
		del.Op = kmsg.IncrementalAlterConfigOpDelete
		ar.Configs = append(ar.Configs, set, del)
		alter.Resources = append(alter.Resources, ar)
		aresp, err := alter.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := aresp.Resources[0].ErrorCode; code != 0 {
			t.Fatalf("incremental alter configs: %v", kerr.ErrorForCode(code))
		}
		check := func() {
			t.Helper()
			got := describe()
			if got["segment.bytes"] != "1048576" {
				t.Fatalf("segment.bytes = %q after alter, want 1048576", got["segment.bytes"])
			}
			if got["retention.ms"] == "123456" {
				t.Fatalf("retention.ms still 123456 after delete")
			}
		}
		check()
		b.Restart() // configs are durable
		check()
	})

	t.Run("describe-cluster", func(t *testing.T) {
		resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.ClusterID == "" {
			t.Fatalf("describe cluster: code %d, brokers %+v, cluster id %q", resp.ErrorCode, resp.Brokers, resp.ClusterID)
		}
	})

	t.Run("offset-for-leader-epoch", func(t *testing.T) {
		createTopic(t, cl, "ofle", 1, nil)
		produceSync(t, cl, "ofle", 0, seqValues("e", 0, 10)...)
		md := metadataFor(t, cl, "ofle")
		epoch := md.Topics[0].Partitions[0].LeaderEpoch
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "ofle"
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = 0
		rp.CurrentLeaderEpoch = epoch
		rp.LeaderEpoch = epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.EndOffset != 10 || p.LeaderEpoch != epoch {
			t.Fatalf("offset for leader epoch %d: code %v end %d epoch %d, want end 10", epoch,
				kerr.ErrorForCode(p.ErrorCode), p.EndOffset, p.LeaderEpoch)
		}
	})
}

// TestListOffsetsByTimestamp produces records with known timestamps, in
// separate batches and within one batch, and looks offsets up by time.
func TestListOffsetsByTimestamp(t *testing.T) {
	t.Parallel()
	const topic = "bytime"
	b := StartBroker(t)
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, topic, 1, nil)

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	// Offsets 0..9: one batch each, timestamps base+0s..base+9s.
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprint(i)), Timestamp: ts(i)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Offsets 10..19: one batch (built by hand so it is exactly one),
	// timestamps base+20s+0ms .. base+20s+9ms.
	within := batchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: ts(20).UnixMilli(), Values: seqValues("w", 0, 10)}
	if off, code := rawProduce(t, cl, topic, 0, within.build()); code != 0 || off != 10 {
		t.Fatalf("produce batch: offset %d code %v", off, kerr.ErrorForCode(code))
	}

	cases := []struct {
		name   string
		ts     int64
		offset int64
	}{
		{"earliest", -2, 0},
		{"latest", -1, 20},
		{"before-all", base.Add(-time.Minute).UnixMilli(), 0},
		{"exact-first", ts(0).UnixMilli(), 0},
		{"exact-5", ts(5).UnixMilli(), 5},
		{"between-3-and-4", ts(3).UnixMilli() + 500, 4},
		{"inside-batch", ts(20).UnixMilli() + 4, 14},
		{"inside-batch-exact-last", ts(20).UnixMilli() + 9, 19},
		{"gap-before-batch", ts(15).UnixMilli(), 10},
		{"after-all", ts(100).UnixMilli(), -1},
	}
	check := func() {
		for _, c := range cases {
			off, code := listOffset(t, cl, topic, 0, c.ts)
			if code != 0 || off != c.offset {
				t.Errorf("%s: ListOffsets(ts=%d) = %d (code %d), want %d", c.name, c.ts, off, code, c.offset)
			}
		}
		// The max-timestamp query (-3, KIP-734) is optional; only check it
		// if the broker answers it.
		if off, tsGot, code := listOffsetTS(t, cl, topic, 0, -3); code == 0 && (off != 19 || tsGot != ts(20).UnixMilli()+9) {
			t.Errorf("max timestamp: offset %d ts %d, want 19 at %d", off, tsGot, ts(20).UnixMilli()+9)
		}
	}
	check()
	b.Kill9() // the time index is rebuilt or recovered
	b.Start()
	check()
}
