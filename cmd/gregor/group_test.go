package main

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"group"}, 2, "", "Subcommands:"},
		{[]string{"group", "-h"}, 0, "reset-offsets", ""},
		{[]string{"group", "frob"}, 2, "", `unknown subcommand "frob"`},
		{[]string{"group", "list", "--state", "Stable,Sleepy"}, 2, "", `unknown group state(s) "Sleepy"`},
		{[]string{"group", "describe"}, 2, "", "expected at least 1 argument"},
		{[]string{"group", "delete"}, 2, "", "expected at least 1 argument"},
		{[]string{"group", "reset-offsets", "-h"}, 0, "", "--to-datetime"},
		{[]string{"group", "reset-offsets", "g"}, 2, "", "--topic or --all-topics; choose one of --to-earliest"},
		{[]string{"group", "reset-offsets", "g", "--all-topics", "--topic", "t", "--to-latest"}, 2, "", "exclude each other"},
		{[]string{"group", "reset-offsets", "g", "--all-topics", "--to-latest", "--to-earliest"}, 2, "", "only one of --to-earliest, --to-latest"},
		{[]string{"group", "reset-offsets", "g", "--all-topics", "--to-latest", "--dry-run", "--execute"}, 2, "", "--dry-run and --execute"},
		{[]string{"group", "reset-offsets", "g", "--topic", "t:x", "--to-latest"}, 2, "", `partition "x"`},
		{[]string{"group", "reset-offsets", "g", "--topic", ":1", "--to-latest"}, 2, "", "empty topic name"},
		{[]string{"group", "reset-offsets", "g", "--all-topics", "--to-offset", "-1"}, 2, "", "--to-offset -1"},
		{[]string{"group", "reset-offsets", "g", "--all-topics", "--to-datetime", "yesterday"}, 2, "", "--to-datetime"},
		{[]string{"group", "reset-offsets", "g", "h", "--all-topics", "--to-latest"}, 2, "", "unexpected argument"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, "", tt.args...)
		if code != tt.wantCode || !strings.Contains(stdout, tt.wantStdout) || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("gregor %q: code %d, stdout %q, stderr %q; want %d, %q, %q",
				tt.args, code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
		}
	}
}

func TestParseGroupStates(t *testing.T) {
	got, err := parseGroupStates([]string{"stable, EMPTY", "Stable", ""})
	if err != nil || !slices.Equal(got, []string{"Stable", "Empty"}) {
		t.Errorf("parseGroupStates = %q, %v", got, err)
	}
	if _, err := parseGroupStates([]string{"a,Dead,b"}); err == nil || !strings.Contains(err.Error(), `"a", "b"`) {
		t.Errorf("parseGroupStates with two bad states: %v", err)
	}
}

