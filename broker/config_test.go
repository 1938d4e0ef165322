package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/topicconfig"
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

// Properties that are ints in Kafka are refused above Int.MAX (config
// checks found socket.request.max.bytes=Long.MAX cut to -1, refusing every
// request, and queued.max.requests=Long.MAX panicking at the first
// connection); negative log.retention.hours/minutes mean no limit.
func TestIntPropertyRange(t *testing.T) {
	for _, k := range []string{"socket.request.max.bytes", "queued.max.requests", "log.retention.hours", "log.retention.minutes", "offsets.retention.minutes"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props[k] = "2147483648"
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), k+`="2147483648": must be at most 2147483647`) {
			t.Errorf("%s=2147483648: %v", k, err)
		}
		cfg.Props[k] = "2147483647"
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s=2147483647: %v", k, err)
		}
	}
	for _, k := range []string{"log.retention.hours", "log.retention.minutes"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props[k] = "-1"
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s=-1: %v", k, err)
		}
		if got := topicconfig.NewDefaults(cfg.Props)["retention.ms"]; got != "-1" {
			t.Errorf("%s=-1: retention.ms default %s, want -1", k, got)
		}
		cfg.Props[k] = "2147483647"
		if got := topicconfig.NewDefaults(cfg.Props)["retention.ms"]; strings.HasPrefix(got, "-") {
			t.Errorf("%s=2147483647: retention.ms default %s", k, got)
		}
	}
}

// Values a Kafka config dump holds: log.cleaner.io.max.bytes.per.second
// is a double whose default is Double.MAX_VALUE (unlimited, 0 here), and
// connections.max.idle.ms=-1 means never.
func TestKafkaDumpValues(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Props["log.cleaner.io.max.bytes.per.second"] = "1.7976931348623157E308"
	cfg.Props["connections.max.idle.ms"] = "-1"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.cleanerConfig().IOMaxBytesPerSecond; got != 0 {
		t.Errorf("Double.MAX_VALUE cleaner rate: %d, want 0 (unlimited)", got)
	}
	if cfg.maxIdle() > 0 {
		t.Errorf("connections.max.idle.ms=-1: idle timeout %v", cfg.maxIdle())
	}
	cfg.Props["log.cleaner.io.max.bytes.per.second"] = "1048576.5"
	if err := cfg.Validate(); err != nil || cfg.cleanerConfig().IOMaxBytesPerSecond != 1048576 {
		t.Errorf("1048576.5: %v, %d", err, cfg.cleanerConfig().IOMaxBytesPerSecond)
	}
	cfg.Props["log.cleaner.io.max.bytes.per.second"] = "-1.5"
	if err := cfg.Validate(); err == nil {
		t.Error("a negative rate accepted")
	}
}

// auto.create.topics.enable takes Kafka's spellings, in any case, and not
// Go's 1 or t.
func TestAutoCreateTopicsSpelling(t *testing.T) {
	for v, want := range map[string]bool{"TRUE": true, "False": false, "true": true} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props["auto.create.topics.enable"] = v
		if err := cfg.Validate(); err != nil || cfg.AutoCreateTopics != want {
			t.Errorf("%q: %v, %v", v, err, cfg.AutoCreateTopics)
		}
	}
	for _, v := range []string{"1", "t", "yes"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props["auto.create.topics.enable"] = v
		if err := cfg.Validate(); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestBooleanProperties: delete.topic.enable and log.cleaner.enable take
// true or false in any case, anything else is refused, and
// log.cleaner.enable=false turns the cleaner off.
func TestBooleanProperties(t *testing.T) {
	cfg := DefaultConfig()
	if !cfg.boolProp("delete.topic.enable") || cfg.cleanerConfig().Disabled {
		t.Fatal("defaults: deletion or cleaner off")
	}
	cfg.Props["log.cleaner.enable"] = " False"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.cleanerConfig().Disabled {
		t.Fatal("log.cleaner.enable=false left the cleaner on")
	}
	cfg.Props["delete.topic.enable"] = "no"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "delete.topic.enable") {
		t.Fatalf("delete.topic.enable=no: %v", err)
	}
}
