package record

import (
	"encoding/binary"
	"math/bits"
)

// Kafka before 0.10 framed lz4 with a wrong header checksum: it hashed
// the frame's magic number along with the frame descriptor (KAFKA-3160).
// Clients still write format 0 message sets that way (librdkafka with
// broker.version.fallback below 0.10, kafka-python with api_version
// below 0.10), and Kafka reads format 0 lz4 without checking that byte.
// So does gregor: fixLZ4HeaderChecksum puts the right one in before the
// frame is decoded. The data blocks keep their own checksums.

const lz4FrameMagic = 0x184D2204

// fixLZ4HeaderChecksum rewrites the header checksum of the lz4 frame at
// the start of frame, in place, to the one the frame descriptor hashes
// to. A frame too short or without the lz4 magic number is left alone
// for the decoder to refuse.
func fixLZ4HeaderChecksum(frame []byte) {
	if len(frame) < 7 || binary.LittleEndian.Uint32(frame) != lz4FrameMagic {
		return
	}
	flg := frame[4]
	end := 6 // FLG and BD
	if flg&0x08 != 0 {
		end += 8 // content size
	}
	if flg&0x01 != 0 {
		end += 4 // dictionary id
	}
	if len(frame) <= end {
		return
	}
	frame[end] = byte(xxh32(frame[4:end]) >> 8)
}

const (
	xxhPrime1 uint32 = 2654435761
	xxhPrime2 uint32 = 2246822519
	xxhPrime3 uint32 = 3266489917
	xxhPrime4 uint32 = 668265263
	xxhPrime5 uint32 = 374761393
)

// xxh32 is XXH32 with seed 0 of b, for inputs shorter than 16 bytes (a
// frame descriptor is at most 14).
func xxh32(b []byte) uint32 {
	h := xxhPrime5 + uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		h += binary.LittleEndian.Uint32(b) * xxhPrime3
		h = bits.RotateLeft32(h, 17) * xxhPrime4
	}
	for _, c := range b {
		h += uint32(c) * xxhPrime5
		h = bits.RotateLeft32(h, 11) * xxhPrime1
	}
	h ^= h >> 15
	h *= xxhPrime2
	h ^= h >> 13
	h *= xxhPrime3
	h ^= h >> 16
	return h
}
