package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-log/gregor/internal/kgoopt"
)

// usageError is a command-line mistake; main exits 2 for it. reported is
// set when the flag package already printed the problem and the usage.
type usageError struct {
	err      error
	reported bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a *usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// newFlagSet returns a flag set that reports to stderr and returns errors
// instead of exiting. argsUsage describes the positional arguments.
func newFlagSet(name, argsUsage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gregor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gregor %s [flags]%s\n\nFlags:\n", name, argsUsage)
		printFlags(stderr, fs)
	}
	return fs
}

// printFlags lists the flags of fs GNU style: "--name" for long names,
// "-x" for one-letter ones, and aliases (flags sharing one variable, such
// as -t and --topic) on one line, using the long name's usage text.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	type entry struct {
		names []string
		flag  *flag.Flag
	}
	var entries []*entry
	fs.VisitAll(func(f *flag.Flag) {
		if reflect.TypeOf(f.Value).Comparable() {
			for _, e := range entries {
				if reflect.TypeOf(e.flag.Value).Comparable() && e.flag.Value == f.Value {
					e.names = append(e.names, f.Name)
					if len(f.Name) > len(e.flag.Name) {
						e.flag = f
					}
					return
				}
			}
		}
		entries = append(entries, &entry{names: []string{f.Name}, flag: f})
	})
	for _, e := range entries {
		sort.Slice(e.names, func(i, j int) bool { return len(e.names[i]) < len(e.names[j]) })
		dashed := make([]string, len(e.names))
		for i, n := range e.names {
			dashed[i] = "--" + n
			if len(n) == 1 {
				dashed[i] = "-" + n
			}
		}
		typ, usage := flag.UnquoteUsage(e.flag)
		line := "  " + strings.Join(dashed, ", ")
		if typ != "" {
			line += " " + typ
		}
		switch e.flag.DefValue {
		case "", "0", "false", "0s", "[]":
		default:
			usage += " (default " + e.flag.DefValue + ")"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	}
}

// parseFlags parses args allowing flags and positional arguments to be
// interleaved ("topic create NAME --partitions 3"), as Kafka's tools do.
// Everything after "--" is positional. It checks that the number of
// positional arguments is within [minPos, maxPos] (maxPos < 0: no limit).
func parseFlags(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err: err, reported: true}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	switch {
	case len(positional) < minPos:
		fs.Usage()
		want := fmt.Sprintf("%d argument(s)", minPos)
		if maxPos < 0 || maxPos > minPos {
			want = "at least " + want
		}
		return nil, &usageError{err: fmt.Errorf("expected %s, got %d", want, len(positional)), reported: false}
	case maxPos >= 0 && len(positional) > maxPos:
		return nil, usagef("unexpected argument(s): %s%s", strings.Join(positional[maxPos:], " "), boolHint(positional[maxPos:]))
	}
	return positional, nil
}

// boolHint explains an unexpected true or false: a boolean flag's value
// is given with =, as Go's flag package wants.
func boolHint(unexpected []string) string {
	if len(unexpected) > 0 {
		if _, err := strconv.ParseBool(unexpected[0]); err == nil {
			return fmt.Sprintf(" (a boolean flag takes its value after =, as in --flag=%s)", unexpected[0])
		}
	}
	return ""
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// parseKeyValue splits "key=value"; the key must not be empty.
func parseKeyValue(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return "", "", fmt.Errorf("%q is not key=value", s)
	}
	return key, value, nil
}

// clientFlags are the flags every command that talks to a cluster has.
type clientFlags struct {
	bootstrap string
	// timeout, if set, is the command's --timeout: a connection attempt
	// (dial, and the version handshake that a port that accepts but does
	// not answer as Kafka does never completes) gets at most half of it,
	// so that the command gives up in time.
	timeout *time.Duration
}

// dialTimeout is how long one connection attempt may take: 5 s, less
// for a short --timeout.
func (cf *clientFlags) dialTimeout() time.Duration {
	d := 5 * time.Second
	if cf.timeout != nil && *cf.timeout > 0 {
		d = min(d, max(*cf.timeout/2, 500*time.Millisecond))
	}
	return d
}

