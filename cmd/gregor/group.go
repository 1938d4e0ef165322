package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group subcommands inspect and administer consumer groups with raw
// kmsg requests: ListGroups, DescribeGroups, OffsetFetch, ListOffsets,
// DeleteGroups and OffsetCommit. kgo sends each group request to the
// group's coordinator (FindCoordinator) and splits multi-group requests
// between coordinators. Kafka error codes are printed by name.

// groupSubcommands is the dispatch table of "gregor group".
var groupSubcommands = []subcommand{
	{"list", "list groups with their protocol type and state", groupList},
	{"describe", "show members, assignments, committed offsets and lag of groups", groupDescribe},
	{"delete", "delete groups that have no active members, with their offsets", groupDelete},
	{"reset-offsets", "plan or commit new offsets for a group with no active members", groupResetOffsets},
}

// runGroup dispatches "gregor group <subcommand>".
func runGroup(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "group", groupSubcommands, args, stdin, stdout, stderr)
}

var (
	// errGroupActive reports a reset-offsets refused because the group
	// has members; committing under them would be overwritten or fenced.
	errGroupActive = errors.New("group has active members")
	// errNoCommittedOffset reports --shift-by for a partition the group
	// never committed.
	errNoCommittedOffset = errors.New("no committed offset")
	// errNoAnswer reports a broker answer that left out something asked.
	errNoAnswer = errors.New("no answer from the broker")
)

// groupStates are the group states a broker reports, spelled as Kafka
// spells them; --state matches them case-insensitively.
var groupStates = []string{"PreparingRebalance", "CompletingRebalance", "Stable", "Empty", "Dead", "Assigning", "Reconciling"}

// parseGroupStates turns --state values (each comma-separated) into
// canonical state names, reporting every unknown one together.
func parseGroupStates(values []string) ([]string, error) {
	var out, bad []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			i := slices.IndexFunc(groupStates, func(g string) bool { return strings.EqualFold(g, s) })
			switch {
			case i < 0:
				bad = append(bad, strconv.Quote(s))
			case !slices.Contains(out, groupStates[i]):
				out = append(out, groupStates[i])
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("unknown group state(s) %s: want %s", strings.Join(bad, ", "), strings.Join(groupStates, ", "))
	}
	return out, nil
}

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s[%d]", tp.topic, tp.partition) }

