package storage

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults, matching Kafka's broker defaults
// except FlushMs (Kafka never fsyncs by time by default; gregor fsyncs
// unflushed data within a second).
const (
	DefaultSegmentBytes           = 1 << 30
	DefaultSegmentMs              = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionMs            = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionBytes         = -1
	DefaultFlushMs                = 1000
	DefaultIndexIntervalBytes     = 4096
	DefaultMaxMessageBytes        = 1<<20 + 12
	DefaultProducerIDExpirationMs = 24 * 60 * 60 * 1000
	DefaultFileDeleteDelayMs      = 60000
	DefaultDeleteRetentionMs      = 24 * 60 * 60 * 1000
	DefaultMinCleanableDirtyRatio = 0.5

	// maxSegmentBytes caps segment.bytes: positions in the offset index are
	// 32-bit, and Kafka caps segment.bytes at the largest int32.
	maxSegmentBytes = math.MaxInt32
	// minSegmentBytes is the smallest segment size accepted, small enough
	// for tests to roll often.
	minSegmentBytes = 128
)

// CleanupPolicy is a topic's cleanup.policy: a set of PolicyDelete and
// PolicyCompact, or PolicyNone. The zero value means PolicyDelete.
type CleanupPolicy uint8

// Cleanup policies; combine PolicyDelete and PolicyCompact with |.
const (
	PolicyDelete  CleanupPolicy = 1 << iota // retention.ms and retention.bytes delete old segments
	PolicyCompact                           // the cleaner keeps the latest record per key
	// PolicyNone is an empty cleanup.policy, as Kafka 3.x reads it:
	// neither, so retention.ms and retention.bytes delete nothing and
	// the log is never compacted: it keeps every record (DeleteRecords
	// is refused too, as for compact alone).
	PolicyNone
)

// Delete reports whether old segments are deleted by retention.ms and
// retention.bytes.
func (p CleanupPolicy) Delete() bool { return p == 0 || p&PolicyDelete != 0 }

// Compact reports whether the cleaner compacts the log (and appends of
// records without a key are refused).
func (p CleanupPolicy) Compact() bool { return p&PolicyCompact != 0 }

// String returns the policy as Kafka writes it: "delete", "compact",
// "compact,delete", or "" for PolicyNone.
func (p CleanupPolicy) String() string {
	switch p & (PolicyCompact | PolicyDelete) {
	case PolicyCompact | PolicyDelete:
		return "compact,delete"
	case PolicyCompact:
		return "compact"
	case 0:
		if p == PolicyNone {
			return ""
		}
	}
	return "delete"
}

// ErrBadCleanupPolicy is returned by ParseCleanupPolicy.
var ErrBadCleanupPolicy = errors.New("invalid cleanup.policy")

// ParseCleanupPolicy parses a cleanup.policy list: "delete", "compact",
// "compact,delete" or "delete,compact" (spaces around items allowed), or
// an empty one (only white space), PolicyNone.
func ParseCleanupPolicy(s string) (CleanupPolicy, error) {
	if strings.TrimSpace(s) == "" {
		return PolicyNone, nil
	}
	var p CleanupPolicy
	for _, item := range strings.Split(s, ",") {
		switch strings.TrimSpace(item) {
		case "delete":
			p |= PolicyDelete
		case "compact":
			p |= PolicyCompact
		default:
			return 0, fmt.Errorf("%q: %w", s, ErrBadCleanupPolicy)
		}
	}
	return p, nil
}

// WithDefaults returns c with zero fields replaced by the defaults and
// out-of-range fields clamped (segment.bytes to [128, 2^31-1], negative
// retention to -1 meaning unlimited, negative delete.retention.ms and
// min.cleanable.dirty.ratio to 0, the ratio to at most 1).
func (c Config) WithDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	c.SegmentBytes = min(max(c.SegmentBytes, minSegmentBytes), maxSegmentBytes)
	if c.SegmentMs <= 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	} else if c.RetentionMs < 0 && c.RetentionMs != ExplicitZero {
		c.RetentionMs = -1
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = DefaultRetentionBytes
	} else if c.RetentionBytes < 0 && c.RetentionBytes != ExplicitZero {
		c.RetentionBytes = -1
	}
	if c.FlushMessages < 0 {
		c.FlushMessages = 0
	}
	// For these a negative value is an explicit 0 (see ExplicitZero),
	// kept as -1: every comparison treats it as 0 would be treated.
	if c.FlushMs == 0 {
		c.FlushMs = DefaultFlushMs
	} else if c.FlushMs < 0 {
		c.FlushMs = -1 // fsync at every flush check
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	} else if c.IndexIntervalBytes < 0 {
		c.IndexIntervalBytes = -1 // an index entry for every batch
	}
	if c.ProducerIDExpirationMs == 0 {
		c.ProducerIDExpirationMs = DefaultProducerIDExpirationMs
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	} else if c.MaxMessageBytes < 0 {
		c.MaxMessageBytes = -1 // every batch is too large
	}
	if c.FileDeleteDelayMs == 0 {
		c.FileDeleteDelayMs = DefaultFileDeleteDelayMs
	} else if c.FileDeleteDelayMs < 0 {
		c.FileDeleteDelayMs = -1 // removed at the next maintenance
	}
	if c.CleanupPolicy&(PolicyDelete|PolicyCompact) != 0 || c.CleanupPolicy == 0 {
		c.CleanupPolicy &= PolicyDelete | PolicyCompact
		if c.CleanupPolicy == 0 {
			c.CleanupPolicy = PolicyDelete
		}
	} else {
		c.CleanupPolicy = PolicyNone
	}
	if c.DeleteRetentionMs == 0 {
		c.DeleteRetentionMs = DefaultDeleteRetentionMs
	} else if c.DeleteRetentionMs < 0 {
		c.DeleteRetentionMs = -1 // no delay; kept distinct from 0 = default
	}
	c.MinCompactionLagMs = max(c.MinCompactionLagMs, 0)
	switch {
	case c.MinCleanableDirtyRatio == 0 || math.IsNaN(c.MinCleanableDirtyRatio):
		c.MinCleanableDirtyRatio = DefaultMinCleanableDirtyRatio
	case c.MinCleanableDirtyRatio < 0:
		c.MinCleanableDirtyRatio = -1 // 0, kept distinct from 0 = default
	case c.MinCleanableDirtyRatio > 1:
		c.MinCleanableDirtyRatio = 1
	}
	return c
}

