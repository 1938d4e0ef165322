package appender

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidateReportsEverything(t *testing.T) {
	cfg := Config{
		Brokers:       []string{"nohost", ""},
		Topic:         "bad topic!",
		Level:         "loud",
		BufferBytes:   10,
		BufferRecords: -1,
		OnFull:        OnFullSpill,
		Linger:        -time.Second,
		Compression:   "brotli",
		Acks:          "some",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"brokers", "topic", "level", "buffer-bytes", "buffer-records", "spill-dir",
		"spill-max-bytes", "max-record-bytes", "batch-max-bytes", "linger", "compression", "acks", "sync-timeout"} {
		if !strings.Contains(err.Error(), "appender."+field+":") {
			t.Errorf("no problem reported for %s in:\n%v", field, err)
		}
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("not a *ConfigError: %v", err)
	}
	if _, err := NewHandler(WithConfig(cfg)); err == nil {
		t.Fatal("NewHandler accepted an invalid config")
	}
}

func TestConfigDefaultsAreValidOnceAddressed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic = []string{"127.0.0.1:9092"}, "logs"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFromYAML(t *testing.T) {
	src := `
brokers: [127.0.0.1:9092, 127.0.0.1:9093]
topic: app-logs
key-field: user
service: shop
level: debug
buffer-bytes: 8388608
buffer-records: 10000
on-full: spill
spill-dir: /var/spool/shop
spill-max-bytes: 104857600
block-timeout: 25ms
linger: 2ms
compression: zstd
acks: leader
delivery-timeout: 30s
sync-timeout: 2s
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.OnFull != OnFullSpill || cfg.Linger != 2*time.Millisecond || cfg.DeliveryTimeout != 30*time.Second ||
		len(cfg.Brokers) != 2 || cfg.KeyField != "user" || cfg.MaxRecordBytes != DefaultMaxRecordBytes {
		t.Fatalf("decoded %+v", cfg)
	}
	bad := yaml.NewDecoder(strings.NewReader("topic: x\nbuffer-size: 3\n"))
	bad.KnownFields(true)
	if err := bad.Decode(&cfg); err == nil {
		t.Fatal("unknown key accepted")
	}
}
