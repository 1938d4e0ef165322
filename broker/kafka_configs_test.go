package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
)

// TestKafkaTopicConfigsThroughTheBroker: a topic created with the configs
// a Kafka tool copies from a Kafka cluster is created; the timestamp
// limits it sets are enforced with INVALID_TIMESTAMP; DescribeConfigs
// names log.retention.hours as the source of retention.ms when that is how
// the broker was configured.
func TestKafkaTopicConfigsThroughTheBroker(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) { c.Props["log.retention.hours"] = "48" })
	cl := newClient(t, b)
	createTopic(t, cl, "k", 1, map[string]string{
		"segment.index.bytes":                     "10485760",
		"segment.jitter.ms":                       "0",
		"preallocate":                             "false",
		"message.downconversion.enable":           "true",
		"leader.replication.throttled.replicas":   "",
		"follower.replication.throttled.replicas": "",
		"local.retention.ms":                      "-2",
		"remote.storage.enable":                   "false",
		"message.timestamp.after.max.ms":          "60000",
	})
	batch := func(ts int64) []byte {
		rb := record.NewBuilder()
		rb.Add(nil, []byte("v"), nil, ts)
		return rb.Build()
	}
	now := time.Now().UnixMilli()
	if p := rawProduce(t, cl, "k", 0, batch(now)); p.ErrorCode != 0 {
		t.Fatalf("produce now: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	p := rawProduce(t, cl, "k", 0, batch(now+3_600_000))
	if p.ErrorCode != kerr.InvalidTimestamp.Code || p.ErrorMessage == nil {
		t.Fatalf("produce an hour ahead: %v (%v)", kerr.ErrorForCode(p.ErrorCode), p.ErrorMessage)
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = "k"
	rr.ConfigNames = []string{"retention.ms", "remote.storage.enable"}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		got[c.Name] = c
	}
	rm := got["retention.ms"]
	if rm.Value == nil || *rm.Value != "172800000" || rm.Source != kmsg.ConfigSourceStaticBrokerConfig ||
		len(rm.ConfigSynonyms) == 0 || rm.ConfigSynonyms[0].Name != "log.retention.hours" || *rm.ConfigSynonyms[0].Value != "48" {
		t.Fatalf("retention.ms: %+v", rm)
	}
	if rs := got["remote.storage.enable"]; rs.Value == nil || *rs.Value != "false" || rs.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("remote.storage.enable: %+v", rs)
	}

	// The broker resource shows the retention in effect.
	req = kmsg.NewPtrDescribeConfigsRequest()
	rr = kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, "0"
	rr.ConfigNames = []string{"log.retention.ms", "log.retention.hours"}
	req.Resources = append(req.Resources, rr)
	if resp, err = req.RequestWith(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Resources[0].Configs); n != 2 {
		t.Fatalf("broker resource: %d configs, want 2", n)
	}
	for _, c := range resp.Resources[0].Configs {
		want := map[string]string{"log.retention.ms": "172800000", "log.retention.hours": "48"}[c.Name]
		if c.Value == nil || *c.Value != want || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
			t.Fatalf("broker %s: %v source %v, want %s from the static config", c.Name, c.Value, c.Source, want)
		}
	}
}

