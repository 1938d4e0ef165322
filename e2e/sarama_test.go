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
