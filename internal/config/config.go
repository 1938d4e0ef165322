// Package config defines pipeline.yaml, the one configuration file of a
// gregor pipeline, and is the only place its format is defined: the YAML
// keys, their defaults and their validation.
//
// Load (or Parse) decodes strictly: an unknown key anywhere is an error,
// and so is a value of the wrong type. Defaults are then filled in and the
// whole file is validated; every problem is reported at once, each with the
// file name and the path of the offending key, for example
//
//	pipeline.yaml: agents[1].inputs[0].multiline.start: invalid regexp: missing closing ]: `[a-`
//
// Top-level sections:
//
//	brokers:   the bootstrap list every component uses unless it names its own
//	broker:    settings of the broker that `gregor up` starts (used by a later issue)
//	agents:    log-file tailers (package agent)
//	appender:  the in-process appender (package appender; its Config is embedded as is)
//
// Sections for the collector and the sink will be added here when those
// components exist. The package owns parsing and validation only; it does
// not start anything.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gregor-log/gregor/appender"
)

// DefaultBroker is the bootstrap address used when pipeline.yaml names none.
const DefaultBroker = "127.0.0.1:9092"

// Pipeline is a whole pipeline.yaml.
type Pipeline struct {
	// Brokers is the bootstrap list (host:port) used by every component
	// that does not set its own. Default: [127.0.0.1:9092].
	Brokers []string `yaml:"brokers"`
	// Broker configures the broker `gregor up` runs in process. Optional;
	// nil when the section is absent.
	Broker *Broker `yaml:"broker"`
	// Agents are the log-file tailers `gregor agent` runs.
	Agents []Agent `yaml:"agents"`
	// Appender is the configuration of the in-process appender (see
	// package appender). Nil when the section is absent; when present it
	// starts from appender.DefaultConfig() and its brokers default to
	// Brokers.
	Appender *appender.Config `yaml:"appender"`
}

// Broker is the configuration file of `gregor broker --config`, and the
// broker: section of pipeline.yaml (for `gregor up`, which a later issue
// builds: there the keys are decoded and checked, not yet used). The keys
// are the broker's flag names; set: holds Kafka broker properties. A key
// the file does not give is nil, so that `http-addr: ""` (no HTTP server)
// differs from no http-addr at all.
type Broker struct {
	BrokerID         *int32            `yaml:"broker-id"`
	Listen           *string           `yaml:"listen"`
	AdvertisedAddr   *string           `yaml:"advertised-addr"`
	DataDir          *string           `yaml:"data-dir"`
	HTTPAddr         *string           `yaml:"http-addr"`
	AutoCreateTopics *bool             `yaml:"auto-create-topics"`
	NumPartitions    *int32            `yaml:"num-partitions"`
	LogLevel         *LogLevel         `yaml:"log-level"`
	Set              map[string]string `yaml:"set"`
}

// LogLevel is a log level: debug, info, warn or error, in lower case.
type LogLevel string

// ParseLogLevel accepts the four levels in any case (INFO, as log4j
// writes it, too) and returns them in lower case.
func ParseLogLevel(s string) (LogLevel, error) {
	switch l := strings.ToLower(s); l {
	case "debug", "info", "warn", "error":
		return LogLevel(l), nil
	}
	return "", fmt.Errorf("%q: must be debug, info, warn or error", s)
}

