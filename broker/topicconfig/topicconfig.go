// Package topicconfig owns the table of topic-level configs gregor
// understands (retention.ms, segment.bytes, cleanup.policy, ...): their
// types, validation, the broker property that supplies each default, and the
// translation into a storage.Config. It does not store configs (broker/meta
// does) nor apply them to logs (broker does).
package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/storage"
)

// Type is a config value type, numbered as DescribeConfigs v3+ reports them.
type Type int8

// Config value types (Kafka's ConfigDef.Type as DescribeConfigs numbers them).
const (
	TypeBoolean Type = 1
	TypeString  Type = 2
	TypeInt     Type = 3
	TypeShort   Type = 4
	TypeLong    Type = 5
	TypeDouble  Type = 6
	TypeList    Type = 7
)

// Def describes one topic config.
type Def struct {
	Name string
	// BrokerKey is the broker property that supplies the default.
	BrokerKey string
	Type      Type
	Default   string
	Doc       string
	// validate checks a value that already parsed as Type.
	validate func(v string) error
}

// ErrInvalid marks an invalid config name or value (Kafka's INVALID_CONFIG).
var ErrInvalid = errors.New("invalid config")

func minInt(min int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

// ParseBool reads a boolean as Kafka spells it: true or false, in any
// case (not strconv.ParseBool's 1, t or F); ok is false for anything else.
func ParseBool(v string) (b, ok bool) {
	t, f := strings.EqualFold(v, "true"), strings.EqualFold(v, "false")
	return t, t || f
}

// isFalse reports whether v is a boolean false (ParseBool's spelling).
func isFalse(v string) bool {
	b, ok := ParseBool(v)
	return ok && !b
}

// falseOnly accepts false, in any case, as Kafka spells booleans.
func falseOnly(v string) error {
	if b, ok := ParseBool(v); ok && !b {
		return nil
	}
	return errors.New("must be false: there is no tiered storage")
}

// cleanupPolicy checks a cleanup.policy list. An empty one is neither
// policy: Kafka 3.x takes it, and its logs then keep every record (no
// retention, no compaction).
func cleanupPolicy(v string) error {
	if v == "" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		switch strings.TrimSpace(p) {
		case "delete", "compact":
		default:
			return fmt.Errorf("%q is not delete or compact", p)
		}
	}
	return nil
}

// kafkaVersions are the versions Kafka 3.x knows (MetadataVersion): each
// short version and each inter-broker protocol version.
var kafkaVersions = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range strings.Fields(`0.8.0 0.8.1 0.8.2 0.9.0
		0.10.0-IV0 0.10.0-IV1 0.10.1-IV0 0.10.1-IV1 0.10.1-IV2 0.10.2-IV0 0.11.0-IV0 0.11.0-IV1 0.11.0-IV2
		1.0-IV0 1.1-IV0 2.0-IV0 2.0-IV1 2.1-IV0 2.1-IV1 2.1-IV2 2.2-IV0 2.2-IV1 2.3-IV0 2.3-IV1 2.4-IV0 2.4-IV1
		2.5-IV0 2.6-IV0 2.7-IV0 2.7-IV1 2.7-IV2 2.8-IV0 2.8-IV1 3.0-IV0 3.0-IV1 3.1-IV0 3.2-IV0
		3.3-IV0 3.3-IV1 3.3-IV2 3.3-IV3 3.4-IV0 3.5-IV0 3.5-IV1 3.5-IV2 3.6-IV0 3.6-IV1 3.6-IV2
		3.7-IV0 3.7-IV1 3.7-IV2 3.7-IV3 3.7-IV4 3.8-IV0 3.9-IV0`) {
		m[v] = true
		m[strings.SplitN(v, "-", 2)[0]] = true // the short version
	}
	return m
}()

