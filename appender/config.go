package appender

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// FullPolicy says what a log call does when the in-memory buffer is full.
type FullPolicy string

// The policies a full buffer can apply.
const (
	// OnFullDrop drops the record and counts it (the default). The log call
	// never waits.
	OnFullDrop FullPolicy = "drop"
	// OnFullBlock makes the log call wait for room up to BlockTimeout, then
	// drops and counts the record.
	OnFullBlock FullPolicy = "block"
	// OnFullSpill appends the record to a local spill file under SpillDir.
	// Spilled records are shipped in order, before anything logged after
	// them, once the broker takes records again. When the spill files reach
	// SpillMaxBytes the record is dropped and counted.
	OnFullSpill FullPolicy = "spill"
)

// Config is the appender's configuration: everything NewCore and NewHandler
// need. It is also the `appender:` section of pipeline.yaml; YAML keys are
// kebab-case and durations are strings such as "250ms".
//
// Start from DefaultConfig, change what you need, and let the constructors
// call Validate (they do), or call it yourself to report configuration
// problems early.
type Config struct {
	// Brokers are the seed broker addresses, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic receives the log records. Required.
	Topic string `yaml:"topic"`
	// ClientID is the Kafka client id the shipper uses.
	ClientID string `yaml:"client-id"`

	// Service names the application; sent in the "service" header of every
	// record. Empty means the program's name (os.Args[0]'s last element).
	Service string `yaml:"service"`
	// Host is sent in the "host" header. Empty means os.Hostname().
	Host string `yaml:"host"`
	// Level is the minimum level shipped: debug, info, warn or error (slog
	// also accepts offsets such as "info+2"). Applies to both front ends.
	Level string `yaml:"level"`
	// KeyField names a top-level field (zap) or attribute (slog) whose value
	// becomes the record key, so that all events with the same value land in
	// the same partition. Empty means records have no key.
	KeyField string `yaml:"key-field"`
	// AddSource makes the slog handler add the caller's file and line under
	// "source", like slog.HandlerOptions.AddSource. The zap core reports the
	// caller when the zap.Logger is built with zap.AddCaller.
	AddSource bool `yaml:"add-source"`

	// BufferBytes bounds the memory records take: waiting to be shipped,
	// in flight to the broker, and (with the spill policy) waiting to be
	// written to a spill file, which gets a quarter of it, at most 16 MiB.
	// Each record is charged its buffers' size plus 768 bytes.
	BufferBytes int64 `yaml:"buffer-bytes"`
	// BufferRecords bounds the number of records held in memory.
	BufferRecords int `yaml:"buffer-records"`
	// OnFull is the policy when either bound is reached: drop, block or spill.
	OnFull FullPolicy `yaml:"on-full"`
	// BlockTimeout is how long a log call may wait for room with the block
	// policy before the record is dropped.
	BlockTimeout time.Duration `yaml:"block-timeout"`
	// SpillDir holds the spill files. Required with the spill policy; it is
	// created if missing. Records left there by a previous run are shipped
	// first.
	SpillDir string `yaml:"spill-dir"`
	// SpillMaxBytes bounds the total size of the spill files.
	SpillMaxBytes int64 `yaml:"spill-max-bytes"`

	// MaxRecordBytes is the largest encoded record accepted. Larger records
	// are dropped and counted at the log call, never sent. Keep it at or
	// below the broker's message.max.bytes minus record overhead.
	MaxRecordBytes int `yaml:"max-record-bytes"`
	// BatchMaxBytes is the largest record batch sent to the broker
	// (kgo.ProducerBatchMaxBytes). Must be at least MaxRecordBytes plus
	// overhead, and at most the broker's message.max.bytes.
	BatchMaxBytes int32 `yaml:"batch-max-bytes"`
	// Linger is how long a partition's batch may wait for more records
	// before it is sent.
	Linger time.Duration `yaml:"linger"`
	// Compression is the batch codec: none, gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
	// Acks is how many acknowledgements a produce waits for: all, leader or
	// none. Only "all" keeps the idempotent producer (no duplicates from
	// retries).
	Acks string `yaml:"acks"`
	// DeliveryTimeout bounds how long one record may wait for the broker,
	// retries included, before it is counted as failed. Zero means no bound:
	// records wait (within the memory bounds) until the broker is back or
	// Close's deadline passes.
	DeliveryTimeout time.Duration `yaml:"delivery-timeout"`
	// SyncTimeout bounds how long Sync (zap's Logger.Sync, and the Sync
	// method of both front ends) waits for buffered records to be
	// acknowledged. Close takes its deadline from its context instead.
	SyncTimeout time.Duration `yaml:"sync-timeout"`
}

// Defaults used by DefaultConfig.
const (
	DefaultClientID        = "gregor-appender"
	DefaultBufferBytes     = 64 << 20
	DefaultBufferRecords   = 256 << 10
	DefaultBlockTimeout    = 50 * time.Millisecond
	DefaultSpillMaxBytes   = 1 << 30
	DefaultMaxRecordBytes  = 512 << 10
	DefaultBatchMaxBytes   = 1000012
	DefaultLinger          = 5 * time.Millisecond
	DefaultCompression     = "snappy"
	DefaultAcks            = "all"
	DefaultSyncTimeout     = 5 * time.Second
	MinBufferBytes         = 64 << 10
	recordOverheadMaxBytes = 1 << 10
)