func compareTopicPartitions(a, b topicPartition) int {
	return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

// dedupe returns names without repeats, in first-seen order.
func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// orDash prints an empty string as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// --- list ---

// groupList prints the groups of every broker with their protocol type
// and state, optionally only those in some states.
func groupList(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("group list", "", stderr)
	af := addAdminFlags(fs)
	var states stringList
	fs.Var(&states, "state", "only groups in these states, comma-separated: "+strings.Join(groupStates, ", ")+" (repeatable)")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	filter, err := parseGroupStates(states)
	if err != nil {
		return usagef("--state: %w", err)
	}
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	req := kmsg.NewPtrListGroupsRequest()
	req.StatesFilter = filter // v4+; older brokers ignore it, so filter below too
	byName := make(map[string]kmsg.ListGroupsResponseGroup)
	var failures []error
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil && shard.Meta.NodeID < 0 { // no broker was reached to ask
			failures = append(failures, fmt.Errorf("list groups: %w", shard.Err))
			continue
		}
		if shard.Err != nil {
			failures = append(failures, fmt.Errorf("list groups on broker %d: %w", shard.Meta.NodeID, shard.Err))
			continue
		}
		resp := shard.Resp.(*kmsg.ListGroupsResponse)
		if err := codeErr(resp.ErrorCode, nil); err != nil {
			failures = append(failures, fmt.Errorf("list groups on broker %d: %w", shard.Meta.NodeID, err))
			continue
		}
		for _, g := range resp.Groups {
			byName[g.Group] = g
		}
	}
	if len(failures) > 0 {
		return errors.Join(failures...)
	}

	// Brokers before ListGroups v4 send no state: ask DescribeGroups.
	var stateless []string
	for name, g := range byName {
		if g.GroupState == "" {
			stateless = append(stateless, name)
		}
	}
	if len(stateless) > 0 {
		for name, d := range describeGroups(ctx, cl, stateless) {
			g := byName[name]
			switch {
			case errors.Is(d.err, kerr.GroupIDNotFound):
				g.GroupState = "Dead"
			case d.err == nil:
				g.GroupState = d.group.State
			}
			byName[name] = g
		}
	}

	names := make([]string, 0, len(byName))
	for name, g := range byName {
		if len(filter) == 0 || slices.Contains(filter, g.GroupState) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPROTOCOL-TYPE\tSTATE")
	for _, name := range names {
		g := byName[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, orDash(g.ProtocolType), orDash(g.GroupState))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// --- shared requests ---

// describedGroup is one group's DescribeGroups answer, or the error that
// replaced it.
type describedGroup struct {
	group kmsg.DescribeGroupsResponseGroup
	err   error
}

// describeGroups describes groups at their coordinators and returns an
// entry for every group asked. A group that does not exist carries
// kerr.GroupIDNotFound, whether the broker said so (DescribeGroups v6+) or
// answered with the state Dead (older versions).
func describeGroups(ctx context.Context, cl *kgo.Client, groups []string) map[string]describedGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = groups
	out := make(map[string]describedGroup, len(groups))
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			if sreq, ok := shard.Req.(*kmsg.DescribeGroupsRequest); ok {
				for _, g := range sreq.Groups {
					out[g] = describedGroup{err: fmt.Errorf("describe group %s: %w", g, shard.Err)}
				}
			}
			continue
		}
		resp := shard.Resp.(*kmsg.DescribeGroupsResponse)
		for _, g := range resp.Groups {
			err := codeErr(g.ErrorCode, g.ErrorMessage)
			if err == nil && g.State == "Dead" {
				err = kerr.GroupIDNotFound
			}
			if err != nil {
				err = fmt.Errorf("describe group %s: %w", g.Group, err)
			}
			out[g.Group] = describedGroup{group: g, err: err}
		}
	}
	for _, g := range groups {
		if _, ok := out[g]; !ok {
			out[g] = describedGroup{err: fmt.Errorf("describe group %s: %w", g, errNoAnswer)}
		}
	}
	return out
}

// committedOffsets returns the offsets group has committed. A partition
// the broker answered with an error carries it; partitions without a
// committed offset are left out. A group that does not exist has none.
func committedOffsets(ctx context.Context, cl *kgo.Client, group string) (map[topicPartition]partitionOffset, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group // no topics: all of them
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	out := make(map[topicPartition]partitionOffset)
	for _, g := range resp.Groups {
		if g.Group != group {
			continue
		}
		if err := codeErr(g.ErrorCode, nil); errors.Is(err, kerr.GroupIDNotFound) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
		}
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				tp := topicPartition{t.Topic, p.Partition}
				if err := codeErr(p.ErrorCode, nil); err != nil {
					out[tp] = partitionOffset{offset: -1, err: err}
				} else if p.Offset >= 0 {
					out[tp] = partitionOffset{offset: p.Offset}
				}
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, errNoAnswer)
}

// topicsMetadata returns the metadata of those of topics that exist, by
// name, with partitions sorted by id. Topics that do not exist are absent.
func topicsMetadata(ctx context.Context, cl *kgo.Client, topics []string) (map[string]*kmsg.MetadataResponseTopic, error) {
	out := make(map[string]*kmsg.MetadataResponseTopic)
	if len(topics) == 0 {
		return out, nil // an empty list would ask for every topic
	}
	resp, err := fetchMetadata(ctx, cl, topics)
	if err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic == nil || t.ErrorCode != 0 || !slices.Contains(topics, *t.Topic) {
			continue
		}
		slices.SortFunc(t.Partitions, func(a, b kmsg.MetadataResponseTopicPartition) int {
			return cmp.Compare(a.Partition, b.Partition)
		})
		out[*t.Topic] = t
	}
	return out, nil
}

