package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/gregor-log/gregor/broker"
	"github.com/gregor-log/gregor/internal/config"
)

// Where a broker setting comes from, strongest first: a --set property
// given on the command line, a named flag on the command line, a set:
// property of the --config file, a named key of the file, the default.
// So the command line wins over the file, and within either a property
// under Kafka's name (num.partitions) wins over the flag of the same
// meaning (--num-partitions).

// propFlags maps the Kafka broker properties that are flags of gregor
// broker too to those flags' names.
var propFlags = map[string]string{
	"broker.id":                 "broker-id",
	"num.partitions":            "num-partitions",
	"auto.create.topics.enable": "auto-create-topics",
}

// checkedFlag is a flag value whose parse errors are collected rather than
// returned: the flag package would stop at the first bad value and print
// the whole usage after it, burying the message. Bad values are reported
// with every other configuration problem instead.
type checkedFlag[T any] struct {
	value T
	name  string
	parse func(string) (T, error)
	errs  *[]error
}

func (f *checkedFlag[T]) String() string { return fmt.Sprint(f.value) }

func (f *checkedFlag[T]) Set(s string) error {
	v, err := f.parse(s)
	if err != nil {
		*f.errs = append(*f.errs, fmt.Errorf("--%s %q: %v", f.name, s, err))
		return nil
	}
	f.value = v
	return nil
}

// IsBoolFlag lets a boolean flag be given without a value, as -x.
func (f *checkedFlag[T]) IsBoolFlag() bool {
	_, ok := any(f.value).(bool)
	return ok
}

func checkedVar[T any](fs *flag.FlagSet, errs *[]error, name string, def T, parse func(string) (T, error), usage string) *checkedFlag[T] {
	f := &checkedFlag[T]{value: def, name: name, parse: parse, errs: errs}
	fs.Var(f, name, usage)
	return f
}

func parseInt32(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 0, 32)
	if err != nil {
		return 0, errors.New("not a 32-bit integer")
	}
	return int32(n), nil
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("not true or false")
	}
	return b, nil
}

// propFlag collects repeated --set key=value flags; like checkedFlag, it
// collects malformed ones as errors.
type propFlag struct {
	props map[string]string
	errs  *[]error
}

func (p *propFlag) String() string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(p.props)
}

func (p *propFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if k = strings.TrimSpace(k); !ok || k == "" {
		*p.errs = append(*p.errs, fmt.Errorf("--set %q: want key=value", s))
		return nil
	}
	if _, dup := p.props[k]; dup {
		*p.errs = append(*p.errs, fmt.Errorf("--set %s: given twice", k))
		return nil
	}
	p.props[k] = strings.TrimSpace(v)
	return nil
}

// brokerSettings is what the command line and the config file make of a
// broker's configuration.
type brokerSettings struct {
	cfg      broker.Config
	logLevel zapcore.Level
	ignored  []string // Kafka properties of a .properties file that mean nothing here
}

