// Command benchctl holds the small helpers the benchmark scripts need and
// shell does poorly: picking a free port, waiting until a Kafka broker
// serves (and timing it), and turning `gregor perf --json` results into the
// comparison table `make bench` prints. It is not part of the product.
//
// Usage:
//
//	benchctl freeport
//	benchctl wait --addr HOST:PORT [--topic T] [--timeout 60s] [--since-ns UNIX_NANOS]
//	benchctl end-offset --addr HOST:PORT --topic T
//	benchctl table DIR
//	benchctl touchfree [--leave-mib 1024] [--max-mib 0] [--workers 2]
//
// wait succeeds once the broker answers Metadata and, with --topic,
// ListOffsets for every partition of that topic; it prints the seconds
// elapsed since --since-ns (default: since benchctl started).
//
// end-offset prints the sum over the topic's partitions of the log end
// offsets (ListOffsets latest), i.e. how many records it holds when
// nothing was deleted.
//
// table reads DIR/<target>-<workload>[.r<N>].json for the targets gregor,
// kfake-disk, kfake-mem and null (the null broker, a ceiling) and prints
// one row per workload and metric (the median over rounds) with the ratios
// gregor/kfake-disk and null/kfake-disk and the target for the
// first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchctl: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchctl freeport | wait --addr A [--topic T] | end-offset --addr A --topic T | table DIR | diskwrite --file F [--gib N] | touchfree [--leave-mib N]")
	}
	switch args[0] {
	case "freeport":
		port, err := freePort()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, port)
		return nil
	case "wait":
		return runWait(args[1:], stdout)
	case "end-offset":
		return runEndOffset(args[1:], stdout)
	case "diskwrite":
		return runDiskWrite(args[1:], stdout)
	case "touchfree":
		return runTouchFree(args[1:], stdout)
	case "table":
		if len(args) != 2 {
			return errors.New("usage: benchctl table DIR")
		}
		return printTable(args[1], stdout)
	default:
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func runWait(args []string, stdout io.Writer) error {
	start := time.Now()
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "broker address")
	topic := fs.String("topic", "", "also require ListOffsets to answer for every partition of this topic")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	sinceNs := fs.Int64("since-ns", 0, "report the time elapsed since this Unix time in nanoseconds (0: since benchctl started)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sinceNs > 0 {
		start = time.Unix(0, *sinceNs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var last error
	for {
		last = probe(ctx, *addr, *topic)
		if last == nil {
			fmt.Fprintf(stdout, "%.3f\n", time.Since(start).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not serving after %v: %w", *addr, *timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func runEndOffset(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("end-offset", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "broker address")
	topic := fs.String("topic", "", "topic (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("end-offset: --topic is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(*addr))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, *topic)
	if err != nil {
		return err
	}
	var sum int64
	for _, e := range ends {
		sum += e
	}
	fmt.Fprintln(stdout, sum)
	return nil
}

// endOffsets returns the latest offset of every partition of topic.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	md := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, t)
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("metadata: %d topics in response", len(mresp.Topics))
	}
	mt := mresp.Topics[0]
	if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
		return nil, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mt.Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p.Partition
		lp.Timestamp = -1
		lp.CurrentLeaderEpoch = -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	lresp, err := lo.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[int32]int64)
	for _, t := range lresp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("list offsets %s/%d: %w", t.Topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// probe makes one attempt: Metadata, then (with a topic) ListOffsets
// latest for every partition of topic. A fresh client each time, so a
// refused connection fails fast instead of being retried inside the client.
func probe(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0),
		kgo.DialTimeout(time.Second), kgo.RetryTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if topic != "" {
		_, err := endOffsets(rctx, cl, topic)
		return err
	}
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(rctx, cl); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

// summary is the subset of `gregor perf --json` output the table uses.
type summary struct {
	Records        int64    `json:"records"`
	Errors         int64    `json:"errors"`
	RecordsPerSec  float64  `json:"records_per_sec"`
	MBPerSec       float64  `json:"mb_per_sec"`
	CPUPerMillion  *float64 `json:"broker_cpu_seconds_per_million_records"`
	CPUUnavailable string   `json:"broker_cpu_unavailable"`
	E2ELatency     *latency `json:"e2e_latency_ms"`
	ProduceLatency *latency `json:"produce_latency_ms"`
	// RecordsPerRequest is how many records each produce request carried.
	RecordsPerRequest float64 `json:"records_per_request"`
	// ClientCPUPerMillion is the perf process's own CPU.
	ClientCPUPerMillion *float64 `json:"client_cpu_seconds_per_million_records"`
}

type latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// targets are the systems compared, in column order.
var targets = []struct{ key, title string }{
	{"gregor", "gregor"},
	{"kfake-disk", "kfake(DataDir)"},
	{"kfake-mem", "kfake(mem)"},
	// nullbroker acknowledges produces without doing anything:
	// null/kfake(DataDir) is about the most gregor/kfake(DataDir) can be
	// with this client on this machine.
	{"null", "null broker"},
}

// workloads are the rows, in order, with the metrics shown for each.
var workloads = []struct {
	key, title string
	e2e        bool
	kind       string // produce, consume or e2e: which issue target applies
}{
	{"produce-100B-1p", "produce 100 B x1 part acks=1", false, "produce"},
	{"produce-100B-1p-linger0", "same, client linger 0", false, "produce"},
	{"produce-1KB-4p", "produce 1 KB x4 parts acks=1", false, "produce"},
	{"consume-100B-1p", "consume 100 B x1 part", false, "consume"},
	{"consume-1KB-4p", "consume 1 KB x4 parts", false, "consume"},
	{"e2e-5000rps", "e2e 100 B @5000 rec/s", true, "e2e"},
}

// metric is one row of the table.
type metric struct {
	name   string
	get    func(summary) (float64, bool)
	format string
	target string                           // the goal, shown beside the ratio
	ok     func(ratio, gregor float64) bool // nil: no verdict
	// absolute marks a goal on gregor's own value, so no kfake baseline
	// is needed for a verdict.
	absolute bool
}

// present returns *v and whether the result had it.
func present(v *float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return *v, true
}

func metricsFor(kind string, e2e bool) []metric {
	rps := metric{name: "records/s", format: "%.0f",
		get: func(s summary) (float64, bool) { return s.RecordsPerSec, s.Records > 0 }}
	mbs := metric{name: "MB/s", format: "%.1f",
		get: func(s summary) (float64, bool) { return s.MBPerSec, s.Records > 0 }}
	cpu := metric{name: "broker CPU s/1M rec", format: "%.3f",
		get:    func(s summary) (float64, bool) { return present(s.CPUPerMillion) },
		target: "<= 0.5x", ok: func(r, _ float64) bool { return r <= 0.5 }}
	switch kind {
	case "produce":
		rps.target, rps.ok = ">= 1.2x", func(r, _ float64) bool { return r >= 1.2 }
		// The client sends one produce request at a time and batches what
		// accumulates meanwhile: a broker that answers sooner gets smaller
		// requests, so pays its per-request cost more often per record.
		perReq := metric{name: "records per request", format: "%.0f",
			get: func(s summary) (float64, bool) { return s.RecordsPerRequest, s.RecordsPerRequest > 0 }}
		// The clients run on the same cores as the broker; when they cost
		// several times what the broker does per record, they, not the
		// broker, set the records/s.
		client := metric{name: "client CPU s/1M rec", format: "%.3f",
			get: func(s summary) (float64, bool) { return present(s.ClientCPUPerMillion) }}
		return []metric{rps, mbs, cpu, perReq, client}
	case "consume":
		rps.target, rps.ok = ">= 1.5x", func(r, _ float64) bool { return r >= 1.5 }
	}
	if !e2e {
		return []metric{rps, mbs, cpu}
	}
	p50 := metric{name: "e2e p50 ms", format: "%.3f",
		get: func(s summary) (float64, bool) {
			if s.E2ELatency == nil {
				return 0, false
			}
			return s.E2ELatency.P50, true
		}}
	p99 := metric{name: "e2e p99 ms", format: "%.3f",
		get: func(s summary) (float64, bool) {
			if s.E2ELatency == nil {
				return 0, false
			}
			return s.E2ELatency.P99, true
		},
		target: "gregor <= 2 ms", ok: func(_, g float64) bool { return g <= 2 }, absolute: true}
	// At a fixed rate the broker's CPU goes mostly to idle long polls, so
	// the CPU goal applies to the throughput rows only.
	cpu.target, cpu.ok = "", nil
	return []metric{rps, p50, p99, cpu}
}

// printTable renders DIR's results. A workload may have run several times
// (files <target>-<workload>.r<N>.json); each cell is the median over the
// runs. Missing or failed runs show as "-".
func printTable(dir string, w io.Writer) error {
	results := map[string][]summary{}
	var notes []string
	rounds := 0
	for _, t := range targets {
		for _, wl := range workloads {
			key := t.key + "-" + wl.key
			paths, err := filepath.Glob(filepath.Join(dir, key+".r*.json"))
			if err != nil {
				return fmt.Errorf("glob results: %w", err)
			}
			if single := filepath.Join(dir, key+".json"); fileExists(single) {
				paths = append(paths, single)
			}
			for _, path := range paths {
				data, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("read result: %w", err)
				}
				var s summary
				if err := json.Unmarshal(lastJSONLine(data), &s); err != nil {
					notes = append(notes, fmt.Sprintf("%s: unreadable result: %v", path, err))
					continue
				}
				if s.Errors > 0 {
					notes = append(notes, fmt.Sprintf("%s: %d records failed", filepath.Base(path), s.Errors))
				}
				if s.CPUUnavailable != "" {
					notes = append(notes, fmt.Sprintf("%s: broker CPU not measured: %s", filepath.Base(path), s.CPUUnavailable))
				}
				results[t.key+"/"+wl.key] = append(results[t.key+"/"+wl.key], s)
			}
			rounds = max(rounds, len(results[t.key+"/"+wl.key]))
		}
	}

	header := []string{"workload", "metric"}
	for _, t := range targets {
		header = append(header, t.title)
	}
	header = append(header, "gregor/kfake(DataDir)", "null/kfake(DataDir)", "target", "met")
	rows := [][]string{header}
	for _, wl := range workloads {
		for _, m := range metricsFor(wl.kind, wl.e2e) {
			row := []string{wl.title, m.name}
			vals := map[string]float64{}
			for _, t := range targets {
				var got []float64
				for _, s := range results[t.key+"/"+wl.key] {
					if v, ok := m.get(s); ok {
						got = append(got, v)
					}
				}
				if len(got) > 0 {
					v := median(got)
					vals[t.key] = v
					row = append(row, fmt.Sprintf(m.format, v))
				} else {
					row = append(row, "-")
				}
			}
			g, gok := vals["gregor"]
			k, kok := vals["kfake-disk"]
			ratio := math.NaN()
			if gok && kok && k > 0 {
				ratio = g / k
				row = append(row, fmt.Sprintf("%.2fx", ratio))
			} else {
				row = append(row, "-")
			}
			if n, ok := vals["null"]; ok && kok && k > 0 {
				row = append(row, fmt.Sprintf("%.2fx", n/k))
			} else {
				row = append(row, "-")
			}
			row = append(row, m.target)
			switch {
			case m.ok == nil:
				row = append(row, "")
			case !gok || (!m.absolute && math.IsNaN(ratio)):
				row = append(row, "?")
			case m.ok(ratio, g):
				row = append(row, "yes")
			default:
				row = append(row, "NO")
			}
			rows = append(rows, row)
		}
	}
	writeAligned(w, rows)
	if rounds > 1 {
		fmt.Fprintf(w, "each cell is the median of up to %d runs; raw results in %s\n", rounds, dir)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// median returns the median of vs (the mean of the middle two for an even
// count); vs is reordered.
func median(vs []float64) float64 {
	sort.Float64s(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lastJSONLine returns the last line of data that looks like a JSON object
// (perf may print other lines before its summary).
func lastJSONLine(data []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			return []byte(l)
		}
	}
	return data
}

// writeAligned prints rows as space-aligned columns with a rule under the
// header.
func writeAligned(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	for ri, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			if i < 2 {
				b.WriteString(c + strings.Repeat(" ", widths[i]-len(c)))
			} else {
				b.WriteString(strings.Repeat(" ", widths[i]-len(c)) + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if ri == 0 {
			total := 0
			for _, wd := range widths {
				total += wd + 2
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
}