// offsetsAt lists, per partition, the offset at timestamp (offsetEarliest,
// offsetLatest or milliseconds). Partitions the metadata does not know
// carry kerr.UnknownTopicOrPartition; a failed request for a topic is
// the error of each of its partitions.
func offsetsAt(ctx context.Context, cl *kgo.Client, meta map[string]*kmsg.MetadataResponseTopic, tps []topicPartition, timestamp int64) map[topicPartition]partitionOffset {
	out := make(map[topicPartition]partitionOffset, len(tps))
	byTopic := make(map[string][]int32)
	for _, tp := range tps {
		t, ok := meta[tp.topic]
		if !ok || !slices.ContainsFunc(t.Partitions, func(p kmsg.MetadataResponseTopicPartition) bool { return p.Partition == tp.partition }) {
			out[tp] = partitionOffset{offset: -1, err: kerr.UnknownTopicOrPartition}
			continue
		}
		if !slices.Contains(byTopic[tp.topic], tp.partition) {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp.partition)
		}
	}
	for topic, partitions := range byTopic {
		res, err := listOffsets(ctx, cl, topic, partitions, timestamp)
		for _, p := range partitions {
			if err != nil {
				out[topicPartition{topic, p}] = partitionOffset{offset: -1, err: err}
			} else {
				out[topicPartition{topic, p}] = res[p]
			}
		}
	}
	return out
}

// --- describe ---

// groupMember is one member of a described group, its assignment decoded.
type groupMember struct {
	kmsg.DescribeGroupsResponseGroupMember
	assigned  []topicPartition
	decodeErr error // the assignment could not be decoded
}

// groupView is what describe prints of one group.
type groupView struct {
	name      string
	desc      kmsg.DescribeGroupsResponseGroup
	members   []groupMember
	owner     map[topicPartition]string // member id by assigned partition
	committed map[topicPartition]partitionOffset
}

// newGroupView decodes the members' assignments of a described group.
// Only the "consumer" protocol type has a known assignment format.
func newGroupView(desc kmsg.DescribeGroupsResponseGroup) *groupView {
	v := &groupView{name: desc.Group, desc: desc, owner: make(map[topicPartition]string)}
	for _, m := range desc.Members {
		gm := groupMember{DescribeGroupsResponseGroupMember: m}
		if desc.ProtocolType == "consumer" && len(m.MemberAssignment) > 0 {
			var a kmsg.ConsumerMemberAssignment
			if err := a.ReadFrom(m.MemberAssignment); err != nil {
				gm.decodeErr = fmt.Errorf("decode assignment of member %s: %w", m.MemberID, err)
			} else {
				for _, t := range a.Topics {
					for _, p := range t.Partitions {
						tp := topicPartition{t.Topic, p}
						gm.assigned = append(gm.assigned, tp)
						v.owner[tp] = m.MemberID
					}
				}
				slices.SortFunc(gm.assigned, compareTopicPartitions)
			}
		}
		v.members = append(v.members, gm)
	}
	slices.SortFunc(v.members, func(a, b groupMember) int { return strings.Compare(a.MemberID, b.MemberID) })
	return v
}