// DefaultConfig returns the defaults: level info, a 64 MiB / 256 Ki-record
// buffer, drop when full, 512 KiB records, 1 MB batches (kgo's default, under
// the broker's default message.max.bytes), 5 ms linger, snappy,
// acks=all, 5 s sync timeout. Brokers and Topic must still be set.
func DefaultConfig() Config {
	return Config{
		ClientID:       DefaultClientID,
		Level:          "info",
		BufferBytes:    DefaultBufferBytes,
		BufferRecords:  DefaultBufferRecords,
		OnFull:         OnFullDrop,
		BlockTimeout:   DefaultBlockTimeout,
		SpillMaxBytes:  DefaultSpillMaxBytes,
		MaxRecordBytes: DefaultMaxRecordBytes,
		BatchMaxBytes:  DefaultBatchMaxBytes,
		Linger:         DefaultLinger,
		Compression:    DefaultCompression,
		Acks:           DefaultAcks,
		SyncTimeout:    DefaultSyncTimeout,
	}
}

// ConfigError is one invalid field; Validate joins one per problem.
type ConfigError struct {
	Field  string // the YAML key, e.g. "buffer-bytes"
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("appender.%s: %s", e.Field, e.Reason) }

// Validate reports every problem with c at once (errors.Join of
// *ConfigError, each naming its YAML key), or nil.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker address is required")
	}
	for i, b := range c.Brokers {
		if strings.TrimSpace(b) == "" || !strings.Contains(b, ":") {
			bad("brokers", "entry %d %q is not host:port", i, b)
		}
	}
	if c.Topic == "" {
		bad("topic", "required")
	} else if err := validTopicName(c.Topic); err != nil {
		bad("topic", "%v", err)
	}
	if _, err := ParseLevel(c.Level); err != nil {
		bad("level", "%v", err)
	}
	if c.BufferBytes < MinBufferBytes {
		bad("buffer-bytes", "must be at least %d, got %d", MinBufferBytes, c.BufferBytes)
	}
	if c.BufferRecords <= 0 {
		bad("buffer-records", "must be positive, got %d", c.BufferRecords)
	}
	switch c.OnFull {
	case OnFullDrop:
	case OnFullBlock:
		if c.BlockTimeout <= 0 {
			bad("block-timeout", "must be positive with on-full: block, got %v", c.BlockTimeout)
		}
	case OnFullSpill:
		if c.SpillDir == "" {
			bad("spill-dir", "required with on-full: spill")
		}
		if c.SpillMaxBytes <= 0 {
			bad("spill-max-bytes", "must be positive with on-full: spill, got %d", c.SpillMaxBytes)
		}
	default:
		bad("on-full", "must be drop, block or spill, got %q", c.OnFull)
	}
	if c.BlockTimeout < 0 {
		bad("block-timeout", "must not be negative, got %v", c.BlockTimeout)
	}
	if c.SpillMaxBytes < 0 {
		bad("spill-max-bytes", "must not be negative, got %d", c.SpillMaxBytes)
	}
	if c.MaxRecordBytes <= 0 {
		bad("max-record-bytes", "must be positive, got %d", c.MaxRecordBytes)
	} else if c.BufferBytes >= MinBufferBytes && int64(c.MaxRecordBytes) > c.BufferBytes {
		bad("max-record-bytes", "%d exceeds buffer-bytes %d", c.MaxRecordBytes, c.BufferBytes)
	}
	if c.BatchMaxBytes <= 0 {
		bad("batch-max-bytes", "must be positive, got %d", c.BatchMaxBytes)
	} else if c.MaxRecordBytes > 0 && int64(c.BatchMaxBytes) < int64(c.MaxRecordBytes)+recordOverheadMaxBytes {
		bad("batch-max-bytes", "%d is too small for max-record-bytes %d plus %d bytes of batch overhead",
			c.BatchMaxBytes, c.MaxRecordBytes, recordOverheadMaxBytes)
	}
	if c.Linger < 0 {
		bad("linger", "must not be negative, got %v", c.Linger)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		bad("compression", "%v", err)
	}
	switch c.Acks {
	case "all", "leader", "none":
	default:
		bad("acks", "must be all, leader or none, got %q", c.Acks)
	}
	if c.DeliveryTimeout < 0 {
		bad("delivery-timeout", "must not be negative, got %v", c.DeliveryTimeout)
	}
	if c.SyncTimeout <= 0 {
		bad("sync-timeout", "must be positive, got %v", c.SyncTimeout)
	}
	return errors.Join(errs...)
}

// ParseLevel parses a level name as slog does ("debug", "INFO", "warn+1",
// "error"). The empty string is info.
func ParseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("level %q: %w", s, err)
	}
	return l, nil
}

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	if name == "." || name == ".." {
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name is %d characters, longer than 249", len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q has character %q; only [a-zA-Z0-9._-] are allowed", name, r)
		}
	}
	return nil
}
