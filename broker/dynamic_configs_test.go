package broker

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// incrementalBroker alters the dynamic configs of broker resource name
// with IncrementalAlterConfigs: ops are (name, op, value) triples, a value
// of "<nil>" meaning none. It returns the error code and message.
func incrementalBroker(t *testing.T, cl *kgo.Client, name string, validateOnly bool, ops ...any) (int16, string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, name
	for i := 0; i+2 < len(ops)+1; i += 3 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op = ops[i].(string), ops[i+1].(kmsg.IncrementalAlterConfigOp)
		if v := ops[i+2].(string); v != "<nil>" {
			c.Value = &v
		}
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	// To broker 0 itself: kgo would send a resource naming another
	// broker to that broker.
	resp, err := cl.Broker(0).Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.IncrementalAlterConfigsResponse).Resources[0]
	msg := ""
	if r.ErrorMessage != nil {
		msg = *r.ErrorMessage
	}
	return r.ErrorCode, msg
}

// describeConfigs describes one resource, with synonyms, and returns its
// configs by name.
func describeConfigs(t *testing.T, cl *kgo.Client, typ kmsg.ConfigResourceType, name string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	req.Resources = append(req.Resources, rr)
	r := request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]
	if r.ErrorCode != 0 {
		t.Fatalf("describe %v %q: %v", typ, name, kerr.ErrorForCode(r.ErrorCode))
	}
	out := make(map[string]kmsg.DescribeConfigsResponseResourceConfig, len(r.Configs))
	for _, c := range r.Configs {
		out[c.Name] = c
	}
	return out
}

// synonymsOf formats a config's synonyms as "name=value/source ...".
func synonymsOf(c kmsg.DescribeConfigsResponseResourceConfig) string {
	var parts []string
	for _, s := range c.ConfigSynonyms {
		v := "<nil>"
		if s.Value != nil {
			v = *s.Value
		}
		parts = append(parts, s.Name+"="+v+"/"+s.Source.String())
	}
	return strings.Join(parts, " ")
}

