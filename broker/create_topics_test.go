package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCreateTopicsBatch: one CreateTopics request creating many topics
// answers each on its own (existing names, names twice in the request,
// '.'/'_' collisions within the request, bad configs) and creates the
// rest, with their logs, in one metadata update that survives a restart.
func TestCreateTopicsBatch(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "exists", 1, nil)

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 60000
	add := func(name string, partitions int32, configs map[string]string) {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
		for k, v := range configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, kmsg.StringPtr(v)
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
	}
	const many = 300
	for i := range many {
		add(fmt.Sprintf("batch-%03d", i), 2, nil)
	}
	add("exists", 1, nil)
	add("twice", 1, nil)
	add("twice", 1, nil)
	add("dot.name", 1, nil)
	add("dot_name", 1, nil) // collides with the one before it
	add("badconfig", 1, map[string]string{"retention.ms": "soon"})
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]error{
		"exists":    kerr.TopicAlreadyExists,
		"twice":     kerr.InvalidRequest,
		"dot.name":  nil,
		"dot_name":  kerr.InvalidTopicException,
		"badconfig": kerr.InvalidConfig,
	}
	for _, st := range resp.Topics {
		w, special := want[st.Topic]
		if !special {
			w = nil
		}
		if got := kerr.ErrorForCode(st.ErrorCode); got != w {
			t.Errorf("%s: %v, want %v", st.Topic, got, w)
		}
		if w == nil && (st.NumPartitions < 1 || st.TopicID == [16]byte{}) {
			t.Errorf("%s: created but answered partitions %d, id %x", st.Topic, st.NumPartitions, st.TopicID)
		}
	}
	produceN(t, cl, "batch-299", 1, 5)
	cl.Close()
	stopBroker(t, b)

	b = startBroker(t, nil, dir, nil)
	cl = newClient(t, b)
	for i := range many {
		name := fmt.Sprintf("batch-%03d", i)
		if tp, ok := b.store.Topic(name); !ok || tp.Partitions != 2 || b.logs.Log(name, 1) == nil {
			t.Fatalf("%s after restart: %+v %v", name, tp, ok)
		}
	}
	if off, code := listOffset(t, cl, "batch-299", 1, -1); code != 0 || off != 5 {
		t.Fatalf("batch-299/1 after restart: %d %v", off, kerr.ErrorForCode(code))
	}
	for _, gone := range []string{"dot_name", "badconfig"} {
		if _, ok := b.store.Topic(gone); ok {
			t.Errorf("refused topic %s exists after restart", gone)
		}
	}
}