// kafkaVersion checks message.format.version as Kafka 3.x does, though the
// value has no effect here: the first three dot-separated parts of a 0.x
// version, the first two of others, must name a version Kafka knows
// (0.10.0.1 and 2.8.1 are 0.10.0 and 2.8; 2.9 and 3.0-IV7 are not).
func kafkaVersion(v string) error {
	parts := strings.Split(v, ".")
	n := 2
	if strings.HasPrefix(v, "0.") {
		n = 3
	}
	key := v
	if len(parts) > n {
		key = strings.Join(parts[:n], ".")
	}
	if !kafkaVersions[key] {
		return fmt.Errorf("%q is not a Kafka version such as 2.8 or 3.0-IV1", v)
	}
	return nil
}

const day = 24 * 60 * 60 * 1000

// compressionCodecs maps the compression.type values that recompress to
// their codecs.
var compressionCodecs = map[string]record.Codec{
	"uncompressed": record.CodecNone, "gzip": record.CodecGzip, "snappy": record.CodecSnappy,
	"lz4": record.CodecLZ4, "zstd": record.CodecZstd,
}

var defs = []Def{
	{Name: "cleanup.policy", BrokerKey: "log.cleanup.policy", Type: TypeList, Default: "delete", Doc: "delete, compact, or both; empty is neither: retention deletes nothing and nothing is compacted", validate: cleanupPolicy},
	{Name: "retention.ms", BrokerKey: "log.retention.ms", Type: TypeLong, Default: strconv.Itoa(7 * day), Doc: "delete segments older than this; -1 keeps forever", validate: minInt(-1)},
	{Name: "retention.bytes", BrokerKey: "log.retention.bytes", Type: TypeLong, Default: "-1", Doc: "delete oldest segments while a partition is larger; -1 (any negative value, as in Kafka) unlimited"},
	{Name: "segment.bytes", BrokerKey: "log.segment.bytes", Type: TypeInt, Default: strconv.Itoa(1 << 30), Doc: "segment file size before rolling", validate: minInt(14)},
	{Name: "segment.ms", BrokerKey: "log.roll.ms", Type: TypeLong, Default: strconv.Itoa(7 * day), Doc: "roll the active segment when records arrive this much newer (by timestamp) than its first batch", validate: minInt(1)},
	{Name: "flush.messages", BrokerKey: "log.flush.interval.messages", Type: TypeLong, Default: "9223372036854775807", Doc: "fsync after this many unflushed records", validate: minInt(1)},
	{Name: "flush.ms", BrokerKey: "log.flush.interval.ms", Type: TypeLong, Default: "1000", Doc: "fsync when unflushed data is older than this", validate: minInt(0)},
	{Name: "max.message.bytes", BrokerKey: "message.max.bytes", Type: TypeInt, Default: strconv.Itoa(1048588), Doc: "largest record batch accepted", validate: minInt(0)},
	{Name: "index.interval.bytes", BrokerKey: "log.index.interval.bytes", Type: TypeInt, Default: "4096", Doc: "bytes between sparse offset-index entries", validate: minInt(0)},
	{Name: "file.delete.delay.ms", BrokerKey: "log.segment.delete.delay.ms", Type: TypeLong, Default: "60000", Doc: "how long deleted segments stay readable", validate: minInt(0)},
	{Name: "delete.retention.ms", BrokerKey: "log.cleaner.delete.retention.ms", Type: TypeLong, Default: strconv.Itoa(day), Doc: "how long tombstones survive compaction", validate: minInt(0)},
	{Name: "min.compaction.lag.ms", BrokerKey: "log.cleaner.min.compaction.lag.ms", Type: TypeLong, Default: "0", Doc: "minimum age before a record may be compacted", validate: minInt(0)},
	{Name: "max.compaction.lag.ms", BrokerKey: "log.cleaner.max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", Doc: "maximum time a record stays uncompacted: the active segment is rolled at the first append after that (rolls happen on appends, as in Kafka) and the log cleaned by then, whatever its dirty ratio", validate: minInt(1)},
	{Name: "min.cleanable.dirty.ratio", BrokerKey: "log.cleaner.min.cleanable.ratio", Type: TypeDouble, Default: "0.5", Doc: "dirty ratio that triggers cleaning", validate: ratio01},
	{Name: "min.insync.replicas", BrokerKey: "min.insync.replicas", Type: TypeInt, Default: "1", Doc: "replicas that must acknowledge acks=all writes", validate: minInt(1)},
	{Name: "unclean.leader.election.enable", BrokerKey: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Doc: "allow out-of-sync replicas to become leader"},
	{Name: "compression.type", BrokerKey: "compression.type", Type: TypeString, Default: "producer", Doc: "producer stores batches as produced; uncompressed, gzip, snappy, lz4 or zstd recompresses every batch to that codec on append", validate: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{Name: "message.timestamp.type", BrokerKey: "log.message.timestamp.type", Type: TypeString, Default: "CreateTime", Doc: "CreateTime (the producer's record times) or LogAppendTime (the broker's clock when the batch is appended)", validate: oneOf("CreateTime", "LogAppendTime")},
	{Name: "message.timestamp.before.max.ms", BrokerKey: "log.message.timestamp.before.max.ms", Type: TypeLong, Default: maxLong, Doc: "with CreateTime, refuse (INVALID_TIMESTAMP) a batch holding a record timestamped more than this before the broker's clock", validate: minInt(0)},
	{Name: "message.timestamp.after.max.ms", BrokerKey: "log.message.timestamp.after.max.ms", Type: TypeLong, Default: maxLong, Doc: "with CreateTime, refuse (INVALID_TIMESTAMP) a batch holding a record timestamped more than this after the broker's clock", validate: minInt(0)},
	{Name: "message.timestamp.difference.max.ms", BrokerKey: "log.message.timestamp.difference.max.ms", Type: TypeLong, Default: maxLong, Doc: "deprecated in Kafka 3.6: limits both message.timestamp.before.max.ms and message.timestamp.after.max.ms", validate: minInt(0)},

	// Accepted and stored so that tools which copy or template Kafka
	// topic configs work, but with no effect in gregor, as each says.
	{Name: "segment.index.bytes", BrokerKey: "log.index.size.max.bytes", Type: TypeInt, Default: "10485760", Doc: "no effect: gregor's offset index is written whole when a segment closes, so it has no size limit to roll at", validate: minInt(4)},
	{Name: "segment.jitter.ms", BrokerKey: "log.roll.jitter.ms", Type: TypeLong, Default: "0", Doc: "no effect: segments roll at segment.ms exactly", validate: minInt(0)},
	{Name: "preallocate", BrokerKey: "log.preallocate", Type: TypeBoolean, Default: "false", Doc: "no effect: segment files grow as they are written"},
	{Name: "message.downconversion.enable", BrokerKey: "log.message.downconversion.enable", Type: TypeBoolean, Default: "true", Doc: "false refuses (UNSUPPORTED_VERSION) fetches older than v4, which need the records converted to message sets (format 0 or 1) in memory; true converts them"},
	{Name: "message.format.version", BrokerKey: "log.message.format.version", Type: TypeString, Default: "3.0-IV1", Doc: "no effect (deprecated in Kafka 3.0): batches are stored in the v2 format they arrive in", validate: kafkaVersion},
	{Name: "leader.replication.throttled.replicas", Type: TypeList, Default: "", Doc: "no effect: a standalone broker has no replication to throttle", validate: throttledReplicas},
	{Name: "follower.replication.throttled.replicas", Type: TypeList, Default: "", Doc: "no effect: a standalone broker has no replication to throttle", validate: throttledReplicas},
	{Name: "remote.storage.enable", Type: TypeBoolean, Default: "false", Doc: "tiered storage is not supported; only false is accepted", validate: falseOnly},
	{Name: "local.retention.ms", BrokerKey: "log.local.retention.ms", Type: TypeLong, Default: "-2", Doc: "no effect without tiered storage (-2: retention.ms applies)", validate: minInt(-2)},
	{Name: "local.retention.bytes", BrokerKey: "log.local.retention.bytes", Type: TypeLong, Default: "-2", Doc: "no effect without tiered storage (-2: retention.bytes applies)", validate: minInt(-2)},
	{Name: "remote.log.copy.disable", Type: TypeBoolean, Default: "false", Doc: "no effect without tiered storage"},
	{Name: "remote.log.delete.on.disable", Type: TypeBoolean, Default: "false", Doc: "no effect without tiered storage"},
	{Name: "compression.gzip.level", BrokerKey: "compression.gzip.level", Type: TypeInt, Default: "-1", Doc: "the level used when compression.type=gzip makes the broker compress a batch itself: -1 is the library's default (its level 5)", validate: gzipLevel},
	{Name: "compression.lz4.level", BrokerKey: "compression.lz4.level", Type: TypeInt, Default: "9", Doc: "the level used when compression.type=lz4 makes the broker compress a batch itself: 9, the default, is the fast compressor; levels above 9 compress as 9", validate: intRange(1, 17)},
	{Name: "compression.zstd.level", BrokerKey: "compression.zstd.level", Type: TypeInt, Default: "3", Doc: "the level used when compression.type=zstd makes the broker compress a batch itself: mapped to the nearest of four speeds: below 3, 3-5, 6-9, 10 and up", validate: intRange(-131072, 22)},
}

const maxLong = "9223372036854775807"

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return nil
	}
}

