package appender

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestHandlerDeliversInOrderExactlyOnce(t *testing.T) {
	tb := startBroker(t, nil)
	createTopic(t, tb.addr, "logs", 1, nil)
	h, err := NewHandler(WithBrokers(tb.addr), WithTopic("logs"), WithService("svc"), WithHost("h1"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	const n = 20000
	for i := range n {
		log.Info("hello", "i", i)
	}
	if err := h.Close(closeCtx(t, 20*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	st := h.Stats()
	if st.Sent != n || st.Enqueued != n || st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	recs := consumeAll(t, tb.addr, "logs", n, 20*time.Second)
	if len(recs) != n {
		t.Fatalf("consumed %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, r.Value)
		}
		if int(m["i"].(float64)) != i {
			t.Fatalf("record %d has i=%v", i, m["i"])
		}
		if i == 0 {
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if hdr["service"] != "svc" || hdr["host"] != "h1" || hdr["level"] != "info" {
				t.Fatalf("headers %v", hdr)
			}
		}
	}
}

func TestCoreDeliversWithKeys(t *testing.T) {
	tb := startBroker(t, nil)
	createTopic(t, tb.addr, "zlogs", 4, nil)
	core, err := NewCore(WithBrokers(tb.addr), WithTopic("zlogs"), WithKeyField("user"))
	if err != nil {
		t.Fatal(err)
	}
	log := zap.New(core)
	const n = 4000
	for i := range n {
		log.Info("req", zap.String("user", fmt.Sprintf("u%d", i%10)), zap.Int("i", i))
	}
	if err := core.Close(closeCtx(t, 20*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	recs := consumeAll(t, tb.addr, "zlogs", n, 20*time.Second)
	if len(recs) != n {
		t.Fatalf("consumed %d, want %d", len(recs), n)
	}
	partOf := map[string]int32{}
	last := map[string]int{}
	for _, r := range recs {
		k := string(r.Key)
		if p, ok := partOf[k]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", k, p, r.Partition)
		}
		partOf[k] = r.Partition
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		if m["user"] != k {
			t.Fatalf("key %q for user %v", k, m["user"])
		}
		i := int(m["i"].(float64))
		if prev, ok := last[k]; ok && i <= prev {
			t.Fatalf("key %s: %d after %d", k, i, prev)
		}
		last[k] = i
	}
}

// TestTopicAutoCreated: with a broker that creates topics on first use, a
// log to a topic that does not exist yet is delivered, as the agent's and
// gregor produce's are (it failed with UNKNOWN_TOPIC_OR_PARTITION).
func TestTopicAutoCreated(t *testing.T) {
	tb := startBroker(t, map[string]string{"auto.create.topics.enable": "true"})
	h, err := NewHandler(WithBrokers(tb.addr), WithTopic("fresh"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 10 {
		log.Info("hello", "i", i)
	}
	if err := h.Close(closeCtx(t, 20*time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	if st := h.Stats(); st.Sent != 10 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	if recs := consumeAll(t, tb.addr, "fresh", 10, 10*time.Second); len(recs) != 10 {
		t.Fatalf("consumed %d records, want 10", len(recs))
	}
}