// UnmarshalYAML refuses anything but the four levels.
func (l *LogLevel) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("%q: must be debug, info, warn or error", n.Value)
	}
	v, err := ParseLogLevel(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Agent is one log-file tailer: a set of inputs shipped by one producer,
// with one checkpoint file.
type Agent struct {
	// Name identifies the agent in metrics, logs and `gregor agent status`.
	// Default: "agent" for the first agent, "agent-N" for the N-th (from 0).
	// Set it explicitly when running several: the default data dir is
	// derived from it.
	Name string `yaml:"name"`
	// Brokers overrides the top-level bootstrap list.
	Brokers []string `yaml:"brokers"`
	// DataDir holds the checkpoint file. Default: ./gregor-agent/NAME.
	DataDir string `yaml:"data-dir"`
	// HTTPAddr serves /metrics, /healthz and /status. Empty disables it.
	HTTPAddr string `yaml:"http-addr"`
	// Hostname is sent in the "host" header of every record. Default: the
	// machine's host name.
	Hostname string `yaml:"hostname"`
	// Producer configures delivery to the brokers.
	Producer Producer `yaml:"producer"`
	// RescanInterval is how often the globs are expanded again, as a
	// fallback for missed or overflowed file-system events. Default 10s.
	RescanInterval time.Duration `yaml:"rescan-interval"`
	// PollInterval is how often an idle open file is checked for growth
	// when no event woke it (file systems without inotify). Default 1s.
	PollInterval time.Duration `yaml:"poll-interval"`
	// CheckpointInterval is how often the checkpoint file is rewritten
	// when it changed. Default 1s.
	CheckpointInterval time.Duration `yaml:"checkpoint-interval"`
	// CloseInactive closes a file that has been at its end this long. A
	// file still matched by a glob is reopened when it grows; one that was
	// renamed away or deleted is finished (a last line without a newline
	// is then shipped). Default 5m.
	CloseInactive time.Duration `yaml:"close-inactive"`
	// ForgetAfter drops the checkpoint of a file not seen by any scan for
	// this long. Default 24h.
	ForgetAfter time.Duration `yaml:"forget-after"`
	// ShutdownTimeout bounds how long stopping waits for in-flight records
	// to be acknowledged before the last checkpoint is written. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	// Inputs are the file sets to tail. At least one.
	Inputs []Input `yaml:"inputs"`
}

// Producer configures how an agent delivers records.
type Producer struct {
	// Acks is all (the default), 1 or 0. Only all keeps the idempotent
	// producer, and only all makes the checkpoint mean "stored".
	Acks string `yaml:"acks"`
	// Compression is none (default), gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
	// Linger is how long a partition's batch may wait for more records.
	// Default 10ms.
	Linger time.Duration `yaml:"linger"`
	// MaxInFlightBytes bounds the record bytes read but not yet
	// acknowledged. When it is reached, reading stops until the broker
	// catches up: the files are the buffer. Records in flight are also
	// capped at MaxInFlightBytes/256, so that short lines do not cost more
	// in record structures than their bytes. The agent's heap is about
	// three times this. Default 8MiB.
	MaxInFlightBytes ByteSize `yaml:"max-in-flight-bytes"`
	// BatchMaxBytes is the largest record batch sent (at most the broker's
	// message.max.bytes). A topic whose max.message.bytes is lower is sent
	// batches of that size instead, once it has refused one. Default
	// 1000000.
	BatchMaxBytes ByteSize `yaml:"batch-max-bytes"`
	// ClientID is the Kafka client id. Default gregor-agent.
	ClientID string `yaml:"client-id"`
}

// Input is one set of files shipped to one topic.
type Input struct {
	// Paths are glob patterns (filepath.Match syntax; wildcards may appear
	// in directory parts too). Relative patterns are relative to the
	// agent's working directory. At least one.
	Paths []string `yaml:"paths"`
	// Exclude drops matched files: a pattern with a "/" is matched against
	// the whole path, one without against the base name.
	Exclude []string `yaml:"exclude"`
	// Topic receives the records. Required.
	Topic string `yaml:"topic"`
	// Key is the record key: "none" (default), "path" (the file's path) or
	// "field:NAME" (a field of the parsed record; needs the json or regex
	// parser).
	Key string `yaml:"key"`
	// Parser turns a line into a record value.
	Parser Parser `yaml:"parser"`
	// Fields are static fields added to every record: as headers with the
	// raw parser, as JSON fields (that a field of the line overrides) with
	// the json and regex parsers. A JSON line keeps its own bytes; the
	// fields it lacks are appended to it, in name order. A key of
	// field:NAME falls back to the static field NAME.
	Fields map[string]string `yaml:"fields"`
	// Multiline joins several lines into one record. Absent: one line is
	// one record.
	Multiline *Multiline `yaml:"multiline"`
	// MaxLineBytes is the longest line (and multiline record) shipped;
	// longer ones are cut to this size and counted. Default 512KiB.
	MaxLineBytes ByteSize `yaml:"max-line-bytes"`
}

// Parser kinds.
const (
	ParserRaw   = "raw"
	ParserJSON  = "json"
	ParserRegex = "regex"
)

// Parser says how a line becomes a record value.
type Parser struct {
	// Type is raw (default: the line as is), json (the line must be a JSON
	// object) or regex (the named groups of Pattern become JSON fields).
	Type string `yaml:"type"`
	// Pattern is the regular expression (RE2 syntax) of the regex parser;
	// it needs at least one named group (?P<name>...).
	Pattern string `yaml:"pattern"`
}

// Multiline configures joining lines into records. Exactly one of Start
// and Continuation is set.
type Multiline struct {
	// Start matches the first line of a record; other lines are appended
	// to the record before them.
	Start string `yaml:"start"`
	// Continuation matches lines that belong to the record before them;
	// other lines start a new record.
	Continuation string `yaml:"continuation"`
	// MaxLines caps the lines of one record; the next line starts a new
	// one. Default 500.
	MaxLines int `yaml:"max-lines"`
	// FlushTimeout ships a pending record when no line arrived for this
	// long. Default 2s.
	FlushTimeout time.Duration `yaml:"flush-timeout"`
}

// Defaults filled in by Parse.
const (
	DefaultAgentName          = "agent"
	DefaultRescanInterval     = 10 * time.Second
	DefaultPollInterval       = time.Second
	DefaultCheckpointInterval = time.Second
	DefaultCloseInactive      = 5 * time.Minute
	DefaultForgetAfter        = 24 * time.Hour
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultAcks               = "all"
	DefaultCompression        = "none"
	DefaultLinger             = 10 * time.Millisecond
	DefaultMaxInFlightBytes   = 8 << 20
	DefaultBatchMaxBytes      = 1000000
	DefaultClientID           = "gregor-agent"
	DefaultMaxLineBytes       = 512 << 10
	DefaultMultilineMaxLines  = 500
	DefaultMultilineFlush     = 2 * time.Second
	// RecordOverheadBytes is what MaxLineBytes must leave free in a batch
	// for the record framing and the host/path/offset headers.
	RecordOverheadBytes = 8 << 10
)

// DefaultDataDir returns the data dir of an agent without one.
func DefaultDataDir(agentName string) string {
	return filepath.Join(".", "gregor-agent", agentName)
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path locates the key, e.g. "agents[0].inputs[1].topic"; empty for
	// the file as a whole.
	Path string
	// Line is the line in the file, 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

// Error is every problem found in one file. Load and Parse return it (as
// *Error) for any invalid content.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// Errors returns each problem as an error of its own, worded as Error
// words it.
func (e *Error) Errors() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = errors.New((&Error{File: e.File, Problems: []Problem{p}}).Error())
	}
	return errs
}

