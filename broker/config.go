package broker

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/topicconfig"
)

// Config is a broker's configuration. Build it with DefaultConfig, override
// fields, then call Validate, which reports every problem at once.
type Config struct {
	BrokerID         int32
	Listen           string // host:port for the Kafka listener
	AdvertisedAddr   string // host:port clients are told to connect to; defaults to Listen
	DataDir          string
	HTTPAddr         string // /metrics and /healthz; empty disables
	AutoCreateTopics bool
	NumPartitions    int32 // partitions of auto-created topics and CreateTopics with -1
	// Props are Kafka broker properties (log.retention.ms, ...). Topic
	// config defaults come from here; see KnownProps.
	Props map[string]string

	// writeTimeout overrides the const of that name (tests).
	writeTimeout time.Duration
}

// writeTimeoutOrDefault is how long a response write may go without
// progress: writeTimeout unless a test set another.
func (c *Config) writeTimeoutOrDefault() time.Duration {
	if c.writeTimeout > 0 {
		return c.writeTimeout
	}
	return writeTimeout
}

// DefaultConfig returns the configuration of a broker started with no flags.
func DefaultConfig() Config {
	return Config{
		BrokerID:         0,
		Listen:           "127.0.0.1:9092",
		DataDir:          "./gregor-data",
		HTTPAddr:         "127.0.0.1:9644",
		AutoCreateTopics: true,
		NumPartitions:    1,
		Props:            map[string]string{},
	}
}

// brokerProps are broker properties that are not topic-config defaults.
var brokerProps = map[string]struct {
	def string
	min int64
	doc string
}{
	"socket.request.max.bytes":                  {"104857600", 1024, "largest request frame accepted"},
	"fetch.max.bytes":                           {"57671680", 1024, "most record bytes one fetch response carries, whatever the client asks (at least one batch); a client's smaller MaxBytes wins"},
	"socket.send.buffer.bytes":                  {"524288", -1, "SO_SNDBUF of client connections (the kernel doubles it and caps it at net.core.wmem_max); -1 leaves it to the kernel's autotuning. Fixed, fetch responses reach local consumers sooner; raise it for consumers far away: one connection has at most about twice this in flight"},
	"socket.receive.buffer.bytes":               {"-1", -1, "SO_RCVBUF of client connections (capped at net.core.rmem_max); -1 leaves it to the kernel's autotuning, which took produce requests faster than fixed buffers did"},
	"log.retention.check.interval.ms":           {"300000", 1, "how often retention and segment rolling run"},
	"log.retention.hours":                       {"168", math.MinInt32, "retention.ms default in hours (log.retention.ms wins); negative: no limit"},
	"log.retention.minutes":                     {"10080", math.MinInt32, "retention.ms default in minutes (log.retention.ms wins); negative: no limit"},
	"log.roll.hours":                            {"168", 1, "segment.ms default in hours (log.roll.ms wins)"},
	"log.roll.jitter.hours":                     {"0", 0, "no effect, as log.roll.jitter.ms (log.roll.jitter.ms wins)"},
	"connections.max.idle.ms":                   {"600000", -1, "close connections that send nothing for this long; 0 or -1 never"},
	"max.connections":                           {"2147483647", 1, "most client connections open at once; past it the broker accepts no more until one closes (new clients wait in the listen backlog)"},
	"max.connections.per.ip":                    {"2147483647", 1, "most connections open at once from one client host; past it new ones from that host are closed at once"},
	"queued.max.requests":                       {"500", 1, "requests one connection may have awaiting their responses before the broker stops reading from it (at most 65536 whatever the setting)"},
	"queued.max.request.bytes":                  {"536870912", -1, "request bytes (of frames over 64 KiB) all connections together may hold while reading and handling them; past it, connections wait before reading the next large frame; -1 unbounded (Kafka's default)"},
	"max.incremental.fetch.session.cache.slots": {"1000", 0, "most fetch sessions (KIP-227) the broker holds; past that, fetches are answered without one; 0 turns them off"},
	"producer.id.expiration.ms":                 {"86400000", 1, "forget an idempotent producer whose newest batch in a partition is older than this (checked with retention)"},
	"log.pagecache.retain.bytes":                {"1073741824", -1, "flushed data more than this many bytes behind a partition's end is dropped from the page cache (POSIX_FADV_DONTNEED), so that writes stay cheap once memory is full; -1 keeps everything cached, as Kafka does"},

	// Consumer groups (broker/group).
	"group.initial.rebalance.delay.ms":    {"0", 0, "how long the first rebalance of an empty group waits for more members; 0 (Kafka's default is 3000) completes it as soon as every known member joined, so members started together may see a second rebalance"},
	"group.min.session.timeout.ms":        {"6000", 1, "smallest session timeout a group member may ask for"},
	"group.max.session.timeout.ms":        {"1800000", 1, "largest session timeout a group member may ask for"},
	"group.max.size":                      {"2147483647", 1, "most members (including ones given an id but not yet joined) a group may have"},
	"offsets.topic.num.partitions":        {"50", 1, "partitions of __consumer_offsets when it is created (an existing topic keeps its count)"},
	"offsets.retention.minutes":           {"10080", 1, "committed offsets of a group that has been empty this long are deleted"},
	"offsets.retention.check.interval.ms": {"600000", 1, "how often expired committed offsets are looked for"},
	"offset.metadata.max.bytes":           {"4096", 0, "largest metadata string of a committed offset"},

	// Transactions (broker/txn).
	"transaction.max.timeout.ms":                                  {"900000", 1, "largest transaction timeout a producer may ask for"},
	"transaction.abort.timed.out.transaction.cleanup.interval.ms": {"10000", 1, "how often transactions open past their timeout are aborted (and their producers fenced)"},
	"transactional.id.expiration.ms":                              {"604800000", 1, "a transactional id with no transaction open and no change for this long is forgotten"},

	// Log cleaner (broker/storage).
	"log.cleaner.backoff.ms":              {"15000", 1, "how long the log cleaner sleeps when no compacted log needs cleaning"},
	"log.cleaner.io.max.bytes.per.second": {"0", 0, "the log cleaner's read plus write rate limit in bytes per second; 0 is unlimited"},
	"log.cleaner.io.buffer.size":          {"524288", 4096, "size of the log cleaner's read buffer and of its write buffer"},
	"log.cleaner.dedupe.buffer.size":      {"134217728", 1048576, "memory for the log cleaner's offset map, 24 bytes a key: bounds the keys one pass deduplicates"},
}

