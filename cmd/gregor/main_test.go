package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
		{[]string{"--version"}, 0, "gregor ", ""},
		{[]string{"broker", "--auto-create-topics", "false"}, 2, "", "as in --flag=false"},
		{[]string{"topic", "list", "true"}, 2, "", "as in --flag=true"},
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
		{[]string{"produce", "-t", "x", "--timeout", "500ms"}, 2, "", "--timeout 500ms: want at least 1s"},
		{[]string{"consume", "-t", "x", "--from", "yesterday"}, 2, "", "bad --from"},
		{[]string{"consume", "-t", "x", "--format", "%q"}, 2, "", "unknown directive"},
		{[]string{"consume", "-h"}, 0, "", "--follow"},
		{[]string{"perf"}, 2, "", "Subcommands:"},
		{[]string{"perf", "produce", "-t", "x"}, 2, "", "--records must be positive"},
		{[]string{"perf", "produce", "-t", "x", "--records", "1", "--acks", "1", "--idempotent=true"}, 2, "", "needs --acks all"},
		{[]string{"perf", "e2e", "-t", "x", "--record-size", "4"}, 2, "", "--record-size 4"},
		{[]string{"perf", "produce", "-t", "x", "--records", "1", "--timeout", "10ms"}, 2, "", "--timeout 10ms: want at least 1s"},
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

// TestHandleSignals drives the signal handling with a channel and a fake
// clock: the first signal cancels, a second within the grace period is
// logged and ignored, and one after it forces an exit.
func TestHandleSignals(t *testing.T) {
	type step struct {
		at   time.Duration // since the first signal
		sig  os.Signal
		want string // what handleSignals does: cancel, ignore or force
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one signal", []step{{0, syscall.SIGINT, "cancel"}}},
		{"hangup", []step{{0, syscall.SIGHUP, "cancel"}}},
		{"terminal and script", []step{{0, syscall.SIGINT, "cancel"}, {10 * time.Millisecond, syscall.SIGTERM, "ignore"}}},
		{"three quick ones", []step{{0, syscall.SIGINT, "cancel"}, {time.Second, syscall.SIGINT, "ignore"}, {1999 * time.Millisecond, syscall.SIGTERM, "ignore"}}},
		{"second ctrl-c", []step{{0, syscall.SIGINT, "cancel"}, {3 * time.Second, syscall.SIGINT, "force"}}},
		{"forwarded then second ctrl-c", []step{{0, syscall.SIGINT, "cancel"}, {5 * time.Millisecond, syscall.SIGTERM, "ignore"}, {2 * time.Second, syscall.SIGINT, "force"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			var clock atomic.Int64 // nanoseconds since start
			sigs := make(chan os.Signal)
			done := make(chan struct{})
			// Every signal makes handleSignals call cancel, logf, or logf
			// then force; each call is reported here, in order.
			events := make(chan string, 4)
			returned := make(chan struct{})
			go func() {
				defer close(returned)
				handleSignals(sigs, done, 2*time.Second,
					func() time.Time { return start.Add(time.Duration(clock.Load())) },
					func() { events <- "cancel" },
					func(format string, args ...any) { events <- "log: " + fmt.Sprintf(format, args...) },
					func(sig os.Signal) { events <- fmt.Sprintf("force %v", sig) })
			}()
			for _, s := range tt.steps {
				clock.Store(int64(s.at))
				sigs <- s.sig
				switch ev := <-events; s.want {
				case "cancel":
					if ev != "cancel" {
						t.Fatalf("%v at %v: %q, want cancel", s.sig, s.at, ev)
					}
				case "ignore":
					if !strings.Contains(ev, "shutdown already in progress") {
						t.Fatalf("%v at %v: %q, want a log that the shutdown is in progress", s.sig, s.at, ev)
					}
				case "force":
					if !strings.Contains(ev, "exiting without waiting") {
						t.Fatalf("%v at %v: %q, want a log of the forced exit", s.sig, s.at, ev)
					}
					if ev := <-events; ev != fmt.Sprintf("force %v", s.sig) {
						t.Fatalf("%v at %v: %q, want force", s.sig, s.at, ev)
					}
					<-returned // returns after force
					return
				}
			}
			close(done)
			<-returned
			select {
			case ev := <-events:
				t.Errorf("unexpected %q", ev)
			default:
			}
		})
	}
}

// TestShutdownSignals checks that SIGHUP stops a command as SIGTERM and
// SIGINT do.
func TestShutdownSignals(t *testing.T) {
	for _, want := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
		if !slices.Contains(shutdownSignals, want) {
			t.Errorf("%v is not a shutdown signal", want)
		}
	}
}

// TestNotifySignalsKeepsIgnored: a broker started with SIGHUP ignored
// (nohup) keeps ignoring it, and likewise SIGINT for a script's background
// job; SIGTERM always stops it.
func TestNotifySignalsKeepsIgnored(t *testing.T) {
	none := func(os.Signal) bool { return false }
	if got := notifySignals(shutdownSignals, none); len(got) != len(shutdownSignals) {
		t.Fatalf("nothing ignored: %v", got)
	}
	all := func(os.Signal) bool { return true }
	got := notifySignals(shutdownSignals, all)
	if !slices.Equal(got, []os.Signal{syscall.SIGTERM}) {
		t.Fatalf("all ignored: %v, want only SIGTERM", got)
	}
}

// TestAdminTimeoutNamesFlag: an admin command against a port that accepts
// connections but never answers says that --timeout bounded the wait, and
// group list against a closed port does not name a "broker -1".
func TestAdminTimeoutNamesFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	}()
	for _, args := range [][]string{
		{"topic", "list", "-b", ln.Addr().String(), "--timeout", "1s"},
		{"group", "list", "-b", ln.Addr().String(), "--timeout", "1s"},
		{"config", "describe", "-b", ln.Addr().String(), "--timeout", "1s"},
	} {
		code, _, stderr := runCLI(t, "", args...)
		if code != 1 || !strings.Contains(stderr, "no answer within --timeout 1s") {
			t.Errorf("gregor %q: code %d, stderr %q; want 1 and the --timeout named", args, code, stderr)
		}
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	code, _, stderr := runCLI(t, "", "group", "list", "-b", addr, "--timeout", "1s")
	if code != 1 || strings.Contains(stderr, "broker -1") || !strings.Contains(stderr, "connection refused") ||
		strings.Contains(stderr, "--timeout") {
		t.Errorf("group list of a closed port: code %d, stderr %q", code, stderr)
	}
}
