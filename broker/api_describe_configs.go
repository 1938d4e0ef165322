package broker

// DescribeConfigs (key 32), versions 0-4.
//
// Topic resources list every topic config gregor knows with its effective
// value and source: DYNAMIC_TOPIC_CONFIG when set on the topic,
// DYNAMIC_BROKER_CONFIG or DYNAMIC_DEFAULT_BROKER_CONFIG when a dynamic
// broker config supplies it (see dynamic_configs.go), STATIC_BROKER_CONFIG
// when a broker property does, DEFAULT_CONFIG otherwise (synonyms from v1,
// types and documentation from v3). Broker resources list the broker's
// properties (the broker's own id) or the cluster-wide dynamic defaults
// (an empty name). A null or empty list of config names asks for
// every config, as in Kafka; a topic name Kafka would refuse is
// INVALID_TOPIC_EXCEPTION rather than UNKNOWN_TOPIC_OR_PARTITION. Broker
// logger resources (kafka-configs --entity-type broker-loggers) list the
// one logger gregor has, "root", at the broker's --log-level in log4j's
// spelling (INFO, WARN, ...), read-only: levels are set at startup. Other
// resource types (client metrics, groups) are INVALID_REQUEST, saying so.

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zapcore"

	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeConfigs, 0, 4, (*Broker).handleDescribeConfigs)
}

func (b *Broker) handleDescribeConfigs(_ wire.RequestHeader, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	var seen onceSet
	for _, rr := range req.Resources {
		if len(req.Resources) > 1 && !seen.first(fmt.Sprintf("%d\x00%s\x00%t\x00%q", rr.ResourceType, rr.ResourceName, rr.ConfigNames == nil, rr.ConfigNames)) {
			continue // answered once (see onceSet)
		}
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType = rr.ResourceType
		sr.ResourceName = rr.ResourceName
		var err error
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			err = b.describeTopicConfigs(req, &rr, &sr)
		case kmsg.ConfigResourceTypeBroker:
			err = b.describeBrokerConfigs(req, &rr, &sr)
		case kmsg.ConfigResourceTypeBrokerLogger:
			err = b.describeBrokerLoggers(&rr, &sr)
		default:
			err = fmt.Errorf("resource type %v is not supported by gregor (topic, broker and broker logger are): %w", rr.ResourceType, kerr.InvalidRequest)
		}
		if err != nil {
			sr.ErrorCode = errorCode(err)
			sr.ErrorMessage = errorMessage(err)
			b.metrics.countError("DescribeConfigs", sr.ErrorCode)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func wanted(names []string) func(string) bool {
	if len(names) == 0 { // null or empty: every config, as in Kafka
		return func(string) bool { return true }
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(n string) bool { return set[n] }
}

func (b *Broker) describeTopicConfigs(req *kmsg.DescribeConfigsRequest, rr *kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) error {
	t, ok := b.store.Topic(rr.ResourceName)
	if !ok {
		if err := validateTopicName(rr.ResourceName); err != nil {
			return err
		}
		return fmt.Errorf("topic %q does not exist: %w", rr.ResourceName, kerr.UnknownTopicOrPartition)
	}
	want := wanted(rr.ConfigNames)
	layers := b.layers.Load()
	eff := layers.defaults.Effective(t.Configs)
	for _, d := range topicconfig.Defs() {
		if !want(d.Name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = d.Name
		v := eff[d.Name]
		c.Value = &v
		src := layers.topicConfigSource(t.Configs, d, b.cfg.Props)
		c.Source = kmsg.ConfigSource(src)
		c.IsDefault = src == sourceDefault
		c.ConfigType = kmsg.ConfigType(d.Type)
		if req.IncludeDocumentation {
			doc := d.Doc
			c.Documentation = &doc
		}
		if req.IncludeSynonyms {
			// In Kafka's order: the value in effect, then what it
			// overrides.
			if tv, ok := t.Configs[d.Name]; ok {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(d.Name, tv, sourceDynamicTopic))
			}
			for _, s := range layers.defaultChain(d, b.cfg.Props) {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(s.key, s.value, s.src))
			}
		}
		sr.Configs = append(sr.Configs, c)
	}
	return nil
}

func synonym(name, value string, src int8) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	s.Name = name
	v := value
	s.Value = &v
	s.Source = kmsg.ConfigSource(src)
	return s
}

func (b *Broker) describeBrokerConfigs(req *kmsg.DescribeConfigsRequest, rr *kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) error {
	layers := b.layers.Load()
	want := wanted(rr.ConfigNames)
	if rr.ResourceName == "" {
		// The cluster-wide default resource holds the dynamic defaults
		// set for every broker (DYNAMIC_DEFAULT_BROKER_CONFIG), as in
		// Kafka.
		for _, n := range slices.Sorted(maps.Keys(layers.cluster)) {
			if !want(n) {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name = n
			v := layers.cluster[n]
			c.Value = &v
			c.Source = kmsg.ConfigSource(sourceDynamicDefault)
			c.ConfigType = kmsg.ConfigType(brokerConfigType(n))
			if req.IncludeSynonyms {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(n, v, sourceDynamicDefault))
			}
			sr.Configs = append(sr.Configs, c)
		}
		return nil
	}
	if err := b.thisBroker(rr.ResourceName); err != nil {
		return err
	}
	props := map[string]string{
		"broker.id":                  strconv.Itoa(int(b.cfg.BrokerID)),
		"listeners":                  "PLAINTEXT://" + b.cfg.Listen,
		"log.dirs":                   b.cfg.DataDir,
		"auto.create.topics.enable":  strconv.FormatBool(b.cfg.AutoCreateTopics),
		"num.partitions":             strconv.Itoa(int(b.cfg.NumPartitions)),
		"default.replication.factor": "1",
	}
	defaults := map[string]string{"auto.create.topics.enable": "true", "num.partitions": "1", "default.replication.factor": "1"}
	for _, kv := range KnownProps() {
		props[kv[0]] = kv[1]
		defaults[kv[0]] = kv[1]
	}
	explicit := map[string]bool{"broker.id": true, "listeners": true, "log.dirs": true}
	// Set by their flags (--auto-create-topics, --num-partitions) or by
	// --set under these names: told apart from the defaults by value.
	for _, k := range []string{"auto.create.topics.enable", "num.partitions"} {
		explicit[k] = props[k] != defaults[k]
	}
	for k, v := range b.cfg.Props {
		props[k] = v
		explicit[k] = true
	}
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		if !want(n) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = n
		c.ConfigType = kmsg.ConfigType(brokerConfigType(n))
		v := props[n]
		if d, ok := topicconfig.LookupBrokerKey(n); ok {
			// A topic config's default: dynamic, in Kafka's order of
			// precedence (see dynamic_configs.go).
			chain := layers.defaultChain(d, b.cfg.Props)
			v = chain[0].value
			if chain[0].key != n {
				// log.retention.minutes or .hours set the retention:
				// show the value in effect.
				v = layers.defaults[d.Name]
			}
			c.Value = &v
			c.Source = kmsg.ConfigSource(chain[0].src)
			c.IsDefault = chain[0].src == sourceDefault
			if req.IncludeSynonyms {
				for _, s := range chain {
					c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(s.key, s.value, s.src))
				}
			}
			sr.Configs = append(sr.Configs, c)
			continue
		}
		c.Value = &v
		c.ReadOnly = true
		if explicit[n] {
			c.Source = kmsg.ConfigSource(sourceStaticBroker)
		} else {
			c.Source = kmsg.ConfigSource(sourceDefault)
			c.IsDefault = true
		}
		if req.IncludeSynonyms {
			// In Kafka's order: the value in effect, then the default
			// it overrides.
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(n, v, int8(c.Source)))
			if d, ok := defaults[n]; ok && explicit[n] {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(n, d, sourceDefault))
			}
		}
		sr.Configs = append(sr.Configs, c)
	}
	return nil
}

