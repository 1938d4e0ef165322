// Package storage owns the partition log: segment files named by base
// offset, the sparse offset and time indexes, crash recovery, retention,
// log compaction (the Cleaner, for cleanup.policy=compact), the
// leader-epoch cache and the idempotent-producer state that is rebuilt
// from the log. It knows nothing of the network or of cluster metadata.
//
// On-disk formats are documented in docs/format.md.
package storage

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// Config is the per-partition log configuration (Kafka topic configs with
// broker defaults already applied). Zero fields are replaced by defaults by
// WithDefaults; a topic's explicit 0 comes as ExplicitZero or -1 (see
// ExplicitZero).
type Config struct {
	SegmentBytes       int64 // segment.bytes: roll when the active segment would exceed this (default 1 GiB)
	SegmentMs          int64 // segment.ms: roll when the active segment's first batch is older (default 7 days)
	RetentionMs        int64 // retention.ms: delete segments whose newest record is older; -1 = forever (default 7 days)
	RetentionBytes     int64 // retention.bytes: delete oldest segments while the log is larger; -1 = unlimited (default)
	FlushMessages      int64 // flush.messages: fsync after this many unflushed records; <=0 = never by count
	FlushMs            int64 // flush.ms: fsync when unflushed data is older than this (default 1000)
	IndexIntervalBytes int32 // index.interval.bytes: bytes between sparse index entries (default 4096)
	MaxMessageBytes    int32 // max.message.bytes: largest batch accepted (default 1 MiB + 12)
	FileDeleteDelayMs  int64 // file.delete.delay.ms: how long a deleted segment stays readable by in-flight fetches (default 60000)
	// ProducerIDExpirationMs is the broker's producer.id.expiration.ms:
	// Maintain forgets an idempotent producer whose newest batch in this
	// partition has a timestamp older than this (default 1 day), as Kafka
	// does; if it comes back it is treated as a new producer. Negative
	// means never.
	ProducerIDExpirationMs int64
	// PageCacheRetainBytes, when positive, is how much of a partition's
	// most recently flushed data stays in the page cache: each flush
	// advises the kernel (POSIX_FADV_DONTNEED) to drop the pages of
	// flushed data further behind. Once memory is full of a log's old
	// pages, every write otherwise pays for reclaiming them. Zero (the
	// default) never drops pages, as Kafka does. File systems without
	// vfs.CacheDropper ignore it.
	PageCacheRetainBytes int64
	// Recompress, with RecompressTo, is a compression.type other than
	// "producer": every appended batch not already compressed with
	// RecompressTo is stored recompressed with it (record.Recompress;
	// record.CodecNone stores it uncompressed), as Kafka does.
	Recompress   bool
	RecompressTo record.Codec
	// RecompressLevel is RecompressTo's level (compression.<codec>.level,
	// see record.CompressLevel); record.DefaultLevel for the default.
	RecompressLevel int
	// LogAppendTime is message.timestamp.type=LogAppendTime: every batch
	// appended is stamped with the broker's clock (see
	// record.SetLogAppendTime) instead of keeping the producer's times.
	LogAppendTime bool

	// TimestampBeforeMaxMs and TimestampAfterMaxMs are
	// message.timestamp.before.max.ms and .after.max.ms (KIP-937): with
	// CreateTime, a batch holding a record timestamped more than this
	// before (after) the broker's clock is refused with
	// ErrInvalidTimestamp. 0 means no limit; a negative value is a limit
	// of 0 ms.
	TimestampBeforeMaxMs int64
	TimestampAfterMaxMs  int64

	// CleanupPolicy is cleanup.policy: delete (retention by time and
	// size), compact (the cleaner keeps the latest record per key), both,
	// or neither (PolicyNone: every record kept). Zero means
	// delete.
	CleanupPolicy CleanupPolicy
	// DeleteRetentionMs is delete.retention.ms: how long a tombstone
	// survives after the cleaner first cleaned it (default 1 day). Zero
	// means the default; a negative value means no delay (the next pass
	// removes it).
	DeleteRetentionMs int64
	// MinCompactionLagMs is min.compaction.lag.ms: a segment whose newest
	// record is younger than this is not cleaned yet (default 0).
	MinCompactionLagMs int64
	// MaxCompactionLagMs is max.compaction.lag.ms: in a compacted log, the
	// active segment is rolled once its first batch is this old, and the
	// log is cleaned once its oldest uncleaned batch is, whatever the
	// dirty ratio (KIP-354). Zero or less means no limit.
	MaxCompactionLagMs int64
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: a compacted log
	// is cleaned when its dirty bytes are more than this fraction of its
	// cleanable bytes (default 0.5). Zero means the default; a negative
	// value means 0 (clean whenever anything is dirty).
	MinCleanableDirtyRatio float64
	// NoDownConversion is message.downconversion.enable=false: the broker
	// refuses Fetch v0-v3, which need the records converted, for this
	// log. Storage does not use it.
	NoDownConversion bool
}

