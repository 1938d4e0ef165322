package broker

// Dynamic broker configs, as `kafka-configs --entity-type brokers --alter`
// sets them: the broker properties that supply a topic config's default
// (log.retention.ms, log.segment.bytes, log.cleanup.policy, message.max.bytes,
// ...) may be changed at runtime with AlterConfigs or IncrementalAlterConfigs
// on a BROKER resource: the empty name (--entity-default) for the
// cluster-wide default, this broker's id for its own. They are kept in the
// metadata store, so they survive restarts, and apply at once to every
// partition of every topic that does not set the config itself.
// Precedence, as in Kafka: the topic's own config, then this broker's
// dynamic config, the cluster-wide dynamic default, the static property
// (--set, the config file) and the built-in default. Every other broker
// property is static: changing one is INVALID_REQUEST naming it.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/topicconfig"
)

// Config sources of DescribeConfigs (and CreateTopics v5+), as Kafka
// numbers them.
const (
	sourceDynamicTopic   int8 = 1
	sourceDynamicBroker  int8 = 2
	sourceDynamicDefault int8 = 3
	sourceStaticBroker   int8 = 4
	sourceDefault        int8 = 5
)

// configLayers are the dynamic broker configs and the topic-config
// defaults they give. A value is never changed once published (see
// Broker.layers): a change builds a new one.
type configLayers struct {
	own      map[string]string    // this broker's dynamic configs
	cluster  map[string]string    // the cluster-wide dynamic defaults
	defaults topicconfig.Defaults // each topic config's default in effect
}

// newConfigLayers builds the layers over the static broker properties.
func newConfigLayers(static, cluster, own map[string]string) *configLayers {
	props := maps.Clone(static)
	if props == nil {
		props = make(map[string]string, len(cluster)+len(own))
	}
	maps.Copy(props, cluster)
	maps.Copy(props, own)
	return &configLayers{own: own, cluster: cluster, defaults: topicconfig.NewDefaults(props)}
}

// topicDefaults are the topic-config defaults in effect: read-only.
func (b *Broker) topicDefaults() topicconfig.Defaults { return b.layers.Load().defaults }

// loadConfigLayers publishes the layers of the dynamic configs the store
// holds.
func (b *Broker) loadConfigLayers() {
	b.layers.Store(newConfigLayers(b.cfg.Props, b.store.BrokerConfigs(""), b.store.BrokerConfigs(b.selfEntity())))
}

// selfEntity is this broker's entity name for dynamic configs: its id.
func (b *Broker) selfEntity() string { return strconv.Itoa(int(b.cfg.BrokerID)) }

// setting is one layer's value of a config: a synonym in DescribeConfigs.
type setting struct {
	key, value string
	src        int8
}

// defaultChain lists what supplies topic config d's default, highest
// precedence first: this broker's dynamic config, the cluster-wide
// dynamic default, the static broker property (for retention.ms also
// log.retention.minutes and .hours, as Kafka reads them) and the built-in
// default. Empty for a config no broker property supplies.
func (l *configLayers) defaultChain(d topicconfig.Def, static map[string]string) []setting {
	if d.BrokerKey == "" {
		return nil
	}
	var out []setting
	if v, ok := l.own[d.BrokerKey]; ok {
		out = append(out, setting{d.BrokerKey, v, sourceDynamicBroker})
	}
	if v, ok := l.cluster[d.BrokerKey]; ok {
		out = append(out, setting{d.BrokerKey, v, sourceDynamicDefault})
	}
	if k, v, ok := brokerSetting(static, d); ok {
		out = append(out, setting{k, v, sourceStaticBroker})
	}
	return append(out, setting{d.BrokerKey, d.Default, sourceDefault})
}

// topicConfigSource is where a topic's value of config d comes from.
func (l *configLayers) topicConfigSource(topicConfigs map[string]string, d topicconfig.Def, static map[string]string) int8 {
	if _, ok := topicConfigs[d.Name]; ok {
		return sourceDynamicTopic
	}
	if chain := l.defaultChain(d, static); len(chain) > 0 {
		return chain[0].src
	}
	return sourceDefault
}

