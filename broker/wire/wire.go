// Package wire owns the framing of the Kafka protocol on a connection:
// reading size-prefixed frames with the size checked before any
// allocation, parsing request headers (v0, v1 and the flexible v2) and
// decoding request bodies with kmsg, and encoding responses with their
// header. It knows nothing of connections, dispatch or what requests mean.
//
// Request frame:
//
//	size           int32    bytes that follow; checked against a maximum
//	api_key        int16
//	api_version    int16
//	correlation_id int32
//	client_id      nullable string (int16 length, -1 null); absent in header
//	               v0 (ControlledShutdown v0 only)
//	tagged fields  uvarint count, then (tag, size, bytes); header v2 only,
//	               that is when the request version is flexible
//	body           kmsg encoding of the request at api_version
//
// Response frame: size int32, correlation_id int32, a tagged-field byte
// (response header v1) when the response version is flexible, except for
// ApiVersions, whose response header is always v0 so that a client can
// read it before knowing which versions the broker speaks; then the body.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors returned by this package; check them with errors.Is.
var (
	// ErrNegativeFrame means a frame's size prefix is negative. The
	// connection cannot be resynchronized and should be closed.
	ErrNegativeFrame = errors.New("negative frame size")
	// ErrFrameTooLarge means a frame's size prefix exceeds the maximum
	// (socket.request.max.bytes). The connection should be closed.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrUnknownAPIKey means the request's API key is not one kmsg knows.
	// The header is still returned so the broker can answer or log it.
	ErrUnknownAPIKey = errors.New("unknown api key")
	// ErrUnsupportedVersion means the request's version is outside
	// [0, kmsg's max version]. The header is still returned: ApiVersions
	// must be answered with UNSUPPORTED_VERSION at response version 0.
	ErrUnsupportedVersion = errors.New("unsupported api version")
	// ErrMalformed means the header or body could not be decoded
	// (truncated, or garbage). When at least 8 bytes were present the
	// header's key, version and correlation id are returned with it.
	ErrMalformed = errors.New("malformed request")
)

// largeFrame is the size above which ReadFrame grows its buffer as bytes
// arrive instead of allocating the whole claimed size up front, so that a
// peer claiming a large frame and sending little costs little memory.
const largeFrame = 1 << 20

// ReadFrame reads one size-prefixed frame from r and returns its body
// (without the size prefix). The size is checked before anything is
// allocated: negative sizes are ErrNegativeFrame, sizes above maxSize are
// ErrFrameTooLarge. The body is read into buf when it fits (buf's capacity
// is reused, so the result aliases buf); otherwise a new slice is
// allocated: exactly size bytes for frames up to 1 MiB, and growing as the
// bytes arrive (at most doubling, never beyond size) for larger frames.
//
// A clean end of stream before a frame starts is io.EOF; an end of stream
// inside a frame (in the size prefix or the body) is io.ErrUnexpectedEOF,
// wrapped. Other read errors are wrapped.
func ReadFrame(r io.Reader, buf []byte, maxSize int32) ([]byte, error) {
	return ReadFrameScanning(r, buf, maxSize, nil)
}

// scanChunk is the most ReadFrameScanning reads before scanning: small
// enough that what it scans is still in the CPU's cache.
const scanChunk = 256 << 10

// ReadFrameScanning is ReadFrame, with s (unless nil) reset and advanced
// over the frame as its bytes arrive, when the frame is read into buf (or
// a buffer of its size): then every slice s hands over is a slice of the
// frame returned. A frame larger than both buf and 1 MiB is read as
// ReadFrame does, growing its buffer as bytes arrive, without s.
func ReadFrameScanning(r io.Reader, buf []byte, maxSize int32, s *ProduceScanner) ([]byte, error) {
	return ReadFrameBudgeted(r, buf, maxSize, s, nil)
}

// ReadFrameBudgeted is ReadFrameScanning calling reserve (unless nil) with
// the frame's size once it is known and before its body is read; an error
// from reserve is returned, with nothing more read.
func ReadFrameBudgeted(r io.Reader, buf []byte, maxSize int32, s *ProduceScanner, reserve func(size int) error) ([]byte, error) {
	var sizeBuf []byte
	if cap(buf) >= 4 {
		sizeBuf = buf[:4] // avoids allocating the prefix when buf is reused
	} else {
		sizeBuf = make([]byte, 4)
	}
	if _, err := io.ReadFull(r, sizeBuf); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read frame size: %w", err)
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf))
	switch {
	case size < 0:
		return nil, fmt.Errorf("frame size %d: %w", size, ErrNegativeFrame)
	case size > maxSize:
		return nil, fmt.Errorf("frame size %d over maximum %d: %w", size, maxSize, ErrFrameTooLarge)
	}
	n := int(size)
	if reserve != nil {
		if err := reserve(n); err != nil {
			return nil, err
		}
	}
	if n <= cap(buf) || n <= largeFrame {
		if n > cap(buf) {
			buf = make([]byte, n)
		}
		body := buf[:n]
		if s == nil {
			if _, err := io.ReadFull(r, body); err != nil {
				return nil, bodyErr(err, n)
			}
			return body, nil
		}
		s.Reset()
		for have := 0; have < n; {
			m, err := r.Read(body[have:min(n, have+scanChunk)])
			if m > 0 {
				have += m
				s.Advance(body[:have])
			}
			if err != nil && have < n {
				return nil, bodyErr(err, n)
			}
		}
		return body, nil
	}
	// A large frame: grow with the bytes actually received. It is not
	// scanned: growing moves the bytes read so far, and the scanner hands
	// over slices of the frame that must stay where they are.
	body := make([]byte, 0, largeFrame)
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(2*cap(body), n))
			copy(grown, body)
			body = grown
		}
		m, err := io.ReadFull(r, body[len(body):min(cap(body), n)])
		body = body[:len(body)+m]
		if err != nil {
			return nil, bodyErr(err, n)
		}
	}
	return body, nil
}