// problems accumulates Problems.
type problems []Problem

func (ps *problems) add(path string, line int, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Load reads and parses the pipeline file at path.
func Load(path string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data (named name in messages) strictly, fills in defaults
// and validates the result. Any problem makes it return a nil Pipeline and
// an *Error listing every problem found.
func Parse(name string, data []byte) (*Pipeline, error) {
	root, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		// An empty file is an empty pipeline.
		p := &Pipeline{}
		if ps := p.finish(); len(ps) > 0 {
			return nil, &Error{File: name, Problems: ps}
		}
		return p, nil
	}
	var ps problems
	checkNode(root, pipelineType, "", &ps)

	p := &Pipeline{}
	// The appender section starts from its defaults; yaml.v3 decodes into
	// the existing value of a non-nil pointer.
	p.Appender = new(appender.Config)
	*p.Appender = appender.DefaultConfig()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(p); err != nil && len(ps) == 0 {
		// checkNode found nothing, so this is something it does not model;
		// report it as the decoder words it.
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				ps.add("", 0, "%s", msg)
			}
		} else {
			ps.add("", 0, "%v", err)
		}
	}
	if !hasKey(root, "appender") {
		p.Appender = nil
	}
	ps = append(ps, p.finish()...)
	if len(ps) > 0 {
		return nil, &Error{File: name, Problems: ps}
	}
	return p, nil
}

// hasKey reports whether mapping node n has the key.
func hasKey(n *yaml.Node, key string) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// finish fills in defaults and validates, returning every problem.
func (p *Pipeline) finish() []Problem {
	p.SetDefaults()
	return p.Validate()
}