// parseBrokerArgs turns the flags (and the --config file they name) into
// settings. Flag syntax errors are reported by the flag package, with the
// usage, on stderr; every other problem, from a bad value to an unknown
// property, is reported together in one *usageError. It returns
// flag.ErrHelp for -h.
func parseBrokerArgs(args []string, stderr io.Writer) (brokerSettings, error) {
	cfg := broker.DefaultConfig()
	var errs []error
	fs := flag.NewFlagSet("gregor broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gregor broker [flags]\n\nRuns a standalone broker. Flags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nBroker properties for --set (with defaults):\n")
		for _, kv := range broker.KnownProps() {
			fmt.Fprintf(fs.Output(), "  %s=%s\n", kv[0], kv[1])
		}
		fmt.Fprintf(fs.Output(), "Kafka's broker.id, num.partitions and auto.create.topics.enable are accepted too,\n"+
			"for the flags of the same meaning.\n\n"+
			"Flags and --set on the command line win over the --config file. Within either,\n"+
			"a property under Kafka's name wins over the flag of the same meaning.\n")
	}
	configPath := fs.String("config", "", "YAML `file` with the same keys as these flags, and set: for properties; or a Kafka server.properties (a name ending in .properties); the command line wins over it")
	brokerID := checkedVar(fs, &errs, "broker-id", cfg.BrokerID, parseInt32, "broker `id`")
	listen := fs.String("listen", cfg.Listen, "Kafka listener address")
	advertised := fs.String("advertised-addr", "", "`host:port` clients are told to connect to (default: the listen address; the machine's host name if the listen host is empty, 0.0.0.0 or ::)")
	dataDir := fs.String("data-dir", cfg.DataDir, "directory for partition logs and metadata")
	httpAddr := fs.String("http-addr", cfg.HTTPAddr, "address for /metrics and /healthz (empty disables)")
	autoCreate := checkedVar(fs, &errs, "auto-create-topics", cfg.AutoCreateTopics, parseBool, "create unknown topics on metadata requests")
	numPartitions := checkedVar(fs, &errs, "num-partitions", cfg.NumPartitions, parseInt32, "`number` of partitions of auto-created topics")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	props := &propFlag{props: map[string]string{}, errs: &errs}
	fs.Var(props, "set", "broker property `key=value` (repeatable), e.g. log.retention.ms=3600000")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return brokerSettings{}, err
		}
		return brokerSettings{}, &usageError{err: err, reported: true}
	}
	if fs.NArg() > 0 {
		return brokerSettings{}, usagef("unexpected arguments: %v%s", fs.Args(), boolHint(fs.Args()))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	for prop, flagName := range propFlags {
		if _, ok := props.props[prop]; ok {
			onCommandLine[flagName] = true
		}
	}

	level := "info"
	var ignored []string
	if *configPath != "" {
		var f config.Broker
		var ferrs []error
		if isPropertiesFile(*configPath) {
			f, ignored, ferrs = readKafkaProperties(*configPath)
		} else {
			f, ferrs = readBrokerFile(*configPath)
		}
		errs = append(errs, ferrs...)
		// A set: property whose flag is on the command line loses to it.
		applyBroker(&cfg, &level, f, func(prop string) bool {
			flagName, ok := propFlags[prop]
			return !ok || !onCommandLine[flagName]
		})
	}
	// The command line, as a file of the flags it names, applied after.
	cmdline := config.Broker{
		BrokerID:         given(onCommandLine["broker-id"], brokerID.value),
		Listen:           given(onCommandLine["listen"], *listen),
		AdvertisedAddr:   given(onCommandLine["advertised-addr"], *advertised),
		DataDir:          given(onCommandLine["data-dir"], *dataDir),
		HTTPAddr:         given(onCommandLine["http-addr"], *httpAddr),
		AutoCreateTopics: given(onCommandLine["auto-create-topics"], autoCreate.value),
		NumPartitions:    given(onCommandLine["num-partitions"], numPartitions.value),
		LogLevel:         given(onCommandLine["log-level"], config.LogLevel(*logLevel)),
		Set:              props.props, // broker.Config.Validate moves propFlags ones into their fields
	}
	applyBroker(&cfg, &level, cmdline, func(string) bool { return true })

	var lvl zapcore.Level
	if l, err := config.ParseLogLevel(level); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	} else {
		_ = lvl.UnmarshalText([]byte(l)) // one of zap's own names
	}
	// broker.Config.Validate checks the rest of the address.
	if host, _, err := net.SplitHostPort(cfg.AdvertisedAddr); err == nil && strings.ContainsAny(host, " \t") {
		errs = append(errs, fmt.Errorf("advertised-addr: %q: the host has white space in it", cfg.AdvertisedAddr))
	}
	if err := cfg.Validate(); err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			errs = append(errs, joined.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return brokerSettings{}, &usageError{err: configError(errs)}
	}
	return brokerSettings{cfg: cfg, logLevel: lvl, ignored: ignored}, nil
}

// configError is every configuration problem, one a line.
type configError []error

func (e configError) Error() string {
	var b strings.Builder
	b.WriteString("invalid broker config:")
	for _, err := range e {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	b.WriteString("\nrun gregor broker -h for the list of flags and properties")
	return b.String()
}

func (e configError) Unwrap() []error { return e }

// applyBroker applies the settings b gives to cfg and level, and those of
// its set: properties that take says to.
func applyBroker(cfg *broker.Config, level *string, b config.Broker, take func(prop string) bool) {
	setIf(&cfg.BrokerID, b.BrokerID)
	setIf(&cfg.Listen, b.Listen)
	setIf(&cfg.AdvertisedAddr, b.AdvertisedAddr)
	setIf(&cfg.DataDir, b.DataDir)
	setIf(&cfg.HTTPAddr, b.HTTPAddr)
	setIf(&cfg.AutoCreateTopics, b.AutoCreateTopics)
	setIf(&cfg.NumPartitions, b.NumPartitions)
	if b.LogLevel != nil {
		*level = string(*b.LogLevel)
	}
	for k, v := range b.Set {
		if take(k) {
			cfg.Props[k] = strings.TrimSpace(v)
		}
	}
}

// given is &v when a setting is given, nil when not.
func given[T any](isGiven bool, v T) *T {
	if !isGiven {
		return nil
	}
	return &v
}

// setIf sets *dst to *v unless v is nil.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func runBroker(ctx context.Context, args []string, stderr io.Writer) error {
	s, err := parseBrokerArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := s.cfg
	logger, err := newLoggerAt(s.logLevel)
	if err != nil {
		return err
	}
	defer logger.Sync()
	if len(s.ignored) > 0 {
		logger.Warn("the config file's Kafka properties that have no effect on a gregor broker are ignored",
			zap.Strings("properties", s.ignored))
	}

	if cfg.AdvertisedAddr == "" {
		adv, err := defaultAdvertisedAddr(cfg.Listen, os.Hostname)
		switch {
		case err != nil:
			logger.Warn("advertising 127.0.0.1 to clients, which only clients on this machine can reach",
				zap.String("listen", cfg.Listen), zap.Error(err),
				zap.String("hint", "set --advertised-addr to the host:port clients should connect to"))
		case adv != "":
			cfg.AdvertisedAddr = adv
			logger.Info("advertising this machine's host name to clients: the listen address has no host, or a wildcard one",
				zap.String("listen", cfg.Listen), zap.String("advertised", adv),
				zap.String("hint", "set --advertised-addr to the host:port clients should connect to if they cannot resolve this name"))
		}
	}
	b, err := broker.New(cfg, broker.Options{Logger: logger})
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- b.Serve() }()
	select {
	case err := <-serveErr:
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return errors.Join(err, b.Close(cctx))
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = b.Close(cctx)
	<-serveErr
	return err
}

