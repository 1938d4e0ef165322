package broker

// IncrementalAlterConfigs (key 44), versions 0-1.
//
// Topic resources only: SET, DELETE (back to the default), APPEND and
// SUBTRACT (for list configs such as cleanup.policy). Every change of a
// resource is validated before any is applied; a bad one fails the whole
// resource with INVALID_CONFIG and the reason. A resource named twice in
// one request is INVALID_REQUEST and not altered. Changes apply to the
// partitions' logs at once (retention, segment size, flush policy).
// Broker resources take the dynamic broker configs: the defaults of topic
// configs (see dynamic_configs.go).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.IncrementalAlterConfigs, 0, 1, (*Broker).handleIncrementalAlterConfigs)
}

func (b *Broker) handleIncrementalAlterConfigs(_ wire.RequestHeader, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	named := resourceCounts{}
	for _, rr := range req.Resources {
		named.add(rr.ResourceType, rr.ResourceName)
	}
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType = rr.ResourceType
		sr.ResourceName = rr.ResourceName
		err := named.repeated(rr.ResourceType, rr.ResourceName)
		if err == nil {
			err = alterResource(rr.ResourceType,
				func() error { return b.alterTopicConfigs(&rr, req.ValidateOnly) },
				func() error {
					changes := make([]configChange, len(rr.Configs))
					for i, c := range rr.Configs {
						changes[i] = configChange{c.Name, c.Op, c.Value}
					}
					return b.alterBrokerConfigs(rr.ResourceName, changes, false, req.ValidateOnly)
				})
		}
		if err != nil {
			sr.ErrorCode = errorCode(err)
			sr.ErrorMessage = errorMessage(err)
			b.metrics.countError("IncrementalAlterConfigs", sr.ErrorCode)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// resourceCounts counts the config resources a request names. As in Kafka,
// every entry of a resource named more than once is INVALID_REQUEST and
// none of them is applied.
type resourceCounts map[resourceKey]int

type resourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

func (c resourceCounts) add(typ kmsg.ConfigResourceType, name string) { c[resourceKey{typ, name}]++ }

func (c resourceCounts) repeated(typ kmsg.ConfigResourceType, name string) error {
	if c[resourceKey{typ, name}] > 1 {
		return fmt.Errorf("resource %q is named more than once in the request: %w", name, kerr.InvalidRequest)
	}
	return nil
}

// alterResource alters a config resource of type rt with alterTopic if
// it is a topic, alterBroker if it is a broker; other types are refused.
func alterResource(rt kmsg.ConfigResourceType, alterTopic, alterBroker func() error) error {
	switch rt {
	case kmsg.ConfigResourceTypeTopic:
		return alterTopic()
	case kmsg.ConfigResourceTypeBroker:
		return alterBroker()
	default:
		if rt == kmsg.ConfigResourceTypeBrokerLogger {
			return fmt.Errorf("log levels cannot be changed at runtime; restart the broker with --log-level: %w", kerr.InvalidRequest)
		}
		return fmt.Errorf("resource type %v is not supported by gregor (topic, broker and, to describe, broker logger are): %w", rt, kerr.InvalidRequest)
	}
}

func (b *Broker) alterTopicConfigs(rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	t, ok := b.store.Topic(rr.ResourceName)
	if !ok {
		return fmt.Errorf("topic %q does not exist: %w", rr.ResourceName, kerr.UnknownTopicOrPartition)
	}
	next := make(map[string]string, len(t.Configs))
	for k, v := range t.Configs {
		next[k] = v
	}
	names := make([]string, len(rr.Configs))
	for i, c := range rr.Configs {
		names[i] = c.Name
	}
	if err := duplicateConfigKey(names); err != nil {
		return err
	}
	for _, c := range rr.Configs {
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpDelete,
			kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		default: // a malformed request, not a bad value (Kafka's ConfigAdminManager)
			return fmt.Errorf("config %s: unknown operation %d: %w", c.Name, c.Op, kerr.InvalidRequest)
		}
	}
	eff := b.topicDefaults().Effective(t.Configs)
	var errs []error
	for _, c := range rr.Configs {
		d, known := topicconfig.Lookup(c.Name)
		if !known {
			errs = append(errs, fmt.Errorf("unknown topic config %q", c.Name))
			continue
		}
		val := ""
		if c.Value != nil {
			val = topicconfig.Normalize(*c.Value)
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				errs = append(errs, fmt.Errorf("config %s: SET needs a value", c.Name))
				continue
			}
			next[c.Name] = val
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if d.Type != topicconfig.TypeList {
				errs = append(errs, fmt.Errorf("config %s is not a list; APPEND and SUBTRACT do not apply", c.Name))
				continue
			}
			base, ok := next[c.Name]
			if !ok {
				base = eff[c.Name]
			}
			next[c.Name] = listOp(base, val, c.Op)
		}
		if v, ok := next[c.Name]; ok {
			if err := topicconfig.Validate(c.Name, v); err != nil {
				errs = append(errs, err)
			}
		}
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

// listOp applies an APPEND or SUBTRACT of the list vals to the list base
// (both comma-separated) and returns the result.
func listOp(base, vals string, op kmsg.IncrementalAlterConfigOp) string {
	return strings.Join(applyListOp(splitList(base), splitList(vals), op == kmsg.IncrementalAlterConfigOpAppend), ",")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func applyListOp(cur, vals []string, add bool) []string {
	has := make(map[string]bool, len(cur))
	for _, c := range cur {
		has[c] = true
	}
	if add {
		for _, v := range vals {
			if !has[v] {
				cur = append(cur, v)
				has[v] = true
			}
		}
		return cur
	}
	drop := make(map[string]bool, len(vals))
	for _, v := range vals {
		drop[v] = true
	}
	out := cur[:0]
	for _, c := range cur {
		if !drop[c] {
			out = append(out, c)
		}
	}
	return out
}