// TestDynamicBrokerConfigs: the defaults of topic configs can be changed
// at runtime on the cluster-wide resource and on the broker's own, with
// Kafka's precedence and sources; they apply at once to the logs of topics
// that do not set them, survive a restart, and bad changes are refused
// whole.
func TestDynamicBrokerConfigs(t *testing.T) {
	dir := t.TempDir()
	static := func(c *Config) { c.Props["log.retention.ms"] = "86400000" }
	b := startBroker(t, nil, dir, static)
	cl := newClient(t, b)
	createTopic(t, cl, "plain", 2, nil)
	createTopic(t, cl, "own", 1, map[string]string{"retention.ms": "1000"})
	const (
		set = kmsg.IncrementalAlterConfigOpSet
		del = kmsg.IncrementalAlterConfigOpDelete
		app = kmsg.IncrementalAlterConfigOpAppend
	)
	ok := func(code int16, msg string) {
		t.Helper()
		if code != 0 {
			t.Fatalf("alter: %v: %s", kerr.ErrorForCode(code), msg)
		}
	}
	retention := func(b *Broker, topic string) int64 {
		t.Helper()
		return b.logs.Log(topic, 0).Config().RetentionMs
	}

	ok(incrementalBroker(t, cl, "", false, "log.retention.ms", set, "3600000", "log.segment.bytes", set, "1048576"))
	plain := describeConfigs(t, cl, kmsg.ConfigResourceTypeTopic, "plain")
	if c := plain["retention.ms"]; *c.Value != "3600000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig ||
		synonymsOf(c) != "log.retention.ms=3600000/DYNAMIC_DEFAULT_BROKER_CONFIG log.retention.ms=86400000/STATIC_BROKER_CONFIG log.retention.ms=604800000/DEFAULT_CONFIG" {
		t.Fatalf("plain retention.ms = %s from %v, synonyms %s", *c.Value, c.Source, synonymsOf(c))
	}
	if got := retention(b, "plain"); got != 3600000 {
		t.Fatalf("plain's log retention %d, want the new default", got)
	}
	if got := b.logs.Log("plain", 1).Config().SegmentBytes; got != 1048576 {
		t.Fatalf("plain-1's segment bytes %d, want the new default", got)
	}
	if c := describeConfigs(t, cl, kmsg.ConfigResourceTypeTopic, "own")["retention.ms"]; *c.Value != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("own retention.ms = %s from %v", *c.Value, c.Source)
	}
	if got := retention(b, "own"); got != 1000 {
		t.Fatalf("own's log retention %d, want its own 1000", got)
	}

	// The broker's own config wins over the cluster-wide default.
	ok(incrementalBroker(t, cl, "0", false, "log.retention.ms", set, "7200000"))
	if got := retention(b, "plain"); got != 7200000 {
		t.Fatalf("plain's log retention %d, want the broker's 7200000", got)
	}
	cluster := describeConfigs(t, cl, kmsg.ConfigResourceTypeBroker, "")
	if len(cluster) != 2 || *cluster["log.retention.ms"].Value != "3600000" || *cluster["log.segment.bytes"].Value != "1048576" ||
		cluster["log.segment.bytes"].Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("cluster-wide resource: %+v", cluster)
	}
	broker := describeConfigs(t, cl, kmsg.ConfigResourceTypeBroker, "0")
	if c := broker["log.retention.ms"]; *c.Value != "7200000" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig || c.ReadOnly ||
		synonymsOf(c) != "log.retention.ms=7200000/DYNAMIC_BROKER_CONFIG log.retention.ms=3600000/DYNAMIC_DEFAULT_BROKER_CONFIG log.retention.ms=86400000/STATIC_BROKER_CONFIG log.retention.ms=604800000/DEFAULT_CONFIG" {
		t.Fatalf("broker log.retention.ms = %s from %v (read-only %v), synonyms %s", *c.Value, c.Source, c.ReadOnly, synonymsOf(c))
	}
	if c := broker["num.partitions"]; !c.ReadOnly {
		t.Fatal("num.partitions shown as dynamic")
	}

	// Refused whole: a static property, a bad value, another broker, a
	// combination that would be impossible for a topic.
	for _, tc := range []struct {
		name, entity string
		ops          []any
		want         *kerr.Error
		msg          string
	}{
		{"static property", "", []any{"log.retention.ms", set, "1", "num.partitions", set, "3"}, kerr.InvalidRequest, "num.partitions"},
		{"unknown property", "", []any{"nosuch.prop", set, "3"}, kerr.InvalidRequest, "unknown broker properties: nosuch.prop"},
		{"bad value", "0", []any{"log.retention.ms", set, "soon"}, kerr.InvalidConfig, "log.retention.ms"},
		{"bad list value", "", []any{"log.cleanup.policy", app, "sometimes"}, kerr.InvalidConfig, "sometimes"},
		{"SET without a value", "", []any{"log.retention.ms", set, "<nil>"}, kerr.InvalidConfig, "needs a value"},
		{"another broker", "7", []any{"log.retention.ms", set, "1"}, kerr.InvalidRequest, "broker 0"},
		{"impossible lags", "", []any{"log.cleaner.min.compaction.lag.ms", set, "100", "log.cleaner.max.compaction.lag.ms", set, "10"}, kerr.InvalidConfig, "min.compaction.lag.ms"},
	} {
		code, msg := incrementalBroker(t, cl, tc.entity, false, tc.ops...)
		if code != tc.want.Code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %v %q, want %v naming %q", tc.name, kerr.ErrorForCode(code), msg, tc.want, tc.msg)
		}
	}
	// Validation alone changes nothing.
	ok(incrementalBroker(t, cl, "", true, "log.retention.ms", set, "5"))
	if got := *describeConfigs(t, cl, kmsg.ConfigResourceTypeBroker, "")["log.retention.ms"].Value; got != "3600000" {
		t.Fatalf("after a refused change and a validation, the default is %s", got)
	}

	// APPEND to a list starts from the value in effect.
	ok(incrementalBroker(t, cl, "", false, "log.cleanup.policy", app, "compact"))
	if c := describeConfigs(t, cl, kmsg.ConfigResourceTypeTopic, "plain")["cleanup.policy"]; *c.Value != "delete,compact" {
		t.Fatalf("plain cleanup.policy after APPEND: %s", *c.Value)
	}
	// The legacy AlterConfigs replaces the entity's whole set.
	areq := kmsg.NewPtrAlterConfigsRequest()
	arr := kmsg.NewAlterConfigsRequestResource()
	arr.ResourceType = kmsg.ConfigResourceTypeBroker
	ac := kmsg.NewAlterConfigsRequestResourceConfig()
	ac.Name = "log.segment.bytes"
	v := "2097152"
	ac.Value = &v
	arr.Configs = append(arr.Configs, ac)
	areq.Resources = append(areq.Resources, arr)
	if r := request[*kmsg.AlterConfigsResponse](t, cl, areq).Resources[0]; r.ErrorCode != 0 {
		t.Fatalf("legacy AlterConfigs on the cluster-wide resource: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if cluster := describeConfigs(t, cl, kmsg.ConfigResourceTypeBroker, ""); len(cluster) != 1 || *cluster["log.segment.bytes"].Value != "2097152" {
		t.Fatalf("after the legacy replacement the cluster-wide resource holds %+v", cluster)
	}
	if c := describeConfigs(t, cl, kmsg.ConfigResourceTypeTopic, "plain")["cleanup.policy"]; *c.Value != "delete" {
		t.Fatalf("plain cleanup.policy after the replacement: %s", *c.Value)
	}

	// They survive a restart, and a topic created later takes them.
	stopBroker(t, b)
	b = startBroker(t, nil, dir, static)
	cl = newClient(t, b)
	if got := retention(b, "plain"); got != 7200000 {
		t.Fatalf("after restart plain's log retention is %d, want the broker's 7200000", got)
	}
	createTopic(t, cl, "later", 1, nil)
	if got := b.logs.Log("later", 0).Config().SegmentBytes; got != 2097152 {
		t.Fatalf("a new topic's segment bytes %d, want the dynamic default", got)
	}
	// DELETE goes back to what is below.
	ok(incrementalBroker(t, cl, "0", false, "log.retention.ms", del, "<nil>"))
	if got := retention(b, "plain"); got != 86400000 {
		t.Fatalf("after DELETE plain's log retention is %d, want the static 86400000", got)
	}
	if c := describeConfigs(t, cl, kmsg.ConfigResourceTypeBroker, "0")["log.retention.ms"]; c.Source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Fatalf("after DELETE log.retention.ms is from %v", c.Source)
	}
}

