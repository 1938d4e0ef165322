package broker

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/internal/vfs"
)

// TestCreatePartitionsFailureRollsBack: a partition addition whose logs
// cannot all be created (here, out of file descriptors at the eighth)
// leaves the topic as it was, its count included, and no partition
// directories behind; the broker restarts on the data dir and the same
// addition succeeds once files can be opened again.
func TestCreatePartitionsFailureRollsBack(t *testing.T) {
	dir := t.TempDir()
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "gt", 3, nil)

	grow := func(count int32) int16 {
		t.Helper()
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "gt", count
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].ErrorCode
	}
	efs.FailOn(vfs.OpOpen, "gt-7", syscall.EMFILE)
	if code := grow(10); code != kerr.KafkaStorageError.Code {
		t.Fatalf("growing to 10 with gt-7 failing: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	if tp, _ := b.store.Topic("gt"); tp.Partitions != 3 {
		t.Fatalf("partition count %d after the failed addition, want 3", tp.Partitions)
	}
	for p := 3; p < 10; p++ {
		if l := b.logs.Log("gt", int32(p)); l != nil {
			t.Fatalf("log gt-%d left open", p)
		}
	}
	leftover := func() []string {
		var names []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, "gt-") && n != "gt-0" && n != "gt-1" && n != "gt-2" {
				names = append(names, n)
			}
		}
		return names
	}
	for deadline := time.Now().Add(5 * time.Second); len(leftover()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("partition directories left after the failed addition: %v", leftover())
		}
	}
	efs.Clear()
	if code := grow(10); code != 0 {
		t.Fatalf("growing to 10: %v", kerr.ErrorForCode(code))
	}
	if tp, _ := b.store.Topic("gt"); tp.Partitions != 10 {
		t.Fatalf("partition count %d, want 10", tp.Partitions)
	}
	for p := 0; p < 10; p++ {
		if _, err := os.Stat(filepath.Join(dir, "gt-"+strconv.Itoa(p))); err != nil {
			t.Fatalf("partition gt-%d: %v", p, err)
		}
	}
}

// TestPartitionsBeyondOpenFileLimit: creating or adding more partitions
// than the open-file limit allows is refused up front, with a message
// naming the limit, and changes nothing.
func TestPartitionsBeyondOpenFileLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 90000 {
		t.Skipf("open-file limit %d (%v) is above what a topic may have", lim.Cur, err)
	}
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "few", 1, nil)

	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "few", int32(lim.Cur)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Topics[0]
	if r.ErrorCode != kerr.InvalidPartitions.Code || r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, "ulimit -n") {
		t.Fatalf("adding %d partitions: %v %v", lim.Cur, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
	}
	if tp, _ := b.store.Topic("few"); tp.Partitions != 1 {
		t.Fatalf("partition count %d, want 1", tp.Partitions)
	}

	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = "many", int32(lim.Cur), 1
	ct.Topics = append(ct.Topics, ctt)
	cresp, err := ct.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.Topics[0].ErrorCode; code != kerr.InvalidPartitions.Code {
		t.Fatalf("creating a topic of %d partitions: %v", lim.Cur, kerr.ErrorForCode(code))
	}
	if _, ok := b.store.Topic("many"); ok {
		t.Fatal("topic created")
	}
}

// TestCreatePartitionsChecksRequest: as in Kafka, assignments must number
// the partitions added (INVALID_REPLICA_ASSIGNMENT), and a topic named
// twice in one request is INVALID_REQUEST in both entries; neither grows
// the topic. With one assignment per new partition it grows.
func TestCreatePartitionsChecksRequest(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "cp", 2, nil)
	grow := func(count int32, assignments int, twice bool) []kmsg.CreatePartitionsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "cp", count
		for range assignments {
			a := kmsg.NewCreatePartitionsRequestTopicAssignment()
			a.Replicas = []int32{b.cfg.BrokerID}
			rt.Assignment = append(rt.Assignment, a)
		}
		req.Topics = append(req.Topics, rt)
		if twice {
			rt.Count++
			req.Topics = append(req.Topics, rt)
		}
		return request[*kmsg.CreatePartitionsResponse](t, cl, req).Topics
	}
	partitions := func() int32 {
		tp, _ := b.store.Topic("cp")
		return tp.Partitions
	}
	if r := grow(4, 1, false); r[0].ErrorCode != kerr.InvalidReplicaAssignment.Code || partitions() != 2 {
		t.Fatalf("2 partitions added with 1 assignment: %v, %d partitions", kerr.ErrorForCode(r[0].ErrorCode), partitions())
	}
	r := grow(6, 0, true)
	// Answered once, as Kafka's ControllerApis does.
	if len(r) != 1 || r[0].ErrorCode != kerr.InvalidRequest.Code || partitions() != 2 {
		t.Fatalf("topic named twice: %+v, %d partitions", r, partitions())
	}
	if r := grow(4, 2, false); r[0].ErrorCode != 0 || partitions() != 4 {
		t.Fatalf("2 partitions added with 2 assignments: %v, %d partitions", kerr.ErrorForCode(r[0].ErrorCode), partitions())
	}
}

// TestPartitionsInSmallStepsBeyondOpenFileLimit: partitions added a few
// at a time (under openFilesCheckFrom each) are checked too: helper-37
// grew a topic by 99 partitions at a time to 16,633 partitions and 19,921
// of 20,000 descriptors, and the broker then failed to accept
// connections.
func TestPartitionsInSmallStepsBeyondOpenFileLimit(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "steps", 1, nil)
	_, low := lowerOpenFileLimit(t, 400)
	count := int32(1)
	for step := 0; ; step++ {
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "steps", count+60
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].ErrorCode; code != 0 {
			if code != kerr.InvalidPartitions.Code {
				t.Fatalf("step %d: %v", step, kerr.ErrorForCode(code))
			}
			break
		}
		count += 60
		if step > 20 {
			t.Fatalf("%d partitions added with an open-file limit of %d", count, low)
		}
	}
	n, _ := countOpenFiles()
	if reserve := int64(100); low-n < reserve {
		t.Fatalf("%d of %d descriptors open after the refusal; want at least %d kept", n, low, reserve)
	}
	t.Logf("refused at %d partitions, %d of %d descriptors open", count, n, low)
}
