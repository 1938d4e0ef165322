package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		input   []byte
		max     int32
		want    []byte
		wantErr error
	}{
		{"clean eof", nil, 100, nil, io.EOF},
		{"partial size", []byte{0, 0}, 100, nil, io.ErrUnexpectedEOF},
		{"negative", []byte{0xff, 0xff, 0xff, 0xfe, 1, 2}, 100, nil, ErrNegativeFrame},
		{"too large", binary.BigEndian.AppendUint32(nil, 101), 100, nil, ErrFrameTooLarge},
		{"max int32", binary.BigEndian.AppendUint32(nil, math.MaxInt32), 100 << 20, nil, ErrFrameTooLarge},
		{"no body", binary.BigEndian.AppendUint32(nil, 10), 100, nil, io.ErrUnexpectedEOF},
		{"short body", append(binary.BigEndian.AppendUint32(nil, 10), 1, 2, 3), 100, nil, io.ErrUnexpectedEOF},
		{"empty frame", frame(nil), 100, []byte{}, nil},
		{"exact max", frame(bytes.Repeat([]byte{7}, 100)), 100, bytes.Repeat([]byte{7}, 100), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, buf := range [][]byte{nil, make([]byte, 0, 3), make([]byte, 0, 512)} {
				got, err := ReadFrame(iotest.HalfReader(bytes.NewReader(tt.input)), buf, tt.max)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("cap %d: err %v, want %v", cap(buf), err, tt.wantErr)
					}
					if tt.wantErr == io.EOF && err != io.EOF {
						t.Fatalf("clean EOF must be io.EOF itself, got %v", err)
					}
					continue
				}
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("cap %d: got %q, %v", cap(buf), got, err)
				}
			}
		})
	}
}

