package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The topic subcommands administer topics with raw kmsg requests. Kafka
// error codes are printed by name, and any error fails the command.

// topicSubcommands is the dispatch table of "gregor topic".
var topicSubcommands = []subcommand{
	{"create", "create a topic", topicCreate},
	{"list", "list topics", topicList},
	{"describe", "show partitions, leaders, offsets and configs of a topic", topicDescribe},
	{"delete", "delete a topic", topicDelete},
	{"alter-config", "set or delete topic configs", topicAlterConfig},
	{"add-partitions", "raise the partition count of a topic", topicAddPartitions},
}

// runTopic dispatches "gregor topic <subcommand>".
func runTopic(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "topic", topicSubcommands, args, stdin, stdout, stderr)
}

// adminFlags are the flags of the one-shot administrative commands.
type adminFlags struct {
	*clientFlags
	timeout time.Duration
}

func addAdminFlags(fs *flag.FlagSet) *adminFlags {
	af := &adminFlags{clientFlags: addClientFlags(fs)}
	fs.DurationVar(&af.timeout, "timeout", 30*time.Second, "give up after this long")
	af.clientFlags.timeout = &af.timeout
	return af
}

// connect returns a client and a context bounded by --timeout; call done
// when finished with both.
func (af *adminFlags) connect(ctx context.Context) (cl *kgo.Client, tctx context.Context, done func(), err error) {
	if af.timeout <= 0 {
		return nil, nil, nil, usagef("--timeout must be positive")
	}
	cl, err = af.newClient()
	if err != nil {
		return nil, nil, nil, err
	}
	noteTimeout(ctx, af.timeout)
	tctx, cancel := context.WithTimeout(ctx, af.timeout)
	return cl, tctx, func() { cancel(); cl.Close() }, nil
}

func topicCreate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic create", " NAME", stderr)
	af := addAdminFlags(fs)
	partitions := fs.Int("partitions", 1, "number of partitions (-1: the broker's default)")
	replication := fs.Int("replication-factor", 1, "replicas per partition (-1: the broker's default)")
	var configs stringList
	fs.Var(&configs, "config", "topic config key=value (repeatable)")
	ifNotExists := fs.Bool("if-not-exists", false, "succeed if the topic already exists")
	validateOnly := fs.Bool("validate-only", false, "ask the broker to validate the request without creating the topic")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if *partitions == 0 || *partitions < -1 || *partitions > 1<<20 {
		return usagef("--partitions %d: want a positive count or -1", *partitions)
	}
	if *replication == 0 || *replication < -1 || *replication > 1<<15-1 {
		return usagef("--replication-factor %d: want a positive count or -1", *replication)
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(af.timeout / time.Millisecond)
	req.ValidateOnly = *validateOnly
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = int32(*partitions)
	rt.ReplicationFactor = int16(*replication)
	given := map[string]bool{}
	for _, kv := range configs {
		k, v, err := parseKeyValue(kv)
		if err != nil {
			return usagef("--config: %w", err)
		}
		if given[k] {
			return usagef("--config %s: given twice", k)
		}
		given[k] = true
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		c.Value = kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)

	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic != name {
			continue
		}
		err := codeErr(t.ErrorCode, t.ErrorMessage)
		switch {
		case err == nil:
		case errors.Is(err, kerr.TopicAlreadyExists) && *ifNotExists:
			fmt.Fprintf(stdout, "topic %s already exists\n", name)
			return nil
		default:
			return fmt.Errorf("create topic %s: %w", name, err)
		}
		verb := "created"
		if *validateOnly {
			verb = "validated"
		}
		n := int32(*partitions)
		if t.NumPartitions > 0 {
			n = t.NumPartitions
		}
		fmt.Fprintf(stdout, "%s topic %s with %d partition(s)\n", verb, name, n)
		return nil
	}
	return fmt.Errorf("create topic %s: no answer for the topic", name)
}