// describeBrokerLoggers answers a BROKER_LOGGER resource: this broker's
// one logger, "root", at its level.
func (b *Broker) describeBrokerLoggers(rr *kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) error {
	if err := b.thisBroker(rr.ResourceName); err != nil {
		return err
	}
	if !wanted(rr.ConfigNames)("root") {
		return nil
	}
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = "root"
	level := log4jLevel(b.log.Level())
	c.Value = &level
	c.ReadOnly = true
	c.Source = kmsg.ConfigSource(sourceStaticBroker)
	c.ConfigType = kmsg.ConfigTypeString
	sr.Configs = append(sr.Configs, c)
	return nil
}

// log4jLevel spells a zap level as log4j does; OFF for a logger that logs
// nothing.
func log4jLevel(l zapcore.Level) string {
	switch l {
	case zapcore.DebugLevel, zapcore.InfoLevel, zapcore.WarnLevel, zapcore.ErrorLevel:
		return strings.ToUpper(l.String())
	case zapcore.DPanicLevel, zapcore.PanicLevel, zapcore.FatalLevel:
		return "FATAL"
	}
	return "OFF"
}

// thisBroker checks that a broker (or broker logger) resource names this
// broker.
func (b *Broker) thisBroker(name string) error {
	if name != strconv.Itoa(int(b.cfg.BrokerID)) {
		return fmt.Errorf("broker %q: this is broker %d: %w", name, b.cfg.BrokerID, kerr.InvalidRequest)
	}
	return nil
}