func TestParseTopicSelection(t *testing.T) {
	tests := []struct {
		in      string
		want    topicSelection
		wantErr bool
	}{
		{"orders", topicSelection{topic: "orders"}, false},
		{"orders:0,2,2", topicSelection{topic: "orders", partitions: []int32{0, 2}}, false},
		{"a.b-c_d:7", topicSelection{topic: "a.b-c_d", partitions: []int32{7}}, false},
		{"orders:", topicSelection{}, true},
		{"orders:-1", topicSelection{}, true},
		{"orders:1,,2", topicSelection{}, true},
		{":3", topicSelection{}, true},
		{"", topicSelection{}, true},
	}
	for _, tt := range tests {
		got, err := parseTopicSelection(tt.in)
		if (err != nil) != tt.wantErr || got.topic != tt.want.topic || !slices.Equal(got.partitions, tt.want.partitions) {
			t.Errorf("parseTopicSelection(%q) = %+v, %v; want %+v, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseDatetime(t *testing.T) {
	want := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMilli()
	for _, s := range []string{"2026-11-22T10:00:00Z", "2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00", "2026-11-22T10:00:00.000Z"} {
		if got, err := parseDatetime(s); err != nil || got != want {
			t.Errorf("parseDatetime(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	if got, err := parseDatetime("2026-11-22T10:00:00.250Z"); err != nil || got != want+250 {
		t.Errorf("parseDatetime with millis = %d, %v", got, err)
	}
	for _, s := range []string{"", "2026-11-22", "10:00", "2026-13-01T00:00:00Z"} {
		if _, err := parseDatetime(s); err == nil {
			t.Errorf("parseDatetime(%q) succeeded", s)
		}
	}
}

func TestPlanReset(t *testing.T) {
	p0, p1 := topicPartition{"t", 0}, topicPartition{"t", 1}
	tps := []topicPartition{p0, p1}
	current := map[topicPartition]int64{p0: 50}
	earliest := map[topicPartition]int64{p0: 10, p1: 0}
	latest := map[topicPartition]int64{p0: 100, p1: 20}
	atTime := map[topicPartition]int64{p0: 42, p1: -1}
	tests := []struct {
		name         string
		spec         resetSpec
		tps          []topicPartition
		want         []int64 // new offsets, in tps order
		wantWarnings int
		wantErr      error
	}{
		{"earliest", resetSpec{mode: resetToEarliest}, tps, []int64{10, 0}, 0, nil},
		{"latest", resetSpec{mode: resetToLatest}, tps, []int64{100, 20}, 0, nil},
		{"offset within range", resetSpec{mode: resetToOffset, offset: 15}, tps, []int64{15, 15}, 0, nil},
		{"offset clamped both ways", resetSpec{mode: resetToOffset, offset: 5}, tps, []int64{10, 5}, 1, nil},
		{"offset above latest", resetSpec{mode: resetToOffset, offset: 500}, tps, []int64{100, 20}, 2, nil},
		{"datetime, none after goes to latest", resetSpec{mode: resetToDatetime}, tps, []int64{42, 20}, 0, nil},
		{"shift back", resetSpec{mode: resetShiftBy, offset: -5}, []topicPartition{p0}, []int64{45}, 0, nil},
		{"shift back below earliest", resetSpec{mode: resetShiftBy, offset: -45}, []topicPartition{p0}, []int64{10}, 1, nil},
		{"shift forward past latest", resetSpec{mode: resetShiftBy, offset: 60}, []topicPartition{p0}, []int64{100}, 1, nil},
		{"shift without a committed offset", resetSpec{mode: resetShiftBy, offset: 1}, tps, nil, 0, errNoCommittedOffset},
	}
	for _, tt := range tests {
		rows, warnings, err := planReset(tt.spec, tt.tps, current, earliest, latest, atTime)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		var got []int64
		for i, r := range rows {
			got = append(got, r.next)
			wantCur, ok := current[tt.tps[i]]
			if !ok {
				wantCur = -1
			}
			if r.tp != tt.tps[i] || r.current != wantCur {
				t.Errorf("%s: row %d = %+v", tt.name, i, r)
			}
		}
		if !slices.Equal(got, tt.want) || len(warnings) != tt.wantWarnings {
			t.Errorf("%s: new offsets %v, warnings %q; want %v and %d warning(s)", tt.name, got, warnings, tt.want, tt.wantWarnings)
		}
	}
}

func TestNewGroupView(t *testing.T) {
	a := kmsg.NewConsumerMemberAssignment()
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "b", Partitions: []int32{2}}, {Topic: "a", Partitions: []int32{1, 0}}}
	desc := kmsg.NewDescribeGroupsResponseGroup()
	desc.Group = "g"
	desc.ProtocolType = "consumer"
	good := kmsg.NewDescribeGroupsResponseGroupMember()
	good.MemberID = "m1"
	good.MemberAssignment = a.AppendTo(nil)
	bad := kmsg.NewDescribeGroupsResponseGroupMember()
	bad.MemberID = "m2"
	bad.MemberAssignment = []byte{0, 0, 0, 0, 0, 9} // claims 9 topics, has none
	desc.Members = []kmsg.DescribeGroupsResponseGroupMember{bad, good}

	v := newGroupView(desc)
	if len(v.members) != 2 || v.members[0].MemberID != "m1" || v.members[1].MemberID != "m2" {
		t.Fatalf("members = %+v", v.members)
	}
	if got := formatAssignment(v.members[0].assigned); got != "a:0,1 b:2" {
		t.Errorf("assignment = %q", got)
	}
	if v.members[1].decodeErr == nil {
		t.Errorf("truncated assignment decoded without error")
	}
	if v.owner[topicPartition{"b", 2}] != "m1" || len(v.owner) != 3 {
		t.Errorf("owners = %v", v.owner)
	}

	v.committed = map[topicPartition]partitionOffset{{"a", 0}: {offset: 5}, {"c", 0}: {offset: 7}}
	rows := v.offsetRows(map[topicPartition]partitionOffset{{"a", 0}: {offset: 9}, {"a", 1}: {offset: 3}, {"c", 0}: {offset: -1, err: errNoAnswer}})
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r.tp.String(), r.current, r.logEnd, r.lag, r.member}, " "))
	}
	want := []string{"a[0] 5 9 4 m1", "a[1] - 3 - m1", "b[2] - - - m1", "c[0] 7 no answer from the broker - -"}
	if !slices.Equal(got, want) {
		t.Errorf("offset rows:\n%q\nwant\n%q", got, want)
	}
}

