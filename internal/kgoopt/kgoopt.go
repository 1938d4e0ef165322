// Package kgoopt maps the producer settings that gregor's configs and flags
// spell as names (compression codecs, acks) to franz-go kgo values, so the
// CLI, the agent and the appender agree on the names.
package kgoopt

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnknown is returned for a name that is not a known codec or acks level.
var ErrUnknown = errors.New("unknown name")

// Compression maps "none" (or ""), "gzip", "snappy", "lz4" or "zstd" to a
// kgo codec.
func Compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, ErrUnknown
}

// Acks maps "all" (or "-1"), "1" or "0" to kgo's acks.
func Acks(name string) (kgo.Acks, error) {
	switch name {
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "0":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, ErrUnknown
}