// brokerBoolProps are boolean broker properties ("true" or "false", in
// any case, as Kafka takes them).
var brokerBoolProps = map[string]struct {
	def string
	doc string
}{
	"delete.topic.enable": {"true", "false refuses every DeleteTopics (TOPIC_DELETION_DISABLED), as in Kafka"},
	"log.cleaner.enable":  {"true", "false stops the log cleaner: compacted topics are not compacted (their tombstones and transaction markers stay too)"},
}

// boolProp returns a boolean broker property, falling back to its
// default. Validate has checked and lower-cased it.
func (c *Config) boolProp(key string) bool {
	v, ok := c.Props[key]
	if !ok {
		v = brokerBoolProps[key].def
	}
	return v == "true"
}

// brokerPropType is a broker property's type as DescribeConfigs reports it
// (Kafka's, for the properties Kafka has): INT unless listed here.
var brokerPropType = map[string]topicconfig.Type{
	"broker.id":                           topicconfig.TypeInt,
	"listeners":                           topicconfig.TypeString,
	"log.dirs":                            topicconfig.TypeString,
	"auto.create.topics.enable":           topicconfig.TypeBoolean,
	"log.retention.check.interval.ms":     topicconfig.TypeLong,
	"connections.max.idle.ms":             topicconfig.TypeLong,
	"queued.max.request.bytes":            topicconfig.TypeLong,
	"log.pagecache.retain.bytes":          topicconfig.TypeLong,
	"offsets.retention.check.interval.ms": topicconfig.TypeLong,
	"log.cleaner.backoff.ms":              topicconfig.TypeLong,
	"log.cleaner.dedupe.buffer.size":      topicconfig.TypeLong,
	"log.cleaner.io.max.bytes.per.second": topicconfig.TypeDouble,
	"delete.topic.enable":                 topicconfig.TypeBoolean,
	"log.cleaner.enable":                  topicconfig.TypeBoolean,
}

// brokerConfigType returns the type of broker property name: that of the
// topic config it is the default of, or brokerPropType's.
func brokerConfigType(name string) topicconfig.Type {
	if d, ok := topicconfig.LookupBrokerKey(name); ok {
		return d.Type
	}
	if t, ok := brokerPropType[name]; ok {
		return t
	}
	return topicconfig.TypeInt
}

