// Command groupmember is one consumer-group member in its own process, for
// the end-to-end tests that kill a member with SIGKILL and check what the
// rest of the group does. It is a test tool, not part of the product.
//
// Usage:
//
//	groupmember --brokers HOST:PORT --group G --topic T [--balancer range|roundrobin|sticky|cooperative-sticky]
//	            [--session-timeout 3s] [--heartbeat 300ms] [--delay 2ms] [--commit-every N]
//	            [--client-id ID] [--instance-id ID]
//
// It consumes T from the start, sleeping --delay per record, and commits
// the next offset of every partition it consumed from, synchronously,
// after every --commit-every records and at the end of each poll. It prints one event per line on stdout, each starting
// with the event and the time in Unix nanoseconds:
//
//	ASSIGNED <ns> <p,p,...>    partitions assigned (cooperative: added)
//	REVOKED <ns> <p,p,...>     partitions revoked
//	LOST <ns> <p,p,...>        partitions lost (session expired)
//	RECORD <ns> <p> <offset>   a record consumed
//	COMMIT <ns> <p> <offset>   the broker acknowledged <offset> as p's next offset
//
// On SIGTERM or SIGINT it closes the client (leaving the group) and exits 0.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "groupmember: %v\n", err)
		os.Exit(1)
	}
}

// printer writes event lines; safe for concurrent use (kgo calls the
// assignment callbacks from its own goroutines).
type printer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *printer) event(kind string, rest string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %d %s\n", kind, time.Now().UnixNano(), rest)
	p.w.Flush()
}

func partitionList(m map[string][]int32, topic string) string {
	ps := append([]int32(nil), m[topic]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func run() error {
	var (
		brokers   = flag.String("brokers", "127.0.0.1:9092", "seed brokers, comma separated")
		group     = flag.String("group", "", "consumer group (required)")
		topic     = flag.String("topic", "", "topic to consume (required)")
		balancer  = flag.String("balancer", "cooperative-sticky", "range, roundrobin, sticky or cooperative-sticky")
		session   = flag.Duration("session-timeout", 3*time.Second, "group session timeout")
		heartbeat = flag.Duration("heartbeat", 300*time.Millisecond, "heartbeat interval")
		delay     = flag.Duration("delay", 0, "time spent per record")
		every     = flag.Int("commit-every", 0, "also commit after this many records within a poll (0: once per poll)")
		clientID  = flag.String("client-id", "groupmember", "client id")
		instance  = flag.String("instance-id", "", "static membership instance id")
	)
	flag.Parse()
	if *group == "" || *topic == "" {
		return errors.New("--group and --topic are required")
	}
	var bal kgo.GroupBalancer
	switch *balancer {
	case "range":
		bal = kgo.RangeBalancer()
	case "roundrobin":
		bal = kgo.RoundRobinBalancer()
	case "sticky":
		bal = kgo.StickyBalancer()
	case "cooperative-sticky":
		bal = kgo.CooperativeStickyBalancer()
	default:
		return fmt.Errorf("unknown balancer %q", *balancer)
	}
	out := &printer{w: bufio.NewWriter(os.Stdout)}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ClientID(*clientID),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*topic),
		kgo.Balancers(bal),
		kgo.SessionTimeout(*session),
		kgo.HeartbeatInterval(*heartbeat),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			out.event("ASSIGNED", partitionList(m, *topic))
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			out.event("REVOKED", partitionList(m, *topic))
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			out.event("LOST", partitionList(m, *topic))
		}),
	}
	if *instance != "" {
		opts = append(opts, kgo.InstanceID(*instance))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch %s/%d: %v\n", t, p, err)
		})
		next := map[int32]kgo.EpochOffset{}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			if *delay > 0 {
				time.Sleep(*delay)
			}
			out.event("RECORD", fmt.Sprintf("%d %d", r.Partition, r.Offset))
			next[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
			if n++; *every > 0 && n%*every == 0 {
				commit(ctx, cl, out, *topic, next)
				next = map[int32]kgo.EpochOffset{}
			}
		})
		if len(next) > 0 {
			commit(ctx, cl, out, *topic, next)
		}
	}
	cl.Close() // leaves the group
	return nil
}

// commit commits next synchronously and prints the partitions the broker
// acknowledged.
func commit(ctx context.Context, cl *kgo.Client, out *printer, topic string, next map[int32]kgo.EpochOffset) {
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: next},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "commit: %v\n", err)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						fmt.Fprintf(os.Stderr, "commit %s/%d: %v\n", t.Topic, p.Partition, err)
						continue
					}
					out.event("COMMIT", fmt.Sprintf("%d %d", p.Partition, next[p.Partition].Offset))
				}
			}
		})
}