func bodyErr(err error, size int) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read frame body of %d bytes: %w", size, err)
}

// RequestHeader is a decoded request header.
type RequestHeader struct {
	APIKey        int16
	APIVersion    int16
	CorrelationID int32
	ClientID      *string // nil when null or absent
}

// headerReader is a minimal cursor used to decode the header fields and
// skip the header's tagged fields.
type headerReader struct {
	src []byte
	bad bool
}

func (r *headerReader) fail() { r.bad, r.src = true, nil }

func (r *headerReader) Uvarint() uint32 {
	v, n := binary.Uvarint(r.src)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail()
		return 0
	}
	r.src = r.src[n:]
	return uint32(v)
}

func (r *headerReader) Span(n int) []byte {
	if n < 0 || n > len(r.src) {
		r.fail()
		return nil
	}
	s := r.src[:n:n]
	r.src = r.src[n:]
	return s
}

// skipTags skips a tagged-field section. Unlike kmsg.SkipTags it stops at
// the first bad read: kmsg's loop keeps counting down a claimed tag count
// (up to 2^32) after the input ran out, which costs seconds of CPU for a
// few hostile bytes.
func (r *headerReader) skipTags() {
	n := r.Uvarint()
	if uint64(n)*2 > uint64(len(r.src)) { // each tag takes at least two bytes
		r.fail()
		return
	}
	for ; n > 0 && !r.bad; n-- {
		r.Uvarint() // tag
		r.Span(int(r.Uvarint()))
	}
}

func (r *headerReader) nullableString() *string {
	if len(r.src) < 2 {
		r.fail()
		return nil
	}
	n := int16(binary.BigEndian.Uint16(r.src))
	r.src = r.src[2:]
	if n < 0 {
		return nil
	}
	s := string(r.Span(int(n)))
	if r.bad {
		return nil
	}
	return &s
}

// hasClientID reports whether the request header for key and version
// carries a client id: all do except ControlledShutdown v0 (header v0).
func hasClientID(key, version int16) bool { return !(key == 7 && version == 0) }

// ParseRequest decodes a request frame (as returned by ReadFrame): the
// header with ParseHeader, then the body with DecodeBody. See those for the
// errors and for what the result aliases. Whenever the first 8 bytes were
// present, the returned header has the key, version and correlation id, so
// that the caller can answer even a request it cannot decode.
func ParseRequest(frame []byte) (RequestHeader, kmsg.Request, error) {
	h, body, err := ParseHeader(frame)
	if err != nil {
		return h, nil, err
	}
	req, err := DecodeBody(h, body)
	return h, req, err
}

// ParseHeader decodes the request header at the start of frame and returns
// it with the body that follows. Splitting this from DecodeBody lets the
// broker refuse API versions it does not implement before decoding (and
// allocating for) anything.
//
// Errors: ErrMalformed for fewer than 8 bytes (zero header), a truncated
// client id or bad header tagged fields; ErrUnknownAPIKey for a key kmsg
// does not know; ErrUnsupportedVersion for a version outside
// [0, kmsg's max] (the header's tagged fields, if any, cannot then be
// located, so body is nil). With any error but the first, the header's
// key, version and correlation id are set.
func ParseHeader(frame []byte) (h RequestHeader, body []byte, err error) {
	if len(frame) < 8 {
		return h, nil, fmt.Errorf("request of %d bytes, need 8 for a header: %w", len(frame), ErrMalformed)
	}
	h.APIKey = int16(binary.BigEndian.Uint16(frame[0:]))
	h.APIVersion = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	r := headerReader{src: frame[8:]}
	if hasClientID(h.APIKey, h.APIVersion) {
		h.ClientID = r.nullableString()
		if r.bad {
			return h, nil, fmt.Errorf("api key %d v%d: truncated client id: %w", h.APIKey, h.APIVersion, ErrMalformed)
		}
	}
	req := kmsg.RequestForKey(h.APIKey)
	if req == nil {
		return h, nil, fmt.Errorf("api key %d: %w", h.APIKey, ErrUnknownAPIKey)
	}
	if h.APIVersion < 0 || h.APIVersion > req.MaxVersion() {
		return h, nil, fmt.Errorf("api key %d version %d (max %d): %w", h.APIKey, h.APIVersion, req.MaxVersion(), ErrUnsupportedVersion)
	}
	req.SetVersion(h.APIVersion)
	if req.IsFlexible() {
		r.skipTags()
		if r.bad {
			return h, nil, fmt.Errorf("api key %d v%d: bad header tagged fields: %w", h.APIKey, h.APIVersion, ErrMalformed)
		}
	}
	return h, r.src, nil
}

