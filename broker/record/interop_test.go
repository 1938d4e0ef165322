package record

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestValidateFranzGoProduced produces with a real franz-go client (default
// idempotent producer, each codec) into kfake, fetches the stored batches
// raw, and checks that Validate accepts them and Records yields exactly what
// was produced. This covers the framings the client really writes (e.g. its
// streaming xerial snappy and lz4 frames), not just what our own codecs
// produce.
func TestValidateFranzGoProduced(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "none", "gzip", "snappy", "lz4", "zstd"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	codecs := map[Codec]kgo.CompressionCodec{
		CodecNone:   kgo.NoCompression(),
		CodecGzip:   kgo.GzipCompression(),
		CodecSnappy: kgo.SnappyCompression(),
		CodecLZ4:    kgo.Lz4Compression(),
		CodecZstd:   kgo.ZstdCompression(),
	}
	const n = 2000
	filler := strings.Repeat("some log line that compresses well ", 10)
	for _, c := range allCodecs {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(cluster.ListenAddrs()...),
			kgo.ProducerBatchCompression(codecs[c]),
			kgo.ProducerLinger(5*time.Millisecond),
			kgo.ProducerBatchMaxBytes(256<<10), // several batches, several xerial blocks each
		)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := &kgo.Record{Topic: c.String(), Value: fmt.Appendf(nil, "value %d %s", i, filler)}
			if i%3 == 0 {
				r.Key = fmt.Appendf(nil, "key-%d", i)
				r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}
			}
			cl.Produce(ctx, r, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}

		// The client sends its highest version, which names topics by ID.
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(c.String())
		mreq.Topics = append(mreq.Topics, mt)
		mresp, err := mreq.RequestWith(ctx, cl)
		if err != nil || len(mresp.Topics) != 1 {
			t.Fatalf("metadata: %v %+v", err, mresp)
		}
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 0
		req.MaxBytes = 64 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = c.String()
		rt.TopicID = mresp.Topics[0].TopicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 64 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("%v: fetch response %+v", c, resp)
		}
		records := resp.Topics[0].Partitions[0].RecordBatches
		var seen, batches, xerialBatches int
		err = Batches(records, func(pos int, batch []byte, h Header) error {
			vh, err := Validate(batch)
			if err != nil {
				return fmt.Errorf("%v batch %d: %w", c, batches, err)
			}
			if vh.Codec() != c || vh.ProducerID < 0 || vh.BaseSequence != int32(seen) {
				return fmt.Errorf("%v batch %d: header %+v", c, batches, vh)
			}
			batches++
			if c == CodecSnappy && bytes.HasPrefix(batch[HeaderSize:], xerialMagic) {
				xerialBatches++
			}
			return Records(vh, batch, func(r *Record) error {
				want := fmt.Sprintf("value %d %s", seen, filler)
				if string(r.Value) != want || (seen%3 == 0) != (r.Key != nil) || (seen%3 == 0) != (len(r.Headers) == 1) {
					return fmt.Errorf("%v record %d: %+v", c, seen, r)
				}
				seen++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != n {
			t.Fatalf("%v: %d records in %d batches, want %d", c, seen, batches, n)
		}
		t.Logf("%v: %d batches (%d xerial framed)", c, batches, xerialBatches)
	}
}
