package main

import (
	"strings"
	"testing"

	"github.com/gregor-log/gregor/broker/brokertest"
)

// TestConfigCommands: config alter and describe change and show the
// dynamic broker configs of a gregor broker.
func TestConfigCommands(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, nil).Addr().String()
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
