package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCompaction produces many updates to a few keys of a compacted topic,
// deletes some keys with tombstones (one of them comes back), and waits
// for the broker's log cleaner: a consumer reading from the start must
// then get exactly the latest value of every live key, at the offset it
// was produced at, and no tombstone (delete.retention.ms is short). A
// record without a key is refused with INVALID_RECORD. The compacted log
// reads the same after a restart.
func TestCompaction(t *testing.T) {
	t.Parallel()
	const topic = "compacted"
	b := StartBroker(t, WithSet(
		"log.cleaner.backoff.ms=50",
		"log.retention.check.interval.ms=100", // rolls the active segment by segment.ms
		"log.segment.delete.delay.ms=0",
	))
	admin := b.Client()
	createTopic(t, admin, topic, 1, map[string]string{
		"cleanup.policy":            "compact",
		"segment.bytes":             "4096",
		"segment.ms":                "300",
		"min.cleanable.dirty.ratio": "0.01",
		"delete.retention.ms":       "500",
		"flush.ms":                  "100",
	})
	producer := manualClient(t, b.Addr, kgo.ProducerLinger(0))
	ctx := testCtx(t, 60*time.Second)
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	rec := func(key, value string) *kgo.Record {
		r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(key)}
		if value != "" {
			r.Value = []byte(value)
		}
		return r
	}

	// 10 keys, 50 rounds of updates, ten records to a request.
	latest := map[string]*kgo.Record{}
	for round := range 50 {
		var batch []*kgo.Record
		for k := range 10 {
			r := rec(fmt.Sprintf("k%d", k), fmt.Sprintf("k%d-v%02d", k, round))
			batch = append(batch, r)
			latest[string(r.Key)] = r
		}
		produce(batch...)
	}
	// Delete k0, k1 and k2; k2 comes back; an end marker follows.
	tombstones := []*kgo.Record{rec("k0", ""), rec("k1", ""), rec("k2", "")}
	produce(tombstones...)
	delete(latest, "k0")
	delete(latest, "k1")
	reborn := rec("k2", "k2-reborn")
	end := rec("zz-end", "end")
	produce(reborn, end)
	latest["k2"], latest["zz-end"] = reborn, end

	// A record without a key is refused.
	nullKey := &kgo.Record{Topic: topic, Partition: 0, Value: []byte("no key")}
	if err := manualClient(t, b.Addr, kgo.ProducerLinger(0)).ProduceSync(ctx, nullKey).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("producing a record without a key: %v, want INVALID_RECORD", err)
	}

	want := make([]string, 0, len(latest))
	for key, r := range latest {
		want = append(want, fmt.Sprintf("%d %s=%s", r.Offset, key, r.Value))
	}
	sort.Strings(want)
	check := func() error {
		got, err := readCompacted(ctx, b.Addr, topic, end.Offset)
		if err != nil {
			return err
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("log holds %d records:\n%s\nwant %d:\n%s: %w",
				len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"), errNotYet)
		}
		return nil
	}
	eventually(t, 30*time.Second, "compacted to the latest value per key", check)

	if _, err := b.Stop(10 * time.Second); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	b.Start()
	if err := check(); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

// readCompacted reads a partition from offset 0 up to and including
// offset last, and returns its records as "offset key=value" (a tombstone
// shows as "offset key=<tombstone>").
func readCompacted(ctx context.Context, addr, topic string, last int64) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []string
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s up to offset %d: %w", topic, last, err)
		}
		if err := fs.Err(); err != nil {
			return nil, err
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if r.Value == nil {
				v = "<tombstone>"
			}
			out = append(out, fmt.Sprintf("%d %s=%s", r.Offset, r.Key, v))
			done = done || r.Offset >= last
		})
		if done {
			return out, nil
		}
	}
}
