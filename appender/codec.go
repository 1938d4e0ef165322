package appender

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// compressionCodec maps a Config.Compression name to kgo's codec.
func compressionCodec(name string) (kgo.CompressionCodec, error) {
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
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: must be none, gzip, snappy, lz4 or zstd", name)
}
