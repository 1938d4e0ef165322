package broker

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
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

// TestSASLIllegalState: a PLAINTEXT listener answers SASL requests with
// ILLEGAL_SASL_STATE, as Kafka's does, and lists both APIs so that clients
// do not take the broker for one older than Kafka 0.10.
func TestSASLIllegalState(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	ctx := context.Background()
	h := kmsg.NewPtrSASLHandshakeRequest()
	h.Mechanism = "PLAIN"
	hr, err := h.RequestWith(ctx, cl)
	if err != nil || hr.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("SaslHandshake: %+v, %v", hr, err)
	}
	a := kmsg.NewPtrSASLAuthenticateRequest()
	a.SASLAuthBytes = []byte("\x00user\x00secret")
	ar, err := a.RequestWith(ctx, cl)
	if err != nil || ar.ErrorCode != kerr.IllegalSaslState.Code || ar.ErrorMessage == nil {
		t.Fatalf("SaslAuthenticate: %+v, %v", ar, err)
	}
	vr, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	vs := kversion.FromApiVersionsResponse(vr)
	for _, k := range []int16{17, 36} {
		if _, ok := vs.LookupMaxKeyVersion(k); !ok {
			t.Errorf("ApiVersions does not list %s", kmsg.NameForKey(k))
		}
	}
	// franz-go's guess of the broker's Kafka version needs every API of a
	// release (delegation tokens, quotas...), so it stays low; it was
	// "between v0.9.0 and v0.10.0" without these two.
	t.Logf("franz-go's guess: %s", vs.VersionGuess())
}