// partitions returns the partitions that are committed or assigned, sorted.
func (v *groupView) partitions() []topicPartition {
	var out []topicPartition
	for tp := range v.committed {
		out = append(out, tp)
	}
	for tp := range v.owner {
		if _, ok := v.committed[tp]; !ok {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, compareTopicPartitions)
	return out
}

// formatAssignment prints partitions as "a:0,1 b:2" ("-" for none).
func formatAssignment(tps []topicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	var sb strings.Builder
	for i, tp := range tps {
		switch {
		case i == 0:
			sb.WriteString(tp.topic + ":")
		case tps[i-1].topic != tp.topic:
			sb.WriteString(" " + tp.topic + ":")
		default:
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(int(tp.partition)))
	}
	return sb.String()
}

// offsetRow is one partition's line of the offsets table.
type offsetRow struct {
	tp                   topicPartition
	current, logEnd, lag string
	member               string
	lagValue             int64 // 0 when the lag is unknown
}

// offsetRows computes the committed offset, log end offset, lag and owner
// of each partition of v. Lag is the log end offset minus the committed
// offset; it is unknown ("-") without both.
func (v *groupView) offsetRows(logEnd map[topicPartition]partitionOffset) []offsetRow {
	var rows []offsetRow
	for _, tp := range v.partitions() {
		r := offsetRow{tp: tp, current: "-", logEnd: "-", lag: "-", member: orDash(v.owner[tp])}
		c, committed := v.committed[tp]
		if committed {
			r.current = formatOffset(c)
		}
		e, known := logEnd[tp]
		if known {
			r.logEnd = formatOffset(e)
		}
		if committed && c.err == nil && known && e.err == nil {
			r.lagValue = e.offset - c.offset
			r.lag = strconv.FormatInt(r.lagValue, 10)
		}
		rows = append(rows, r)
	}
	return rows
}

// groupDescribe prints, per group, its state, members with their decoded
// assignments, and per partition the committed offset, log end offset,
// lag and owner. A group that cannot be described fails the command after
// the others are printed.
func groupDescribe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("group describe", " GROUP [GROUP...]", stderr)
	af := addAdminFlags(fs)
	offsetsOnly := fs.Bool("offsets-only", false, "print only the committed offset, log end offset, lag and owner of each partition")
	pos, err := parseFlags(fs, args, 1, -1)
	if err != nil {
		return err
	}
	groups := dedupe(pos)
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	described := describeGroups(ctx, cl, groups)
	var (
		views    []*groupView
		failures []error
		wanted   []topicPartition
	)
	for _, name := range groups {
		d := described[name]
		if d.err != nil {
			failures = append(failures, d.err)
			continue
		}
		v := newGroupView(d.group)
		if v.committed, err = committedOffsets(ctx, cl, name); err != nil {
			failures = append(failures, err)
			continue
		}
		views = append(views, v)
		wanted = append(wanted, v.partitions()...)
	}
	var topics []string
	for _, tp := range wanted {
		topics = append(topics, tp.topic)
	}
	meta, err := topicsMetadata(ctx, cl, dedupe(topics))
	if err != nil {
		return err
	}
	logEnd := offsetsAt(ctx, cl, meta, wanted, offsetLatest)

	if *offsetsOnly {
		err = printOffsetsOnly(stdout, views, logEnd)
	} else {
		err = printGroupViews(stdout, views, logEnd)
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return errors.Join(failures...)
}

// printGroupViews prints each group: a summary line, its members and its
// offsets table.
func printGroupViews(w io.Writer, views []*groupView, logEnd map[topicPartition]partitionOffset) error {
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Group: %s\tState: %s\tProtocolType: %s\tProtocol: %s\tMembers: %d\n",
			v.name, orDash(v.desc.State), orDash(v.desc.ProtocolType), orDash(v.desc.Protocol), len(v.members))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(v.members) == 0 {
			fmt.Fprintln(tw, "  (no active members)")
		} else {
			fmt.Fprintln(tw, "  MEMBER-ID\tINSTANCE-ID\tCLIENT-ID\tHOST\tASSIGNMENT")
			for _, m := range v.members {
				instance := "-"
				if m.InstanceID != nil {
					instance = orDash(*m.InstanceID)
				}
				assignment := formatAssignment(m.assigned)
				if m.decodeErr != nil {
					assignment = fmt.Sprintf("<%v>", m.decodeErr)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", orDash(m.MemberID), instance, orDash(m.ClientID), orDash(m.ClientHost), assignment)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		rows := v.offsetRows(logEnd)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(rows) == 0 {
			fmt.Fprintln(tw, "  (no committed offsets)")
		} else {
			fmt.Fprintln(tw, "  TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER-ID")
		}
		var total int64
		for _, r := range rows {
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\n", r.tp.topic, r.tp.partition, r.current, r.logEnd, r.lag, r.member)
			total += r.lagValue
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(rows) > 0 {
			fmt.Fprintf(w, "Total lag: %d\n", total)
		}
	}
	return nil
}

// printOffsetsOnly prints one offsets table for all groups, one line per
// group and partition.
func printOffsetsOnly(w io.Writer, views []*groupView, logEnd map[topicPartition]partitionOffset) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER-ID")
	for _, v := range views {
		for _, r := range v.offsetRows(logEnd) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", v.name, r.tp.topic, r.tp.partition, r.current, r.logEnd, r.lag, r.member)
		}
	}
	return tw.Flush()
}

