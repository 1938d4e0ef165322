package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/gregor-log/gregor/broker"
)

// brokerFile is the YAML form of the broker flags (--config). Unknown keys
// are errors.
type brokerFile struct {
	BrokerID         *int32            `yaml:"broker-id"`
	Listen           *string           `yaml:"listen"`
	AdvertisedAddr   *string           `yaml:"advertised-addr"`
	DataDir          *string           `yaml:"data-dir"`
	HTTPAddr         *string           `yaml:"http-addr"`
	AutoCreateTopics *bool             `yaml:"auto-create-topics"`
	NumPartitions    *int32            `yaml:"num-partitions"`
	LogLevel         *string           `yaml:"log-level"`
	Set              map[string]string `yaml:"set"`
}

// propFlag collects repeated --set key=value flags.
type propFlag map[string]string

func (p propFlag) String() string { return fmt.Sprint(map[string]string(p)) }
func (p propFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[strings.TrimSpace(k)] = strings.TrimSpace(v)
	return nil
}

func runBroker(ctx context.Context, args []string) error {
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("gregor broker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gregor broker [flags]\n\nRuns a standalone broker. Flags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nBroker properties for --set (with defaults):\n")
		for _, kv := range broker.KnownProps() {
			fmt.Fprintf(fs.Output(), "  %s=%s\n", kv[0], kv[1])
		}
		fmt.Fprintf(fs.Output(), "Kafka's broker.id, num.partitions and auto.create.topics.enable are accepted too,\n"+
			"for the flags of the same meaning; a property given this way wins over the flag.\n")
	}
	configPath := fs.String("config", "", "YAML file with the same keys as these flags (and `set:` for properties); flags override it")
	brokerID := fs.Int("broker-id", int(cfg.BrokerID), "broker id")
	listen := fs.String("listen", cfg.Listen, "Kafka listener address")
	advertised := fs.String("advertised-addr", "", "address clients are told to connect to (default: the listen address)")
	dataDir := fs.String("data-dir", cfg.DataDir, "directory for partition logs and metadata")
	httpAddr := fs.String("http-addr", cfg.HTTPAddr, "address for /metrics and /healthz (empty disables)")
	autoCreate := fs.Bool("auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on metadata requests")
	numPartitions := fs.Int("num-partitions", int(cfg.NumPartitions), "partitions of auto-created topics")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	props := propFlag{}
	fs.Var(props, "set", "broker property key=value (repeatable), e.g. log.retention.ms=3600000")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err: err, reported: true}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *configPath != "" {
		if err := loadBrokerFile(*configPath, &cfg, logLevel, set); err != nil {
			return err
		}
	}
	if set["broker-id"] {
		cfg.BrokerID = int32(*brokerID)
	}
	if set["listen"] {
		cfg.Listen = *listen
	}
	if set["advertised-addr"] {
		cfg.AdvertisedAddr = *advertised
	}
	if set["data-dir"] {
		cfg.DataDir = *dataDir
	}
	if set["http-addr"] {
		cfg.HTTPAddr = *httpAddr
	}
	if set["auto-create-topics"] {
		cfg.AutoCreateTopics = *autoCreate
	}
	if set["num-partitions"] {
		cfg.NumPartitions = int32(*numPartitions)
	}
	for k, v := range props {
		cfg.Props[k] = v
	}

	logger, err := newLogger(*logLevel)
	if err != nil {
		return &usageError{err: err}
	}
	defer logger.Sync()

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

func loadBrokerFile(path string, cfg *broker.Config, logLevel *string, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read broker config: %w", err)
	}
	var f brokerFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("broker config %s: %w", path, err)
	}
	if f.BrokerID != nil {
		cfg.BrokerID = *f.BrokerID
	}
	if f.Listen != nil {
		cfg.Listen = *f.Listen
	}
	if f.AdvertisedAddr != nil {
		cfg.AdvertisedAddr = *f.AdvertisedAddr
	}
	if f.DataDir != nil {
		cfg.DataDir = *f.DataDir
	}
	if f.HTTPAddr != nil {
		cfg.HTTPAddr = *f.HTTPAddr
	}
	if f.AutoCreateTopics != nil {
		cfg.AutoCreateTopics = *f.AutoCreateTopics
	}
	if f.NumPartitions != nil {
		cfg.NumPartitions = *f.NumPartitions
	}
	if f.LogLevel != nil && !set["log-level"] {
		*logLevel = *f.LogLevel
	}
	for k, v := range f.Set {
		cfg.Props[k] = v
	}
	return nil
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: %w", level, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}
