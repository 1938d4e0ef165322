package broker

// CreateAcls (key 30), versions 0-3.
//
// Every creation is refused with SECURITY_DISABLED, as by Kafka without an
// authorizer: gregor has none (see api_describe_acls.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.CreateACLs, 0, 3, (*Broker).handleCreateACLs)
}

func (b *Broker) handleCreateACLs(_ wire.RequestHeader, req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateACLsResponse()
	for range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode = kerr.SecurityDisabled.Code
		r.ErrorMessage = kmsg.StringPtr(noAuthorizer)
		b.metrics.countError("CreateAcls", r.ErrorCode)
		resp.Results = append(resp.Results, r)
	}
	return resp
}
