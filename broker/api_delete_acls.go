package broker

// DeleteAcls (key 31), versions 0-3.
//
// Every filter is answered with SECURITY_DISABLED, as by Kafka without an
// authorizer: gregor has none (see api_describe_acls.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DeleteACLs, 0, 3, (*Broker).handleDeleteACLs)
}

func (b *Broker) handleDeleteACLs(_ wire.RequestHeader, req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteACLsResponse()
	for range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		r.ErrorCode = kerr.SecurityDisabled.Code
		r.ErrorMessage = kmsg.StringPtr(noAuthorizer)
		b.metrics.countError("DeleteAcls", r.ErrorCode)
		resp.Results = append(resp.Results, r)
	}
	return resp
}
