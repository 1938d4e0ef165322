package topicconfig

import (
	"testing"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/storage"
)

func TestStorageConfigCompaction(t *testing.T) {
	d := NewDefaults(nil)
	cfg := StorageConfig(d.Effective(nil)).WithDefaults()
	if cfg.CleanupPolicy != storage.PolicyDelete || cfg.DeleteRetentionMs != storage.DefaultDeleteRetentionMs ||
		cfg.MinCleanableDirtyRatio != 0.5 || cfg.MinCompactionLagMs != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg = StorageConfig(d.Effective(map[string]string{
		"cleanup.policy":            "compact,delete",
		"delete.retention.ms":       "0",
		"min.cleanable.dirty.ratio": "0",
		"min.compaction.lag.ms":     "250",
	})).WithDefaults()
	if cfg.CleanupPolicy != storage.PolicyCompact|storage.PolicyDelete || !cfg.CleanupPolicy.Compact() || !cfg.CleanupPolicy.Delete() {
		t.Fatalf("policy %v", cfg.CleanupPolicy)
	}
	// An explicit 0 stays 0, not the default.
	if cfg.DeleteRetentionMs >= 0 || cfg.MinCleanableDirtyRatio >= 0 || cfg.MinCompactionLagMs != 250 {
		t.Fatalf("explicit zeros: %+v", cfg)
	}
	cfg = StorageConfig(d.Effective(map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.1"})).WithDefaults()
	if cfg.CleanupPolicy != storage.PolicyCompact || cfg.DeleteRetentionMs != 1000 || cfg.MinCleanableDirtyRatio != 0.1 {
		t.Fatalf("compact: %+v", cfg)
	}
}

// TestStorageConfigCompressionLevel: compression.<codec>.level reaches the
// storage config for the codec compression.type names, broker-wide or per
// topic, and only for it.
func TestStorageConfigCompressionLevel(t *testing.T) {
	d := NewDefaults(map[string]string{"compression.zstd.level": "7"})
	for _, c := range []struct {
		set   map[string]string
		codec record.Codec
		level int
	}{
		{nil, record.CodecNone, record.DefaultLevel}, // producer: nothing recompressed
		{map[string]string{"compression.type": "gzip"}, record.CodecGzip, -1},
		{map[string]string{"compression.type": "gzip", "compression.gzip.level": "9"}, record.CodecGzip, 9},
		{map[string]string{"compression.type": "lz4"}, record.CodecLZ4, 9},
		{map[string]string{"compression.type": "lz4", "compression.lz4.level": "17", "compression.gzip.level": "1"}, record.CodecLZ4, 17},
		{map[string]string{"compression.type": "zstd"}, record.CodecZstd, 7},
		{map[string]string{"compression.type": "zstd", "compression.zstd.level": "-5"}, record.CodecZstd, -5},
		{map[string]string{"compression.type": "snappy", "compression.zstd.level": "1"}, record.CodecSnappy, record.DefaultLevel},
	} {
		sc := StorageConfig(d.Effective(c.set))
		if sc.RecompressTo != c.codec || sc.RecompressLevel != c.level {
			t.Errorf("%v: %v at level %d, want %v at %d", c.set, sc.RecompressTo, sc.RecompressLevel, c.codec, c.level)
		}
	}
}