// fetchCommittedRaw reads a group's committed offsets with a v0-v7 style
// OffsetFetch, independently of the command's own code path.
func fetchCommittedRaw(t *testing.T, cl *kgo.Client, group string) map[topicPartition]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := make(map[topicPartition]int64)
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("offset fetch %s[%d]: error %d", tp.Topic, p.Partition, p.ErrorCode)
			}
			if p.Offset >= 0 {
				out[topicPartition{tp.Topic, p.Partition}] = p.Offset
			}
		}
	}
	return out
}

func TestGroupCommands(t *testing.T) {
	t.Parallel()
	testGroupCommands(t, newCluster(t))
}

// testGroupCommands runs every group command against the cluster at b:
// a consumer group commits, then list, describe, reset-offsets (dry run
// and each mode) and delete are checked against what the group did.
func testGroupCommands(t *testing.T, b string) {
	ctx := t.Context()
	mustRun(t, "", "topic", "create", "orders", "-b", b, "--partitions", "3")

	admin, err := kgo.NewClient(kgo.SeedBrokers(b))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	// Ten records per partition; partition 0's are one batch each, one
	// second apart from base, so --to-datetime can find any of them.
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	producer, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produce := func(partition int32, n int, ts time.Time) {
		t.Helper()
		for i := range n {
			r := &kgo.Record{Topic: "orders", Partition: partition, Value: []byte("v"), Timestamp: ts.Add(time.Duration(i) * time.Second)}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	for p := range int32(3) {
		produce(p, 10, base)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("orders"),
		kgo.DisableAutoCommit(), kgo.ClientID("grp-test"), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for seen := 0; seen < 30; {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		fetches := consumer.PollFetches(pctx)
		err := pctx.Err()
		cancel()
		if err != nil {
			t.Fatalf("consumed %d of 30 records: %v", seen, err)
		}
		seen += fetches.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	memberID, _ := consumer.GroupMetadata()
	produce(0, 4, base.Add(10*time.Second)) // partition 0: log end 14, lag 4

	if out := mustRun(t, "", "group", "list", "-b", b); !containsFields(out, "g1", "consumer", "Stable") {
		t.Errorf("list:\n%s", out)
	}
	if out := mustRun(t, "", "group", "list", "-b", b, "--state", "empty,dead"); strings.Contains(out, "g1") {
		t.Errorf("list --state empty,dead shows the stable group:\n%s", out)
	}

	desc := mustRun(t, "", "group", "describe", "g1", "-b", b)
	for _, want := range []string{"Group: g1", "State: Stable", "ProtocolType: consumer", "Members: 1", "grp-test", "orders:0,1,2", "Total lag: 4"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	for _, row := range [][]string{{"orders", "0", "10", "14", "4", memberID}, {"orders", "2", "10", "10", "0", memberID}} {
		if !containsFields(desc, row...) {
			t.Errorf("describe lacks row %q:\n%s", row, desc)
		}
	}
	offsets := mustRun(t, "", "group", "describe", "g1", "-b", b, "--offsets-only")
	if !containsFields(offsets, "g1", "orders", "0", "10", "14", "4", memberID) || strings.Contains(offsets, "Group:") {
		t.Errorf("describe --offsets-only:\n%s", offsets)
	}

	// An active group can be neither reset nor deleted.
	mustFail(t, "must be Empty", "group", "reset-offsets", "g1", "-b", b, "--all-topics", "--to-earliest", "--execute")
	mustFail(t, "NON_EMPTY_GROUP", "group", "delete", "g1", "-b", b)

	consumer.Close() // leaves the group
	waitFor(t, "g1 to be empty", func() bool {
		code, out, _ := runCLI(t, "", "group", "list", "-b", b, "--state", "Empty")
		return code == 0 && containsFields(out, "g1", "consumer", "Empty")
	})
	if desc := mustRun(t, "", "group", "describe", "g1", "-b", b); !strings.Contains(desc, "(no active members)") ||
		!containsFields(desc, "orders", "0", "10", "14", "4", "-") {
		t.Errorf("describe of the empty group:\n%s", desc)
	}

	committed := func(group string) map[topicPartition]int64 { return fetchCommittedRaw(t, admin, group) }
	want := func(offsets ...int64) map[topicPartition]int64 {
		m := make(map[topicPartition]int64)
		for p, o := range offsets {
			m[topicPartition{"orders", int32(p)}] = o
		}
		return m
	}

	// A dry run prints the plan and commits nothing.
	code, out, errOut := runCLI(t, "", "group", "reset-offsets", "g1", "-b", b, "--topic", "orders:0,1", "--to-offset", "3")
	if code != 0 || !containsFields(out, "orders", "0", "10", "3") || !containsFields(out, "orders", "1", "10", "3") ||
		containsFields(out, "orders", "2", "10", "3") || !strings.Contains(errOut, "dry run") {
		t.Errorf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got := committed("g1"); !maps.Equal(got, want(10, 10, 10)) {
		t.Errorf("after dry run: committed %v", got)
	}

	steps := []struct {
		args []string
		want map[topicPartition]int64
	}{
		{[]string{"--all-topics", "--shift-by", "-2"}, want(8, 8, 8)},
		{[]string{"--topic", "orders:2", "--to-offset", "100"}, want(8, 8, 10)}, // clamped to the log end
		{[]string{"--topic", "orders", "--to-earliest"}, want(0, 0, 0)},
		{[]string{"--topic", "orders:0", "--topic", "orders:1", "--to-latest"}, want(14, 10, 0)},
		{[]string{"--topic", "orders:0", "--to-datetime", "2026-11-22T10:00:05Z"}, want(5, 10, 0)},
		{[]string{"--topic", "orders:0", "--to-datetime", "2026-11-22T11:00:05.5+01:00"}, want(6, 10, 0)},
		{[]string{"--topic", "orders:0", "--to-datetime", "2030-01-01T00:00:00Z"}, want(14, 10, 0)}, // none after: latest
	}
	for _, s := range steps {
		args := append([]string{"group", "reset-offsets", "g1", "-b", b, "--execute"}, s.args...)
		out := mustRun(t, "", args...)
		if !strings.Contains(out, "committed new offsets") {
			t.Errorf("reset %q: %s", s.args, out)
		}
		if got := committed("g1"); !maps.Equal(got, s.want) {
			t.Errorf("after reset %q: committed %v, want %v", s.args, got, s.want)
		}
	}
	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "group", "reset-offsets", "g1", "-b", b, "--topic", "orders:7", "--to-earliest", "--execute")
	mustFail(t, "UNKNOWN_TOPIC_OR_PARTITION", "group", "reset-offsets", "g1", "-b", b, "--topic", "nope", "--to-earliest")

	// A group that does not exist yet: --shift-by has nothing to shift,
	// other modes create it with the new offsets.
	mustFail(t, "no committed offset", "group", "reset-offsets", "g2", "-b", b, "--topic", "orders", "--shift-by", "1")
	mustFail(t, "no committed offset", "group", "reset-offsets", "g2", "-b", b, "--all-topics", "--to-earliest")
	mustRun(t, "", "group", "reset-offsets", "g2", "-b", b, "--topic", "orders:1", "--to-offset", "4", "--execute")
	if got := committed("g2"); !maps.Equal(got, map[topicPartition]int64{{"orders", 1}: 4}) {
		t.Errorf("g2 committed %v", got)
	}

	if out := mustRun(t, "", "group", "describe", "g1", "g2", "-b", b, "--offsets-only"); !containsFields(out, "g2", "orders", "1", "4", "10", "6", "-") ||
		!containsFields(out, "g1", "orders", "0", "14", "14", "0", "-") {
		t.Errorf("describe of two groups:\n%s", out)
	}

	code, out, errOut = runCLI(t, "", "group", "delete", "g1", "nope", "g2", "-b", b)
	if code != 1 || !strings.Contains(out, "deleted group g1") || !strings.Contains(out, "deleted group g2") ||
		!strings.Contains(errOut, "delete group nope: GROUP_ID_NOT_FOUND") {
		t.Errorf("delete: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mustFail(t, "GROUP_ID_NOT_FOUND", "group", "describe", "g1", "-b", b)
	if out := mustRun(t, "", "group", "list", "-b", b); len(lines(out)) != 1 {
		t.Errorf("list after delete:\n%s", out)
	}
	if got := committed("g1"); len(got) != 0 {
		t.Errorf("g1 still has offsets after delete: %v", got)
	}
}
