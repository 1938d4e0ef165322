package e2e

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// procEnv returns the value of key in the environment of process pid as
// the process sees it (the first occurrence), and whether it is set.
func procEnv(t *testing.T, pid int, key string) (string, bool) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("read environment of %d: %v", pid, err)
	}
	for kv := range bytes.SplitSeq(raw, []byte{0}) {
		if v, ok := strings.CutPrefix(string(kv), key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The broker re-executes itself, keeping its pid, with GODEBUG's
// schedtrace set so that Go's sysmon does not poll every 20 µs through
// each request (cmd/gregor/sysmon.go, docs/operations.md "Go runtime"); a
// GODEBUG that names schedtrace is left as it is.
func TestBrokerGoRuntimeSetting(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	v, _ := procEnv(t, b.Pid(), "GODEBUG")
	if !slices.Contains(strings.Split(v, ","), "schedtrace=2147483647") {
		t.Errorf("broker runs with GODEBUG=%q", v)
	}
	opt := StartBroker(t, WithEnv("GODEBUG=schedtrace=0"))
	if v, _ := procEnv(t, opt.Pid(), "GODEBUG"); v != "schedtrace=0" {
		t.Errorf("broker started with GODEBUG=schedtrace=0 runs with GODEBUG=%q", v)
	}
}