// SetDefaults fills every unset field with its default. Parse calls it;
// call it yourself on a Pipeline built in code before Validate.
func (p *Pipeline) SetDefaults() {
	if len(p.Brokers) == 0 {
		p.Brokers = []string{DefaultBroker}
	}
	for i := range p.Agents {
		p.Agents[i].setDefaults(i, p.Brokers)
	}
	if p.Appender != nil && len(p.Appender.Brokers) == 0 {
		p.Appender.Brokers = append([]string(nil), p.Brokers...)
	}
}

func (a *Agent) setDefaults(index int, brokers []string) {
	if a.Name == "" {
		a.Name = DefaultAgentName
		if index > 0 {
			a.Name = fmt.Sprintf("%s-%d", DefaultAgentName, index)
		}
	}
	if len(a.Brokers) == 0 {
		a.Brokers = append([]string(nil), brokers...)
	}
	if a.DataDir == "" {
		a.DataDir = DefaultDataDir(a.Name)
	}
	setDur(&a.RescanInterval, DefaultRescanInterval)
	setDur(&a.PollInterval, DefaultPollInterval)
	setDur(&a.CheckpointInterval, DefaultCheckpointInterval)
	setDur(&a.CloseInactive, DefaultCloseInactive)
	setDur(&a.ForgetAfter, DefaultForgetAfter)
	setDur(&a.ShutdownTimeout, DefaultShutdownTimeout)
	pr := &a.Producer
	if pr.Acks == "" {
		pr.Acks = DefaultAcks
	}
	if pr.Compression == "" {
		pr.Compression = DefaultCompression
	}
	setDur(&pr.Linger, DefaultLinger)
	if pr.MaxInFlightBytes == 0 {
		pr.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if pr.BatchMaxBytes == 0 {
		pr.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if pr.ClientID == "" {
		pr.ClientID = DefaultClientID
	}
	for i := range a.Inputs {
		in := &a.Inputs[i]
		if in.Key == "" {
			in.Key = "none"
		}
		if in.Parser.Type == "" {
			in.Parser.Type = ParserRaw
		}
		if in.MaxLineBytes == 0 {
			in.MaxLineBytes = DefaultMaxLineBytes
		}
		if m := in.Multiline; m != nil {
			if m.MaxLines == 0 {
				m.MaxLines = DefaultMultilineMaxLines
			}
			setDur(&m.FlushTimeout, DefaultMultilineFlush)
		}
	}
}

// setDur sets *d to def when it is zero (unset).
func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate checks a Pipeline whose defaults are filled in and returns
// every problem found (nil when it is valid).
func (p *Pipeline) Validate() []Problem {
	var ps problems
	validateBrokers(&ps, "brokers", p.Brokers)
	if b := p.Broker; b != nil {
		if b.Listen != nil && *b.Listen != "" {
			validateAddr(&ps, "broker.listen", *b.Listen)
		}
		if b.NumPartitions != nil && *b.NumPartitions < 1 {
			ps.add("broker.num-partitions", 0, "must be at least 1, got %d", *b.NumPartitions)
		}
	}
	names := map[string]int{}
	dirs := map[string]int{}
	addrs := map[string]int{}
	for i := range p.Agents {
		a := &p.Agents[i]
		path := fmt.Sprintf("agents[%d]", i)
		a.validate(&ps, path)
		if j, dup := names[a.Name]; dup {
			ps.add(path+".name", 0, "%q is also the name of agents[%d]", a.Name, j)
		} else {
			names[a.Name] = i
		}
		dir := filepath.Clean(a.DataDir)
		if j, dup := dirs[dir]; dup {
			ps.add(path+".data-dir", 0, "%q is also the data dir of agents[%d]", a.DataDir, j)
		} else {
			dirs[dir] = i
		}
		if a.HTTPAddr != "" {
			if j, dup := addrs[a.HTTPAddr]; dup {
				ps.add(path+".http-addr", 0, "%q is also the http-addr of agents[%d]", a.HTTPAddr, j)
			} else {
				addrs[a.HTTPAddr] = i
			}
		}
	}
	if p.Appender != nil {
		if err := p.Appender.Validate(); err != nil {
			addAppenderProblems(&ps, err)
		}
	}
	return ps
}

// addAppenderProblems turns the appender's joined *ConfigErrors into
// Problems under "appender.".
func addAppenderProblems(ps *problems, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *appender.ConfigError
		if errors.As(e, &ce) {
			ps.add("appender."+ce.Field, 0, "%s", ce.Reason)
		} else {
			ps.add("appender", 0, "%v", e)
		}
	}
}

var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (a *Agent) validate(ps *problems, path string) {
	if !agentNameRE.MatchString(a.Name) {
		ps.add(path+".name", 0, "%q: only letters, digits, '.', '_' and '-' are allowed", a.Name)
	}
	validateBrokers(ps, path+".brokers", a.Brokers)
	if a.HTTPAddr != "" {
		validateAddr(ps, path+".http-addr", a.HTTPAddr)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			ps.add(path+"."+key, 0, "must be positive, got %v", d)
		}
	}
	positive("rescan-interval", a.RescanInterval)
	positive("poll-interval", a.PollInterval)
	positive("checkpoint-interval", a.CheckpointInterval)
	positive("close-inactive", a.CloseInactive)
	positive("forget-after", a.ForgetAfter)
	positive("shutdown-timeout", a.ShutdownTimeout)

	pr := &a.Producer
	pp := path + ".producer"
	switch pr.Acks {
	case "all", "-1", "1", "0":
	default:
		ps.add(pp+".acks", 0, "must be all, 1 or 0, got %q", pr.Acks)
	}
	switch pr.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		ps.add(pp+".compression", 0, "must be none, gzip, snappy, lz4 or zstd, got %q", pr.Compression)
	}
	if pr.Linger < 0 {
		ps.add(pp+".linger", 0, "must not be negative, got %v", pr.Linger)
	}
	if pr.BatchMaxBytes < 2*RecordOverheadBytes || pr.BatchMaxBytes > 1<<30 {
		ps.add(pp+".batch-max-bytes", 0, "must be between %d and %d, got %d", 2*RecordOverheadBytes, 1<<30, pr.BatchMaxBytes)
	}
	if pr.MaxInFlightBytes < pr.BatchMaxBytes {
		ps.add(pp+".max-in-flight-bytes", 0, "%d is less than batch-max-bytes %d", pr.MaxInFlightBytes, pr.BatchMaxBytes)
	}

	if len(a.Inputs) == 0 {
		ps.add(path+".inputs", 0, "at least one input is required")
	}
	for i := range a.Inputs {
		a.Inputs[i].validate(ps, fmt.Sprintf("%s.inputs[%d]", path, i), pr.BatchMaxBytes)
	}
}