// --- delete ---

// groupDelete deletes groups with their committed offsets. A group with
// members is refused by the coordinator with NON_EMPTY_GROUP.
func groupDelete(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("group delete", " GROUP [GROUP...]", stderr)
	af := addAdminFlags(fs)
	pos, err := parseFlags(fs, args, 1, -1)
	if err != nil {
		return err
	}
	groups := dedupe(pos)
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = groups
	results := make(map[string]error, len(groups))
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			if sreq, ok := shard.Req.(*kmsg.DeleteGroupsRequest); ok {
				for _, g := range sreq.Groups {
					results[g] = shard.Err
				}
			}
			continue
		}
		for _, g := range shard.Resp.(*kmsg.DeleteGroupsResponse).Groups {
			results[g.Group] = codeErr(g.ErrorCode, g.ErrorMessage)
		}
	}
	var failures []error
	for _, g := range groups {
		err, answered := results[g]
		switch {
		case !answered:
			failures = append(failures, fmt.Errorf("delete group %s: %w", g, errNoAnswer))
		case errors.Is(err, kerr.NonEmptyGroup):
			failures = append(failures, fmt.Errorf("delete group %s: %w (it has active members; stop its consumers first)", g, err))
		case err != nil:
			failures = append(failures, fmt.Errorf("delete group %s: %w", g, err))
		default:
			fmt.Fprintf(stdout, "deleted group %s\n", g)
		}
	}
	return errors.Join(failures...)
}

// --- reset-offsets ---

// resetMode is how reset-offsets chooses new offsets.
type resetMode int

const (
	resetToEarliest resetMode = iota + 1
	resetToLatest
	resetToOffset
	resetToDatetime
	resetShiftBy
)

// resetSpec is a reset-offsets mode with its argument.
type resetSpec struct {
	mode      resetMode
	offset    int64 // --to-offset N, or the N of --shift-by
	timestamp int64 // --to-datetime, in Unix milliseconds
}

// topicSelection is one --topic value: a topic and some of its partitions
// (nil: all of them).
type topicSelection struct {
	topic      string
	partitions []int32
}

// parseTopicSelection parses "TOPIC" or "TOPIC:P,P,...". Kafka topic
// names cannot contain ':', so the last one separates the partitions.
func parseTopicSelection(s string) (topicSelection, error) {
	topic, list, hasList := s, "", false
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		topic, list, hasList = s[:i], s[i+1:], true
	}
	if topic == "" {
		return topicSelection{}, fmt.Errorf("%q: empty topic name", s)
	}
	sel := topicSelection{topic: topic}
	if !hasList {
		return sel, nil
	}
	for _, f := range strings.Split(list, ",") {
		p, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || p < 0 {
			return topicSelection{}, fmt.Errorf("%q: partition %q is not a non-negative number", s, f)
		}
		if !slices.Contains(sel.partitions, int32(p)) {
			sel.partitions = append(sel.partitions, int32(p))
		}
	}
	return sel, nil
}

// parseDatetime parses an RFC 3339 time ("2026-11-22T10:00:00Z", with
// optional fractional seconds and a zone offset) or the same without a
// zone, taken as UTC, into Unix milliseconds.
func parseDatetime(s string) (int64, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is not a time like 2026-11-22T10:00:00Z", s)
}

// resetRow is one partition of a reset plan.
type resetRow struct {
	tp      topicPartition
	current int64 // -1: nothing committed
	next    int64
}

