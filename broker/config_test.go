package broker

import (
	"strings"
	"testing"
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