// TestDuplicateConfigKeys: a config named twice for one resource, or a
// resource named twice in one request, is INVALID_REQUEST (in every such
// entry) in AlterConfigs and IncrementalAlterConfigs, as Kafka answers,
// and changes nothing.
func TestDuplicateConfigKeys(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "d", 1, nil)
	if code := alterConfigs(t, b, "d", false, "retention.ms", "1000", "retention.ms", "2000"); code != kerr.InvalidRequest.Code {
		t.Fatalf("AlterConfigs with a key twice: %v", kerr.ErrorForCode(code))
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = "d"
	for _, v := range []string{"1000", "2000"} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op = "retention.ms", kmsg.IncrementalAlterConfigOpSet
		c.Value = &v
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Resources[0].ErrorCode; code != kerr.InvalidRequest.Code {
		t.Fatalf("IncrementalAlterConfigs with a key twice: %v", kerr.ErrorForCode(code))
	}
	// An operation the protocol does not define is a malformed request,
	// not a bad config value.
	rr.Configs = rr.Configs[:1]
	rr.Configs[0].Op = 7
	req.Resources[0] = rr
	if code := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0].ErrorCode; code != kerr.InvalidRequest.Code {
		t.Fatalf("IncrementalAlterConfigs with operation 7: %v", kerr.ErrorForCode(code))
	}

	// A resource named twice: INVALID_REQUEST in both entries.
	inc := kmsg.NewPtrIncrementalAlterConfigsRequest()
	legacy := kmsg.NewPtrAlterConfigsRequest()
	for _, v := range []string{"1111", "2222"} {
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "d"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = "retention.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(v)
		rr.Configs = append(rr.Configs, c)
		inc.Resources = append(inc.Resources, rr)

		lr := kmsg.NewAlterConfigsRequestResource()
		lr.ResourceType, lr.ResourceName = kmsg.ConfigResourceTypeTopic, "d"
		lc := kmsg.NewAlterConfigsRequestResourceConfig()
		lc.Name, lc.Value = "retention.ms", kmsg.StringPtr(v)
		lr.Configs = append(lr.Configs, lc)
		legacy.Resources = append(legacy.Resources, lr)
	}
	for i, r := range request[*kmsg.IncrementalAlterConfigsResponse](t, cl, inc).Resources {
		if r.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("IncrementalAlterConfigs entry %d: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
	}
	for i, r := range request[*kmsg.AlterConfigsResponse](t, cl, legacy).Resources {
		if r.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("AlterConfigs entry %d: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
	}
	if tc, _ := b.store.Topic("d"); len(tc.Configs) != 0 {
		t.Fatalf("configs changed: %v", tc.Configs)
	}
}

// TestDescribeConfigsNamesAndTopics: an empty (not null) list of config
// names asks for every config, as a null one does and as Kafka answers;
// a topic name Kafka would refuse is INVALID_TOPIC_EXCEPTION, an unknown
// valid one UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeConfigsNamesAndTopics(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "dc", 1, nil)
	describe := func(topic string, names []string) kmsg.DescribeConfigsResponseResource {
		t.Helper()
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, names
		req.Resources = append(req.Resources, rr)
		return request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]
	}
	all := describe("dc", nil)
	if all.ErrorCode != 0 || len(all.Configs) < 10 {
		t.Fatalf("null names: %v, %d configs", kerr.ErrorForCode(all.ErrorCode), len(all.Configs))
	}
	if empty := describe("dc", []string{}); empty.ErrorCode != 0 || len(empty.Configs) != len(all.Configs) {
		t.Fatalf("empty names: %v, %d configs, want %d", kerr.ErrorForCode(empty.ErrorCode), len(empty.Configs), len(all.Configs))
	}
	for topic, want := range map[string]*kerr.Error{"": kerr.InvalidTopicException, "bad/name": kerr.InvalidTopicException, "nosuch": kerr.UnknownTopicOrPartition} {
		if r := describe(topic, nil); r.ErrorCode != want.Code {
			t.Errorf("topic %q: %v, want %v", topic, kerr.ErrorForCode(r.ErrorCode), want)
		}
	}
}

