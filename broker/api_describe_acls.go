package broker

// DescribeAcls (key 29), versions 0-3.
//
// gregor has no authorizer (every client may do everything), so, as Kafka
// without one (authorizer.class.name unset), the answer is
// SECURITY_DISABLED with the reason: tools that list ACLs (kafka-acls.sh,
// kadm, web consoles) then say that security is disabled instead of
// failing on an API the broker does not know.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

// noAuthorizer is the reason given with SECURITY_DISABLED.
const noAuthorizer = "no authorizer is configured on the broker: gregor has no ACLs"

func init() {
	registerSimple(kmsg.DescribeACLs, 0, 3, (*Broker).handleDescribeACLs)
}

func (b *Broker) handleDescribeACLs(_ wire.RequestHeader, _ *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeACLsResponse()
	resp.ErrorCode = kerr.SecurityDisabled.Code
	resp.ErrorMessage = kmsg.StringPtr(noAuthorizer)
	b.metrics.countError("DescribeAcls", resp.ErrorCode)
	return resp
}
