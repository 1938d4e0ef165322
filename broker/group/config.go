package group

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// OffsetsTopic is the internal topic that holds committed offsets and group
// metadata.
const OffsetsTopic = "__consumer_offsets"

// DefaultMaxMemberMetadataBytes bounds what one member may send in a
// JoinGroup: the sum of its protocol names and metadata. Kafka has no such
// limit; without one, a member could make the coordinator hold (and the
// leader receive, and the group record store) arbitrarily large blobs. A
// consumer's subscription is typically well under 1 KiB.
const DefaultMaxMemberMetadataBytes = 1 << 20

// Config configures a Coordinator and the groups it runs. Build it with
// DefaultConfig, override fields, then Validate.
type Config struct {
	// NumPartitions is the partition count of the offsets topic
	// (offsets.topic.num.partitions). A group lives in partition
	// PartitionFor(group, NumPartitions).
	NumPartitions int32
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for (group.min.session.timeout.ms,
	// group.max.session.timeout.ms); others get INVALID_SESSION_TIMEOUT.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay (group.initial.rebalance.delay.ms) holds the
	// first rebalance of an empty group open this long after each new
	// member, up to the rebalance timeout, so members starting together
	// land in one generation. Zero (the default) completes the first
	// rebalance as soon as every known member has joined.
	InitialRebalanceDelay time.Duration
	// MaxGroupSize (group.max.size) caps members plus members that were
	// given an id but have not joined yet; more get GROUP_MAX_SIZE_REACHED.
	MaxGroupSize int
	// MaxMemberMetadataBytes caps one member's protocol names plus metadata
	// in a JoinGroup; larger joins get INVALID_REQUEST.
	MaxMemberMetadataBytes int
	// MaxOffsetMetadataBytes (offset.metadata.max.bytes) caps the metadata
	// string of one committed offset; larger get OFFSET_METADATA_TOO_LARGE.
	MaxOffsetMetadataBytes int
	// OffsetsRetention (offsets.retention.minutes): the committed offsets
	// of a group that has been empty this long are deleted; the group
	// goes with them.
	OffsetsRetention time.Duration
	// RetentionCheckInterval (offsets.retention.check.interval.ms) is how
	// often expired offsets are looked for.
	RetentionCheckInterval time.Duration
	// NewMemberID returns a fresh member id for a client (or static
	// instance) id; defaults to "<prefix>-<random UUID>" as Kafka does.
	// Tests replace it to get predictable ids.
	NewMemberID func(prefix string) string
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		NumPartitions:          50,
		MinSessionTimeout:      6 * time.Second,
		MaxSessionTimeout:      30 * time.Minute,
		InitialRebalanceDelay:  0,
		MaxGroupSize:           1<<31 - 1,
		MaxMemberMetadataBytes: DefaultMaxMemberMetadataBytes,
		MaxOffsetMetadataBytes: 4096,
		OffsetsRetention:       7 * 24 * time.Hour,
		RetentionCheckInterval: 10 * time.Minute,
		NewMemberID:            randomMemberID,
	}
}

// Validate reports every problem with the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.NumPartitions < 1 {
		errs = append(errs, fmt.Errorf("offsets.topic.num.partitions: %d, must be at least 1", c.NumPartitions))
	}
	if c.MinSessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("group.min.session.timeout.ms: %v, must be positive", c.MinSessionTimeout))
	}
	if c.MaxSessionTimeout < c.MinSessionTimeout {
		errs = append(errs, fmt.Errorf("group.max.session.timeout.ms: %v is below group.min.session.timeout.ms %v", c.MaxSessionTimeout, c.MinSessionTimeout))
	}
	if c.InitialRebalanceDelay < 0 {
		errs = append(errs, fmt.Errorf("group.initial.rebalance.delay.ms: %v is negative", c.InitialRebalanceDelay))
	}
	if c.MaxGroupSize < 1 {
		errs = append(errs, fmt.Errorf("group.max.size: %d, must be at least 1", c.MaxGroupSize))
	}
	if c.MaxMemberMetadataBytes < 1 {
		errs = append(errs, fmt.Errorf("max member metadata bytes: %d, must be at least 1", c.MaxMemberMetadataBytes))
	}
	if c.MaxOffsetMetadataBytes < 0 {
		errs = append(errs, fmt.Errorf("offset.metadata.max.bytes: %d is negative", c.MaxOffsetMetadataBytes))
	}
	if c.OffsetsRetention <= 0 {
		errs = append(errs, fmt.Errorf("offsets.retention.minutes: %v, must be positive", c.OffsetsRetention))
	}
	if c.RetentionCheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("offsets.retention.check.interval.ms: %v, must be positive", c.RetentionCheckInterval))
	}
	if c.NewMemberID == nil {
		errs = append(errs, errors.New("NewMemberID: must be set"))
	}
	return errors.Join(errs...)
}

// randomMemberID is Kafka's member id format: the client id (or instance
// id), a dash, and a random UUID.
func randomMemberID(prefix string) string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails on supported platforms
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
