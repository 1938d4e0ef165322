package broker

// AlterConfigs (key 33), versions 0-2: the legacy, non-incremental form
// that older tools and kafka-python's admin client use. For a topic, the
// request's configs replace every explicitly set config of the topic: one
// it does not name goes back to the broker default, as in Kafka. A config
// with a null value is not set. Every config is validated before any is
// applied; a bad one fails the resource with INVALID_CONFIG and the
// reason. For a broker resource, the configs replace its whole set of
// dynamic broker configs, as in Kafka (see dynamic_configs.go). A resource
// named twice in one request is INVALID_REQUEST and not altered.

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.AlterConfigs, 0, 2, (*Broker).handleAlterConfigs)
}

func (b *Broker) handleAlterConfigs(_ wire.RequestHeader, req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterConfigsResponse()
	named := resourceCounts{}
	for _, rr := range req.Resources {
		named.add(rr.ResourceType, rr.ResourceName)
	}
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType = rr.ResourceType
		sr.ResourceName = rr.ResourceName
		err := named.repeated(rr.ResourceType, rr.ResourceName)
		if err == nil {
			err = alterResource(rr.ResourceType,
				func() error { return b.replaceTopicConfigs(&rr, req.ValidateOnly) },
				func() error {
					changes := make([]configChange, len(rr.Configs))
					for i, c := range rr.Configs {
						changes[i] = configChange{c.Name, kmsg.IncrementalAlterConfigOpSet, c.Value}
					}
					return b.alterBrokerConfigs(rr.ResourceName, changes, true, req.ValidateOnly)
				})
		}
		if err != nil {
			sr.ErrorCode = errorCode(err)
			sr.ErrorMessage = errorMessage(err)
			b.metrics.countError("AlterConfigs", sr.ErrorCode)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (b *Broker) replaceTopicConfigs(rr *kmsg.AlterConfigsRequestResource, validateOnly bool) error {
	t, ok := b.store.Topic(rr.ResourceName)
	if !ok {
		return fmt.Errorf("topic %q does not exist: %w", rr.ResourceName, kerr.UnknownTopicOrPartition)
	}
	names := make([]string, len(rr.Configs))
	for i, c := range rr.Configs {
		names[i] = c.Name
	}
	if err := duplicateConfigKey(names); err != nil {
		return err
	}
	next := make(map[string]string, len(rr.Configs))
	var errs []error
	for _, c := range rr.Configs {
		if _, known := topicconfig.Lookup(c.Name); !known {
			errs = append(errs, fmt.Errorf("unknown topic config %q", c.Name))
			continue
		}
		if c.Value == nil {
			continue
		}
		v := topicconfig.Normalize(*c.Value)
		if err := topicconfig.Validate(c.Name, v); err != nil {
			errs = append(errs, err)
			continue
		}
		next[c.Name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%v: %w", err, kerr.InvalidConfig)
	}
	if err := topicconfig.ValidateTopic(next, b.topicDefaults().Effective(next)); err != nil {
		return fmt.Errorf("%v: %w", err, kerr.InvalidConfig)
	}
	if err := b.checkInternalConfigs(t, next); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	return b.setTopicConfigs(t.Name, next)
}

// checkInternalConfigs refuses configs next for an internal topic
// (__consumer_offsets, __transaction_state) whose cleanup.policy is not
// compact alone: retention would delete committed offsets and transaction
// state that are never written again. Kafka lets an operator do it; here
// clients cannot delete those records (DeleteTopics and DeleteRecords
// refuse too), and a legacy AlterConfigs that names other configs only
// would otherwise drop the policy silently.
func (b *Broker) checkInternalConfigs(t meta.Topic, next map[string]string) error {
	if !t.Internal {
		return nil
	}
	if p := b.topicDefaults().Effective(next)["cleanup.policy"]; p != "compact" {
		return fmt.Errorf("topic %q is internal: its cleanup.policy must stay compact (this change makes it %q); give cleanup.policy=compact with the other configs: %w",
			t.Name, p, kerr.InvalidConfig)
	}
	return nil
}

// duplicateConfigKey returns an INVALID_REQUEST error naming the first
// config a request names twice for one resource, as Kafka answers (both
// AlterConfigs and IncrementalAlterConfigs), or nil.
func duplicateConfigKey(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("config %s given twice for one resource: %w", n, kerr.InvalidRequest)
		}
		seen[n] = true
	}
	return nil
}