func TestReadFrameStream(t *testing.T) {
	t.Parallel()
	big := make([]byte, 3<<20+17) // over largeFrame: read in growing steps
	for i := range big {
		big[i] = byte(i * 7)
	}
	var stream []byte
	bodies := [][]byte{[]byte("one"), big, {}, []byte("last")}
	for _, b := range bodies {
		stream = append(stream, frame(b)...)
	}
	r := iotest.HalfReader(bytes.NewReader(stream))
	buf := make([]byte, 0, 64)
	for i, want := range bodies {
		got, err := ReadFrame(r, buf, 4<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
		if len(want) > 0 && len(want) <= cap(buf) && &got[0] != &buf[:1][0] {
			t.Fatalf("frame %d did not reuse buf", i)
		}
	}
	if _, err := ReadFrame(r, buf, 4<<20); err != io.EOF {
		t.Fatalf("after last frame: %v", err)
	}
	// A large frame cut short is ErrUnexpectedEOF.
	if _, err := ReadFrame(bytes.NewReader(frame(big)[:2<<20]), nil, 4<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut large frame: %v", err)
	}
}

// TestReadFrameBoundedAllocation: a peer that claims a huge frame and
// sends a few bytes costs about largeFrame, not the claimed size.
func TestReadFrameBoundedAllocation(t *testing.T) {
	input := append(binary.BigEndian.AppendUint32(nil, 90<<20), make([]byte, 100)...)
	allocated := bytesAllocated(t, func() {
		if _, err := ReadFrame(bytes.NewReader(input), nil, 100<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
	})
	if allocated > 2*largeFrame {
		t.Fatalf("allocated %d bytes for a frame cut after 100 bytes", allocated)
	}
	// An oversize claim allocates nothing for the body.
	input = binary.BigEndian.AppendUint32(nil, math.MaxInt32)
	allocated = bytesAllocated(t, func() {
		if _, err := ReadFrame(bytes.NewReader(input), make([]byte, 0, 4), 100<<20); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	})
	if allocated > 1024 {
		t.Fatalf("allocated %d bytes rejecting an oversize frame", allocated)
	}
}

// bytesAllocated reports the bytes allocated by f (which runs alone: the
// caller must not be parallel).
func bytesAllocated(t *testing.T, f func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allRequests returns a default request of every key kmsg knows.
func allRequests() []kmsg.Request {
	var reqs []kmsg.Request
	for key := int16(0); key < 200; key++ {
		if r := kmsg.RequestForKey(key); r != nil {
			reqs = append(reqs, r)
		}
	}
	return reqs
}

// populated returns a few requests with arrays, strings and bytes filled
// in, at every version.
func populated() []kmsg.Request {
	prod := kmsg.NewPtrProduceRequest()
	prod.Acks = -1
	prod.TimeoutMillis = 1000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "orders"
	pt.TopicID = [16]byte{1, 2, 3}
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 3
	pp.Records = bytes.Repeat([]byte("r"), 80)
	pt.Partitions = append(pt.Partitions, pp, pp)
	prod.Topics = append(prod.Topics, pt)

	meta := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"a", "bb", "ccc"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(name)
		meta.Topics = append(meta.Topics, mt)
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis = 500
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "orders"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition = 1
	fp.FetchOffset = 12345
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	av := kmsg.NewPtrApiVersionsRequest()
	av.ClientSoftwareName = "gregor-test"
	av.ClientSoftwareVersion = "1.0"

	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic = "new"
	ct.NumPartitions = 8
	cc := kmsg.NewCreateTopicsRequestTopicConfig()
	cc.Name = "retention.ms"
	cc.Value = kmsg.StringPtr("1000")
	ct.Configs = append(ct.Configs, cc)
	create.Topics = append(create.Topics, ct)

	return []kmsg.Request{prod, meta, fetch, av, create}
}

// TestParseRequestAllKeys encodes every request kmsg knows at every version
// and checks ParseRequest returns the header and an identical request.
func TestParseRequestAllKeys(t *testing.T) {
	t.Parallel()
	clientID := "client-1"
	reqs := append(allRequests(), populated()...)
	n := 0
	for _, req := range reqs {
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			corr := int32(v)*1000 + int32(req.Key())
			f := AppendRequest(nil, req, corr, &clientID)
			body, err := ReadFrame(bytes.NewReader(f), nil, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			h, got, err := ParseRequest(body)
			if err != nil {
				t.Fatalf("key %d v%d: %v", req.Key(), v, err)
			}
			if h.APIKey != req.Key() || h.APIVersion != v || h.CorrelationID != corr {
				t.Fatalf("key %d v%d: header %+v", req.Key(), v, h)
			}
			if hasClientID(h.APIKey, v) && (h.ClientID == nil || *h.ClientID != clientID) {
				t.Fatalf("key %d v%d: client id %v", req.Key(), v, h.ClientID)
			}
			if got.Key() != req.Key() || got.GetVersion() != v {
				t.Fatalf("key %d v%d: parsed key %d v%d", req.Key(), v, got.Key(), got.GetVersion())
			}
			if !bytes.Equal(got.AppendTo(nil), req.AppendTo(nil)) {
				t.Fatalf("key %d v%d: re-encoding differs", req.Key(), v)
			}
			n++
		}
	}
	t.Logf("%d key/version combinations", n)
}

func TestParseRequestErrors(t *testing.T) {
	t.Parallel()
	id := "c"
	mk := func(key, version int16, corr int32, rest ...byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, uint32(corr))
		return append(b, rest...)
	}
	clientC := []byte{0, 1, 'c'}

	// Short frames: no header.
	for n := range 8 {
		h, req, err := ParseRequest(make([]byte, n))
		if !errors.Is(err, ErrMalformed) || req != nil || h != (RequestHeader{}) {
			t.Fatalf("%d bytes: %+v %v %v", n, h, req, err)
		}
	}
	// Unknown key, with header returned.
	h, req, err := ParseRequest(mk(31000, 0, 77, clientC...))
	if !errors.Is(err, ErrUnknownAPIKey) || req != nil || h.CorrelationID != 77 || h.APIKey != 31000 || h.ClientID == nil || *h.ClientID != "c" {
		t.Fatalf("unknown key: %+v %v", h, err)
	}
	h, _, err = ParseRequest(mk(-1, 0, 78))
	if !errors.Is(err, ErrMalformed) || h.CorrelationID != 78 {
		t.Fatalf("negative key without client id: %+v %v", h, err)
	}
	// ApiVersions at a version from the future: header returned so the
	// broker can answer with UNSUPPORTED_VERSION. The body is not parsed.
	h, req, err = ParseRequest(mk(18, 99, 79, append(clientC, 0xde, 0xad)...))
	if !errors.Is(err, ErrUnsupportedVersion) || req != nil || h.APIKey != 18 || h.APIVersion != 99 || h.CorrelationID != 79 {
		t.Fatalf("apiversions v99: %+v %v", h, err)
	}
	h, _, err = ParseRequest(mk(3, -1, 80, clientC...))
	if !errors.Is(err, ErrUnsupportedVersion) || h.CorrelationID != 80 {
		t.Fatalf("metadata v-1: %+v %v", h, err)
	}
	// Truncated client id.
	h, _, err = ParseRequest(mk(3, 1, 81, 0, 5, 'a'))
	if !errors.Is(err, ErrMalformed) || h.CorrelationID != 81 {
		t.Fatalf("truncated client id: %+v %v", h, err)
	}
	// Bad header tagged fields on a flexible request (Metadata v9+).
	h, _, err = ParseRequest(mk(3, 12, 82, append(clientC, 1, 0, 9, 'x')...))
	if !errors.Is(err, ErrMalformed) || h.CorrelationID != 82 {
		t.Fatalf("bad header tags: %+v %v", h, err)
	}
	// A header claiming 2^28 tagged fields and ending fails at once (kmsg's
	// SkipTags would count down all of them).
	h, _, err = ParseRequest(mk(3, 12, 86, append(clientC, 0xff, 0xff, 0xff, 0xff, 0x00)...))
	if !errors.Is(err, ErrMalformed) || h.CorrelationID != 86 {
		t.Fatalf("huge header tag count: %+v %v", h, err)
	}
	// Header tagged fields present and well formed are skipped.
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	body := append(append(clientC, 2, 0, 1, 'x', 5, 2, 'y', 'z'), meta.AppendTo(nil)...)
	if h, req, err = ParseRequest(mk(3, 12, 83, body...)); err != nil || req.Key() != 3 || h.CorrelationID != 83 {
		t.Fatalf("header tags: %+v %v", h, err)
	}
	// A body that ends too soon says so, of a request: kmsg's own text
	// speaks of a response (optiopay/kafka's FindCoordinator v1 without
	// its key type, as a probe saw it).
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "group"
	fc.SetVersion(0)
	short := mk(10, 1, 87, append(clientC, fc.AppendTo(nil)...)...)
	if _, _, err = ParseRequest(short); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "body ends before the request does") || strings.Contains(err.Error(), "response") {
		t.Fatalf("short FindCoordinator v1: %v", err)
	}
	// kmsg fails a null in a string that may not be null the same way;
	// the message names that too (@platformatic/kafka's OffsetCommit v8
	// outside a group sent a null member id).
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.SetVersion(8)
	oc.Group, oc.Generation, oc.MemberID = "g", -1, "m"
	ocBody := oc.AppendTo(nil)
	if _, req, err := ParseRequest(mk(8, 8, 88, append(clientC, append([]byte{0}, ocBody...)...)...)); err != nil || req.(*kmsg.OffsetCommitRequest).MemberID != "m" {
		t.Fatalf("OffsetCommit v8: %v", err)
	}
	at := bytes.Index(ocBody, []byte{2, 'm'})
	nullMember := append(append(bytes.Clone(ocBody[:at]), 0), ocBody[at+2:]...)
	if _, _, err = ParseRequest(mk(8, 8, 88, append(clientC, append([]byte{0}, nullMember...)...)...)); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "a null where the field may not be null") {
		t.Fatalf("OffsetCommit v8 with a null member id: %v", err)
	}
	// ControlledShutdown v0 has no client id in its header.
	cs := kmsg.NewPtrControlledShutdownRequest()
	cs.BrokerID = 5
	cs.SetVersion(0)
	f := AppendRequest(nil, cs, 84, &id)
	h, req, err = ParseRequest(f[4:])
	if err != nil || h.ClientID != nil || req.(*kmsg.ControlledShutdownRequest).BrokerID != 5 {
		t.Fatalf("controlled shutdown v0: %+v %v", h, err)
	}
	// Every strict prefix of a populated request is malformed, never a
	// panic, and keeps the header once 8 bytes are there.
	for _, req := range populated() {
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			full := AppendRequest(nil, req, 85, &id)[4:]
			for cut := 8; cut < len(full); cut++ {
				h, got, err := ParseRequest(full[:cut])
				if !errors.Is(err, ErrMalformed) || got != nil || h.CorrelationID != 85 {
					t.Fatalf("key %d v%d cut at %d of %d: %+v %v", req.Key(), v, cut, len(full), h, err)
				}
			}
		}
	}
}