// brokerSetting returns the broker property that sets d's default, if one
// is set: d's broker key, or, as Kafka reads them, for retention.ms
// log.retention.minutes and then log.retention.hours, for segment.ms
// log.roll.hours.
func brokerSetting(props map[string]string, d topicconfig.Def) (key, value string, ok bool) {
	keys := []string{d.BrokerKey}
	switch d.Name {
	case "retention.ms":
		keys = append(keys, "log.retention.minutes", "log.retention.hours")
	case "segment.ms":
		keys = append(keys, "log.roll.hours")
	}
	for _, k := range keys {
		if v, ok := props[k]; ok && k != "" {
			return k, v, true
		}
	}
	return "", "", false
}

// brokerEntity checks a BROKER resource's name for an alteration: "" (the
// cluster-wide default) or this broker's id.
func (b *Broker) brokerEntity(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if err := b.thisBroker(name); err != nil {
		return "", err
	}
	return name, nil
}

// configChange is one config of an alteration: its name, its operation
// (SET, DELETE, APPEND or SUBTRACT) and its value (nil for none).
type configChange struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// alterBrokerConfigs changes the dynamic configs of the BROKER resource
// name. With replace (the legacy AlterConfigs), the changes, all SETs,
// replace the entity's whole set; otherwise they apply to it. Every change
// is checked before any is made: a property that is not dynamic or not
// known is INVALID_REQUEST, a bad value INVALID_CONFIG; so are defaults
// that conflict among themselves, and an internal topic left without
// compaction.
func (b *Broker) alterBrokerConfigs(name string, changes []configChange, replace, validateOnly bool) error {
	entity, err := b.brokerEntity(name)
	if err != nil {
		return err
	}
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.name
	}
	if err := duplicateConfigKey(names); err != nil {
		return err
	}
	known := make(map[string]bool)
	for _, kv := range KnownProps() {
		known[kv[0]] = true
	}
	var static, unknown []string
	for _, c := range changes {
		if _, ok := topicconfig.LookupBrokerKey(c.name); !ok {
			if known[c.name] {
				static = append(static, c.name)
			} else {
				unknown = append(unknown, c.name)
			}
		}
	}
	var refused []string
	if len(unknown) > 0 {
		sort.Strings(unknown)
		refused = append(refused, "unknown broker properties: "+strings.Join(unknown, ", "))
	}
	if len(static) > 0 {
		sort.Strings(static)
		refused = append(refused, "cannot update these configs dynamically: "+strings.Join(static, ", ")+
			" (only the defaults of topic configs, such as log.retention.ms, are dynamic; set others with --set at startup)")
	}
	if len(refused) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(refused, "; "), kerr.InvalidRequest)
	}

	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	cur := b.layers.Load()
	old := cur.cluster
	if entity != "" {
		old = cur.own
	}
	next := maps.Clone(old)
	if replace || next == nil {
		next = make(map[string]string, len(changes))
	}
	var errs []error
	for _, c := range changes {
		d, _ := topicconfig.LookupBrokerKey(c.name)
		switch c.op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.value == nil {
				if replace {
					continue // the legacy form: null is not set
				}
				errs = append(errs, fmt.Errorf("config %s: SET needs a value", c.name))
				continue
			}
			next[c.name] = topicconfig.Normalize(*c.value)
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, c.name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if d.Type != topicconfig.TypeList {
				errs = append(errs, fmt.Errorf("config %s is not a list; APPEND and SUBTRACT do not apply", c.name))
				continue
			}
			val := ""
			if c.value != nil {
				val = topicconfig.Normalize(*c.value)
			}
			// From the entity's own value, else the one in effect for it.
			base, ok := next[c.name]
			if !ok {
				base = b.valueBelow(cur, entity, d)
			}
			next[c.name] = listOp(base, val, c.op)
		default: // a malformed request, not a bad value
			return fmt.Errorf("config %s: unknown operation %d: %w", c.name, c.op, kerr.InvalidRequest)
		}
		if v, ok := next[c.name]; ok {
			if _, err := topicconfig.ValidateBrokerDefault(c.name, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%v: %w", err, kerr.InvalidConfig)
	}
	cluster, own := cur.cluster, cur.own
	if entity == "" {
		cluster = next
	} else {
		own = next
	}
	layers := newConfigLayers(b.cfg.Props, cluster, own)
	// The new defaults may not conflict among themselves (checked when
	// the change names one of the configs in conflict, so that an older
	// conflict does not block every other change). A topic's own config
	// conflicting with them is the topic's, as in Kafka, which checks
	// dynamic defaults by name and type only.
	if slices.ContainsFunc(changes, func(c configChange) bool { return lagKeys[c.name] }) {
		if err := topicconfig.ValidateCombination(layers.defaults); err != nil {
			return fmt.Errorf("%v: %w", err, kerr.InvalidConfig)
		}
	}
	for _, t := range b.store.Topics() {
		eff := layers.defaults.Effective(t.Configs)
		if t.Internal && eff["cleanup.policy"] != "compact" {
			// Internal topics set their policy themselves; this only
			// guards against one created without it.
			return fmt.Errorf("topic %q is internal: its cleanup.policy must stay compact: %w", t.Name, kerr.InvalidConfig)
		}
	}
	if validateOnly {
		return nil
	}
	if err := b.store.SetBrokerConfigs(entity, next); err != nil {
		return fmt.Errorf("store dynamic broker configs: %w", err)
	}
	b.layers.Store(layers)
	b.applyTopicDefaults(cur.defaults, layers.defaults)
	what := "cluster-wide default"
	if entity != "" {
		what = "broker " + entity
	}
	b.log.Info("altered dynamic broker configs", zap.String("entity", what), zap.Any("configs", next))
	return nil
}

