package storage

import "math"

// Defaults applied by Config.WithDefaults, matching Kafka's broker defaults
// except FlushMs (Kafka never fsyncs by time by default; gregor fsyncs
// unflushed data within a second).
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentMs          = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionMs        = 7 * 24 * 60 * 60 * 1000
	DefaultRetentionBytes     = -1
	DefaultFlushMs            = 1000
	DefaultIndexIntervalBytes = 4096
	DefaultMaxMessageBytes    = 1<<20 + 12
	DefaultFileDeleteDelayMs  = 60000

	// maxSegmentBytes caps segment.bytes: positions in the offset index are
	// 32-bit, and Kafka caps segment.bytes at the largest int32.
	maxSegmentBytes = math.MaxInt32
	// minSegmentBytes is the smallest segment size accepted, small enough
	// for tests to roll often.
	minSegmentBytes = 128
)

// WithDefaults returns c with zero fields replaced by the defaults and
// out-of-range fields clamped (segment.bytes to [128, 2^31-1], negative
// retention to -1 meaning unlimited).
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
	} else if c.RetentionMs < 0 {
		c.RetentionMs = -1
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = DefaultRetentionBytes
	} else if c.RetentionBytes < 0 {
		c.RetentionBytes = -1
	}
	if c.FlushMessages < 0 {
		c.FlushMessages = 0
	}
	if c.FlushMs <= 0 {
		c.FlushMs = DefaultFlushMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.FileDeleteDelayMs <= 0 {
		c.FileDeleteDelayMs = DefaultFileDeleteDelayMs
	}
	return c
}