// TestDeleteTopicsByNameAndID: DeleteTopics v6 entries naming a topic by
// name and id at once, by neither, or one topic twice (by name and by its
// id) are INVALID_REQUEST, as in Kafka, and delete nothing; an entry by id
// alone deletes.
func TestDeleteTopicsByNameAndID(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	for _, name := range []string{"d1", "d2", "d3"} {
		createTopic(t, cl, name, 1, nil)
	}
	id := func(name string) [16]byte {
		tp, ok := b.store.Topic(name)
		if !ok {
			t.Fatalf("no topic %s", name)
		}
		return tp.ID
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	add := func(name *string, id [16]byte) {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic, rt.TopicID = name, id
		del.Topics = append(del.Topics, rt)
	}
	add(kmsg.StringPtr("d2"), id("d1")) // both: a stale id must not delete d2
	add(nil, [16]byte{})                // neither
	add(kmsg.StringPtr("d3"), [16]byte{})
	add(nil, id("d3")) // d3 again, by id
	add(nil, id("d1")) // by id alone
	resp := request[*kmsg.DeleteTopicsResponse](t, cl, del)
	want := []*kerr.Error{kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidRequest, nil}
	if len(resp.Topics) != len(want) {
		t.Fatalf("%d answers for %d entries", len(resp.Topics), len(want))
	}
	for i, st := range resp.Topics {
		var code int16
		if want[i] != nil {
			code = want[i].Code
		}
		if st.ErrorCode != code {
			t.Errorf("entry %d: %v, want %v", i, kerr.ErrorForCode(st.ErrorCode), want[i])
		}
	}
	for name, exists := range map[string]bool{"d1": false, "d2": true, "d3": true} {
		if _, ok := b.store.Topic(name); ok != exists {
			t.Errorf("topic %s exists %v, want %v", name, ok, exists)
		}
	}
}

// TestDeleteTopicsBatch: one DeleteTopics request deleting many topics
// answers each on its own (unknown, internal, and named twice: refused in
// both entries and kept, as in Kafka) and deletes the rest, in one
// metadata update that survives a restart.
func TestDeleteTopicsBatch(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	const many = 200
	create := kmsg.NewPtrCreateTopicsRequest()
	del := kmsg.NewPtrDeleteTopicsRequest()
	byName := func(name string) {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		del.Topics = append(del.Topics, rt)
		del.TopicNames = append(del.TopicNames, name) // before v6
	}
	for i := range many {
		name := fmt.Sprintf("del-%03d", i)
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		create.Topics = append(create.Topics, rt)
		byName(name)
	}
	createTopic(t, cl, "keep", 1, nil)
	if _, err := create.RequestWith(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nosuch", "del-000", "__consumer_offsets"} {
		byName(name)
	}
	resp, err := del.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	// del-000, named twice, is answered once, as Kafka's ControllerApis does.
	if len(resp.Topics) != many+2 {
		t.Fatalf("%d answers for %d names, one of them twice", len(resp.Topics), many+3)
	}
	for i, st := range resp.Topics {
		var want error
		switch {
		case i == many:
			want = kerr.UnknownTopicOrPartition
		case i == 0: // del-000, named twice
			want = kerr.InvalidRequest
		case i == many+1:
			want = kerr.TopicAuthorizationFailed
		}
		if got := kerr.ErrorForCode(st.ErrorCode); got != want {
			t.Errorf("answer %d (%s): %v, want %v", i, *st.Topic, got, want)
		}
	}
	cl.Close()
	stopBroker(t, b)
	b = startBroker(t, nil, dir, nil)
	for i := 1; i < many; i++ {
		name := fmt.Sprintf("del-%03d", i)
		if _, ok := b.store.Topic(name); ok || b.logs.Log(name, 0) != nil {
			t.Fatalf("%s back after restart", name)
		}
	}
	for _, name := range []string{"keep", "del-000"} {
		if _, ok := b.store.Topic(name); !ok {
			t.Fatalf("topic %s deleted", name)
		}
	}
}

// TestCreateTopicsAssignmentsAndNullConfigs: manual assignments may list
// the partitions in any order, but each of 0..n-1 once; a config with a
// null value is INVALID_CONFIG, as in Kafka (KRaft), and creates nothing.
func TestCreateTopicsAssignmentsAndNullConfigs(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	req := kmsg.NewPtrCreateTopicsRequest()
	assigned := func(name string, partitions ...int32) {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, -1, -1
		for _, p := range partitions {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = p, []int32{b.cfg.BrokerID}
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		req.Topics = append(req.Topics, rt)
	}
	assigned("reversed", 1, 0)
	assigned("repeated", 0, 0)
	assigned("gap", 0, 2)
	dup := kmsg.NewCreateTopicsRequestTopic()
	dup.Topic, dup.NumPartitions, dup.ReplicationFactor = "twice", -1, -1
	da := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	da.Replicas = []int32{b.cfg.BrokerID, b.cfg.BrokerID}
	dup.ReplicaAssignment = append(dup.ReplicaAssignment, da)
	req.Topics = append(req.Topics, dup)
	for _, name := range []string{"null-known", "null-unknown"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = map[string]string{"null-known": "retention.ms", "null-unknown": "foo.bar"}[name]
		rt.Configs = append(rt.Configs, c) // Value nil
		req.Topics = append(req.Topics, rt)
	}
	want := map[string]*kerr.Error{
		"reversed": nil, "repeated": kerr.InvalidReplicaAssignment, "gap": kerr.InvalidReplicaAssignment,
		"null-known": kerr.InvalidConfig, "null-unknown": kerr.InvalidConfig, "twice": kerr.InvalidReplicaAssignment,
	}
	for _, st := range request[*kmsg.CreateTopicsResponse](t, cl, req).Topics {
		if st.Topic == "twice" && (st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "named twice")) {
			t.Errorf("twice: message %v does not say the broker is named twice", st.ErrorMessage)
		}
		var code int16
		if w := want[st.Topic]; w != nil {
			code = w.Code
		}
		if st.ErrorCode != code {
			t.Errorf("%s: %v, want %v", st.Topic, kerr.ErrorForCode(st.ErrorCode), want[st.Topic])
		}
		if _, ok := b.store.Topic(st.Topic); ok != (code == 0) {
			t.Errorf("%s: created %v", st.Topic, ok)
		}
	}
	if tp, _ := b.store.Topic("reversed"); tp.Partitions != 2 {
		t.Errorf("reversed: %d partitions, want 2", tp.Partitions)
	}
}

// TestTopicDeletionDisabled: with delete.topic.enable=false every
// DeleteTopics entry is refused, TOPIC_DELETION_DISABLED from v3 on and
// INVALID_REQUEST before, and the topic stays.
func TestTopicDeletionDisabled(t *testing.T) {
	b := startBroker(t, nil, t.TempDir(), func(c *Config) { c.Props["delete.topic.enable"] = "FALSE" })
	cl := newClient(t, b)
	createTopic(t, cl, "kept", 1, nil)
	c := dial(t, b)
	for _, v := range []int16{2, 3, 6} {
		del := kmsg.NewPtrDeleteTopicsRequest()
		del.Version = v
		del.TopicNames = []string{"kept"}
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr("kept")
		del.Topics = []kmsg.DeleteTopicsRequestTopic{rt}
		resp := kmsg.NewPtrDeleteTopicsResponse()
		rawRoundTrip(t, c, del, resp)
		want := kerr.TopicDeletionDisabled
		if v < 3 {
			want = kerr.InvalidRequest
		}
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != want.Code {
			t.Fatalf("v%d: %+v, want %v", v, resp.Topics, want)
		}
	}
	if _, ok := b.store.Topic("kept"); !ok {
		t.Fatal("topic deleted with delete.topic.enable=false")
	}
}

// TestTopicNameIllegalCharacterNamed: the refusal of a name names the
// illegal character whole, not the first byte of its UTF-8 encoding.
func TestTopicNameIllegalCharacterNamed(t *testing.T) {
	err := validateTopicName("ümlaut")
	if err == nil || !strings.Contains(err.Error(), "illegal character 'ü'") {
		t.Fatalf("validateTopicName(ümlaut) = %v", err)
	}
}

// TestDuplicateTopicsAnsweredOnce: as Kafka's ControllerApis, a topic
// named twice in one CreateTopics request is answered once, with
// INVALID_REQUEST, and not created; in DeleteTopics, a topic given by name
// and by id is refused in both entries (one per form given) and stays.
func TestDuplicateTopicsAnsweredOnce(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	create := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"dup", "solo", "dup"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		create.Topics = append(create.Topics, rt)
	}
	resp := request[*kmsg.CreateTopicsResponse](t, cl, create)
	if len(resp.Topics) != 2 || resp.Topics[0].Topic != "dup" || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code ||
		resp.Topics[1].Topic != "solo" || resp.Topics[1].ErrorCode != 0 {
		t.Fatalf("create dup, solo, dup: %+v", resp.Topics)
	}
	if _, ok := b.store.Topic("dup"); ok {
		t.Fatal("a topic named twice was created")
	}
	solo, _ := b.store.Topic("solo")
	del := kmsg.NewPtrDeleteTopicsRequest()
	byName, byID := kmsg.NewDeleteTopicsRequestTopic(), kmsg.NewDeleteTopicsRequestTopic()
	byName.Topic = kmsg.StringPtr("solo")
	byID.TopicID = solo.ID
	del.Topics = append(del.Topics, byName, byID, byName)
	dresp := request[*kmsg.DeleteTopicsResponse](t, cl, del)
	if len(dresp.Topics) != 2 || dresp.Topics[0].ErrorCode != kerr.InvalidRequest.Code || dresp.Topics[1].ErrorCode != kerr.InvalidRequest.Code ||
		dresp.Topics[1].TopicID != solo.ID {
		t.Fatalf("delete by name, by id, by name: %+v", dresp.Topics)
	}
	if _, ok := b.store.Topic("solo"); !ok {
		t.Fatal("a topic named twice was deleted")
	}
}
