package broker

import (
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/wire"
)

// handler works on one decoded request. It must eventually complete p with
// c.finish, c.finishNone or c.finishOut, from its own goroutine or a
// goroutine it starts and registers in c.handlers. Handlers run on the
// connection's reader goroutine, in request order, so everything a handler
// does before it returns (such as an append) is ordered with the
// connection's other requests.
type handler func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending)

type apiSpec struct {
	key      kmsg.Key
	min, max int16
	handle   handler
	// frameReusable is set for APIs whose handlers keep no reference to
	// the request (kmsg aliases []byte fields into the frame) once they
	// return, so the connection may read the next request into the same
	// buffer. Off by default: a handler that stores request bytes (group
	// metadata, assignments) must never see them overwritten.
	frameReusable bool
}

// apis is filled by the init functions of the api_*.go files.
var apis = map[int16]apiSpec{}

func register(key kmsg.Key, min, max int16, h handler) {
	apis[int16(key)] = apiSpec{key: key, min: min, max: max, handle: h}
}

// markFrameReusable declares that key's handler keeps no reference into the
// request frame after it returns (see apiSpec.frameReusable).
func markFrameReusable(key kmsg.Key) {
	s := apis[int16(key)]
	s.frameReusable = true
	apis[int16(key)] = s
}

// registerSimple registers a handler that answers synchronously.
func registerSimple[Req kmsg.Request](key kmsg.Key, min, max int16, fn func(b *Broker, hdr wire.RequestHeader, req Req) kmsg.Response) {
	register(key, min, max, func(b *Broker, c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) {
		start := time.Now()
		resp := fn(b, hdr, req.(Req))
		c.finish(p, hdr, resp)
		b.metrics.observe(key, start)
	})
}

// supportedAPIs lists what ApiVersions advertises, sorted by key.
func supportedAPIs() []apiSpec {
	out := make([]apiSpec, 0, len(apis))
	for _, s := range apis {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// dispatch starts handling a request; false closes the connection.
func (b *Broker) dispatch(c *conn, hdr wire.RequestHeader, req kmsg.Request, p *pending) (keep bool) {
	spec, ok := apis[hdr.APIKey]
	name := kmsg.NameForKey(hdr.APIKey)
	defer func() {
		if r := recover(); r != nil {
			b.handlerPanicked(c, name, hdr.APIVersion, r, p)
			keep = false
		}
	}()
	if !ok || hdr.APIVersion < spec.min || hdr.APIVersion > spec.max {
		if hdr.APIKey == int16(kmsg.ApiVersions) {
			hdr.APIVersion = 0
			c.finish(p, hdr, b.apiVersionsUnsupported())
			return true
		}
		b.metrics.requestErrors.WithLabelValues(name).Inc()
		if ok, held := b.refusals.allow(refusalKey(c.remote, hdr.APIKey, hdr.APIVersion), time.Now()); ok {
			b.log.Info("unsupported request; closing connection", zap.String("remote", c.remote),
				zap.String("api", name), zap.Int16("api_key", hdr.APIKey), zap.Int16("api_version", hdr.APIVersion),
				zap.Int("same_since_last_logged", held))
		}
		c.finishNone(p)
		return false
	}
	b.metrics.api(hdr.APIKey).requests.Inc()
	spec.handle(b, c, hdr, req, p)
	return true
}

// handlerPanicked is what a panic in a request's handling (a bug) costs:
// that request and its connection, not the broker. It is logged with the
// stack and counted (gregor_handler_panics_total); p is completed without
// a response if the handler had not, and the connection closes once what
// is queued before it is written. The client sees a closed connection and
// retries, as after a network failure.
func (b *Broker) handlerPanicked(c *conn, api string, version int16, r any, p *pending) {
	b.metrics.handlerPanics.Inc()
	b.log.Error("request handler panicked; closing the connection", zap.String("remote", c.remote),
		zap.String("api", api), zap.Int16("api_version", version), zap.Any("panic", r), zap.StackSkip("stack", 1))
	if !isDone(p) {
		p.out = outbound{closeAfter: true}
		c.finishNone(p)
	}
}

// onceSet tells a request's first mention of a key from its repeats, so
// that a repeated entry is answered once: a request naming one large
// resource (a topic with many partitions, a group with many offsets) many
// times would otherwise make the broker build a response that many times
// larger, gigabytes from a request of a few megabytes. Kafka answers
// Metadata from a set of topics alike.
type onceSet map[string]struct{}

// first reports whether key is new to the set, adding it.
func (s *onceSet) first(key string) bool {
	if *s == nil {
		*s = make(onceSet)
	}
	if _, ok := (*s)[key]; ok {
		return false
	}
	(*s)[key] = struct{}{}
	return true
}
