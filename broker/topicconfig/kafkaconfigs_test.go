package topicconfig

import (
	"errors"
	"testing"

	"github.com/gregor-log/gregor/broker/storage"
)

// TestKafkaTopicConfigsAccepted: the topic configs Kafka accepts that
// gregor has no use for are accepted (tools copy them), with Kafka's
// validation; those it cannot honour are refused.
func TestKafkaTopicConfigsAccepted(t *testing.T) {
	ok := map[string]string{
		"segment.index.bytes":                     "10485760",
		"segment.jitter.ms":                       "0",
		"preallocate":                             "false",
		"message.timestamp.difference.max.ms":     "9223372036854775807",
		"message.timestamp.before.max.ms":         "86400000",
		"message.timestamp.after.max.ms":          "3600000",
		"message.downconversion.enable":           "true",
		"message.format.version":                  "3.0-IV1",
		"leader.replication.throttled.replicas":   "",
		"follower.replication.throttled.replicas": "0:1,1:2",
		"local.retention.ms":                      "-2",
		"local.retention.bytes":                   "-2",
		"remote.storage.enable":                   "false",
		"remote.log.copy.disable":                 "false",
		"remote.log.delete.on.disable":            "false",
		"compression.gzip.level":                  "9",
		"compression.lz4.level":                   "9",
		"compression.zstd.level":                  "-5",
		"unclean.leader.election.enable":          "TRUE",
		"min.cleanable.dirty.ratio":               "0.9",
	}
	for k, v := range ok {
		if err := Validate(k, v); err != nil {
			t.Errorf("%s=%q refused: %v", k, v, err)
		}
	}
	// Kafka 3.x's message.format.version spellings.
	for _, v := range []string{"0.8.0", "0.8.0.1", "0.10.0.1", "0.10.2-IV0", "1.1", "2.8", "2.8.1", "2.8.1.1", "3.0", "3.9-IV0"} {
		if err := Validate("message.format.version", v); err != nil {
			t.Errorf("message.format.version=%q refused: %v", v, err)
		}
	}
	// Booleans in any case, as Kafka reads them.
	for _, v := range []string{"FALSE", "False"} {
		if err := Validate("remote.storage.enable", v); err != nil {
			t.Errorf("remote.storage.enable=%q refused: %v", v, err)
		}
	}
	bad := [][2]string{
		{"remote.storage.enable", "true"},
		{"unclean.leader.election.enable", "1"},
		{"preallocate", "yes"},
		{"min.cleanable.dirty.ratio", "2"},
		{"min.cleanable.dirty.ratio", "-3"},
		{"min.cleanable.dirty.ratio", "NaN"},
		{"segment.index.bytes", "3"},
		{"compression.gzip.level", "0"},
		{"compression.zstd.level", "23"},
		{"follower.replication.throttled.replicas", "0-1"},
		{"message.timestamp.after.max.ms", "-1"},
		{"no.such.config", "1"},
		{"message.format.version", "garbage"},
		{"message.format.version", "0.10"},
		{"message.format.version", "4.0"},
		{"message.format.version", "2.9"},
		{"message.format.version", "1.5"},
		{"message.format.version", "0.8.3"},
		{"message.format.version", "3.0-IV7"},
		{"message.format.version", "0.10.2-IV1"},
		{"message.format.version", ""},
	}
	for _, kv := range bad {
		if err := Validate(kv[0], kv[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s=%q: %v, want ErrInvalid", kv[0], kv[1], err)
		}
	}
}

// TestStorageConfigTimestampLimits: Kafka's "no limit" is storage's 0, an
// explicit 0 storage's negative, and the deprecated difference limit
// stands in for a side left at no limit, without overriding a side that
// is set (Kafka's LogConfig), larger or smaller.
func TestStorageConfigTimestampLimits(t *testing.T) {
	d := NewDefaults(nil)
	for _, c := range []struct {
		set           map[string]string
		before, after int64
	}{
		{nil, 0, 0},
		{map[string]string{"message.timestamp.before.max.ms": "1000"}, 1000, 0},
		{map[string]string{"message.timestamp.after.max.ms": "0"}, 0, -1},
		{map[string]string{"message.timestamp.difference.max.ms": "500"}, 500, 500},
		{map[string]string{"message.timestamp.difference.max.ms": "500", "message.timestamp.after.max.ms": "100"}, 500, 100},
		{map[string]string{"message.timestamp.difference.max.ms": "10000", "message.timestamp.after.max.ms": "20000"}, 10000, 20000},
		{map[string]string{"message.timestamp.difference.max.ms": "10000", "message.timestamp.before.max.ms": "0"}, -1, 10000},
		{map[string]string{"message.timestamp.difference.max.ms": "1000", "message.timestamp.after.max.ms": "9223372036854775807"}, 1000, 1000},
	} {
		sc := StorageConfig(d.Effective(c.set))
		if sc.TimestampBeforeMaxMs != c.before || sc.TimestampAfterMaxMs != c.after {
			t.Errorf("%v: before %d after %d, want %d %d", c.set, sc.TimestampBeforeMaxMs, sc.TimestampAfterMaxMs, c.before, c.after)
		}
	}
}

// TestStorageConfigExplicitZero: a topic's 0 reaches storage as its
// explicit zero, which WithDefaults keeps (twice over), where 0 itself
// would be the default.
func TestStorageConfigExplicitZero(t *testing.T) {
	d := NewDefaults(nil)
	zero := map[string]string{}
	for _, k := range []string{"retention.ms", "retention.bytes", "flush.ms", "index.interval.bytes", "max.message.bytes", "file.delete.delay.ms"} {
		zero[k] = "0"
	}
	sc := StorageConfig(d.Effective(zero)).WithDefaults().WithDefaults()
	if sc.RetentionMs != storage.ExplicitZero || sc.RetentionBytes != storage.ExplicitZero ||
		sc.FlushMs != -1 || sc.IndexIntervalBytes != -1 || sc.MaxMessageBytes != -1 || sc.FileDeleteDelayMs != -1 {
		t.Fatalf("explicit zeros reach storage as %+v", sc)
	}
	// Kafka takes any long for retention.bytes, a negative one as no
	// limit: the smallest must not read as the explicit zero.
	for _, v := range []string{"-2", "-9223372036854775808"} {
		if err := Validate("retention.bytes", v); err != nil {
			t.Fatalf("retention.bytes=%s refused: %v", v, err)
		}
		if sc := StorageConfig(d.Effective(map[string]string{"retention.bytes": v})).WithDefaults(); sc.RetentionBytes != -1 {
			t.Fatalf("retention.bytes=%s reaches storage as %d, want -1 (no limit)", v, sc.RetentionBytes)
		}
	}
	def := StorageConfig(d.Effective(nil)).WithDefaults()
	if def.RetentionMs != storage.DefaultRetentionMs || def.RetentionBytes != -1 || def.FlushMs != 1000 ||
		def.IndexIntervalBytes != 4096 || def.MaxMessageBytes != 1048588 || def.FileDeleteDelayMs != 60000 {
		t.Fatalf("defaults reach storage as %+v", def)
	}
}