func gzipLevel(v string) error {
	if n, _ := strconv.ParseInt(v, 10, 64); n != -1 && (n < 1 || n > 9) {
		return errors.New("must be -1 or between 1 and 9")
	}
	return nil
}

// throttledReplicas checks a *.replication.throttled.replicas value: empty,
// "*", or partition:broker pairs separated by commas.
func throttledReplicas(v string) error {
	if v == "" || strings.TrimSpace(v) == "*" {
		return nil
	}
	for _, pair := range strings.Split(v, ",") {
		p, b, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if _, err := strconv.ParseUint(p, 10, 31); !ok || err != nil {
			return fmt.Errorf("%q is not partition:broker", pair)
		}
		if _, err := strconv.ParseUint(b, 10, 31); err != nil {
			return fmt.Errorf("%q is not partition:broker", pair)
		}
	}
	return nil
}

func ratio01(v string) error {
	if f, _ := strconv.ParseFloat(v, 64); !(f >= 0 && f <= 1) { // NaN too
		return errors.New("must be between 0 and 1")
	}
	return nil
}

var byName = func() map[string]*Def {
	m := make(map[string]*Def, len(defs))
	for i := range defs {
		m[defs[i].Name] = &defs[i]
	}
	return m
}()

var byBrokerKey = func() map[string]*Def {
	m := make(map[string]*Def, len(defs))
	for i := range defs {
		if defs[i].BrokerKey != "" {
			m[defs[i].BrokerKey] = &defs[i]
		}
	}
	return m
}()

