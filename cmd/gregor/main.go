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
		{"broker", "run a broker", func(ctx context.Context, args []string, _ io.Reader, _, _ io.Writer) error {
			return runBroker(ctx, args)
		}},
		{"topic", "create, list, describe, alter and delete topics", runTopic},
		{"group", "list, describe, delete consumer groups and reset their offsets", runGroup},
		{"produce", "produce lines from stdin as records", runProduce},
		{"consume", "print records of a topic", runConsume},
		{"perf", "measure produce, consume and end-to-end latency", runPerf},
		{"agent", "tail log files into topics (the agents: of pipeline.yaml)", runAgent},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx; restoring the default handling then
	// lets a second one kill a command that is slow to stop.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
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
