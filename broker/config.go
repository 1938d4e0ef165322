package broker

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

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
	"socket.request.max.bytes":         {"104857600", 1024, "largest request frame accepted"},
	"log.retention.check.interval.ms":  {"300000", 1, "how often retention and segment rolling run"},
	"log.retention.hours":              {"168", 1, "retention.ms default in hours (log.retention.ms wins)"},
	"log.retention.minutes":            {"10080", 1, "retention.ms default in minutes (log.retention.ms wins)"},
	"queued.max.requests":              {"500", 1, "in-flight requests per connection before reading pauses"},
	"group.initial.rebalance.delay.ms": {"0", 0, "reserved for consumer groups"},
}

// KnownProps lists every broker property the broker understands with its
// default, sorted by name.
func KnownProps() [][2]string {
	var out [][2]string
	for k, v := range brokerProps {
		out = append(out, [2]string{k, v.def})
	}
	for _, d := range topicconfig.Defs() {
		out = append(out, [2]string{d.BrokerKey, d.Default})
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

// maxRequestBytes is socket.request.max.bytes.
func (c *Config) maxRequestBytes() int32 { return int32(c.prop("socket.request.max.bytes")) }

// retentionCheckInterval is log.retention.check.interval.ms.
func (c *Config) retentionCheckInterval() time.Duration {
	return time.Duration(c.prop("log.retention.check.interval.ms")) * time.Millisecond
}

// Validate reports every problem with the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
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
	if c.NumPartitions < 1 {
		errs = append(errs, fmt.Errorf("num-partitions: %d, must be at least 1", c.NumPartitions))
	}
	keys := make([]string, 0, len(c.Props))
	for k := range c.Props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Props[k]
		if p, ok := brokerProps[k]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("property %s=%q: not an integer", k, v))
			} else if n < p.min {
				errs = append(errs, fmt.Errorf("property %s=%q: must be at least %d", k, v, p.min))
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
	return errors.Join(errs...)
}
