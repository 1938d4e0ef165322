// Package brokertest runs an in-process gregor broker for the tests and
// benchmarks of other packages.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker"
)

// Start runs a broker on a loopback port with no HTTP listener and a data
// dir of its own (mutate, if not nil, changes the config first), closes it
// when tb ends, and returns it.
func Start(tb testing.TB, mutate func(*broker.Config)) *broker.Broker {
	tb.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "", tb.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := broker.New(cfg, broker.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve() }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			tb.Errorf("close broker: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return b
}