func topicList(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic list", "", stderr)
	af := addAdminFlags(fs)
	excludeInternal := fs.Bool("exclude-internal", false, "leave out internal topics such as __consumer_offsets")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := fetchMetadata(ctx, cl, nil)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range resp.Topics {
		if t.Topic == nil || (*excludeInternal && t.IsInternal) {
			continue
		}
		names = append(names, *t.Topic)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	return nil
}

func topicDescribe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic describe", " NAME", stderr)
	af := addAdminFlags(fs)
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	t, err := topicMetadata(ctx, cl, name)
	if err != nil {
		return err
	}
	ids := partitionIDs(t)
	earliest, err := listOffsets(ctx, cl, name, ids, offsetEarliest)
	if err != nil {
		return err
	}
	latest, err := listOffsets(ctx, cl, name, ids, offsetLatest)
	if err != nil {
		return err
	}
	configs, err := describeTopicConfigs(ctx, cl, name)
	if err != nil {
		return err
	}
	sizes := partitionSizes(ctx, cl, name, ids)

	replication := 0
	if len(t.Partitions) > 0 {
		replication = len(t.Partitions[0].Replicas)
	}
	fmt.Fprintf(stdout, "Topic: %s\tPartitions: %d\tReplicationFactor: %d\tInternal: %t\n",
		name, len(t.Partitions), replication, t.IsInternal)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tEARLIEST\tLATEST\tSIZE\tERROR")
	for _, p := range t.Partitions {
		size := "-"
		if n, ok := sizes[p.Partition]; ok {
			size = strconv.FormatInt(n, 10)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			p.Partition, p.Leader, p.LeaderEpoch, joinInt32(p.Replicas), joinInt32(p.ISR),
			formatOffset(earliest[p.Partition]), formatOffset(latest[p.Partition]), size,
			errName(codeErr(p.ErrorCode, nil)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	fmt.Fprintln(stdout, "Configs:")
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, c := range configs {
		v := configValue(&c)
		fmt.Fprintf(tw, "  %s=%s\t%s\n", c.Name, v, c.Source)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// configValue is a described config's value as printed: <null> for none,
// <sensitive> for a sensitive one the broker does not show.
func configValue(c *kmsg.DescribeConfigsResponseResourceConfig) string {
	switch {
	case c.Value != nil:
		return *c.Value
	case c.IsSensitive:
		return "<sensitive>"
	}
	return "<null>"
}

// partitionSizes returns the bytes on disk of each of the topic's
// partitions (the largest replica), from DescribeLogDirs. Sizes are extra
// information: a cluster that cannot tell gives none, not an error.
func partitionSizes(ctx context.Context, cl *kgo.Client, topic string, ids []int32) map[int32]int64 {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic = topic
	rt.Partitions = ids
	req.Topics = append(req.Topics, rt)
	sizes := map[int32]int64{}
	for _, shard := range cl.RequestSharded(ctx, req) {
		resp, ok := shard.Resp.(*kmsg.DescribeLogDirsResponse)
		if shard.Err != nil || !ok {
			continue
		}
		for _, d := range resp.Dirs {
			for _, t := range d.Topics {
				if t.Topic != topic {
					continue
				}
				for _, p := range t.Partitions {
					sizes[p.Partition] = max(sizes[p.Partition], p.Size)
				}
			}
		}
	}
	return sizes
}

// describeTopicConfigs returns a topic's configs sorted by name.
func describeTopicConfigs(ctx context.Context, cl *kgo.Client, topic string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	configs, found, err := describeConfigs(ctx, cl, kmsg.ConfigResourceTypeTopic, topic)
	switch {
	case err != nil:
		return nil, fmt.Errorf("describe configs of %s: %w", topic, err)
	case !found:
		return nil, fmt.Errorf("describe configs of %s: no answer for the topic", topic)
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	return configs, nil
}

// describeConfigs asks for the configs of one resource (only those named,
// if any), and returns them and whether the answer had the resource. A
// resource-level error code is an error.
func describeConfigs(ctx context.Context, cl *kgo.Client, typ kmsg.ConfigResourceType, name string, configs ...string) ([]kmsg.DescribeConfigsResponseResourceConfig, bool, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = typ
	rr.ResourceName = name
	rr.ConfigNames = configs
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, false, err
	}
	for _, r := range resp.Resources {
		if r.ResourceType != typ || r.ResourceName != name {
			continue
		}
		if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, true, err
		}
		return r.Configs, true, nil
	}
	return nil, false, nil
}

func topicDelete(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic delete", " NAME", stderr)
	af := addAdminFlags(fs)
	ifExists := fs.Bool("if-exists", false, "succeed if the topic does not exist")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(af.timeout / time.Millisecond)
	req.TopicNames = []string{name} // v0-v5
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(name) // v6+
	req.Topics = append(req.Topics, rt)

	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != name {
			continue
		}
		err := codeErr(t.ErrorCode, t.ErrorMessage)
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "deleted topic %s\n", name)
			return nil
		case errors.Is(err, kerr.UnknownTopicOrPartition) && *ifExists:
			fmt.Fprintf(stdout, "topic %s does not exist\n", name)
			return nil
		default:
			return fmt.Errorf("delete topic %s: %w", name, err)
		}
	}
	return fmt.Errorf("delete topic %s: no answer for the topic", name)
}

func topicAlterConfig(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic alter-config", " NAME", stderr)
	af := addAdminFlags(fs)
	var sets, deletes stringList
	fs.Var(&sets, "set", "set a topic config key=value (repeatable)")
	fs.Var(&deletes, "delete", "delete a topic config override, back to the default (repeatable)")
	validateOnly := fs.Bool("validate-only", false, "ask the broker to validate the change without applying it")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if len(sets)+len(deletes) == 0 {
		return usagef("nothing to do: give --set key=value or --delete key")
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = *validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = name
	if rr.Configs, err = configChanges(sets, deletes); err != nil {
		return err
	}
	req.Resources = append(req.Resources, rr)

	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("alter configs of %s: %w", name, err)
	}
	for _, r := range resp.Resources {
		if r.ResourceName != name {
			continue
		}
		if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return fmt.Errorf("alter configs of %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "altered %d config(s) of topic %s\n", len(rr.Configs), name)
		return nil
	}
	return fmt.Errorf("alter configs of %s: no answer for the topic", name)
}

// configChanges are the IncrementalAlterConfigs changes of --set key=value
// and --delete key flags.
func configChanges(sets, deletes []string) ([]kmsg.IncrementalAlterConfigsRequestResourceConfig, error) {
	var out []kmsg.IncrementalAlterConfigsRequestResourceConfig
	for _, kv := range sets {
		k, v, err := parseKeyValue(kv)
		if err != nil {
			return nil, usagef("--set: %w", err)
		}
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = k, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(v)
		out = append(out, c)
	}
	for _, k := range deletes {
		if k == "" {
			return nil, usagef("--delete: empty config name")
		}
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op = k, kmsg.IncrementalAlterConfigOpDelete
		out = append(out, c)
	}
	return out, nil
}

func topicAddPartitions(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("topic add-partitions", " NAME", stderr)
	af := addAdminFlags(fs)
	partitions := fs.Int("partitions", 0, "the new total number of partitions (required)")
	validateOnly := fs.Bool("validate-only", false, "ask the broker to validate the change without applying it")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if *partitions <= 0 || *partitions > 1<<20 {
		return usagef("--partitions %d: want the new total partition count", *partitions)
	}
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.TimeoutMillis = int32(af.timeout / time.Millisecond)
	req.ValidateOnly = *validateOnly
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic = name
	rt.Count = int32(*partitions)
	req.Topics = append(req.Topics, rt)

	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("add partitions to %s: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic != name {
			continue
		}
		if err := codeErr(t.ErrorCode, t.ErrorMessage); err != nil {
			return fmt.Errorf("add partitions to %s: %w", name, err)
		}
		if *validateOnly {
			fmt.Fprintf(stdout, "validated: topic %s can have %d partition(s)\n", name, *partitions)
			return nil
		}
		fmt.Fprintf(stdout, "topic %s now has %d partition(s)\n", name, *partitions)
		return nil
	}
	return fmt.Errorf("add partitions to %s: no answer for the topic", name)
}

// joinInt32 formats broker ids as "1,2,3".
func joinInt32(vs []int32) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(int(v))
	}
	return strings.Join(parts, ",")
}

// formatOffset prints an offset or the name of the error that replaced it.
func formatOffset(po partitionOffset) string {
	if po.err != nil {
		return errName(po.err)
	}
	return strconv.FormatInt(po.offset, 10)
}

// errName returns the Kafka error name inside err ("-" for nil).
func errName(err error) string {
	if err == nil {
		return "-"
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}