func (in *Input) validate(ps *problems, path string, batchMax ByteSize) {
	if len(in.Paths) == 0 {
		ps.add(path+".paths", 0, "at least one glob pattern is required")
	}
	for i, pat := range in.Paths {
		if pat == "" {
			ps.add(fmt.Sprintf("%s.paths[%d]", path, i), 0, "empty pattern")
		} else if _, err := filepath.Match(pat, ""); err != nil {
			ps.add(fmt.Sprintf("%s.paths[%d]", path, i), 0, "bad glob pattern %q: %v", pat, err)
		}
	}
	for i, pat := range in.Exclude {
		if _, err := filepath.Match(pat, ""); err != nil || pat == "" {
			ps.add(fmt.Sprintf("%s.exclude[%d]", path, i), 0, "bad glob pattern %q", pat)
		}
	}
	if in.Topic == "" {
		ps.add(path+".topic", 0, "required")
	} else if err := ValidTopicName(in.Topic); err != nil {
		ps.add(path+".topic", 0, "%v", err)
	}

	var groups []string
	switch in.Parser.Type {
	case ParserRaw, ParserJSON:
		if in.Parser.Pattern != "" {
			ps.add(path+".parser.pattern", 0, "only the regex parser takes a pattern")
		}
	case ParserRegex:
		if in.Parser.Pattern == "" {
			ps.add(path+".parser.pattern", 0, "required with type: regex")
			break
		}
		re, err := regexp.Compile(in.Parser.Pattern)
		if err != nil {
			ps.add(path+".parser.pattern", 0, "invalid regexp: %v", unwrapRegexpErr(err))
			break
		}
		for _, g := range re.SubexpNames() {
			if g != "" {
				groups = append(groups, g)
			}
		}
		if len(groups) == 0 {
			ps.add(path+".parser.pattern", 0, "has no named group (?P<name>...)")
		}
	default:
		ps.add(path+".parser.type", 0, "must be raw, json or regex, got %q", in.Parser.Type)
	}

	kind, field, err := ParseKey(in.Key)
	if err != nil {
		ps.add(path+".key", 0, "%v", err)
	} else if kind == KeyField {
		switch in.Parser.Type {
		case ParserRaw:
			ps.add(path+".key", 0, "%q needs the json or regex parser; a raw line has no fields", in.Key)
		case ParserRegex:
			if len(groups) > 0 && !contains(groups, field) {
				ps.add(path+".key", 0, "%q: the parser pattern has no group named %q (it has %s)", in.Key, field, strings.Join(groups, ", "))
			}
		}
	}

	keys := make([]string, 0, len(in.Fields))
	for k := range in.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			ps.add(path+".fields", 0, "empty field name")
		}
	}

	if in.MaxLineBytes < 1 {
		ps.add(path+".max-line-bytes", 0, "must be positive, got %d", in.MaxLineBytes)
	} else if in.MaxLineBytes > batchMax-RecordOverheadBytes {
		ps.add(path+".max-line-bytes", 0, "%d does not fit a batch: producer.batch-max-bytes %d leaves room for %d",
			in.MaxLineBytes, batchMax, batchMax-RecordOverheadBytes)
	}

	if m := in.Multiline; m != nil {
		mp := path + ".multiline"
		switch {
		case m.Start == "" && m.Continuation == "":
			ps.add(mp, 0, "set start or continuation")
		case m.Start != "" && m.Continuation != "":
			ps.add(mp, 0, "set only one of start and continuation")
		}
		if m.Start != "" {
			if _, err := regexp.Compile(m.Start); err != nil {
				ps.add(mp+".start", 0, "invalid regexp: %v", unwrapRegexpErr(err))
			}
		}
		if m.Continuation != "" {
			if _, err := regexp.Compile(m.Continuation); err != nil {
				ps.add(mp+".continuation", 0, "invalid regexp: %v", unwrapRegexpErr(err))
			}
		}
		if m.MaxLines < 1 {
			ps.add(mp+".max-lines", 0, "must be at least 1, got %d", m.MaxLines)
		}
		if m.FlushTimeout <= 0 {
			ps.add(mp+".flush-timeout", 0, "must be positive, got %v", m.FlushTimeout)
		}
	}
}

