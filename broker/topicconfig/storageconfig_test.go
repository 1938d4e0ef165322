package topicconfig

import (
	"testing"

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
