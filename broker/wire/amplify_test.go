package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
)

// TestDecodeAmplification measures, for every request key and version, how
// many bytes decoding a hostile frame allocates per frame byte, where the
// hostile frame is a default request with an array count (int32 and
// uvarint forms) overwritten at each of its first body positions and
// followed by padding. kmsg bounds counts by the bytes left, so the ratio is
// bounded by the size of kmsg's element structs.
func TestDecodeAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const pad = 4096
	var worst float64
	var worstDesc string
	var ms runtime.MemStats
	perKey := map[int16]float64{}
	for _, req := range append(allRequests(), populated()...) {
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			f := AppendRequest(nil, req, 1, nil)[4:]
			hdr := 10
			if req.IsFlexible() {
				hdr++
			}
			if !hasClientID(req.Key(), v) {
				hdr -= 2
			}
			for off := hdr; off < min(len(f), hdr+32); off++ {
				for _, fill := range []byte{0, 1} {
					for _, count := range [][]byte{
						binary.BigEndian.AppendUint32(nil, pad),
						binary.AppendUvarint(nil, pad+1), // compact: count+1
					} {
						hostile := append(append(append([]byte{}, f[:off]...), count...), bytes.Repeat([]byte{fill}, pad)...)
						runtime.ReadMemStats(&ms)
						before := ms.TotalAlloc
						_, _, _ = ParseRequest(hostile)
						runtime.ReadMemStats(&ms)
						ratio := float64(ms.TotalAlloc-before) / float64(len(hostile))
						if ratio > perKey[req.Key()] {
							perKey[req.Key()] = ratio
						}
						if ratio > worst {
							worst = ratio
							worstDesc = fmt.Sprintf("key %d v%d offset %d padding %d", req.Key(), v, off, fill)
						}
					}
				}
			}
		}
	}
	for k := int16(0); k < 200; k++ {
		if r, ok := perKey[k]; ok {
			if testing.Verbose() {
				t.Logf("key %d: %.1f", k, r)
			}
		}
	}
	t.Logf("worst: %.1f bytes allocated per frame byte (%s)", worst, worstDesc)
	// About 300 today (the largest kmsg element struct). Without kmsg's
	// remaining-bytes check on array counts this would be in the millions.
	if worst > 1024 {
		t.Fatalf("decoding allocates %.0f bytes per frame byte (%s)", worst, worstDesc)
	}
}