// TestConfigValuesTrimmed: white space around a value is dropped before it
// is checked and stored, as Kafka's ConfigDef trims every type, by every
// request that sets configs.
func TestConfigValuesTrimmed(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "w", 1, map[string]string{"retention.ms": " 3600000 ", "cleanup.policy": " delete "})
	if tc, _ := b.store.Topic("w"); tc.Configs["retention.ms"] != "3600000" || tc.Configs["cleanup.policy"] != "delete" {
		t.Fatalf("stored after CreateTopics: %q", tc.Configs)
	}
	if code := alterConfigs(t, b, "w", false, "segment.ms", "\t600000\n", "preallocate", " false"); code != 0 {
		t.Fatalf("AlterConfigs with spaces: %v", kerr.ErrorForCode(code))
	}
	if tc, _ := b.store.Topic("w"); tc.Configs["segment.ms"] != "600000" || tc.Configs["preallocate"] != "false" {
		t.Fatalf("stored after AlterConfigs: %q", tc.Configs)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = "w"
	v := " 0.25 "
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = "min.cleanable.dirty.ratio", kmsg.IncrementalAlterConfigOpSet, &v
	rr.Configs = append(rr.Configs, c)
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs with spaces: %v", kerr.ErrorForCode(code))
	}
	if tc, _ := b.store.Topic("w"); tc.Configs["min.cleanable.dirty.ratio"] != "0.25" {
		t.Fatalf("stored after IncrementalAlterConfigs: %q", tc.Configs)
	}
	// Inside a value, white space is still wrong.
	if code := alterConfigs(t, b, "w", false, "retention.ms", "36 00"); code != kerr.InvalidConfig.Code {
		t.Fatalf("AlterConfigs retention.ms=\"36 00\": %v", kerr.ErrorForCode(code))
	}
}

// TestBrokerConfigSources: settings given by flags (--num-partitions,
// --auto-create-topics) are STATIC_BROKER_CONFIG, not defaults; synonyms
// are listed when asked for; and the cluster-wide resource (broker "")
// holds no dynamic defaults until some are set.
func TestBrokerConfigSources(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) {
		c.NumPartitions = 3
		c.AutoCreateTopics = false
	})
	cl := newClient(t, b)
	describe := func(name string, synonyms bool) kmsg.DescribeConfigsResponseResource {
		t.Helper()
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.IncludeSynonyms = synonyms
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, name
		req.Resources = append(req.Resources, rr)
		resp := request[*kmsg.DescribeConfigsResponse](t, cl, req)
		if r := resp.Resources[0]; r.ErrorCode != 0 {
			t.Fatalf("describe broker %q: %v", name, kerr.ErrorForCode(r.ErrorCode))
		}
		return resp.Resources[0]
	}
	if r := describe("", false); len(r.Configs) != 0 {
		t.Errorf("cluster-wide resource: %d configs, want none", len(r.Configs))
	}
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range describe("0", true).Configs {
		got[c.Name] = c
	}
	for name, want := range map[string]string{"num.partitions": "3", "auto.create.topics.enable": "false"} {
		c := got[name]
		if c.Value == nil || *c.Value != want || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
			t.Errorf("%s: %+v, want %s from the static config", name, c, want)
		}
		if len(c.ConfigSynonyms) != 2 || c.ConfigSynonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("%s synonyms: %+v", name, c.ConfigSynonyms)
		}
	}
	if c := got["log.segment.bytes"]; c.Source != kmsg.ConfigSourceDefaultConfig || len(c.ConfigSynonyms) != 1 {
		t.Errorf("log.segment.bytes: %+v", c)
	}
	// Every config has its type (KIP-569), Kafka's where Kafka has it.
	for name, want := range map[string]kmsg.ConfigType{
		"num.partitions": kmsg.ConfigTypeInt, "log.retention.ms": kmsg.ConfigTypeLong, "log.cleanup.policy": kmsg.ConfigTypeList,
		"auto.create.topics.enable": kmsg.ConfigTypeBoolean, "listeners": kmsg.ConfigTypeString,
		"log.cleaner.io.max.bytes.per.second": kmsg.ConfigTypeDouble, "connections.max.idle.ms": kmsg.ConfigTypeLong,
	} {
		if c := got[name]; c.ConfigType != want {
			t.Errorf("%s: type %v, want %v", name, c.ConfigType, want)
		}
	}
	for name, c := range got {
		if c.ConfigType == kmsg.ConfigTypeUnknown {
			t.Errorf("%s: type UNKNOWN", name)
		}
	}
}