// Defs returns every topic config definition, sorted by name.
func Defs() []Def {
	out := append([]Def(nil), defs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the definition of a topic config.
func Lookup(name string) (Def, bool) {
	d, ok := byName[name]
	if !ok {
		return Def{}, false
	}
	return *d, true
}

// LookupBrokerKey returns the topic config whose default a broker property
// supplies.
func LookupBrokerKey(key string) (Def, bool) {
	d, ok := byBrokerKey[key]
	if !ok {
		return Def{}, false
	}
	return *d, true
}

// checkType parses v as t.
func checkType(t Type, v string) error {
	var err error
	switch t {
	case TypeBoolean:
		if _, ok := ParseBool(v); !ok {
			err = errors.New("not true or false")
		}
	case TypeInt:
		_, err = strconv.ParseInt(v, 10, 32)
	case TypeShort:
		_, err = strconv.ParseInt(v, 10, 16)
	case TypeLong:
		_, err = strconv.ParseInt(v, 10, 64)
	case TypeDouble:
		_, err = strconv.ParseFloat(v, 64)
	}
	if err != nil {
		return fmt.Errorf("not a valid %s", t)
	}
	return nil
}

func (t Type) String() string {
	switch t {
	case TypeBoolean:
		return "boolean"
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeShort:
		return "short"
	case TypeLong:
		return "long"
	case TypeDouble:
		return "double"
	case TypeList:
		return "list"
	}
	return "unknown"
}

// Normalize returns a config value as it is checked and stored: without
// surrounding white space, which Kafka's ConfigDef trims from every type.
func Normalize(value string) string { return strings.TrimSpace(value) }

// Validate checks one topic config name and value. The error wraps
// ErrInvalid and names the config.
func Validate(name, value string) error {
	d, ok := byName[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q: %w", name, ErrInvalid)
	}
	return d.check(value)
}

// ValidateCombination checks what no config can on its own, in eff, a
// topic's effective configs (its own over the broker's defaults): as in
// Kafka, min.compaction.lag.ms may not exceed max.compaction.lag.ms. The
// error wraps ErrInvalid.
func ValidateCombination(eff map[string]string) error {
	return validateLags(eff)
}

// ValidateTopic is ValidateCombination for a topic whose own configs are
// own and effective ones eff: a conflict among the broker's defaults alone
// is the broker's (reported at its start), not the topic's, so it is
// checked only when the topic sets one of the configs in conflict.
func ValidateTopic(own, eff map[string]string) error {
	_, minSet := own["min.compaction.lag.ms"]
	_, maxSet := own["max.compaction.lag.ms"]
	if !minSet && !maxSet {
		return nil
	}
	return validateLags(eff)
}

func validateLags(eff map[string]string) error {
	minLag, err1 := strconv.ParseInt(eff["min.compaction.lag.ms"], 10, 64)
	maxLag, err2 := strconv.ParseInt(eff["max.compaction.lag.ms"], 10, 64)
	if err1 == nil && err2 == nil && minLag > maxLag {
		return fmt.Errorf("conflicting topic configs: min.compaction.lag.ms (%d) is greater than max.compaction.lag.ms (%d): %w", minLag, maxLag, ErrInvalid)
	}
	return nil
}

func (d *Def) check(value string) error {
	if err := checkType(d.Type, value); err != nil {
		return fmt.Errorf("config %s=%q: %v: %w", d.Name, value, err, ErrInvalid)
	}
	if d.validate != nil {
		if err := d.validate(value); err != nil {
			return fmt.Errorf("config %s=%q: %v: %w", d.Name, value, err, ErrInvalid)
		}
	}
	return nil
}

// ValidateBrokerDefault checks a broker property that supplies a topic
// config default. ok is false if key is not such a property.
func ValidateBrokerDefault(key, value string) (ok bool, err error) {
	d, found := byBrokerKey[key]
	if !found {
		return false, nil
	}
	if err := d.check(value); err != nil {
		return true, fmt.Errorf("broker property %s: %w", key, err)
	}
	return true, nil
}

// Defaults are the broker-level defaults for topic configs, keyed by topic
// config name. Build with NewDefaults.
type Defaults map[string]string

// NewDefaults returns the built-in defaults overridden by broker properties
// (keyed by broker property name, e.g. log.retention.ms). Properties that
// are not topic-config defaults are ignored. Values must have been validated.
func NewDefaults(brokerProps map[string]string) Defaults {
	d := make(Defaults, len(defs))
	for _, def := range defs {
		d[def.Name] = def.Default
	}
	for k, v := range brokerProps {
		if def, ok := byBrokerKey[k]; ok {
			d[def.Name] = v
		}
	}
	// log.roll.hours, as Kafka reads it, when log.roll.ms is not given.
	if _, ok := brokerProps["log.roll.ms"]; !ok {
		if n, err := strconv.ParseInt(brokerProps["log.roll.hours"], 10, 64); err == nil && n > 0 && n <= math.MaxInt32 {
			d["segment.ms"] = strconv.FormatInt(n*60*60*1000, 10)
		}
	}
	// Kafka also accepts log.retention.hours/minutes; honour them when the
	// ms form was not given.
	if _, ok := brokerProps["log.retention.ms"]; !ok {
		// Both are ints (validated as such), so the product fits; a
		// negative one means no limit, as in Kafka.
		retention := func(v string, unit int64) {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
				d["retention.ms"] = strconv.FormatInt(max(n*unit, -1), 10)
			}
		}
		if v, ok := brokerProps["log.retention.minutes"]; ok {
			retention(v, 60*1000)
		} else if v, ok := brokerProps["log.retention.hours"]; ok {
			retention(v, 60*60*1000)
		}
	}
	return d
}

// Effective merges a topic's explicit configs over the defaults.
func (d Defaults) Effective(topicConfigs map[string]string) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v
	}
	for k, v := range topicConfigs {
		out[k] = v
	}
	return out
}