// defaultAdvertisedAddr is the address to advertise when --advertised-addr
// is not given, for a listen address with no host or a wildcard one
// (0.0.0.0, ::): as Kafka does, the machine's host name, since 127.0.0.1
// would send clients on other machines to their own loopback. It returns
// "" for any other listen address, which is advertised as it is, and an
// error when the host name is unknown or the port is 0 (picked when the
// listener binds); the broker then advertises 127.0.0.1.
func defaultAdvertisedAddr(listen string, hostname func() (string, error)) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", nil // Validate reports it
	}
	if host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return "", nil
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("listen port %q is not known before the listener binds", port)
	}
	name, err := hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	if name == "" || strings.ContainsAny(name, " \t") {
		return "", fmt.Errorf("host name %q cannot be advertised", name)
	}
	return net.JoinHostPort(name, port), nil
}

// newLogger returns the JSON logger of the long-running commands at the
// named level.
func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: %w", level, err)
	}
	return newLoggerAt(lvl)
}

func newLoggerAt(lvl zapcore.Level) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}

// readBrokerFile reads the --config file. A file that cannot be read or is
// not YAML is one error; otherwise every problem is reported, each with the
// file, line and key (internal/config decodes it, as it does pipeline.yaml).
func readBrokerFile(path string) (config.Broker, []error) {
	var f config.Broker
	data, err := os.ReadFile(path)
	if err != nil {
		return f, []error{fmt.Errorf("config file: %w", err)}
	}
	var errs []error
	if err := config.DecodeStrict(path, data, &f); err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			return f, []error{err} // not YAML: nothing else to say
		}
		errs = ce.Errors()
	}
	// The set: properties, one by one and with their lines, also when
	// the rest of the file failed to decode (f is then empty). Those
	// with a problem are left out, so it is not reported again without
	// its line.
	perrs, bad := checkFileProps(path, data)
	for k := range bad {
		delete(f.Set, k)
	}
	return f, append(errs, perrs...)
}

// checkFileProps validates each scalar property of a broker config file's
// set: map on its own, each problem prefixed with the file and the line
// of its key, and returns the problems and the properties that had one.
func checkFileProps(path string, data []byte) ([]error, map[string]bool) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	var set *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "set" && root.Content[i+1].Kind == yaml.MappingNode {
			set = root.Content[i+1]
		}
	}
	if set == nil {
		return nil, nil
	}
	var errs []error
	bad := map[string]bool{}
	for i := 0; i+1 < len(set.Content); i += 2 {
		k, v := set.Content[i], set.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			continue // DecodeStrict said so
		}
		if perrs := filePropErrors(path, k.Line, k.Value, v.Value); len(perrs) > 0 {
			bad[k.Value] = true
			errs = append(errs, perrs...)
		}
	}
	return errs, bad
}

// filePropErrors validates one property of a config file on its own and
// returns its problems, each prefixed with the file and line.
func filePropErrors(path string, line int, key, value string) []error {
	cfg := broker.DefaultConfig()
	cfg.Props = map[string]string{key: value}
	err := cfg.Validate()
	if err == nil {
		return nil
	}
	all := []error{err}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		all = joined.Unwrap()
	}
	out := make([]error, 0, len(all))
	for _, e := range all {
		out = append(out, fmt.Errorf("%s:%d: %w", path, line, e))
	}
	return out
}
