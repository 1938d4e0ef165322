package record

import (
	"encoding/binary"
	"testing"
)

// TestLZ4LegacyHeaderChecksum: a format 0 message set compressed with lz4
// the way Kafka before 0.10 framed it (the header checksum hashing the
// frame's magic number too, KAFKA-3160) converts, as in Kafka, which reads
// format 0 lz4 without checking that byte; a correctly framed one does
// too, and one whose checksum is simply wrong in format 1 does not.
func TestLZ4LegacyHeaderChecksum(t *testing.T) {
	ms := []testMessage{{magic: 0, key: []byte("k"), value: []byte("old lz4")}, {magic: 0, value: []byte("framing")}}
	good := wrapped(t, CodecLZ4, 0, 0, ms...)
	// xxh32 agrees with the lz4 library: fixing a good frame changes
	// nothing.
	fixed := append([]byte(nil), good.value...)
	fixLZ4HeaderChecksum(fixed)
	if string(fixed) != string(good.value) {
		t.Fatalf("fixLZ4HeaderChecksum changed a correctly framed header: % x -> % x", good.value[:8], fixed[:8])
	}
	broken := func(m testMessage) testMessage {
		v := append([]byte(nil), m.value...)
		end := 6
		if v[4]&0x08 != 0 {
			end += 8
		}
		if v[4]&0x01 != 0 {
			end += 4
		}
		v[end] = byte(xxh32(v[:end]) >> 8) // Kafka 0.8's: over the magic number too
		if v[end] == m.value[end] {
			t.Fatal("the broken checksum happens to be the right one")
		}
		m.value = v
		return m
	}
	for name, m := range map[string]testMessage{"correct": good, "kafka-0.8": broken(good)} {
		t.Run(name, func(t *testing.T) {
			_, got := convertedRecords(t, messageSet(m))
			sameRecords(t, got, ms)
		})
	}
	// Format 1 frames are checked.
	m1 := wrapped(t, CodecLZ4, 1, 1_700_000_000_000, testMessage{magic: 1, ts: 1_700_000_000_000, value: []byte("v")})
	if _, err := FromMessageSet(messageSet(broken(m1))); err == nil {
		t.Fatal("a format 1 lz4 frame with a wrong header checksum converted")
	}
	if binary.LittleEndian.Uint32(good.value) != lz4FrameMagic {
		t.Fatal("not an lz4 frame")
	}
}
