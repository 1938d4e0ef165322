package broker

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// alterConfigs sends a legacy AlterConfigs request for one topic and
// returns the resource's error code.
func alterConfigs(t *testing.T, b *Broker, topic string, validateOnly bool, kv ...string) int16 {
	t.Helper()
	req := kmsg.NewPtrAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name = kv[i]
		v := kv[i+1]
		c.Value = &v
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), newClient(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Resources[0].ErrorCode
}

// TestAlterConfigsReplaces: the legacy AlterConfigs replaces a topic's
// explicit configs (those it does not name go back to the defaults),
// validates everything first, and changes nothing when validating only.
func TestAlterConfigsReplaces(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ac", 1, map[string]string{"retention.ms": "100000"})
	configs := func() string {
		tp, _ := b.store.Topic("ac")
		return fmt.Sprint(tp.Configs)
	}
	if code := alterConfigs(t, b, "ac", false, "segment.bytes", "1048576", "cleanup.policy", "compact"); code != 0 {
		t.Fatalf("alter: %v", kerr.ErrorForCode(code))
	}
	if got := configs(); got != "map[cleanup.policy:compact segment.bytes:1048576]" {
		t.Fatalf("configs after replace: %s", got)
	}
	if got := b.logs.Log("ac", 0).Config().SegmentBytes; got != 1048576 {
		t.Fatalf("log's segment.bytes %d", got)
	}
	for _, bad := range [][]string{
		{"segment.bytes", "2048", "no.such.config", "1"},
		{"retention.ms", "soon"},
	} {
		if code := alterConfigs(t, b, "ac", false, bad...); code != kerr.InvalidConfig.Code {
			t.Fatalf("alter %v: %v, want INVALID_CONFIG", bad, kerr.ErrorForCode(code))
		}
	}
	if code := alterConfigs(t, b, "ac", true, "retention.ms", "5000"); code != 0 {
		t.Fatalf("validate only: %v", kerr.ErrorForCode(code))
	}
	if got := configs(); got != "map[cleanup.policy:compact segment.bytes:1048576]" {
		t.Fatalf("configs after refused and validate-only requests: %s", got)
	}
	if code := alterConfigs(t, b, "nope", false, "retention.ms", "5000"); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %v", kerr.ErrorForCode(code))
	}
	if code := alterConfigs(t, b, "ac", false); code != 0 || configs() != "map[]" {
		t.Fatalf("empty replace: %v, configs %s", kerr.ErrorForCode(code), configs())
	}
}

