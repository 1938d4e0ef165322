package broker

// SaslAuthenticate (key 36), versions 0-2: on gregor's PLAINTEXT listener
// the connection is already authenticated, so, as from Kafka,
// ILLEGAL_SASL_STATE (see api_sasl_handshake.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.SASLAuthenticate, 0, 2, (*Broker).handleSASLAuthenticate)
}

func (b *Broker) handleSASLAuthenticate(_ wire.RequestHeader, _ *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.ErrorCode = kerr.IllegalSaslState.Code
	resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate on a PLAINTEXT listener: the connection is already authenticated (gregor has no SASL)")
	b.metrics.countError("SaslAuthenticate", resp.ErrorCode)
	return resp
}