// lagKeys are the broker properties ValidateCombination weighs.
var lagKeys = map[string]bool{"log.cleaner.min.compaction.lag.ms": true, "log.cleaner.max.compaction.lag.ms": true}

// checkDefaults logs a conflict among the topic-config defaults in effect:
// static properties and dynamic configs each valid, but not together (a
// dynamic one set, then a static one changed at a restart). Topics that
// do not set those configs themselves are not held up by it.
func (b *Broker) checkDefaults() {
	if err := topicconfig.ValidateCombination(b.topicDefaults()); err != nil {
		b.log.Error("the broker's topic-config defaults conflict; change the dynamic one (gregor config describe, gregor config alter) or the static property",
			zap.Error(err))
	}
}

// valueBelow is the value of broker property d.BrokerKey that applies to
// entity when it sets none itself: for this broker, the cluster-wide
// default, the static property or the built-in default; for the
// cluster-wide default, the last two.
func (b *Broker) valueBelow(l *configLayers, entity string, d topicconfig.Def) string {
	for _, s := range l.defaultChain(d, b.cfg.Props) {
		if s.src == sourceDynamicBroker || (entity == "" && s.src == sourceDynamicDefault) {
			continue
		}
		return s.value
	}
	return d.Default
}

// applyTopicDefaults gives every partition whose storage config the change
// of defaults from old to now changes its new config. topicMu held.
func (b *Broker) applyTopicDefaults(old, now topicconfig.Defaults) {
	changed := make([]string, 0, len(now))
	for k, v := range now {
		if old[k] != v {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return
	}
	b.minISR.Clear()
	for _, t := range b.store.Topics() {
		if !slices.ContainsFunc(changed, func(k string) bool { _, own := t.Configs[k]; return !own }) {
			continue // the topic sets every changed config itself
		}
		sc := b.storageConfigOf(t.Configs)
		for p := int32(0); p < t.Partitions; p++ {
			if l := b.logs.Log(t.Name, p); l != nil {
				l.SetConfig(sc)
			}
		}
	}
}
