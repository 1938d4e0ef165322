package broker

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestACLsSecurityDisabled: the ACL APIs answer SECURITY_DISABLED, as
// Kafka without an authorizer does.
func TestACLsSecurityDisabled(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	ctx := context.Background()
	d := kmsg.NewPtrDescribeACLsRequest()
	dr, err := d.RequestWith(ctx, cl)
	if err != nil || dr.ErrorCode != kerr.SecurityDisabled.Code || dr.ErrorMessage == nil {
		t.Fatalf("describe ACLs: %+v, %v", dr, err)
	}
	c := kmsg.NewPtrCreateACLsRequest()
	c.Creations = make([]kmsg.CreateACLsRequestCreation, 2)
	cr, err := c.RequestWith(ctx, cl)
	if err != nil || len(cr.Results) != 2 || cr.Results[1].ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("create ACLs: %+v, %v", cr, err)
	}
	x := kmsg.NewPtrDeleteACLsRequest()
	x.Filters = make([]kmsg.DeleteACLsRequestFilter, 1)
	xr, err := x.RequestWith(ctx, cl)
	if err != nil || len(xr.Results) != 1 || xr.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("delete ACLs: %+v, %v", xr, err)
	}
}
