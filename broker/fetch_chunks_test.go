package broker

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestFetchChunksCopiedOrSent reads back batches of sizes on both sides of
// copyChunkMax, several partitions to one fetch, from a broker on the OS
// file system (small chunks copied into the response buffer, larger ones
// sent with sendfile) and on the in-memory one (copied either way): every
// record comes back byte for byte, in order.
func TestFetchChunksCopiedOrSent(t *testing.T) {
	for _, fsys := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{{"os", nil, ""}, {"mem", vfs.NewMem(), "/data"}} {
		t.Run(fsys.name, func(t *testing.T) {
			b := startBroker(t, fsys.fs, fsys.dir, nil)
			cl := newClient(t, b)
			createTopic(t, cl, "chunks", 4, nil)
			rng := rand.New(rand.NewPCG(5, 6))
			// Batch sizes per partition: exactly at the threshold and
			// one byte over, tiny ones, and ones larger than the
			// connection's write buffer.
			sizes := [][]int{
				{copyChunkMax, copyChunkMax + 1, 200},
				{100, 100, 100, copyChunkMax - 1},
				{70 << 10, 300},
				{1 << 20, copyChunkMax, 150 << 10},
			}
			want := make([][][]byte, len(sizes))
			for p, ss := range sizes {
				for _, size := range ss {
					value := make([]byte, size)
					for i := range value {
						value[i] = byte(rng.Uint32())
					}
					batch, n := batchOfSize(t, size, value)
					if resp := rawProduce(t, cl, "chunks", int32(p), batch); resp.ErrorCode != 0 {
						t.Fatalf("produce %d bytes: error %d", len(batch), resp.ErrorCode)
					}
					want[p] = append(want[p], value[:n])
				}
			}
			for _, partitionMax := range []int32{1 << 20, copyChunkMax, 1} {
				got := make([][][]byte, len(sizes))
				consumer := newClientAt(t, cl, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"chunks": {
					0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart(), 3: kgo.NewOffset().AtStart(),
				}}), kgo.FetchMaxPartitionBytes(partitionMax))
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				for n := 0; n < 12 && ctx.Err() == nil; {
					fs := consumer.PollFetches(ctx)
					fs.EachError(func(_ string, _ int32, err error) { t.Errorf("fetch: %v", err) })
					fs.EachRecord(func(r *kgo.Record) {
						got[r.Partition] = append(got[r.Partition], r.Value)
						n++
					})
				}
				cancel()
				consumer.Close()
				for p := range want {
					if len(got[p]) != len(want[p]) {
						t.Fatalf("partition max %d: partition %d: %d records, want %d", partitionMax, p, len(got[p]), len(want[p]))
					}
					for i := range want[p] {
						if !bytes.Equal(got[p][i], want[p][i]) {
							t.Fatalf("partition max %d: partition %d record %d: %d bytes differ from the %d produced", partitionMax, p, i, len(got[p][i]), len(want[p][i]))
						}
					}
				}
			}
		})
	}
}

// batchOfSize builds a one-record batch of exactly size bytes whose value
// is the first n bytes of value.
func batchOfSize(t *testing.T, size int, value []byte) (batch []byte, n int) {
	t.Helper()
	n = size - 80
	for range 10 {
		rb := record.NewBuilder()
		rb.Add(nil, value[:n], nil, time.Now().UnixMilli())
		batch = rb.Build()
		if len(batch) == size {
			return batch, n
		}
		n += size - len(batch)
	}
	t.Fatalf("no batch of %d bytes", size)
	return nil, 0
}
