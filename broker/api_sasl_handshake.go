package broker

// SaslHandshake (key 17), versions 0-1.
//
// gregor's listener is PLAINTEXT: a connection is authenticated (as
// ANONYMOUS) the moment it opens. Kafka answers a SaslHandshake on such a
// listener with ILLEGAL_SASL_STATE and lists the API anyway, and clients
// read the API's presence in ApiVersions as a sign of the broker's age
// (franz-go's version guess placed gregor before Kafka 0.10 without it).
// A client configured for SASL gets a clear error instead of a closed
// connection.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.SASLHandshake, 0, 1, (*Broker).handleSASLHandshake)
}

func (b *Broker) handleSASLHandshake(_ wire.RequestHeader, _ *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.ErrorCode = kerr.IllegalSaslState.Code
	resp.SupportedMechanisms = []string{} // none: the listener is PLAINTEXT
	b.metrics.countError("SaslHandshake", resp.ErrorCode)
	return resp
}