func TestAppendResponse(t *testing.T) {
	t.Parallel()
	for _, resp := range []kmsg.Response{kmsg.NewPtrApiVersionsResponse(), kmsg.NewPtrMetadataResponse(), kmsg.NewPtrProduceResponse()} {
		for v := int16(0); v <= resp.MaxVersion(); v++ {
			h := RequestHeader{APIKey: resp.Key(), APIVersion: v, CorrelationID: 4242}
			out := AppendResponse([]byte("xx"), h, resp)
			if string(out[:2]) != "xx" {
				t.Fatal("did not append")
			}
			f := out[2:]
			if int(binary.BigEndian.Uint32(f)) != len(f)-4 || int32(binary.BigEndian.Uint32(f[4:])) != 4242 {
				t.Fatalf("key %d v%d: bad size or correlation id", resp.Key(), v)
			}
			body := f[8:]
			if resp.IsFlexible() && resp.Key() != 18 {
				if body[0] != 0 {
					t.Fatalf("key %d v%d: missing header tag byte", resp.Key(), v)
				}
				body = body[1:]
			}
			back := kmsg.ResponseForKey(resp.Key())
			back.SetVersion(v)
			if err := back.ReadFrom(body); err != nil {
				t.Fatalf("key %d v%d: %v", resp.Key(), v, err)
			}
			if resp.GetVersion() != v {
				t.Fatalf("key %d: version not set", resp.Key())
			}
		}
	}
}