// planReset decides the new offset of each partition, as Kafka's
// kafka-consumer-groups.sh does: --to-offset and --shift-by are clamped to
// the partition's [earliest, latest] range (each clamp is a warning), and
// --to-datetime with no record at or after the time goes to the latest
// offset. current holds the committed offsets, earliest and latest the log
// start and end offsets, atTime the ListOffsets answers for --to-datetime
// (-1: none). It does no I/O.
func planReset(spec resetSpec, tps []topicPartition, current, earliest, latest, atTime map[topicPartition]int64) (rows []resetRow, warnings []string, err error) {
	var uncommitted []string
	for _, tp := range tps {
		cur, hasCur := current[tp]
		if !hasCur {
			cur = -1
		}
		lo, hi := earliest[tp], latest[tp]
		var next int64
		clamp := false
		switch spec.mode {
		case resetToEarliest:
			next = lo
		case resetToLatest:
			next = hi
		case resetToOffset:
			next, clamp = spec.offset, true
		case resetToDatetime:
			next = atTime[tp]
			if next < 0 {
				next = hi
			}
		case resetShiftBy:
			if !hasCur {
				uncommitted = append(uncommitted, tp.String())
				continue
			}
			next, clamp = cur+spec.offset, true
		}
		if clamp && next < lo {
			warnings = append(warnings, fmt.Sprintf("%s: new offset %d is below the earliest offset; using %d", tp, next, lo))
			next = lo
		} else if clamp && next > hi {
			warnings = append(warnings, fmt.Sprintf("%s: new offset %d is above the latest offset; using %d", tp, next, hi))
			next = hi
		}
		rows = append(rows, resetRow{tp: tp, current: cur, next: next})
	}
	if len(uncommitted) > 0 {
		return nil, nil, fmt.Errorf("cannot shift %s: %w", strings.Join(uncommitted, ", "), errNoCommittedOffset)
	}
	return rows, warnings, nil
}

// resetFlags are the parsed flags of reset-offsets.
type resetFlags struct {
	group     string
	topics    []topicSelection
	allTopics bool
	spec      resetSpec
	execute   bool
}

