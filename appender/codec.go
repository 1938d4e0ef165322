package appender

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-log/gregor/internal/kgoopt"
)

// compressionCodec maps a Config.Compression name to kgo's codec.
func compressionCodec(name string) (kgo.CompressionCodec, error) {
	c, err := kgoopt.Compression(name)
	if err != nil {
		return kgo.CompressionCodec{}, fmt.Errorf("compression %q: must be none, gzip, snappy, lz4 or zstd", name)
	}
	return c, nil
}