// rollMs is how old the active segment's first batch may get before it is
// rolled: segment.ms, or max.compaction.lag.ms when the log is compacted
// and that is sooner (a record in the active segment cannot be cleaned).
func (c *Config) rollMs() int64 {
	if c.CleanupPolicy.Compact() && c.MaxCompactionLagMs > 0 {
		return min(c.SegmentMs, c.MaxCompactionLagMs)
	}
	return c.SegmentMs
}

// Errors returned by Log methods. The broker maps them to Kafka error codes;
// check them with errors.Is.
var (
	ErrStorage              = errors.New("storage error")              // KAFKA_STORAGE_ERROR; sticky after a failed write or fsync
	ErrCorruptBatch         = errors.New("corrupt record batch")       // CORRUPT_MESSAGE
	ErrInvalidRecord        = errors.New("invalid record")             // INVALID_RECORD
	ErrBatchTooLarge        = errors.New("record batch too large")     // MESSAGE_TOO_LARGE
	ErrOffsetOutOfRange     = errors.New("offset out of range")        // OFFSET_OUT_OF_RANGE
	ErrOutOfOrderSequence   = errors.New("out of order sequence")      // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")     // INVALID_PRODUCER_EPOCH
	ErrUnknownProducerID    = errors.New("unknown producer id")        // UNKNOWN_PRODUCER_ID
	ErrUnsupportedFeature   = errors.New("unsupported record feature") // UNSUPPORTED_FOR_MESSAGE_FORMAT
	ErrInvalidTxnState      = errors.New("invalid transaction state")  // INVALID_TXN_STATE: a non-transactional batch from a producer with a transaction open
	ErrFencedLeaderEpoch    = errors.New("fenced leader epoch")        // FENCED_LEADER_EPOCH: Append with an epoch older than the log's latest
	ErrInvalidTimestamp     = errors.New("invalid timestamp")          // INVALID_TIMESTAMP: a record outside message.timestamp.{before,after}.max.ms
	ErrClosed               = errors.New("log closed")
	// ErrCleanAborted reports a cleaner pass that stopped before
	// finishing: the log changed under it (truncation, retention, close)
	// or the cleaner was stopped. Nothing is lost; a later pass retries.
	ErrCleanAborted = errors.New("log cleaning aborted")
)

// RecordError names one record of a refused append: its index among the
// records the append carried (counting across its batches from 0), and
// why. Produce v8+ answers with them (KIP-467's RecordErrors).
type RecordError struct {
	Index   int32
	Message string
}

// RecordErrors is a refusal (ErrInvalidRecord, ErrInvalidTimestamp) that
// names the records at fault; errors.As finds it in an Append error.
type RecordErrors struct {
	Records []RecordError
	Err     error
}

func (e *RecordErrors) Error() string { return e.Err.Error() }
func (e *RecordErrors) Unwrap() error { return e.Err }

// Options open one partition log.
type Options struct {
	FS        vfs.FS
	Dir       string // partition directory, e.g. <data-dir>/<topic>-<partition>
	Topic     string
	Partition int32
	Config    Config
	Logger    *zap.Logger
	Now       func() time.Time // defaults to time.Now
	// OnAppend, if set, is called after every successful append with the
	// new log end offset, outside the log's lock. Used to wake long polls.
	OnAppend func(logEndOffset int64)
	// BeforeRoll, if set, is asked before a segment roll opens a new
	// file; an error refuses the roll (and the append that needed it)
	// as running out of file descriptors does, retriably. The broker uses
	// it to keep descriptors for connections.
	BeforeRoll func() error
}

// AppendResult describes an accepted append.
type AppendResult struct {
	BaseOffset     int64 // offset assigned to the first record
	LastOffset     int64 // offset of the last record
	LogStartOffset int64
	Duplicate      bool // the batch was a retry of one already in the log; offsets are the originals
	// LogAppendTime is the time the batches were stamped with (Unix ms)
	// when the log uses LogAppendTime, else -1.
	LogAppendTime int64
}

// Chunk is a read-only region of a segment file holding whole record batches
// (except possibly a partial batch at the end when the read was limited by
// maxBytes). The caller must call Release when done; until then the file
// stays open even if retention deletes the segment.
type Chunk struct {
	File vfs.File // implements vfs.Fder when backed by the OS, for sendfile
	Pos  int64
	Size int64
	// Below bounds the offsets of the chunk's records: all are below it
	// (a read_committed fetch is told the aborted transactions up to it).
	Below int64

	release func()
}

// Release returns the chunk's hold on its segment. Safe to call twice and on
// the zero Chunk.
func (c *Chunk) Release() {
	if c.release != nil {
		c.release()
		c.release = nil
	}
}

// EpochEntry is one leader-epoch cache entry: the epoch and the first offset
// written in it.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}
