package broker

import (
	"strings"
	"testing"
	"time"
)

func TestKafkaNamedPropertiesSetFields(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Props["num.partitions"] = "6"
	cfg.Props["auto.create.topics.enable"] = "false"
	cfg.Props["broker.id"] = "3"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.NumPartitions != 6 || cfg.AutoCreateTopics || cfg.BrokerID != 3 {
		t.Fatalf("fields after Validate: partitions %d, auto-create %v, broker id %d", cfg.NumPartitions, cfg.AutoCreateTopics, cfg.BrokerID)
	}
	if len(cfg.Props) != 0 {
		t.Fatalf("aliases left in Props: %v", cfg.Props)
	}

	bad := DefaultConfig()
	bad.DataDir = t.TempDir()
	bad.Props["num.partitions"] = "0"
	bad.Props["auto.create.topics.enable"] = "maybe"
	bad.Props["broker.id"] = "x"
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"num-partitions: 0", "auto.create.topics.enable=\"maybe\"", "broker.id=\"x\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %s", err, want)
		}
	}
}

// Millisecond properties as large as Long.MAX_VALUE (which Kafka configs
// use for "never") are capped, not overflowed into negative durations: a
// negative retention check interval fell back to the 5 minute default.
func TestLongMaxMillisecondProperties(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Props["log.retention.check.interval.ms"] = "9223372036854775807"
	cfg.Props["connections.max.idle.ms"] = "9223372036854775807"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	const year = 365 * 24 * time.Hour
	if got := cfg.retentionCheckInterval(); got < 50*year {
		t.Errorf("log.retention.check.interval.ms=Long.MAX_VALUE is %v", got)
	}
	if got := cfg.maxIdle(); got < 50*year {
		t.Errorf("connections.max.idle.ms=Long.MAX_VALUE is %v", got)
	}
}