// DecodeBody decodes a request body (from ParseHeader) with kmsg at h's key
// and version. The request's []byte fields (e.g. a produce request's
// records) alias body, so the frame must not be reused while the request is
// in use; strings are copied. A body kmsg cannot decode (truncated or
// garbage) is ErrMalformed wrapping kmsg's error; a key or version kmsg does
// not know is ErrUnknownAPIKey or ErrUnsupportedVersion.
//
// Memory: kmsg bounds every array count by the bytes left, but allocates
// the array (count times the element struct) before decoding the elements,
// so a hostile body can make decoding allocate up to about 300 bytes per
// body byte for some APIs and about 120 for Produce and Fetch
// (TestDecodeAmplification measures this for every key and version).
// Callers bound it with the frame size limit and by decoding only the API
// versions they implement; a broker that wants a hard memory bound should
// also limit the bytes of requests being decoded at once.
//
// CPU: kmsg v1.15.0 reads a tagged-field count and then loops that many
// times even after the input has run out (internalReadTags and the
// generated known-tag loops do not stop when the reader goes bad), so a
// truncated flexible body claiming 2^32-1 tags costs about a minute of CPU
// (2^27 takes about 4 s) before failing. This cannot be detected without
// the schema; it needs a fix in kmsg (stop the loops on !b.Ok()). The
// header's tagged fields are skipped by this package and are not affected.
func DecodeBody(h RequestHeader, body []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.APIKey)
	if req == nil {
		return nil, fmt.Errorf("api key %d: %w", h.APIKey, ErrUnknownAPIKey)
	}
	if h.APIVersion < 0 || h.APIVersion > req.MaxVersion() {
		return nil, fmt.Errorf("api key %d version %d (max %d): %w", h.APIKey, h.APIVersion, req.MaxVersion(), ErrUnsupportedVersion)
	}
	req.SetVersion(h.APIVersion)
	if err := readBody(req, body); err != nil {
		if errors.Is(err, errShortBody) {
			// kmsg's text speaks of a "response"; this is a request.
			// kmsg fails the same way on a length that cannot be, such
			// as -1 (null) for a string that may not be null.
			err = fmt.Errorf("the %d-byte body ends before the request does, or holds a length that cannot be (a null where the field may not be null)", len(body))
		}
		return nil, fmt.Errorf("api key %d v%d: decode body: %w: %w", h.APIKey, h.APIVersion, ErrMalformed, err)
	}
	return req, nil
}

// errShortBody is kmsg's error for input that ends too soon (an internal
// package's variable, taken from a decode of nothing).
var errShortBody = kmsg.NewPtrFindCoordinatorRequest().ReadFrom(nil)

// readBody decodes the body with kmsg. kmsg's generated decoders are
// written not to panic on short input (fuzzing agrees); the recover is a
// last line of defence so that a decoder bug costs one request, not the
// broker.
func readBody(req kmsg.Request, body []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kmsg decoder panicked: %v", p)
		}
	}()
	return req.ReadFrom(body)
}

// AppendResponse appends the response frame for a request with header h
// to dst: the size prefix, the correlation id, the response header's
// tagged-field byte when the response is flexible (never for ApiVersions,
// key 18, whose response header is always v0), and the body. It sets
// resp's version to h.APIVersion first; for ApiVersions answered with
// UNSUPPORTED_VERSION, set h.APIVersion to 0 before calling.
func AppendResponse(dst []byte, h RequestHeader, resp kmsg.Response) []byte {
	resp.SetVersion(h.APIVersion)
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// AppendRequest appends a request frame for req (at its current version)
// to dst, with the given correlation and client id, as a client sends it.
// The broker uses it for inter-broker requests; tests use it to make frames.
func AppendRequest(dst []byte, req kmsg.Request, correlationID int32, clientID *string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if hasClientID(req.Key(), req.GetVersion()) {
		if clientID == nil {
			dst = binary.BigEndian.AppendUint16(dst, 0xffff)
		} else {
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(*clientID)))
			dst = append(dst, *clientID...)
		}
	}
	if req.IsFlexible() {
		dst = append(dst, 0)
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
