package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker"
)

// startGregor runs an in-process gregor broker for the test and returns
// its address.
func startGregor(t *testing.T) string {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	b, err := broker.New(cfg, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close broker: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return b.Addr().String()
}

// TestConfigCommands: config alter and describe change and show the
// dynamic broker configs of a gregor broker.
func TestConfigCommands(t *testing.T) {
	t.Parallel()
	b := startGregor(t)
	mustRun(t, "", "topic", "create", "orders", "-b", b)
	var desc string
	// Dynamic broker configs: a cluster-wide default reaches a topic
	// that does not set the config; the broker's own wins over it.
	mustRun(t, "", "config", "alter", "--default", "-b", b, "--set", "log.retention.ms=3600000")
	if desc = mustRun(t, "", "topic", "describe", "orders", "-b", b); !containsFields(desc, "retention.ms=3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG") {
		t.Errorf("config alter --default not applied to the topic:\n%s", desc)
	}
	mustRun(t, "", "config", "alter", "--broker", "0", "-b", b, "--set", "log.retention.ms=7200000")
	if desc = mustRun(t, "", "config", "describe", "-b", b); !containsFields(desc, "log.retention.ms=7200000", "DYNAMIC_BROKER_CONFIG", "dynamic") {
		t.Errorf("config describe:\n%s", desc)
	}
	if desc = mustRun(t, "", "config", "describe", "--default", "-b", b); !containsFields(desc, "log.retention.ms=3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG", "dynamic") {
		t.Errorf("config describe --default:\n%s", desc)
	}
	mustFail(t, "INVALID_REQUEST", "config", "alter", "--default", "-b", b, "--set", "num.partitions=3")
	if code, _, stderr := runCLI(t, "", "config", "alter", "-b", b, "--set", "log.retention.ms=1"); code != 2 || !strings.Contains(stderr, "--default") {
		t.Errorf("config alter naming no entity: exit %d, %q", code, stderr)
	}
	mustRun(t, "", "config", "alter", "--broker", "0", "-b", b, "--delete", "log.retention.ms")
	mustRun(t, "", "config", "alter", "--default", "-b", b, "--delete", "log.retention.ms")
	if desc = mustRun(t, "", "config", "describe", "-b", b); !strings.Contains(desc, "no dynamic configs") {
		t.Errorf("config describe after the deletes:\n%s", desc)
	}

}
