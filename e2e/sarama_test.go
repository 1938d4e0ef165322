package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaConfig returns a sarama config speaking a modern protocol version.
func saramaConfig(idempotent bool) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "gregor-e2e"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Timeout = 10 * time.Second
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	if idempotent {
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
	}
	return cfg
}

// TestSaramaProduceConsume produces with a sarama SyncProducer (plain and
// idempotent, several codecs) and reads back with sarama's partition
// consumer.
func TestSaramaProduceConsume(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	admin := b.Client()

	cases := []struct {
		name       string
		idempotent bool
		codec      sarama.CompressionCodec
	}{
		{"plain", false, sarama.CompressionNone},
		{"idempotent", true, sarama.CompressionNone},
		{"gzip", false, sarama.CompressionGZIP},
		{"snappy", false, sarama.CompressionSnappy},
		{"lz4", false, sarama.CompressionLZ4},
		{"zstd", true, sarama.CompressionZSTD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := "sarama-" + tc.name
			createTopic(t, admin, topic, 2, nil)
			cfg := saramaConfig(tc.idempotent)
			cfg.Producer.Compression = tc.codec

			producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
			if err != nil {
				t.Fatalf("sarama producer: %v", err)
			}
			defer producer.Close()

			const n = 300
			want := map[int32][]string{}
			for i := 0; i < n; i++ {
				p := int32(i % 2)
				v := fmt.Sprintf("%s-%d", tc.name, i)
				part, off, err := producer.SendMessage(&sarama.ProducerMessage{
					Topic: topic, Partition: p, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(v),
				})
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if part != p || off != int64(len(want[p])) {
					t.Fatalf("send %d: got partition %d offset %d, want %d/%d", i, part, off, p, len(want[p]))
				}
				want[p] = append(want[p], v)
			}
			// A batch of messages at once, too.
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 100; i++ {
				v := fmt.Sprintf("%s-batch-%d", tc.name, i)
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(v)})
				want[0] = append(want[0], v)
			}
			if err := producer.SendMessages(msgs); err != nil {
				t.Fatalf("send batch: %v", err)
			}

			consumer, err := sarama.NewConsumer([]string{b.Addr}, saramaConfig(false))
			if err != nil {
				t.Fatalf("sarama consumer: %v", err)
			}
			defer consumer.Close()
			for p := int32(0); p < 2; p++ {
				pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatalf("consume partition %d: %v", p, err)
				}
				deadline := time.After(30 * time.Second)
				for i, v := range want[p] {
					select {
					case m := <-pc.Messages():
						if string(m.Value) != v || m.Offset != int64(i) {
							t.Fatalf("p%d: got %q at %d, want %q at %d", p, m.Value, m.Offset, v, i)
						}
					case err := <-pc.Errors():
						t.Fatalf("p%d: consumer error: %v", p, err)
					case <-deadline:
						t.Fatalf("p%d: timed out after %d of %d messages", p, i, len(want[p]))
					}
				}
				if hwm := pc.HighWaterMarkOffset(); hwm != int64(len(want[p])) {
					t.Errorf("p%d: high watermark %d, want %d", p, hwm, len(want[p]))
				}
				if err := pc.Close(); err != nil {
					t.Errorf("close partition consumer: %v", err)
				}
			}
		})
	}
}

// saramaReadPartition reads n messages of partition 0 of topic from the
// start with a sarama consumer configured for version.
func saramaReadPartition(t *testing.T, addr string, version sarama.KafkaVersion, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := saramaConfig(false)
	cfg.Version = version
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama %s consumer: %v", version, err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("sarama %s: consume partition: %v", version, err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case err := <-pc.Errors():
			t.Fatalf("sarama %s consumer error: %v", version, err)
		case <-deadline:
			t.Fatalf("sarama %s: timed out after %d of %d messages", version, len(out), n)
		}
	}
	return out
}