// unwrapRegexpErr drops regexp's "error parsing regexp: " prefix.
func unwrapRegexpErr(err error) string {
	var se *syntaxError
	if errors.As(err, &se) {
		return se.Code.String() + ": `" + se.Expr + "`"
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// KeyKind is what a record key is made from.
type KeyKind int

// Key kinds.
const (
	KeyNone  KeyKind = iota // no key
	KeyPath                 // the file's path
	KeyField                // a field of the parsed record
)

// ErrBadKey is returned by ParseKey for an unknown key spec.
var ErrBadKey = errors.New(`must be none, path or field:NAME`)

// ParseKey parses an input's key setting: "none", "path" or "field:NAME".
func ParseKey(s string) (kind KeyKind, field string, err error) {
	switch {
	case s == "" || s == "none":
		return KeyNone, "", nil
	case s == "path":
		return KeyPath, "", nil
	case strings.HasPrefix(s, "field:") && len(s) > len("field:"):
		return KeyField, strings.TrimPrefix(s, "field:"), nil
	}
	return 0, "", fmt.Errorf("%q: %w", s, ErrBadKey)
}

// ValidTopicName applies Kafka's topic name rules.
func ValidTopicName(name string) error {
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

func validateBrokers(ps *problems, path string, brokers []string) {
	if len(brokers) == 0 {
		ps.add(path, 0, "at least one broker address is required")
	}
	for i, b := range brokers {
		validateAddr(ps, fmt.Sprintf("%s[%d]", path, i), b)
	}
}

func validateAddr(ps *problems, path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.add(path, 0, "%q is not host:port", addr)
		return
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add(path, 0, "%q: bad port %q", addr, port)
	}
}
