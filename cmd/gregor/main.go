// Command gregor is the one binary of the gregor log broker: it runs the
// broker and offers the tools that talk to a cluster over the Kafka wire
// protocol (topic administration, console produce and consume, and the perf
// load generators).
//
// main.go only dispatches: each subcommand lives in its own file, parses its
// own flags and takes (ctx, args, stdin, stdout, stderr) so tests can drive
// it in process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// commandFunc is the shape of every subcommand: it parses args (everything
// after the subcommand name), does its work until ctx is cancelled or the
// work is done, and returns an error for a nonzero exit.
type commandFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// command is one entry of the top-level dispatch table.
type command struct {
	name    string
	summary string
	run     commandFunc
}

// commands returns the dispatch table in the order usage lists it.
func commands() []command {
	return []command{
		{"broker", "run a broker", func(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
			return runBroker(ctx, args, stderr)
		}},
		{"topic", "create, list, describe, alter, add partitions to and delete topics", runTopic},
		{"group", "list, describe, delete consumer groups and reset their offsets", runGroup},
		{"config", "show and change dynamic broker configs (defaults of topic configs)", runConfig},
		{"produce", "produce lines from stdin as records", runProduce},
		{"consume", "print records of a topic", runConsume},
		{"perf", "measure produce, consume and end-to-end latency", runPerf},
		{"agent", "tail log files into topics (the agents: of pipeline.yaml)", runAgent},
		{"version", "print the version", runVersion},
	}
}

// shutdownSignals stop a long-running command (broker, agent) cleanly.
// SIGHUP is among them, as with Kafka's JVM shutdown hooks: a closed
// terminal or a supervisor's hangup must not skip the clean shutdown.
var shutdownSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// signalGrace is how long after the first signal further ones are taken as
// part of the same stop rather than as a request to exit at once. A Ctrl-C
// reaches every process of the terminal's process group, so a script that
// runs the broker and forwards the signal makes the broker see two in a
// row; only a signal sent after this long is the user's second Ctrl-C.
const signalGrace = 2 * time.Second

func main() {
	if len(os.Args) > 1 && os.Args[1] == "broker" {
		execQuietSysmon() // see quietSysmon; returns if nothing to do
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, notifySignals(shutdownSignals, signal.Ignored)...)
	done := make(chan struct{})
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		handleSignals(sigs, done, signalGrace, time.Now, cancel,
			func(format string, args ...any) { fmt.Fprintf(os.Stderr, "gregor: "+format+"\n", args...) },
			func(sig os.Signal) {
				// Exit as the shell expects of a process killed by sig.
				code := 1
				if s, ok := sig.(syscall.Signal); ok {
					code = 128 + int(s)
				}
				os.Exit(code)
			})
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	close(done)
	<-handled
	cancel()
	os.Exit(code)
}

// notifySignals is sigs without SIGHUP and SIGINT when the process was
// started with them ignored (nohup, a background job of a script): asking
// to be notified would stop ignoring them, and a hangup would then stop a
// broker started with nohup.
func notifySignals(sigs []os.Signal, ignored func(os.Signal) bool) []os.Signal {
	var out []os.Signal
	for _, s := range sigs {
		if (s == syscall.SIGHUP || s == os.Interrupt) && ignored(s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// handleSignals serves sigs until done is closed. The first signal calls
// cancel, which starts a clean shutdown. A signal within grace of the first
// is logged and otherwise ignored: it is the same stop arriving twice (a
// terminal's Ctrl-C and a script forwarding it). A signal after that calls
// force, which is expected to exit the process without waiting for the
// shutdown, as users expect of a second Ctrl-C; handleSignals returns
// after calling force.
func handleSignals(sigs <-chan os.Signal, done <-chan struct{}, grace time.Duration, now func() time.Time,
	cancel func(), logf func(format string, args ...any), force func(os.Signal)) {
	var first time.Time
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			switch t := now(); {
			case first.IsZero():
				first = t
				cancel()
			case t.Sub(first) < grace:
				logf("%v: shutdown already in progress (send it again after %v to exit at once)", sig, grace)
			default:
				logf("%v again: exiting without waiting for the shutdown to finish", sig)
				force(sig)
				return
			}
		}
	}
}

// run dispatches args to a subcommand and returns the process exit code:
// 0 on success (and for -h), 2 for usage errors, 1 for any other failure.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		printUsage(stdout)
		return 0
	case "-version", "--version", "-V":
		name, args = "version", append([]string{"version"}, args[1:]...)
	}
	for _, c := range commands() {
		if c.name == name {
			return exitCode(stderr, "gregor "+name, c.run(ctx, args[1:], stdin, stdout, stderr))
		}
	}
	fmt.Fprintf(stderr, "gregor: unknown command %q\n\n", name)
	printUsage(stderr)
	return 2
}

// exitCode reports err on stderr (unless it was already reported by the
// flag package) and maps it to an exit code.
func exitCode(stderr io.Writer, prefix string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if !ue.reported {
			fmt.Fprintf(stderr, "%s: %v\n", prefix, ue.err)
		}
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: gregor <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'gregor <command> -h' for the flags of a command.\n")
}
