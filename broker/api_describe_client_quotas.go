package broker

// DescribeClientQuotas (key 48), versions 0-1.
//
// Lists the client quotas matching a filter (KIP-546), as
// kafka-configs.sh --describe --entity-type users/clients/ips and the
// admin clients ask. gregor enforces no quotas and stores none
// (AlterClientQuotas is not offered), so a valid filter matches nothing:
// no entries, as from a Kafka cluster with no quotas set. The filter is
// checked as Kafka checks it, with INVALID_REQUEST and the reason: an
// entity type other than user, client-id and ip; a type named twice; ip
// with user or client-id; a match type other than exact (0, with a name),
// default (1) or any (2), both without one.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeClientQuotas, 0, 1, (*Broker).handleDescribeClientQuotas)
}

func (b *Broker) handleDescribeClientQuotas(_ wire.RequestHeader, req *kmsg.DescribeClientQuotasRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	if err := checkQuotaFilter(req.Components); err != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		resp.ErrorMessage = kmsg.StringPtr(err.Error())
		b.metrics.countError("DescribeClientQuotas", resp.ErrorCode)
	}
	return resp // no quotas: no entries
}

// checkQuotaFilter reports what is wrong with a DescribeClientQuotas
// filter, nil if nothing is.
func checkQuotaFilter(components []kmsg.DescribeClientQuotasRequestComponent) error {
	seen := map[string]bool{}
	for _, c := range components {
		switch c.EntityType {
		case "user", "client-id", "ip":
		default:
			return fmt.Errorf("custom entity type %q not supported (user, client-id or ip)", c.EntityType)
		}
		if seen[c.EntityType] {
			return fmt.Errorf("duplicate filter component entity type %q", c.EntityType)
		}
		seen[c.EntityType] = true
		switch {
		case c.MatchType == 0 && c.Match == nil:
			return fmt.Errorf("entity type %q: an exact match (0) needs a name", c.EntityType)
		case (c.MatchType == 1 || c.MatchType == 2) && c.Match != nil:
			return fmt.Errorf("entity type %q: match type %d takes no name", c.EntityType, c.MatchType)
		case c.MatchType < 0 || c.MatchType > 2:
			return fmt.Errorf("entity type %q: unknown match type %d (0 exact, 1 default, 2 any)", c.EntityType, c.MatchType)
		}
	}
	if seen["ip"] && (seen["user"] || seen["client-id"]) {
		return fmt.Errorf("ip quotas cannot be combined with user or client-id ones")
	}
	return nil
}