// deleteRetention is delete.retention.ms as a duration (0 for no delay).
func (c *Config) deleteRetention() int64 { return max(c.DeleteRetentionMs, 0) }

// ExplicitZero, in RetentionMs or RetentionBytes, is a topic's explicit 0
// (Kafka: delete every closed segment), where 0 means the default and a
// negative value no limit. In FlushMs, IndexIntervalBytes, MaxMessageBytes
// and FileDeleteDelayMs, whose 0 is the default too, any negative value is
// an explicit 0.
const ExplicitZero = math.MinInt64

// retentionMs is retention.ms and whether it limits anything.
func (c *Config) retentionMs() (int64, bool) {
	if c.RetentionMs == ExplicitZero {
		return 0, true
	}
	return c.RetentionMs, c.RetentionMs >= 0
}

// retentionBytes is retention.bytes and whether it limits anything.
func (c *Config) retentionBytes() (int64, bool) {
	if c.RetentionBytes == ExplicitZero {
		return 0, true
	}
	return c.RetentionBytes, c.RetentionBytes >= 0
}

// tombstoneExpiry is when a tombstone cleaned at cleanedAtMs (unix ms) has
// outlived delete.retention.ms of retentionMs: saturated, since Kafka's
// "keep forever", Long.MAX_VALUE, wrapped into "at once" when added.
func tombstoneExpiry(cleanedAtMs, retentionMs int64) int64 {
	if retentionMs > math.MaxInt64-cleanedAtMs {
		return math.MaxInt64
	}
	return cleanedAtMs + retentionMs
}

// minCleanableRatio is min.cleanable.dirty.ratio in [0, 1].
func (c *Config) minCleanableRatio() float64 { return max(c.MinCleanableDirtyRatio, 0) }

// Cleaner defaults, Kafka's except IOMaxBytesPerSecond (unlimited, as
// Kafka's default of Double.MAX_VALUE is in effect).
const (
	DefaultCleanerBackoff          = 15 * time.Second
	DefaultCleanerIOBufferSize     = 512 << 10
	DefaultCleanerDedupeBufferSize = 128 << 20
	// minDedupeBufferSize keeps the offset map big enough for the
	// records of any one batch a producer can send.
	minDedupeBufferSize = 1 << 20
	// minCleanerIOBufferSize is the smallest I/O buffer accepted.
	minCleanerIOBufferSize = 4 << 10
	// defaultCleanerRetryBackoff is how long a log whose clean failed is
	// left alone (Kafka marks such a log uncleanable until restart).
	defaultCleanerRetryBackoff = time.Minute
)

// CleanerConfig configures the Manager's log cleaner: Kafka's log.cleaner.*
// broker properties. Zero fields take the defaults (see WithDefaults).
type CleanerConfig struct {
	// Disabled turns the cleaner off (log.cleaner.enable=false);
	// compacted topics then grow like delete-policy ones without
	// retention.
	Disabled bool
	// Backoff is log.cleaner.backoff.ms: how long the cleaner sleeps when
	// no log needs cleaning (default 15s).
	Backoff time.Duration
	// IOMaxBytesPerSecond is log.cleaner.io.max.bytes.per.second: the
	// cleaner's reads plus writes are throttled to this rate; <= 0 is
	// unlimited (the default).
	IOMaxBytesPerSecond int64
	// IOBufferSize is log.cleaner.io.buffer.size: the size of the
	// cleaner's read buffer and of its write buffer (default 512 KiB
	// each). A batch larger than the read buffer is read whole.
	IOBufferSize int
	// DedupeBufferSize is log.cleaner.dedupe.buffer.size: the most memory
	// the offset map (key hash to latest offset, 24 bytes a slot) may
	// use; it bounds how many distinct keys one pass can deduplicate
	// (default 128 MiB, at least 1 MiB).
	DedupeBufferSize int64
	// RetryBackoff is how long a log whose cleaning failed is skipped
	// (default 1 minute).
	RetryBackoff time.Duration
}

// WithDefaults returns c with zero fields replaced by the defaults and
// sizes raised to their minimums.
func (c CleanerConfig) WithDefaults() CleanerConfig {
	if c.Backoff <= 0 {
		c.Backoff = DefaultCleanerBackoff
	}
	if c.IOMaxBytesPerSecond < 0 {
		c.IOMaxBytesPerSecond = 0
	}
	if c.IOBufferSize <= 0 {
		c.IOBufferSize = DefaultCleanerIOBufferSize
	}
	c.IOBufferSize = max(c.IOBufferSize, minCleanerIOBufferSize)
	if c.DedupeBufferSize <= 0 {
		c.DedupeBufferSize = DefaultCleanerDedupeBufferSize
	}
	c.DedupeBufferSize = max(c.DedupeBufferSize, minDedupeBufferSize)
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = defaultCleanerRetryBackoff
	}
	return c
}