// TestDefaultsConflicts: a topic's own compaction lag does not block a
// dynamic default that conflicts with it (Kafka checks dynamic defaults by
// name and type only); defaults that conflict through a static property
// changed at a restart do not stop topics that set neither lag from being
// created or altered, nor other dynamic changes; static properties that
// conflict alone refuse the start; log.roll.hours gives segment.ms.
func TestDefaultsConflicts(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "lagged", 1, map[string]string{"min.compaction.lag.ms": "10000"})
	code, msg := incrementalBroker(t, cl, "", false, "log.cleaner.max.compaction.lag.ms", kmsg.IncrementalAlterConfigOpSet, "5000")
	if code != 0 {
		t.Fatalf("a default conflicting with one topic's own lag: %v %s", kerr.ErrorForCode(code), msg)
	}
	stopBroker(t, b)

	b = startBroker(t, nil, dir, func(c *Config) {
		c.Props["log.cleaner.min.compaction.lag.ms"] = "10000"
		c.Props["log.roll.hours"] = "2"
	})
	cl = newClient(t, b)
	createTopic(t, cl, "plain", 1, nil)
	if code := incrementalAlterConfigs(t, b, "plain", "delete.retention.ms", "1000"); code != 0 {
		t.Fatalf("altering a topic under conflicting defaults: %v", kerr.ErrorForCode(code))
	}
	if code, msg := incrementalBroker(t, cl, "", false, "log.roll.ms", kmsg.IncrementalAlterConfigOpSet, "3600000"); code != 0 {
		t.Fatalf("an unrelated dynamic change under conflicting defaults: %v %s", kerr.ErrorForCode(code), msg)
	}
	if code := createTopicCode(t, cl, "own-max", 1, map[string]string{"max.compaction.lag.ms": "5000"}); code != kerr.InvalidConfig.Code {
		t.Fatalf("a topic setting a lag that conflicts: %v, want INVALID_CONFIG", kerr.ErrorForCode(code))
	}
	if got := b.logs.Log("plain", 0).Config().SegmentMs; got != 3600000 {
		t.Fatalf("segment.ms %d, want the dynamic log.roll.ms", got)
	}
	if code, _ := incrementalBroker(t, cl, "", false, "log.roll.ms", kmsg.IncrementalAlterConfigOpDelete, "<nil>"); code != 0 {
		t.Fatal("delete log.roll.ms")
	}
	if got := b.logs.Log("plain", 0).Config().SegmentMs; got != 2*3600000 {
		t.Fatalf("segment.ms %d, want log.roll.hours=2 in ms", got)
	}

	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Props["log.cleaner.min.compaction.lag.ms"] = "10000"
	cfg.Props["log.cleaner.max.compaction.lag.ms"] = "5000"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "min.compaction.lag.ms") {
		t.Fatalf("static lags in conflict: %v", err)
	}
}
