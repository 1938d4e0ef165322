package broker

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestElectLeaders: a standalone broker is every partition's only replica,
// so an election is never needed. Named partitions are ELECTION_NOT_NEEDED
// (unknown ones UNKNOWN_TOPIC_OR_PARTITION), all partitions (a null list)
// gets an empty answer, and an unknown election type (v1+) is
// INVALID_REQUEST.
func TestElectLeaders(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "el", 2, nil)

	elect := func(version int16, typ int8, topics map[string][]int32) *kmsg.ElectLeadersResponse {
		req := kmsg.NewPtrElectLeadersRequest()
		req.SetVersion(version)
		req.ElectionType = typ
		req.TimeoutMillis = 5000
		if topics != nil {
			for topic, parts := range topics {
				rt := kmsg.NewElectLeadersRequestTopic()
				rt.Topic, rt.Partitions = topic, parts
				req.Topics = append(req.Topics, rt)
			}
		}
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	codes := func(resp *kmsg.ElectLeadersResponse) map[string]int16 {
		m := map[string]int16{}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				m[rt.Topic+"-"+string(rune('0'+p.Partition))] = p.ErrorCode
			}
		}
		return m
	}

	for _, v := range []int16{0, 1, 2} {
		for _, typ := range []int8{0, 1} {
			if v == 0 && typ == 1 {
				continue // unclean elections came with v1
			}
			resp := elect(v, typ, map[string][]int32{"el": {0, 1, 7}, "missing": {0}})
			got := codes(resp)
			want := map[string]int16{"el-0": kerr.ElectionNotNeeded.Code, "el-1": kerr.ElectionNotNeeded.Code,
				"el-7": kerr.UnknownTopicOrPartition.Code, "missing-0": kerr.UnknownTopicOrPartition.Code}
			if resp.ErrorCode != 0 || len(got) != len(want) {
				t.Fatalf("v%d type %d: top-level %d, partitions %v; want %v", v, typ, resp.ErrorCode, got, want)
			}
			for k, c := range want {
				if got[k] != c {
					t.Fatalf("v%d type %d: %s answered %d, want %d", v, typ, k, got[k], c)
				}
			}
		}
		if resp := elect(v, 0, nil); resp.ErrorCode != 0 || len(resp.Topics) != 0 {
			t.Fatalf("v%d, every partition: %+v, want an empty answer", v, resp)
		}
	}

	if resp := elect(2, 5, map[string][]int32{"el": {0}}); resp.ErrorCode != kerr.InvalidRequest.Code || len(resp.Topics) != 0 {
		t.Fatalf("v2 election type 5: %+v, want INVALID_REQUEST", resp)
	}
}

// TestDescribeClientQuotas: no quotas exist, so a valid filter lists
// none; a bad one is INVALID_REQUEST with the reason.
func TestDescribeClientQuotas(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	comp := func(typ string, match int8, name *string) kmsg.DescribeClientQuotasRequestComponent {
		c := kmsg.NewDescribeClientQuotasRequestComponent()
		c.EntityType, c.MatchType, c.Match = typ, kmsg.QuotasMatchType(match), name
		return c
	}
	alice := kmsg.StringPtr("alice")
	for _, tc := range []struct {
		comps []kmsg.DescribeClientQuotasRequestComponent
		bad   string
	}{
		{nil, ""},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, alice), comp("client-id", 2, nil)}, ""},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("ip", 1, nil)}, ""},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("group", 2, nil)}, "custom entity type"},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("user", 2, nil), comp("user", 1, nil)}, "duplicate"},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("ip", 2, nil), comp("user", 2, nil)}, "cannot be combined"},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, nil)}, "needs a name"},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("user", 2, alice)}, "takes no name"},
		{[]kmsg.DescribeClientQuotasRequestComponent{comp("user", 7, nil)}, "unknown match type"},
	} {
		req := kmsg.NewPtrDescribeClientQuotasRequest()
		req.Components = tc.comps
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Entries) != 0 {
			t.Fatalf("%+v: entries %+v, want none", tc.comps, resp.Entries)
		}
		if tc.bad == "" {
			if resp.ErrorCode != 0 {
				t.Fatalf("%+v: error %d %v", tc.comps, resp.ErrorCode, resp.ErrorMessage)
			}
			continue
		}
		if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, tc.bad) {
			t.Fatalf("%+v: error %d %v, want INVALID_REQUEST naming %q", tc.comps, resp.ErrorCode, resp.ErrorMessage, tc.bad)
		}
	}
}

// TestBrokerLoggerConfigs: DescribeConfigs on a BROKER_LOGGER resource
// (kafka-configs --entity-type broker-loggers) lists the root logger at
// the broker's level, read-only; altering it, or asking for a resource
// type gregor does not have, is INVALID_REQUEST saying so.
func TestBrokerLoggerConfigs(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	describe := func(typ kmsg.ConfigResourceType, name string) kmsg.DescribeConfigsResponseResource {
		req := kmsg.NewPtrDescribeConfigsRequest()
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = typ, name
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Resources[0]
	}
	r := describe(kmsg.ConfigResourceTypeBrokerLogger, "0")
	if r.ErrorCode != 0 || len(r.Configs) != 1 {
		t.Fatalf("broker logger: %+v", r)
	}
	if c := r.Configs[0]; c.Name != "root" || c.Value == nil || *c.Value != log4jLevel(b.log.Level()) || *c.Value == "OFF" || !c.ReadOnly {
		t.Fatalf("root logger: %+v (value %v)", c, c.Value)
	}
	if r := describe(kmsg.ConfigResourceType(16), "cm"); r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, "not supported by gregor") {
		t.Fatalf("client metrics resource: %+v", r)
	}
	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeBrokerLogger, "0"
	ic := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	ic.Name, ic.Value = "root", kmsg.StringPtr("DEBUG")
	ir.Configs = append(ir.Configs, ic)
	ia.Resources = append(ia.Resources, ir)
	iar, err := ia.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if r := iar.Resources[0]; r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, "--log-level") {
		t.Fatalf("altering the root logger: %+v", r)
	}
}