// TestCompressionTypeRecompresses: a topic with compression.type=lz4
// stores franz-go's batches with lz4 whatever the client used; consumers
// read the records; altering it back to producer keeps later batches as
// produced.
func TestCompressionTypeRecompresses(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "ct", 1, map[string]string{"compression.type": "lz4"})
	produceN(t, cl, "ct", 0, 3)
	codecs := func(from int64) []record.Codec {
		t.Helper()
		p := rawFetch(t, cl, "ct", 0, from, 0)
		var out []record.Codec
		if err := record.Batches(p.RecordBatches, func(_ int, batch []byte, h record.Header) error {
			if _, err := record.Validate(batch); err != nil {
				return err
			}
			out = append(out, h.Codec())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range codecs(0) {
		if c != record.CodecLZ4 {
			t.Fatalf("stored with %v, want lz4", c)
		}
	}
	if code := alterConfigs(t, b, "ct", false, "compression.type", "producer"); code != 0 {
		t.Fatalf("alter: %v", kerr.ErrorForCode(code))
	}
	produceN(t, cl, "ct", 0, 1)
	if got := codecs(3); len(got) != 1 || got[0] == record.CodecLZ4 {
		t.Fatalf("after compression.type=producer: %v", got)
	}
	if code := alterConfigs(t, b, "ct", false, "compression.type", "brotli"); code != kerr.InvalidConfig.Code {
		t.Fatalf("compression.type=brotli: %v", kerr.ErrorForCode(code))
	}
}

// incrementalAlterConfigs sets configs of one topic with
// IncrementalAlterConfigs and returns the resource's error code.
func incrementalAlterConfigs(t *testing.T, b *Broker, topic string, kv ...string) int16 {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name = kv[i]
		v := kv[i+1]
		c.Value = &v
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), newClient(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Resources[0].ErrorCode
}

// TestCompactionLagsMustBeOrdered: as in Kafka, min.compaction.lag.ms may
// not exceed max.compaction.lag.ms, by the topic's own configs or over
// the broker's defaults, in CreateTopics and both alter APIs (a probe had
// both accepted; the minimum then won).
func TestCompactionLagsMustBeOrdered(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	lags := func(minLag, maxLag string) map[string]string {
		return map[string]string{"min.compaction.lag.ms": minLag, "max.compaction.lag.ms": maxLag}
	}
	invalid := kerr.InvalidConfig.Code
	if code := createTopicCode(t, cl, "lags", 1, lags("10000", "5000")); code != invalid {
		t.Errorf("create with min > max: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
	createTopic(t, cl, "lags", 1, lags("5000", "5000"))
	if code := incrementalAlterConfigs(t, b, "lags", "min.compaction.lag.ms", "6000"); code != invalid {
		t.Errorf("incremental alter to min > max: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
	if code := alterConfigs(t, b, "lags", false, "max.compaction.lag.ms", "1000", "min.compaction.lag.ms", "2000"); code != invalid {
		t.Errorf("alter to min > max: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
	if code := incrementalAlterConfigs(t, b, "lags", "max.compaction.lag.ms", "9000", "min.compaction.lag.ms", "8000"); code != 0 {
		t.Errorf("incremental alter to min < max: %v", kerr.ErrorForCode(code))
	}
	tp, _ := b.store.Topic("lags")
	if tp.Configs["min.compaction.lag.ms"] != "8000" || tp.Configs["max.compaction.lag.ms"] != "9000" {
		t.Errorf("configs after the refusals and the last alter: %v", tp.Configs)
	}
}

// TestInternalTopicsStayCompacted: neither alter API may leave an internal
// topic with a cleanup.policy other than compact (retention would delete
// committed offsets), including a legacy AlterConfigs naming only other
// configs, which would otherwise drop the policy; other changes, and a
// replacement that keeps the policy, are taken.
func TestInternalTopicsStayCompacted(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	const topic = "__consumer_offsets"
	refused := []func() int16{
		func() int16 { return incrementalAlterConfigs(t, b, topic, "cleanup.policy", "delete") },
		func() int16 { return incrementalAlterConfigs(t, b, topic, "cleanup.policy", "compact,delete") },
		func() int16 { return alterConfigs(t, b, topic, false, "retention.ms", "1000") },
		func() int16 { return alterConfigs(t, b, topic, true, "cleanup.policy", "delete") },
	}
	for i, f := range refused {
		if code := f(); code != kerr.InvalidConfig.Code {
			t.Fatalf("change %d: %v, want INVALID_CONFIG", i, kerr.ErrorForCode(code))
		}
	}
	if tp, _ := b.store.Topic(topic); tp.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("configs after refusals: %v", tp.Configs)
	}
	if code := incrementalAlterConfigs(t, b, topic, "segment.bytes", "52428800"); code != 0 {
		t.Fatalf("segment.bytes: %v", kerr.ErrorForCode(code))
	}
	if code := alterConfigs(t, b, topic, false, "cleanup.policy", "compact", "retention.ms", "1000"); code != 0 {
		t.Fatalf("replacement keeping compact: %v", kerr.ErrorForCode(code))
	}
	if tp, _ := b.store.Topic(topic); tp.Configs["cleanup.policy"] != "compact" || tp.Configs["retention.ms"] != "1000" {
		t.Fatalf("configs after the replacement: %v", tp.Configs)
	}
}