// KnownProps lists every broker property the broker understands with its
// default, sorted by name.
func KnownProps() [][2]string {
	var out [][2]string
	for k, v := range brokerProps {
		out = append(out, [2]string{k, v.def})
	}
	for k, v := range brokerBoolProps {
		out = append(out, [2]string{k, v.def})
	}
	for _, d := range topicconfig.Defs() {
		if d.BrokerKey != "" {
			out = append(out, [2]string{d.BrokerKey, d.Default})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// prop returns a broker property as an int64, falling back to its default.
func (c *Config) prop(key string) int64 {
	v, ok := c.Props[key]
	if !ok {
		if p, ok := brokerProps[key]; ok {
			v = p.def
		} else if d, ok := topicconfig.LookupBrokerKey(key); ok {
			v = d.Default
		}
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// propMs returns a millisecond broker property as a duration, capped at
// 100 years so that it fits.
func (c *Config) propMs(key string) time.Duration {
	const century = 100 * 365 * 24 * time.Hour
	return time.Duration(min(c.prop(key), int64(century/time.Millisecond))) * time.Millisecond
}

// maxRequestBytes is socket.request.max.bytes.
func (c *Config) maxRequestBytes() int32 { return int32(c.prop("socket.request.max.bytes")) }

// maxIdle is connections.max.idle.ms.
func (c *Config) maxIdle() time.Duration {
	return c.propMs("connections.max.idle.ms")
}

// retentionCheckInterval is log.retention.check.interval.ms.
func (c *Config) retentionCheckInterval() time.Duration {
	return c.propMs("log.retention.check.interval.ms")
}

// cleanerConfig is the log cleaner's configuration (log.cleaner.*).
func (c *Config) cleanerConfig() storage.CleanerConfig {
	return storage.CleanerConfig{
		Backoff:             time.Duration(min(c.prop("log.cleaner.backoff.ms"), int64(24*time.Hour/time.Millisecond))) * time.Millisecond,
		IOMaxBytesPerSecond: c.prop("log.cleaner.io.max.bytes.per.second"),
		IOBufferSize:        int(min(c.prop("log.cleaner.io.buffer.size"), 1<<30)),
		DedupeBufferSize:    c.prop("log.cleaner.dedupe.buffer.size"),
		Disabled:            !c.boolProp("log.cleaner.enable"),
	}
}

// groupConfig is the group coordinator's configuration. Millisecond and
// minute properties are capped at 100 years so they fit a time.Duration.
func (c *Config) groupConfig() group.Config {
	const century = 100 * 365 * 24 * time.Hour
	ms := c.propMs
	g := group.DefaultConfig()
	g.NumPartitions = int32(min(c.prop("offsets.topic.num.partitions"), maxPartitions))
	g.MinSessionTimeout = ms("group.min.session.timeout.ms")
	g.MaxSessionTimeout = ms("group.max.session.timeout.ms")
	g.InitialRebalanceDelay = ms("group.initial.rebalance.delay.ms")
	g.MaxGroupSize = int(min(c.prop("group.max.size"), 1<<31-1))
	g.MaxOffsetMetadataBytes = int(min(c.prop("offset.metadata.max.bytes"), 1<<31-1))
	g.OffsetsRetention = time.Duration(min(c.prop("offsets.retention.minutes"), int64(century/time.Minute))) * time.Minute
	g.RetentionCheckInterval = ms("offsets.retention.check.interval.ms")
	return g
}

// maxPartitions is the most partitions a topic may have.
const maxPartitions = 100000

// propAliases are Kafka broker properties that are Config fields here (and
// flags of gregor broker), accepted under Kafka's names too so that a
// server.properties habit works: --set num.partitions=3.
var propAliases = map[string]string{
	"broker.id":                 "broker-id",
	"num.partitions":            "num-partitions",
	"auto.create.topics.enable": "auto-create-topics",
}

// resolveAliases moves the propAliases properties into their fields.
func (c *Config) resolveAliases() []error {
	var errs []error
	for key := range propAliases {
		v, ok := c.Props[key]
		if !ok {
			continue
		}
		delete(c.Props, key)
		switch key {
		case "auto.create.topics.enable":
			b, ok := topicconfig.ParseBool(v)
			if !ok {
				errs = append(errs, fmt.Errorf("property %s=%q: not true or false", key, v))
				continue
			}
			c.AutoCreateTopics = b
		default:
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				errs = append(errs, fmt.Errorf("property %s=%q: not a 32-bit integer", key, v))
				continue
			}
			if key == "broker.id" {
				c.BrokerID = int32(n)
			} else {
				c.NumPartitions = int32(n)
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// Validate reports every problem with the configuration, joined. It first
// moves properties given under Kafka's names for fields (num.partitions,
// auto.create.topics.enable, broker.id) into those fields.
func (c *Config) Validate() error {
	errs := c.resolveAliases()
	if c.BrokerID < 0 {
		errs = append(errs, fmt.Errorf("broker-id: %d is negative", c.BrokerID))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q: %v", c.Listen, err))
	}
	if c.AdvertisedAddr != "" {
		host, port, err := net.SplitHostPort(c.AdvertisedAddr)
		if err != nil {
			errs = append(errs, fmt.Errorf("advertised-addr: %q: %v", c.AdvertisedAddr, err))
		} else if host == "" || host == "0.0.0.0" || host == "::" {
			errs = append(errs, fmt.Errorf("advertised-addr: %q: clients need a routable host", c.AdvertisedAddr))
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("advertised-addr: %q: bad port", c.AdvertisedAddr))
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http-addr: %q: %v", c.HTTPAddr, err))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: must be set"))
	}
	if c.NumPartitions < 1 || c.NumPartitions > maxPartitions {
		errs = append(errs, fmt.Errorf("num-partitions: %d, must be from 1 to %d", c.NumPartitions, maxPartitions))
	}
	keys := make([]string, 0, len(c.Props))
	for k := range c.Props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Props[k]
		if _, ok := brokerBoolProps[k]; ok {
			switch b := strings.ToLower(strings.TrimSpace(v)); b {
			case "true", "false":
				c.Props[k] = b
			default:
				errs = append(errs, fmt.Errorf("property %s=%q: must be true or false", k, v))
			}
			continue
		}
		if p, ok := brokerProps[k]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil && brokerConfigType(k) == topicconfig.TypeDouble {
				// A double in Kafka, whose default (and "unlimited") is
				// Double.MAX_VALUE, 1.7976931348623157E308: whole bytes
				// here, anything from 2^63 on unlimited (0).
				if f, ferr := strconv.ParseFloat(v, 64); ferr == nil && f >= 0 {
					n, err = int64(f), nil
					if f >= math.MaxInt64 {
						n = 0
					}
					c.Props[k] = strconv.FormatInt(n, 10)
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("property %s=%q: not an integer", k, v))
			} else if n < p.min {
				errs = append(errs, fmt.Errorf("property %s=%q: must be at least %d", k, v, p.min))
			} else if brokerConfigType(k) == topicconfig.TypeInt && n > math.MaxInt32 {
				errs = append(errs, fmt.Errorf("property %s=%q: must be at most %d (an int, as in Kafka)", k, v, math.MaxInt32))
			} else if isSockBuf(k) && (n > 1<<30 || n >= 0 && n < sockBufMin) {
				errs = append(errs, fmt.Errorf("property %s=%q: must be -1 (the kernel's autotuning) or from %d to %d", k, v, sockBufMin, 1<<30))
			}
			continue
		}
		if ok, err := topicconfig.ValidateBrokerDefault(k, v); ok {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, fmt.Errorf("property %s: unknown broker property", k))
	}
	if lo, hi := c.prop("group.min.session.timeout.ms"), c.prop("group.max.session.timeout.ms"); lo > hi {
		errs = append(errs, fmt.Errorf("property group.min.session.timeout.ms=%d is above group.max.session.timeout.ms=%d", lo, hi))
	}
	if err := topicconfig.ValidateCombination(topicconfig.NewDefaults(c.Props)); err != nil {
		errs = append(errs, fmt.Errorf("properties log.cleaner.min.compaction.lag.ms and log.cleaner.max.compaction.lag.ms: %w", err))
	}
	if n := c.prop("offsets.topic.num.partitions"); n > maxPartitions {
		errs = append(errs, fmt.Errorf("property offsets.topic.num.partitions=%d: the limit is %d", n, maxPartitions))
	}
	return errors.Join(errs...)
}