// StorageConfig translates effective topic configs into a storage.Config.
func StorageConfig(eff map[string]string) storage.Config {
	i64 := func(k string) int64 {
		n, _ := strconv.ParseInt(eff[k], 10, 64)
		return n
	}
	// storage.Config reads 0 as "default" for these two; an explicit 0
	// is passed as a negative value, which storage reads as 0.
	deleteRetention := i64("delete.retention.ms")
	if deleteRetention == 0 {
		deleteRetention = -1
	}
	ratio, _ := strconv.ParseFloat(eff["min.cleanable.dirty.ratio"], 64)
	if ratio == 0 {
		ratio = -1
	}
	codec, codecOK := compressionCodecs[eff["compression.type"]] // absent for producer
	level := record.DefaultLevel
	if codecOK && codec != record.CodecNone && codec != record.CodecSnappy {
		level = int(i64("compression." + eff["compression.type"] + ".level"))
	}
	policy, err := storage.ParseCleanupPolicy(eff["cleanup.policy"])
	if err != nil {
		policy = storage.PolicyDelete // validated before it was stored
	}
	// The timestamp limits: Kafka's "no limit" (the largest long) is
	// storage's 0, an explicit 0 its negative. The deprecated difference
	// limit stands in for a before or after limit left at no limit, as in
	// Kafka (LogConfig), and does not override one that is set.
	limit := func(k string) int64 {
		if n, err := strconv.ParseInt(eff[k], 10, 64); err == nil && n >= 0 {
			return n
		}
		return math.MaxInt64 // absent: no limit
	}
	tsLimit := func(k string) int64 {
		n := limit(k)
		if n == math.MaxInt64 {
			n = limit("message.timestamp.difference.max.ms")
		}
		switch n {
		case math.MaxInt64:
			return 0
		case 0:
			return -1
		default:
			return n
		}
	}
	// storage.Config reads 0 as the default for these too; an explicit 0
	// goes as storage.ExplicitZero (retention, whose negative values mean
	// no limit) or -1 (the others).
	zeroAs := func(k string, zero int64) int64 {
		n, err := strconv.ParseInt(eff[k], 10, 64)
		switch {
		case err != nil:
			return 0 // the default
		case n == 0:
			return zero
		case n < 0:
			// Any negative value is "no limit" (retention.bytes takes
			// any long, as in Kafka); never the sentinel zero.
			return -1
		}
		return n
	}
	return storage.Config{
		TimestampBeforeMaxMs:   tsLimit("message.timestamp.before.max.ms"),
		TimestampAfterMaxMs:    tsLimit("message.timestamp.after.max.ms"),
		SegmentBytes:           i64("segment.bytes"),
		SegmentMs:              i64("segment.ms"),
		RetentionMs:            zeroAs("retention.ms", storage.ExplicitZero),
		RetentionBytes:         zeroAs("retention.bytes", storage.ExplicitZero),
		FlushMessages:          i64("flush.messages"),
		FlushMs:                zeroAs("flush.ms", -1),
		IndexIntervalBytes:     int32(zeroAs("index.interval.bytes", -1)),
		MaxMessageBytes:        int32(zeroAs("max.message.bytes", -1)),
		FileDeleteDelayMs:      zeroAs("file.delete.delay.ms", -1),
		CleanupPolicy:          policy,
		LogAppendTime:          eff["message.timestamp.type"] == "LogAppendTime",
		Recompress:             codecOK,
		RecompressTo:           codec,
		RecompressLevel:        level,
		DeleteRetentionMs:      deleteRetention,
		MinCompactionLagMs:     i64("min.compaction.lag.ms"),
		MaxCompactionLagMs:     i64("max.compaction.lag.ms"),
		MinCleanableDirtyRatio: ratio,
		NoDownConversion:       isFalse(eff["message.downconversion.enable"]),
	}
}