// addClientFlags registers --bootstrap-server and its short form -b.
func addClientFlags(fs *flag.FlagSet) *clientFlags {
	cf := &clientFlags{}
	const usage = "comma-separated host:port list of brokers to bootstrap from"
	fs.StringVar(&cf.bootstrap, "bootstrap-server", "127.0.0.1:9092", usage)
	fs.StringVar(&cf.bootstrap, "b", "127.0.0.1:9092", usage)
	return cf
}

// seeds returns the bootstrap addresses.
func (cf *clientFlags) seeds() []string {
	var out []string
	for _, s := range strings.Split(cf.bootstrap, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// newClient returns a kgo client for the bootstrap servers with opts added.
func (cf *clientFlags) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := cf.seeds()
	if len(seeds) == 0 {
		return nil, usagef("--bootstrap-server is empty")
	}
	for _, s := range seeds {
		// The client would take all of "::1:9092" for the host and add
		// port 9092 to it.
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return nil, usagef("--bootstrap-server %q: an IPv6 address needs brackets, as in [::1]:9092", s)
		}
	}
	all := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DialTimeout(cf.dialTimeout())}
	if cf.timeout != nil && *cf.timeout > 0 && *cf.timeout < 20*time.Second {
		// The client waits this long (10 s by default) beyond a
		// request's own timeout for an answer, the version handshake of
		// a new connection included.
		all = append(all, kgo.RequestTimeoutOverhead(max(*cf.timeout/2, time.Second)))
	}
	all = append(all, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return cl, nil
}

// parseAcks maps "all" (or -1), "1" and "0" to kgo acks.
func parseAcks(s string) (kgo.Acks, error) {
	a, err := kgoopt.Acks(s)
	if err != nil {
		return kgo.Acks{}, usagef("--acks %q: want all, 1 or 0", s)
	}
	return a, nil
}

// parseCompression maps a codec name to the kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	c, err := kgoopt.Compression(s)
	if err != nil {
		return kgo.CompressionCodec{}, usagef("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
	}
	return c, nil
}

// subcommand is one entry of a command's subcommand table.
type subcommand struct {
	name, summary string
	run           commandFunc
}

// runSubcommand dispatches "gregor <command> <subcommand> ..." through subs,
// printing the table for -h and for a missing or unknown subcommand.
func runSubcommand(ctx context.Context, command string, subs []subcommand, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: gregor %s <subcommand> [flags]\n\nSubcommands:\n", command)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-15s %s\n", s.name, s.summary)
		}
	}
	if len(args) == 0 {
		usage(stderr)
		return &usageError{err: errors.New("missing subcommand"), reported: true}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			slot := new(timeoutSlot)
			err := s.run(context.WithValue(ctx, timeoutSlotKey{}, slot), args[1:], stdin, stdout, stderr)
			return slot.explain(err)
		}
	}
	usage(stderr)
	return usagef("unknown subcommand %q", args[0])
}

// timeoutSlot is where an admin command's connect records its --timeout,
// so that runSubcommand can say which flag bounds a wait that timed out.
type timeoutSlot struct{ timeout time.Duration }

type timeoutSlotKey struct{}

// noteTimeout records timeout in ctx's slot, if it has one.
func noteTimeout(ctx context.Context, timeout time.Duration) {
	if slot, ok := ctx.Value(timeoutSlotKey{}).(*timeoutSlot); ok {
		slot.timeout = timeout
	}
}

// explain adds to a timeout of an admin command what bounded it: the
// client's own messages ("i/o timeout", "context deadline exceeded", an
// "unable to dial" for a port that accepts but never answers) do not say.
func (s *timeoutSlot) explain(err error) error {
	if err == nil || s.timeout <= 0 || !isTimeout(err) {
		return err
	}
	return fmt.Errorf("%w (no answer within --timeout %v: a broker that is overloaded or paused, or a port that is not a Kafka broker's)", err, s.timeout)
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}