// TestParseRequestBoundedAllocation: a small frame claiming a 2^31 element
// array must not allocate for the claim.
func TestParseRequestBoundedAllocation(t *testing.T) {
	// Produce v3: transactional id (null), acks, timeout, then the topics
	// array count.
	body := []byte{0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff}  // header, null client id
	body = append(body, 0xff, 0xff, 0, 1, 0, 0, 0, 100) // null transactional id, acks, timeout
	body = append(body, 0x7f, 0xff, 0xff, 0xff)
	body = append(body, make([]byte, 80)...)
	allocated := bytesAllocated(t, func() {
		if _, _, err := ParseRequest(body); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	if allocated > 64<<10 {
		t.Fatalf("allocated %d bytes for a %d-byte frame", allocated, len(body))
	}
	// Flexible: compact array count (uvarint) of 2^31-1 in Metadata v12.
	body = []byte{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0}
	body = append(body, 0xff, 0xff, 0xff, 0xff, 0x07) // 2^31-1
	body = append(body, make([]byte, 80)...)
	allocated = bytesAllocated(t, func() {
		if _, _, err := ParseRequest(body); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	if allocated > 64<<10 {
		t.Fatalf("allocated %d bytes for a %d-byte frame", allocated, len(body))
	}
}

func TestParseHeaderThenDecode(t *testing.T) {
	t.Parallel()
	prod := populated()[0]
	prod.SetVersion(7)
	f := AppendRequest(nil, prod, 9, nil)[4:]
	h, body, err := ParseHeader(f)
	if err != nil || h.APIKey != 0 || h.APIVersion != 7 || h.ClientID != nil {
		t.Fatalf("%+v %v", h, err)
	}
	req, err := DecodeBody(h, body)
	if err != nil {
		t.Fatal(err)
	}
	// Records alias the frame: no copy on the produce path.
	parts := req.(*kmsg.ProduceRequest).Topics[0].Partitions
	records := parts[len(parts)-1].Records
	if len(records) != 80 || &records[0] != &f[len(f)-len(records)] {
		t.Fatalf("records do not alias the frame")
	}
	if _, err := DecodeBody(RequestHeader{APIKey: 0, APIVersion: 99}, body); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatal(err)
	}
	if _, err := DecodeBody(RequestHeader{APIKey: 30000}, body); !errors.Is(err, ErrUnknownAPIKey) {
		t.Fatal(err)
	}
}
