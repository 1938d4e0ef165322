package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFollowNewPartitions: a following consumer of every partition picks
// up a partition added to its topic after it started, from that
// partition's start, and says so (before, `consume --follow` read only the
// partitions there when it started).
func TestFollowNewPartitions(t *testing.T) {
	t.Parallel()
	b := newCluster(t, kfake.SeedTopics(1, "grow"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"grow": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var mu sync.Mutex
	var notes []string
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		notes = append(notes, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		followNewPartitions(ctx, cl, "grow", map[int32]int64{0: 0}, 20*time.Millisecond, note)
	}()
	defer func() { cancel(); <-done }()

	cp := kmsg.NewPtrCreatePartitionsRequest()
	ct := kmsg.NewCreatePartitionsRequestTopic()
	ct.Topic, ct.Count = "grow", 2
	cp.Topics = append(cp.Topics, ct)
	cp.TimeoutMillis = 5000
	if resp, err := cp.RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, resp)
	}
	// Produced before the consumer can have found the partition: read
	// from its start, it is not missed.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "grow", Partition: 1, Value: []byte("in the new partition")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	pollCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	for {
		fetches := cl.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			t.Fatal("no record from the added partition")
		}
		var got bool
		fetches.EachRecord(func(r *kgo.Record) {
			got = got || r.Partition == 1 && string(r.Value) == "in the new partition"
		})
		if got {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 1 || !strings.Contains(notes[0], "partition 1 of grow was added") {
		t.Fatalf("notes %q", notes)
	}
}