// parseResetFlags parses and validates reset-offsets' command line,
// reporting every problem at once.
func parseResetFlags(args []string, stderr io.Writer) (*resetFlags, *adminFlags, error) {
	fs := newFlagSet("group reset-offsets", " GROUP", stderr)
	af := addAdminFlags(fs)
	var topics stringList
	fs.Var(&topics, "topic", "topic to reset, all its partitions or TOPIC:P,P for some (repeatable)")
	allTopics := fs.Bool("all-topics", false, "reset every partition the group has committed")
	fs.Bool("to-earliest", false, "reset to the earliest offset")
	fs.Bool("to-latest", false, "reset to the latest offset (the log end)")
	toOffset := fs.Int64("to-offset", 0, "reset to this offset, kept within [earliest, latest]")
	toDatetime := fs.String("to-datetime", "", "reset to the first offset at or after this time, RFC 3339 (2026-11-22T10:00:00Z); no zone means UTC")
	shiftBy := fs.Int64("shift-by", 0, "move the committed offsets by N (negative: back), kept within [earliest, latest]")
	dryRun := fs.Bool("dry-run", false, "print the plan only (the default)")
	execute := fs.Bool("execute", false, "commit the plan")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return nil, nil, err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	rf := &resetFlags{group: pos[0], allTopics: *allTopics, execute: *execute}
	var problems []string
	for _, t := range topics {
		sel, err := parseTopicSelection(t)
		if err != nil {
			problems = append(problems, "--topic "+err.Error())
			continue
		}
		rf.topics = append(rf.topics, sel)
	}
	switch {
	case len(topics) == 0 && !rf.allTopics:
		problems = append(problems, "name the partitions to reset with --topic or --all-topics")
	case len(topics) > 0 && rf.allTopics:
		problems = append(problems, "--topic and --all-topics exclude each other")
	}
	var modes []string
	for _, m := range []struct {
		flag string
		mode resetMode
	}{
		{"to-earliest", resetToEarliest}, {"to-latest", resetToLatest}, {"to-offset", resetToOffset},
		{"to-datetime", resetToDatetime}, {"shift-by", resetShiftBy},
	} {
		if !set[m.flag] {
			continue
		}
		if f := fs.Lookup(m.flag); f.Value.String() == "false" {
			continue // --to-earliest=false
		}
		modes = append(modes, "--"+m.flag)
		rf.spec.mode = m.mode
	}
	switch len(modes) {
	case 0:
		problems = append(problems, "choose one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
	case 1:
	default:
		problems = append(problems, "choose only one of "+strings.Join(modes, ", "))
	}
	switch rf.spec.mode {
	case resetToOffset:
		rf.spec.offset = *toOffset
		if *toOffset < 0 {
			problems = append(problems, fmt.Sprintf("--to-offset %d: want a non-negative offset", *toOffset))
		}
	case resetShiftBy:
		rf.spec.offset = *shiftBy
	case resetToDatetime:
		ts, err := parseDatetime(*toDatetime)
		if err != nil {
			problems = append(problems, "--to-datetime "+err.Error())
		}
		rf.spec.timestamp = ts
	}
	if *dryRun && *execute {
		problems = append(problems, "--dry-run and --execute exclude each other")
	}
	if len(problems) > 0 {
		return nil, nil, usagef("%s", strings.Join(problems, "; "))
	}
	return rf, af, nil
}

// groupResetOffsets plans new committed offsets for a group that has no
// members, prints the plan and, with --execute, commits it.
func groupResetOffsets(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	rf, af, err := parseResetFlags(args, stderr)
	if err != nil {
		return err
	}
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()

	d := describeGroups(ctx, cl, []string{rf.group})[rf.group]
	switch {
	case errors.Is(d.err, kerr.GroupIDNotFound):
		// No such group yet: committing creates it.
	case d.err != nil:
		return d.err
	case d.group.State != "Empty":
		return fmt.Errorf("reset offsets of group %s: %w: it is %s with %d member(s); the group must be Empty, stop its consumers first",
			rf.group, errGroupActive, d.group.State, len(d.group.Members))
	}
	committed, err := committedOffsets(ctx, cl, rf.group)
	if err != nil {
		return err
	}

	tps, meta, err := resetPartitions(ctx, cl, rf, committed)
	if err != nil {
		return err
	}
	current := make(map[topicPartition]int64)
	var problems []error
	for _, tp := range tps {
		if c, ok := committed[tp]; ok && c.err != nil {
			problems = append(problems, fmt.Errorf("committed offset of %s: %w", tp, c.err))
		} else if ok {
			current[tp] = c.offset
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("reset offsets of group %s: %w", rf.group, errors.Join(problems...))
	}
	earliest, err := offsetsAtStrict(ctx, cl, meta, tps, offsetEarliest)
	if err != nil {
		return err
	}
	latest, err := offsetsAtStrict(ctx, cl, meta, tps, offsetLatest)
	if err != nil {
		return err
	}
	var atTime map[topicPartition]int64
	if rf.spec.mode == resetToDatetime {
		if atTime, err = offsetsAtStrict(ctx, cl, meta, tps, rf.spec.timestamp); err != nil {
			return err
		}
	}
	rows, warnings, err := planReset(rf.spec, tps, current, earliest, latest, atTime)
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", rf.group, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")
	for _, r := range rows {
		cur := "-"
		if r.current >= 0 {
			cur = strconv.FormatInt(r.current, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", r.tp.topic, r.tp.partition, cur, r.next)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if !rf.execute {
		fmt.Fprintf(stderr, "dry run: nothing committed; add --execute to commit these offsets\n")
		return nil
	}
	if err := commitOffsets(ctx, cl, rf.group, meta, rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "committed new offsets of %d partition(s) for group %s\n", len(rows), rf.group)
	return nil
}

// resetPartitions resolves --topic or --all-topics into partitions, sorted,
// and returns the metadata of their topics. --all-topics means the
// partitions the group has committed offsets for.
func resetPartitions(ctx context.Context, cl *kgo.Client, rf *resetFlags, committed map[topicPartition]partitionOffset) ([]topicPartition, map[string]*kmsg.MetadataResponseTopic, error) {
	var topics []string
	if rf.allTopics {
		for tp := range committed {
			topics = append(topics, tp.topic)
		}
		if len(topics) == 0 {
			return nil, nil, fmt.Errorf("reset offsets of group %s: %w for any partition; name topics with --topic", rf.group, errNoCommittedOffset)
		}
	} else {
		for _, sel := range rf.topics {
			topics = append(topics, sel.topic)
		}
	}
	topics = dedupe(topics)
	meta, err := topicsMetadata(ctx, cl, topics)
	if err != nil {
		return nil, nil, err
	}

	var problems []error
	for _, t := range topics {
		if meta[t] == nil {
			problems = append(problems, fmt.Errorf("topic %s: %w", t, kerr.UnknownTopicOrPartition))
		}
	}
	if len(problems) > 0 {
		return nil, nil, errors.Join(problems...)
	}

	var tps []topicPartition
	add := func(tp topicPartition) {
		if !slices.Contains(tps, tp) {
			tps = append(tps, tp)
		}
	}
	if rf.allTopics {
		for tp := range committed {
			add(tp)
		}
	} else {
		for _, sel := range rf.topics {
			have := partitionIDs(meta[sel.topic])
			if sel.partitions == nil {
				for _, p := range have {
					add(topicPartition{sel.topic, p})
				}
				continue
			}
			for _, p := range sel.partitions {
				if !slices.Contains(have, p) {
					problems = append(problems, fmt.Errorf("partition %s: %w", topicPartition{sel.topic, p}, kerr.UnknownTopicOrPartition))
					continue
				}
				add(topicPartition{sel.topic, p})
			}
		}
	}
	if len(problems) > 0 {
		return nil, nil, errors.Join(problems...)
	}
	slices.SortFunc(tps, compareTopicPartitions)
	return tps, meta, nil
}

// offsetsAtStrict is offsetsAt that fails, naming every partition, if any
// partition has no answer.
func offsetsAtStrict(ctx context.Context, cl *kgo.Client, meta map[string]*kmsg.MetadataResponseTopic, tps []topicPartition, timestamp int64) (map[topicPartition]int64, error) {
	res := offsetsAt(ctx, cl, meta, tps, timestamp)
	out := make(map[topicPartition]int64, len(res))
	var problems []error
	for _, tp := range tps {
		po := res[tp]
		if po.err != nil {
			problems = append(problems, fmt.Errorf("list offsets of %s: %w", tp, po.err))
			continue
		}
		out[tp] = po.offset
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return out, nil
}

// commitOffsets commits rows for group as an admin does: generation -1
// and no member id, which a coordinator accepts only while the group has
// no members.
func commitOffsets(ctx context.Context, cl *kgo.Client, group string, meta map[string]*kmsg.MetadataResponseTopic, rows []resetRow) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	req.MemberID = ""
	for _, r := range rows {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != r.tp.topic {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = r.tp.topic
			if t := meta[r.tp.topic]; t != nil {
				rt.TopicID = t.TopicID // v10+ names topics by id
			}
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = r.tp.partition
		rp.Offset = r.next
		rp.Metadata = kmsg.StringPtr("")
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	answered := make(map[topicPartition]bool)
	var problems []error
	for _, t := range resp.Topics {
		topic := t.Topic
		if topic == "" {
			for name, m := range meta {
				if m.TopicID == t.TopicID {
					topic = name
				}
			}
		}
		for _, p := range t.Partitions {
			tp := topicPartition{topic, p.Partition}
			answered[tp] = true
			if err := codeErr(p.ErrorCode, nil); err != nil {
				problems = append(problems, fmt.Errorf("commit offset of %s for group %s: %w", tp, group, err))
			}
		}
	}
	for _, r := range rows {
		if !answered[r.tp] {
			problems = append(problems, fmt.Errorf("commit offset of %s for group %s: %w", r.tp, group, errNoAnswer))
		}
	}
	return errors.Join(problems...)
}
