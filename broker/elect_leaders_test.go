package broker

import (
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