// TestSaramaOldProduceVersions produces with sarama configured for Kafka
// 0.8.2 (Produce v0, message format v0: no timestamps) and 0.10.0 (Produce
// v2, message format v1), plain and compressed, in batches of several
// messages: gregor converts each message set into a v2 batch, and a
// current client reads back every key and value, null kept apart from
// empty, with the producer's timestamps (none, -1, for format v0). sarama
// at the same version (Fetch v0 or v2) reads them back too.
func TestSaramaOldProduceVersions(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	admin := b.Client()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for _, tc := range []struct {
		version sarama.KafkaVersion
		codec   sarama.CompressionCodec
	}{
		{sarama.V0_8_2_0, sarama.CompressionNone},
		{sarama.V0_8_2_0, sarama.CompressionGZIP},
		{sarama.V0_8_2_0, sarama.CompressionSnappy},
		{sarama.V0_10_0_0, sarama.CompressionNone},
		{sarama.V0_10_0_0, sarama.CompressionGZIP},
		{sarama.V0_10_0_0, sarama.CompressionSnappy},
		{sarama.V0_10_0_0, sarama.CompressionLZ4},
	} {
		name := fmt.Sprintf("%s-%s", tc.version, tc.codec)
		t.Run(name, func(t *testing.T) {
			topic := "sarama-old-" + name
			createTopic(t, admin, topic, 1, nil)
			cfg := saramaConfig(false)
			cfg.Version = tc.version
			cfg.Producer.Compression = tc.codec
			cfg.Producer.Flush.Messages = 50 // several messages per set
			cfg.Producer.Flush.Frequency = 20 * time.Millisecond
			producer, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
			if err != nil {
				t.Fatalf("sarama producer: %v", err)
			}
			defer producer.Close()
			var msgs []*sarama.ProducerMessage
			for i := range 400 {
				m := &sarama.ProducerMessage{Topic: topic, Partition: 0,
					Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", name, i)), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				switch i % 4 {
				case 1:
					m.Key = sarama.StringEncoder(fmt.Sprint("key-", i))
				case 2:
					m.Key = sarama.ByteEncoder{} // empty, not null
				case 3:
					m.Value = nil // null value
				}
				msgs = append(msgs, m)
			}
			if err := producer.SendMessages(msgs); err != nil {
				t.Fatalf("send: %v", err)
			}
			recs := consumePartition(t, b.Addr, topic, 0, 0, len(msgs), 30*time.Second)
			for i, r := range recs {
				m := msgs[i]
				wantKey, wantValue := encoded(m.Key), encoded(m.Value)
				if r.Offset != int64(i) || (r.Key == nil) != (wantKey == nil) || string(r.Key) != string(wantKey) ||
					(r.Value == nil) != (wantValue == nil) || string(r.Value) != string(wantValue) {
					t.Fatalf("offset %d: key %q (null %v) value %q (null %v); want offset %d key %q (null %v) value %q (null %v)",
						r.Offset, r.Key, r.Key == nil, r.Value, r.Value == nil, i, wantKey, wantKey == nil, wantValue, wantValue == nil)
				}
				wantTs := m.Timestamp.UnixMilli()
				if tc.version == sarama.V0_8_2_0 {
					wantTs = -1
				}
				if got := r.Timestamp.UnixMilli(); got != wantTs {
					t.Fatalf("offset %d: timestamp %d, want %d", r.Offset, got, wantTs)
				}
			}
			if n := len(rawFetch(t, admin, topic, 0, 0).Batches); n >= len(msgs) {
				t.Errorf("%d batches for %d messages: sets of one message each", n, len(msgs))
			}
			// sarama at the same version reads them back (Fetch v0 or
			// v2: message sets converted from the batches).
			for i, m := range saramaReadPartition(t, b.Addr, tc.version, topic, len(msgs)) {
				want := msgs[i]
				wantKey, wantValue := encoded(want.Key), encoded(want.Value)
				if m.Offset != int64(i) || string(m.Key) != string(wantKey) || (m.Value == nil) != (wantValue == nil) || string(m.Value) != string(wantValue) {
					t.Fatalf("sarama %s read offset %d: key %q value %q (null %v), want offset %d key %q value %q (null %v)",
						tc.version, m.Offset, m.Key, m.Value, m.Value == nil, i, wantKey, wantValue, wantValue == nil)
				}
				if tc.version != sarama.V0_8_2_0 && !m.Timestamp.Equal(want.Timestamp) {
					t.Fatalf("sarama %s read offset %d: timestamp %v, want %v", tc.version, m.Offset, m.Timestamp, want.Timestamp)
				}
			}
		})
	}
	checkHealthy(t, b)
}

// encoded is what sarama sends for an encoder: nil for none.
func encoded(e sarama.Encoder) []byte {
	if e == nil {
		return nil
	}
	b, _ := e.Encode()
	if b == nil {
		return []byte{}
	}
	return b
}
