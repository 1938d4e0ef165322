package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runCLI runs the gregor command line in process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{nil, 2, "", "Usage: gregor <command>"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"-h"}, 0, "Commands:", ""},
		{[]string{"help"}, 0, "perf", ""},
		{[]string{"version"}, 0, "gregor ", ""},
		{[]string{"version", "extra"}, 2, "", "unexpected argument"},
		{[]string{"topic"}, 2, "", "Subcommands:"},
		{[]string{"topic", "-h"}, 0, "alter-config", ""},
		{[]string{"topic", "frob"}, 2, "", `unknown subcommand "frob"`},
		{[]string{"topic", "create", "-h"}, 0, "", "--partitions"},
		{[]string{"topic", "create"}, 2, "", "expected 1 argument"},
		{[]string{"topic", "create", "t", "--partitions", "0"}, 2, "", "--partitions 0"},
		{[]string{"topic", "create", "t", "--config", "nokv"}, 2, "", "not key=value"},
		{[]string{"topic", "alter-config", "t"}, 2, "", "nothing to do"},
		{[]string{"topic", "add-partitions", "t"}, 2, "", "--partitions 0"},
		{[]string{"produce"}, 2, "", "--topic is required"},
		{[]string{"produce", "-t", "x", "--acks", "2"}, 2, "", `--acks "2"`},
		{[]string{"produce", "-t", "x", "--compression", "brotli"}, 2, "", "brotli"},
		{[]string{"produce", "-t", "x", "--header", "novalue"}, 2, "", "not key=value"},
		{[]string{"consume", "-t", "x", "--from", "yesterday"}, 2, "", "bad --from"},
		{[]string{"consume", "-t", "x", "--format", "%q"}, 2, "", "unknown directive"},
		{[]string{"consume", "-h"}, 0, "", "--follow"},
		{[]string{"perf"}, 2, "", "Subcommands:"},
		{[]string{"perf", "produce", "-t", "x"}, 2, "", "--records must be positive"},
		{[]string{"perf", "produce", "-t", "x", "--records", "1", "--acks", "1", "--idempotent=true"}, 2, "", "needs --acks all"},
		{[]string{"perf", "e2e", "-t", "x", "--record-size", "4"}, 2, "", "--record-size 4"},
		{[]string{"perf", "consume", "-t", "x", "--timeout", "0s"}, 2, "", "--timeout"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, "", tt.args...)
		if code != tt.wantCode || !strings.Contains(stdout, tt.wantStdout) || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("gregor %q: code %d, stdout %q, stderr %q; want %d, %q, %q",
				tt.args, code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
		}
	}
}
