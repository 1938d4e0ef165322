package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// seedFrames returns request frames (without size prefix): every key at
// its lowest and highest version, populated requests at every version, and
// truncated and bit-flipped variants of some.
func seedFrames() map[string][]byte {
	id := "seed-client"
	seeds := map[string][]byte{}
	for _, req := range allRequests() {
		for _, v := range []int16{0, req.MaxVersion()} {
			req.SetVersion(v)
			seeds[fmt.Sprintf("key%d-v%d", req.Key(), v)] = AppendRequest(nil, req, 1, &id)[4:]
		}
	}
	for _, req := range populated() {
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			f := AppendRequest(nil, req, 2, &id)[4:]
			name := fmt.Sprintf("populated-key%d-v%d", req.Key(), v)
			seeds[name] = f
			if v == req.MaxVersion() || v == 0 {
				seeds[name+"-truncated"] = f[:len(f)*2/3]
				flipped := bytes.Clone(f)
				flipped[len(f)/2] ^= 0x80
				seeds[name+"-bitflip"] = flipped
			}
		}
	}
	seeds["short"] = []byte{0, 18, 0}
	seeds["apiversions-v99"] = []byte{0, 18, 0, 99, 0, 0, 0, 5, 0xff, 0xff, 1, 2, 3}
	seeds["huge-array"] = append([]byte{0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 100, 0x7f, 0xff, 0xff, 0xff}, make([]byte, 40)...)
	return seeds
}

func writeCorpus(t *testing.T, fuzzName string, entries map[string][]any) {
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, args := range entries {
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&buf, "[]byte(%q)\n", v)
			case int32:
				fmt.Fprintf(&buf, "int32(%d)\n", v)
			default:
				t.Fatalf("corpus value of type %T", a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteFuzzCorpus regenerates the committed seed corpora when run with
// -update-corpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz")
	}
	parse := map[string][]any{}
	for name, f := range seedFrames() {
		parse[name] = []any{f}
	}
	writeCorpus(t, "FuzzParseRequest", parse)

	frames := map[string][]any{}
	var stream []byte
	for _, name := range []string{"key0-v0", "key3-v12", "populated-key0-v9", "key18-v4"} {
		stream = append(stream, frame(seedFrames()[name])...)
	}
	frames["stream"] = []any{stream, int32(1 << 20)}
	frames["stream-small-max"] = []any{stream, int32(40)}
	frames["torn"] = []any{stream[:len(stream)-3], int32(1 << 20)}
	frames["negative"] = []any{[]byte{0x80, 0, 0, 0, 1}, int32(100)}
	frames["partial-size"] = []any{[]byte{0, 0}, int32(100)}
	frames["large-claim"] = []any{append(binary.BigEndian.AppendUint32(nil, 3<<20), 1, 2, 3), int32(4 << 20)}
	writeCorpus(t, "FuzzReadFrame", frames)
}

// FuzzReadFrame reads frames from arbitrary bytes until an error.
func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(frame(s), int32(1<<20))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxSize int32) {
		maxSize = min(maxSize, 8<<20) // the fuzzer's memory, not ReadFrame's bound
		r := bytes.NewReader(data)
		buf := make([]byte, 0, 64)
		consumed := 0
		for {
			body, err := ReadFrame(iotest.HalfReader(r), buf, maxSize)
			if err != nil {
				switch {
				case err == io.EOF:
					if consumed != len(data) {
						t.Fatalf("io.EOF after %d of %d bytes", consumed, len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrNegativeFrame), errors.Is(err, ErrFrameTooLarge):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if int64(len(body)) > int64(maxSize) {
				t.Fatalf("frame of %d bytes over maximum %d", len(body), maxSize)
			}
			consumed += 4 + len(body)
			if !bytes.Equal(body, data[consumed-len(body):consumed]) {
				t.Fatalf("frame body differs from input")
			}
		}
	})
}

// FuzzParseRequest parses arbitrary frames. It decodes without the recover
// of ParseRequest so that a kmsg panic fails the fuzzer. An accepted request
// must survive re-encoding.
func FuzzParseRequest(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := ParseHeader(data)
		if len(data) >= 8 && (h.APIKey != int16(binary.BigEndian.Uint16(data)) || h.CorrelationID != int32(binary.BigEndian.Uint32(data[4:]))) {
			t.Fatalf("header %+v not returned (err %v)", h, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownAPIKey) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// DecodeBody without its recover, so that a kmsg panic fails.
		req := kmsg.RequestForKey(h.APIKey)
		req.SetVersion(h.APIVersion)
		if req.IsFlexible() && hasLongUvarint(body) {
			// kmsg counts down a claimed tag count even after the input
			// ran out (see DecodeBody), which the fuzzer reports as a
			// hang. Skip inputs that could claim more than 2^21 tags.
			return
		}
		if req.ReadFrom(body) != nil {
			return
		}
		// Re-encoding reaches a fixed point.
		id := "x"
		f1 := AppendRequest(nil, req, h.CorrelationID, &id)
		h2, req2, err := ParseRequest(f1[4:])
		if err != nil || h2.APIKey != h.APIKey || h2.APIVersion != h.APIVersion {
			t.Fatalf("re-encoded request does not parse: %+v %v", h2, err)
		}
		if f2 := AppendRequest(nil, req2, h.CorrelationID, &id); !bytes.Equal(f1, f2) {
			t.Fatalf("key %d v%d: re-encoding is not stable", h.APIKey, h.APIVersion)
		}
	})
}

// hasLongUvarint reports whether b has three consecutive bytes with the
// continuation bit set: the start of a uvarint of 2^21 or more.
func hasLongUvarint(b []byte) bool {
	run := 0
	for _, c := range b {
		if c < 0x80 {
			run = 0
		} else if run++; run == 3 {
			return true
		}
	}
	return false
}

// TestTaggedFieldCountBounded: a flexible request whose last tagged-field
// section claims 2^32-1 fields fails to decode at once. kmsg v1.15.0
// looped that many times (157 s for a 7-byte ApiVersions body); the copy
// in third_party/kmsg stops once the input has run out.
func TestTaggedFieldCountBounded(t *testing.T) {
	start := time.Now()
	n := 0
	for _, req := range allRequests() {
		req.SetVersion(req.MaxVersion())
		if !req.IsFlexible() {
			continue
		}
		f := AppendRequest(nil, req, 1, nil)[4:]
		hdr, body, err := ParseHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		if body[len(body)-1] != 0 {
			t.Fatalf("key %d: the body does not end with an empty tag section", req.Key())
		}
		hostile := append(bytes.Clone(body[:len(body)-1]), 0xff, 0xff, 0xff, 0xff, 0x0f)
		if _, err := DecodeBody(hdr, hostile); err == nil {
			t.Errorf("key %d v%d: decoded a body claiming 2^32-1 tagged fields", req.Key(), req.GetVersion())
		}
		n++
	}
	if n < 20 {
		t.Fatalf("only %d flexible requests tried", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d hostile bodies took %v to refuse", n, d)
	}
}
