package broker

// ApiVersions (key 18), versions 0-3.
//
// Advertises exactly the APIs registered by the api_*.go files, with the
// version ranges their handlers implement. (Produce must be advertised
// from v0 in any case: librdkafka before 2.10 decides whether the broker
// supports gzip, snappy and lz4 by whether it speaks Produce v0, and
// otherwise silently sends such batches uncompressed; Kafka 4.0, which
// serves v3 and later only, advertises v0 anyway, KAFKA-18659.) A request
// at a version this
// broker does not support is answered at version 0 with UNSUPPORTED_VERSION
// and the full table, so the client can retry at a version we speak
// (KIP-511).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ApiVersions, 0, 3, func(b *Broker, _ wire.RequestHeader, _ *kmsg.ApiVersionsRequest) kmsg.Response {
		return b.apiVersionsResponse()
	})
	markFrameReusable(kmsg.ApiVersions)
}

func (b *Broker) apiVersionsResponse() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	for _, s := range supportedAPIs() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = int16(s.key)
		k.MinVersion = s.min
		k.MaxVersion = s.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}

func (b *Broker) apiVersionsUnsupported() *kmsg.ApiVersionsResponse {
	resp := b.apiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	return resp
}
